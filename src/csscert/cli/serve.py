"""``csscert serve``: check the address, initialise (first start: project, CA, user, keys), run granian."""

from __future__ import annotations

import logging
import os
import resource
import shlex
import shutil
import socket
from pathlib import Path
from typing import Any

import click
from rich.rule import Rule

from csscert.cli.common import open_service, settings_for
from csscert.cli.output import console, fail
from csscert.logs import configure as configure_logging
from csscert.logs import granian_config
from csscert.service import FirstStart
from csscert.settings import Settings

log = logging.getLogger("csscert")


def _first_start_banner(first: FirstStart, base: str, data_dir: Path) -> None:
    """What a newcomer needs next; no secret (journald and container logs keep this output).
    Values are printed verbatim: no markup, no wrapping."""

    def line(label: str, value: str) -> None:
        console.print(f"{label:<16}{value}", markup=False, highlight=False, soft_wrap=True)

    console.print(Rule("[bold]csscert: first start"), width=min(console.width, 80))
    line("region", first.region)
    line("project id", f"{first.project.id}  (name {first.project.name})")
    line("user", f"{first.user_name} in domain {first.domain_name}")
    line("access key", first.access_key)
    line("credentials", f"{first.credentials_file}  (password and secret key, mode 0600)")
    console.print(f"download the certificate (with a token of {first.user_name}):", markup=False)
    mint = (
        f"csscert --data-dir {shlex.quote(str(data_dir))} token issue "
        f"--user {first.user_name} --project {first.project.id}"
    )
    command = (
        f'curl -fsS -H "X-Auth-Token: $({mint})" -o CloudSearchService.cer '
        f"{base}/v1.0/{first.project.id}/cer/download"
    )
    console.print(f"  {command}", markup=False, highlight=False, soft_wrap=True)
    console.print(Rule(), width=min(console.width, 80))


def _raise_file_limit(wanted: int) -> int:
    """Let each worker hold ``wanted`` descriptors (connections, the database, logs): raise the
    soft limit toward the hard one. Returns what is available."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return wanted if soft == resource.RLIM_INFINITY else soft


def _metrics_directory(data_dir: Path) -> Path:
    """A private directory for this server's shared metrics files, ``<data>/metrics/<pid>``;
    those of servers that are gone are removed (so a start never reports a dead server's counts)."""
    root = data_dir / "metrics"
    root.mkdir(mode=0o700, exist_ok=True)
    for old in root.iterdir():
        if old.name.isdigit() and not _alive(int(old.name)):
            shutil.rmtree(old, ignore_errors=True)
    mine = root / str(os.getpid())
    shutil.rmtree(mine, ignore_errors=True)
    mine.mkdir(mode=0o700)
    return mine


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


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
@click.option(
    "--rate-limits",
    type=click.Choice(["on", "off"]),
    default=None,
    help="Throttling per credential, user and address (default on) [CSSCERT_RATE_LIMITS].",
)
@click.option(
    "--http",
    type=click.Choice(["1", "2", "auto"]),
    default=None,
    help="HTTP/1.1 only (default), HTTP/2 only, or both [CSSCERT_HTTP].",
)
@click.option("--max-connections", type=int, default=None, help="Open connections per worker (default 8192).")
@click.pass_context
def serve(
    ctx: click.Context,
    host: str | None,
    port: int | None,
    workers: int | None,
    public_url: str | None,
    rate_limits: str | None,
    http: str | None,
    max_connections: int | None,
) -> None:
    """Run the API server (creates the database, CA and first credentials on first start)."""
    settings = settings_for(
        ctx,
        host=host,
        port=port,
        workers=workers,
        public_url=public_url,
        rate_limits=rate_limits,
        http=http,
        max_connections=max_connections,
    )
    configure_logging(settings.log_level)
    # Whatever the umask, nothing the server creates in the data directory (the database's
    # journal files, metrics files) is readable by other users.
    os.umask(0o077)
    _check_can_listen(settings.host, settings.port)  # before a first start writes anything
    service, first = open_service(settings, bootstrap=True)
    settings = service.settings
    base = settings.public_base_url()
    if first is not None:
        _first_start_banner(first, base, settings.data_dir)
    service.close()
    descriptors = _raise_file_limit(settings.max_connections + 256)
    if descriptors < settings.max_connections + 256:
        fewer = max(16, descriptors - 256)
        log.warning(
            "only %d file descriptors per process (ulimit -n): at most %d connections per worker, not %d",
            descriptors,
            fewer,
            settings.max_connections,
        )
        settings = settings.model_copy(update={"max_connections": fewer})
    os.environ.update(settings.to_environ())
    if settings.metrics != "off":
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(_metrics_directory(settings.data_dir))
    server = _granian(settings)
    log.info(
        "csscert listening on %s (%d worker(s), HTTP/%s, data in %s)",
        base,
        settings.workers,
        {"1": "1.1", "2": "2", "auto": "1.1 and HTTP/2"}[settings.http],
        settings.data_dir,
    )
    server.serve()


def _granian(settings: Settings) -> Any:
    """granian with explicit limits (README, "Limits"): one connection costs a worker at most
    ``max_header_bytes`` of buffer, and none is held without a deadline."""
    from granian import Granian
    from granian.constants import HTTPModes, Interfaces
    from granian.http import HTTP1Settings, HTTP2Settings

    return Granian(
        "csscert.api.app:create_app",
        address=settings.host,
        port=settings.port,
        interface=Interfaces.RSGI,
        workers=settings.workers,
        factory=True,
        log_access=False,
        log_dictconfig=granian_config(settings.log_level),
        websockets=False,
        http={"1": HTTPModes.http1, "2": HTTPModes.http2, "auto": HTTPModes.auto}[settings.http],
        # The kernel queues at most this many connections not yet accepted.
        backlog=settings.backlog,
        # Connections a worker holds open at once (granian's per-worker semaphore).
        backpressure=settings.max_connections,
        http1_settings=HTTP1Settings(
            # Applies to the request head and to an idle keep-alive connection alike.
            header_read_timeout=int(settings.header_read_timeout_seconds * 1000),
            keep_alive=True,
            max_buffer_size=settings.max_header_bytes,
        ),
        http2_settings=HTTP2Settings(
            adaptive_window=False,
            initial_connection_window_size=128 * 1024,
            initial_stream_window_size=64 * 1024,
            # A ping every interval; no answer within the timeout closes the connection.
            keep_alive_interval=int(settings.header_read_timeout_seconds * 1000),
            keep_alive_timeout=max(1, int(settings.header_read_timeout_seconds)),
            max_concurrent_streams=16,
            max_frame_size=16 * 1024,
            max_headers_size=settings.max_header_bytes,
            max_send_buffer_size=128 * 1024,
        ),
    )
