"""Client commands that talk to a running csscert (or the cloud) like a user: ``download`` and ``verify``."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from csscert.cli.output import console, emit_json, err_console, escape, fail, json_option, warn
from csscert.files import NotARegularFile


@click.command()
@click.option("--endpoint", required=True, help="Base URL, e.g. http://127.0.0.1:8080")
@click.option("--project", "project_id", required=True, help="Project id.")
@click.option("--token", default=None, envvar="CSSCERT_TOKEN", help="X-Auth-Token [CSSCERT_TOKEN].")
@click.option("--ak", default=None, envvar="CSSCERT_AK", help="Access key [CSSCERT_AK].")
@click.option("--sk", default=None, envvar="CSSCERT_SK", help="Secret key [CSSCERT_SK].")
@click.option("--format", "fmt", type=click.Choice(["pem", "der", "p7b", "jks", "p12", "json"]), default=None)
@click.option("--password", default=None, help="Truststore password for jks/p12.")
@click.option(
    "-o",
    "--output",
    default=None,
    help="File to write (default: the server's file name); '-' is standard output.",
)
@click.option("--force", is_flag=True, help="Replace the output file (a regular file only).")
@click.option("--cacert", default=None, help="CA file to verify an https endpoint.")
@json_option
def download(
    endpoint: str,
    project_id: str,
    token: str | None,
    ak: str | None,
    sk: str | None,
    fmt: str | None,
    password: str | None,
    output: str | None,
    force: bool,
    cacert: str | None,
    as_json: bool,
) -> None:
    """Download the certificate through the API (token or AK/SK) and print its fingerprint."""
    from csscert.client import DownloadError
    from csscert.client import download as fetch
    from csscert.files import publish_new, write_replacing

    if not token and not (ak and sk):
        fail("give --token, or --ak and --sk")
    to_stdout = output == "-"
    if to_stdout and as_json:
        fail("-o - and --json would both write to standard output; give -o FILE with --json")
    target = Path(output) if output and not to_stdout else None
    if target is not None and (target.exists() or target.is_symlink()) and not force:
        fail(f"{target} exists; pass --force to replace it")
    try:
        result = fetch(
            endpoint,
            project_id,
            token=token,
            access_key=ak,
            secret_key=sk,
            fmt=fmt,
            password=password,
            verify_tls=cacert or True,
        )
    except DownloadError as exc:
        fail(str(exc))
    if to_stdout:
        sys.stdout.buffer.write(result.body)
        sys.stdout.flush()
    else:
        is_json = result.content_type.startswith("application/json")
        fallback = "CloudSearchService.json" if is_json else "CloudSearchService.cer"
        target = target or Path(result.filename or fallback)
        try:
            if force:
                write_replacing(target, result.body, 0o644)
            else:
                publish_new([(target, result.body, 0o644)])  # never overwrites what appeared meanwhile
        except FileExistsError:
            fail(f"{target} exists; pass --force to replace it")
        except NotARegularFile:
            fail(
                f"{target} is not a regular file (a link, device or directory): refusing to replace it; "
                "give -o - to write to standard output"
            )
    if result.warning:
        warn(result.warning)
    if as_json:
        emit_json(
            {
                "file": str(target.resolve()) if target else None,
                "bytes": len(result.body),
                "content_type": result.content_type,
                "fingerprints_sha256": [fp.replace(":", "").lower() for fp in result.fingerprints],
                "etag": result.etag,
                "request_id": result.request_id,
                "warning": result.warning,
            }
        )
        return
    report = click.echo if not to_stdout else (lambda text: click.echo(text, err=True))
    report(
        f"wrote {target if target else 'standard output'} ({len(result.body)} bytes, {result.content_type})"
    )
    for fp in result.fingerprints:
        report(f"  SHA-256 {fp}")
    if not result.fingerprints:
        warn("could not read any certificate from the download")


@click.command()
@click.argument("url")
@click.option("--cafile", required=True, type=click.Path(exists=True, dir_okay=False))
@json_option
def verify(url: str, cafile: str, as_json: bool) -> None:
    """Connect to https://HOST:PORT and verify its chain and hostname against CAFILE."""
    from csscert.client import verify as check

    result = check(url, cafile)
    if as_json:
        emit_json(result.__dict__)
    else:
        out = console() if result.ok else err_console()
        verdict = "[bold green]OK[/]" if result.ok else "[bold red]FAILED[/]"
        where = escape(f"{result.host}:{result.port}")
        out.print(f"{verdict} {where}: {escape(result.reason)}", soft_wrap=True)
        for label, value in (
            ("subject", result.subject),
            ("issuer", result.issuer),
            ("names", ", ".join(result.names) if result.names else None),
            ("valid until", result.not_after),
            ("SHA-256", result.fingerprint),
            ("signed by CA", result.ca_fingerprint),
        ):
            if value:
                out.print(f"  {label:12} {escape(value)}", soft_wrap=True)
    sys.exit(0 if result.ok else 1)
