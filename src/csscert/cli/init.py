"""``csscert init``: create the data directory (database, master key, CA, the region's project, a
first user and access key) without serving. With ``serve`` the only command that creates data."""

from __future__ import annotations

import shlex
from typing import TYPE_CHECKING

import click

from csscert.cli.common import open_service, settings_for
from csscert.cli.output import console, emit_json, json_option

if TYPE_CHECKING:
    from csscert.service import FirstStart


def first_start_banner(first: FirstStart, base: str) -> None:
    """What a newcomer needs next, and no secret (journald and container logs keep this output):
    where the credentials are and a command that mints its own token. Values are printed
    verbatim: no markup, no wrapping."""
    from rich.rule import Rule

    out = console()

    def line(label: str, value: str) -> None:
        out.print(f"{label:<16}{value}", markup=False, highlight=False, soft_wrap=True)

    out.print(Rule("[bold]csscert: first start"), width=min(out.width, 80))
    line("region", first.region)
    line("project id", f"{first.project.id}  (name {first.project.name})")
    line("user", f"{first.user_name} in domain {first.domain_name}")
    line("access key", first.access_key)
    line("credentials", f"{first.credentials_file}  (password and secret key, mode 0600)")
    out.print(f"download the certificate (with a token of {first.user_name}):", markup=False)
    mint = (
        f"csscert --data-dir {shlex.quote(str(first.credentials_file.parent))} token issue "
        f"--user {first.user_name} --project {first.project.id}"
    )
    command = (
        f"curl -fsS {'--cacert CloudSearchService.cer ' if base.startswith('https') else ''}"
        f'-H "X-Auth-Token: $({mint})" -o CloudSearchService.cer '
        f"{base}/v1.0/{first.project.id}/cer/download"
    )
    out.print(f"  {command}", markup=False, highlight=False, soft_wrap=True)
    out.print(Rule(), width=min(out.width, 80))


@click.command()
@json_option
@click.pass_context
def init(ctx: click.Context, as_json: bool) -> None:
    """Create the data directory, database, CA and first credentials (what 'serve' does on its
    first start), then exit. Does nothing to data that exists already."""
    settings = settings_for(ctx)
    service, first = open_service(settings, create=True, bootstrap=True)
    try:
        settings = service.settings
        data_dir = str(settings.data_dir.resolve())
        if as_json:
            payload: dict[str, object] = {"created": first is not None, "data_dir": data_dir}
            if first is not None:
                payload.update(
                    region=first.region,
                    project_id=first.project.id,
                    project_name=first.project.name,
                    user_name=first.user_name,
                    domain_name=first.domain_name,
                    access_key=first.access_key,
                    credentials_file=str(first.credentials_file.resolve()),
                )
            emit_json(payload)
        elif first is not None:
            first_start_banner(first, settings.public_base_url())
            click.echo(f"initialised {data_dir}; start the API with 'csscert serve'", err=True)
        else:
            click.echo(f"{data_dir} is initialised already; nothing to do", err=True)
    finally:
        service.close()
