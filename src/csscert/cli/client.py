"""Client commands that talk to a running csscert (or the cloud) like a user: ``download`` and ``verify``."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click
from rich.markup import escape

from csscert.cli.output import console, emit_json, err_console, fail, json_option


@click.command()
@click.option("--endpoint", required=True, help="Base URL, e.g. http://127.0.0.1:8080")
@click.option("--project", "project_id", required=True, help="Project id.")
@click.option("--token", default=None, envvar="CSSCERT_TOKEN", help="X-Auth-Token [CSSCERT_TOKEN].")
@click.option("--ak", default=None, envvar="CSSCERT_AK", help="Access key [CSSCERT_AK].")
@click.option("--sk", default=None, envvar="CSSCERT_SK", help="Secret key [CSSCERT_SK].")
@click.option("--format", "fmt", type=click.Choice(["pem", "der", "p7b", "jks", "p12", "json"]), default=None)
@click.option("--password", default=None, help="Truststore password for jks/p12.")
@click.option("-o", "--output", type=click.Path(path_type=Path), default=None)
@click.option("--force", is_flag=True, help="Overwrite the output file.")
@click.option("--cacert", default=None, help="CA file to verify an https endpoint.")
def download(
    endpoint: str,
    project_id: str,
    token: str | None,
    ak: str | None,
    sk: str | None,
    fmt: str | None,
    password: str | None,
    output: Path | None,
    force: bool,
    cacert: str | None,
) -> None:
    """Download the certificate through the API (token or AK/SK) and print its fingerprint."""
    from csscert.client import DownloadError
    from csscert.client import download as fetch

    if not token and not (ak and sk):
        fail("give --token, or --ak and --sk")
    if output is not None and output.exists() and not force:
        fail(f"{output} exists; pass --force to overwrite")
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
    is_json = result.content_type.startswith("application/json")
    fallback = "CloudSearchService.json" if is_json else "CloudSearchService.cer"
    target = output or Path(result.filename or fallback)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.part")
    try:
        tmp.write_bytes(result.body)
        if force:
            os.replace(tmp, target)
        else:
            os.link(tmp, target)  # fails if the file appeared meanwhile: never overwrite silently
    except FileExistsError:
        fail(f"{target} exists; pass --force to overwrite")
    except OSError as exc:
        fail(f"cannot write {target}: {exc.strerror or exc}")
    finally:
        tmp.unlink(missing_ok=True)
    console.print(
        f"wrote {escape(str(target))} ({len(result.body)} bytes, {escape(result.content_type)})",
        soft_wrap=True,
    )
    for fp in result.fingerprints:
        console.print(f"  SHA-256 {fp}")
    if not result.fingerprints:
        err_console.print("[bold yellow]warning:[/] could not read any certificate from the download")
    if result.warning:
        err_console.print(f"[bold yellow]warning:[/] {escape(result.warning)}", soft_wrap=True)


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
        out = console if result.ok else err_console
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
