"""``csscert serve``: check the address, initialise (first start: project, CA, user, keys), run granian."""

from __future__ import annotations

import os
import socket

import click
from rich.rule import Rule

from csscert.cli.common import open_service, settings_for
from csscert.cli.output import console, err_console, fail
from csscert.service import FirstStart


def _first_start_banner(first: FirstStart, base: str) -> None:
    """What a newcomer needs next. Values are printed verbatim: no markup, no wrapping."""

    def line(label: str, value: str) -> None:
        console.print(f"{label:<16}{value}", markup=False, highlight=False, soft_wrap=True)

    console.print(Rule("[bold]csscert: first start"), width=min(console.width, 80))
    line("region", first.region)
    line("project id", f"{first.project.id}  (name {first.project.name})")
    line("user", f"{first.user_name} in domain {first.domain_name}")
    line("access key", first.access_key)
    line("credentials", f"{first.credentials_file}  (password and secret key, mode 0600)")
    console.print(f"download the certificate (with a token of {first.user_name}):", markup=False)
    command = (
        f"curl -fsS -H 'X-Auth-Token: {first.token}' -o CloudSearchService.cer "
        f"{base}/v1.0/{first.project.id}/cer/download"
    )
    console.print(f"  {command}", markup=False, highlight=False, soft_wrap=True)
    console.print(Rule(), width=min(console.width, 80))


def _check_can_listen(host: str, port: int) -> None:
    """Fail with one clear line (not a server backtrace) when the address cannot be used."""
    if port == 0:
        fail("give a real port with --port (0 would pick a random one that nobody can be told)")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, kind, proto, _, address = infos[0]
        with socket.socket(family, kind, proto) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(address)
    except OSError as exc:
        fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}")


@click.command()
@click.option("--host", default=None, help="Address to bind (default 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port (default 8080).")
@click.option("--workers", type=int, default=None, help="Worker processes (default 1).")
@click.option("--public-url", default=None, help="Base URL clients use, for the Keystone catalog.")
@click.pass_context
def serve(
    ctx: click.Context, host: str | None, port: int | None, workers: int | None, public_url: str | None
) -> None:
    """Run the API server (creates the database, CA and first credentials on first start)."""
    settings = settings_for(ctx, host=host, port=port, workers=workers, public_url=public_url)
    _check_can_listen(settings.host, settings.port)  # before a first start writes anything
    service, first = open_service(settings, bootstrap=True)
    settings = service.settings
    base = settings.public_base_url()
    if first is not None:
        _first_start_banner(first, base)
    service.close()
    os.environ.update(settings.to_environ())
    from granian import Granian
    from granian.constants import Interfaces

    server = Granian(
        "csscert.api.app:create_app",
        address=settings.host,
        port=settings.port,
        interface=Interfaces.RSGI,
        workers=settings.workers,
        factory=True,
        log_access=False,
        websockets=False,
    )
    err_console.print(
        f"csscert listening on {base} ({settings.workers} worker(s), data in {settings.data_dir})",
        markup=False,
        soft_wrap=True,
    )
    server.serve()
