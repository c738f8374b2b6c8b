"""``csscert serve``: check the address, initialise (first start: project, CA, user, keys), run
granian, over HTTP or HTTPS (``--tls`` with a certificate from csscert's own CA, or
``--tls-cert``/``--tls-key``). ``--ephemeral`` serves a throw-away data directory for tests and
prints what a client needs as one JSON line once the server answers."""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import os
import resource
import shutil
import socket
import ssl
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from csscert.cli.common import open_service, settings_for
from csscert.cli.output import fail

if TYPE_CHECKING:
    from csscert.service import Service
    from csscert.settings import Settings


log = logging.getLogger("csscert")


def _check_can_listen(host: str, port: int) -> None:
    """Fail with one clear line (not a server backtrace) when the address cannot be used."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, kind, proto, _, address = infos[0]
        with socket.socket(family, kind, proto) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(address)
    except OSError as exc:
        fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}")


def _free_port(host: str) -> int:
    infos = socket.getaddrinfo(host, 0, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as sock:
        sock.bind(address)
        return int(sock.getsockname()[1])


def _tls_files(service: Service) -> tuple[Path, Path] | None:
    """The certificate and key granian serves, or None for plain HTTP."""
    from csscert.tls import check_pair, ensure_server_certificate

    settings = service.settings
    if settings.tls_cert is not None or settings.tls_key is not None:
        if settings.tls_cert is None or settings.tls_key is None:
            fail("give both --tls-cert and --tls-key")
        if settings.tls:
            fail("give either --tls (a certificate from csscert's CA) or --tls-cert/--tls-key, not both")
        check_pair(settings.tls_cert, settings.tls_key)
        return settings.tls_cert.resolve(), settings.tls_key.resolve()
    if not settings.tls:
        return None
    project = service.identity.resolve_project(settings.region)
    server = ensure_server_certificate(service.authority, settings, project.id)
    if server.issued:
        click.echo(
            f"issued csscert's server certificate {server.cert_file} (until {server.not_after:%Y-%m-%d})",
            err=True,
        )
    return server.cert_file.resolve(), server.key_file.resolve()


def _ephemeral_details(service: Service, base: str) -> dict[str, Any]:
    """Everything a test needs to talk to this server, from the bootstrap file; also writes the
    CA file clients verify downloads (and, with --tls, csscert itself) with."""
    from csscert.files import write_replacing
    from csscert.service import BOOTSTRAP_FILE

    settings = service.settings
    boot = json.loads((settings.data_dir / BOOTSTRAP_FILE).read_text())
    project_id = boot["project_id"]
    scope = service.authority.scope_for(project_id)
    ca_file = settings.data_dir.resolve() / "CloudSearchService.cer"
    from csscert.ca.bundle import bundle_pem

    write_replacing(ca_file, bundle_pem(service.authority.trusted(scope)), 0o644)
    token = service.identity.issue_token(boot["user_name"], project_id).token
    return {
        "endpoint": base,
        "iam_endpoint": f"{base}/v3",
        "region": boot["region"],
        "domain_name": boot["domain_name"],
        "project_id": project_id,
        "project_name": boot["project_name"],
        "user_name": boot["user_name"],
        "password": boot["password"],
        "access_key": boot["access_key"],
        "secret_key": boot["secret_key"],
        "token": token,
        "ca_file": str(ca_file),
        "data_dir": str(settings.data_dir.resolve()),
        "pid": os.getpid(),
    }


def _announce_when_ready(settings: Settings, line: str, stop: threading.Event) -> None:
    """Print ``line`` on stdout once the server answers /healthz (a background thread)."""
    host = (
        "127.0.0.1"
        if settings.host in ("0.0.0.0", "")  # noqa: S104 - where a wildcard listener is reached
        else ("::1" if settings.host == "::" else settings.host)
    )
    context = ssl._create_unverified_context() if settings.serves_tls else None  # noqa: S323 - readiness probe only
    while not stop.is_set():
        try:
            if context is not None:
                conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                    host, settings.port, timeout=1, context=context
                )
            else:
                conn = http.client.HTTPConnection(host, settings.port, timeout=1)
            conn.request("GET", "/healthz")
            ok = conn.getresponse().status == 200
            conn.close()
        except OSError:
            ok = False
        if ok:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()
            return
        time.sleep(0.05)


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


def _limits(settings: Settings) -> dict[str, Any]:
    """granian's explicit limits (README, "Limits"): one connection costs a worker at most
    ``max_header_bytes`` of buffer, and none is held without a deadline."""
    from granian.constants import HTTPModes
    from granian.http import HTTP1Settings, HTTP2Settings

    return {
        "http": {"1": HTTPModes.http1, "2": HTTPModes.http2, "auto": HTTPModes.auto}[settings.http],
        # The kernel queues at most this many connections not yet accepted.
        "backlog": settings.backlog,
        # Connections a worker holds open at once (granian's per-worker semaphore).
        "backpressure": settings.max_connections,
        "http1_settings": HTTP1Settings(
            # Applies to the request head and to an idle keep-alive connection alike.
            header_read_timeout=int(settings.header_read_timeout_seconds * 1000),
            keep_alive=True,
            max_buffer_size=settings.max_header_bytes,
        ),
        "http2_settings": HTTP2Settings(
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
    }


@click.command()
@click.option("--host", default=None, help="Address to bind (default 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port (default 8080; 0 with --ephemeral: a free one).")
@click.option("--workers", type=int, default=None, help="Worker processes (default 1).")
@click.option("--public-url", default=None, help="Base URL clients use, for the Keystone catalog.")
@click.option("--tls", is_flag=True, default=None, help="HTTPS with a certificate from csscert's own CA.")
@click.option(
    "--tls-cert",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="HTTPS certificate (PEM chain).",
)
@click.option(
    "--tls-key", type=click.Path(path_type=Path, dir_okay=False), default=None, help="Its private key (PEM)."
)
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
@click.option(
    "--ephemeral",
    is_flag=True,
    help="Serve a temporary data directory, removed on exit; print the credentials as one JSON line.",
)
@click.pass_context
def serve(
    ctx: click.Context,
    host: str | None,
    port: int | None,
    workers: int | None,
    public_url: str | None,
    tls: bool | None,
    tls_cert: Path | None,
    tls_key: Path | None,
    rate_limits: str | None,
    http: str | None,
    max_connections: int | None,
    ephemeral: bool,
) -> None:
    """Run the API server (creates the database, CA and first credentials on first start)."""
    temporary: str | None = None
    overrides: dict[str, Any] = {
        "host": host,
        "port": port,
        "workers": workers,
        "public_url": public_url,
        "tls": tls,
        "tls_cert": tls_cert,
        "tls_key": tls_key,
        "rate_limits": rate_limits,
        "http": http,
        "max_connections": max_connections,
    }
    if ephemeral:
        if ctx.find_root().obj.get("data_dir") is not None:
            fail("--ephemeral makes its own temporary data directory; drop --data-dir")
        temporary = tempfile.mkdtemp(prefix="csscert-ephemeral-")
        overrides["data_dir"] = Path(temporary) / "data"
        overrides["database_url"] = None
    try:
        _serve(ctx, overrides, ephemeral)
    finally:
        if temporary is not None:
            shutil.rmtree(temporary, ignore_errors=True)


def _record_public_url(service: Service, base: str) -> None:
    """Where clients reach this server, for the CRL URL of certificates a CLI process issues
    (it does not know the server's address; ``public_url`` set there wins)."""
    from csscert.ca.authority import PUBLIC_BASE_URL_META

    if service.store.get_meta(PUBLIC_BASE_URL_META) != base:
        service.store.set_meta(PUBLIC_BASE_URL_META, base)


def _serve(ctx: click.Context, overrides: dict[str, Any], ephemeral: bool) -> None:
    settings = settings_for(ctx, **overrides)
    from csscert.logs import configure as configure_logging

    configure_logging(settings.log_level)
    # Whatever the umask, nothing the server creates in the data directory (the database's
    # journal files, metrics files) is readable by other users.
    os.umask(0o077)
    if ephemeral:
        if settings.database_url:
            fail("--ephemeral serves SQLite in a temporary directory; unset CSSCERT_DATABASE_URL")
        if settings.port == 0 or "port" not in settings.model_fields_set:
            settings = settings.model_copy(update={"port": _free_port(settings.host)})
    elif settings.port == 0:
        fail("give a real port with --port (0 would pick a random one that nobody can be told)")
    _check_can_listen(settings.host, settings.port)  # before a first start writes anything
    service, first = open_service(settings, create=True, bootstrap=True)
    stop = threading.Event()
    try:
        settings = service.settings
        base = settings.public_base_url()
        _record_public_url(service, base)
        tls_files = _tls_files(service)
        announce = None
        if ephemeral:
            announce = json.dumps(_ephemeral_details(service, base), separators=(",", ":"))
        elif first is not None:
            from csscert.cli.init import first_start_banner

            first_start_banner(first, base)
    finally:
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
    from granian import Granian
    from granian.constants import Interfaces, SSLProtocols

    from csscert.logs import granian_config

    tls_options: dict[str, Any] = {}
    if tls_files is not None:
        tls_options = {
            "ssl_cert": tls_files[0],
            "ssl_key": tls_files[1],
            "ssl_protocol_min": SSLProtocols.tls12,  # what the SDKs' and Java 8's clients speak
        }
    server = Granian(
        "csscert.api.app:create_app",
        address=settings.host,
        port=settings.port,
        interface=Interfaces.RSGI,
        workers=settings.workers,
        factory=True,
        log_access=False,
        websockets=False,
        log_dictconfig=granian_config(settings.log_level),
        **_limits(settings),
        **tls_options,
    )
    log.info(
        "csscert listening on %s (%d worker(s), HTTP/%s, data in %s)",
        base,
        settings.workers,
        {"1": "1.1", "2": "2", "auto": "1.1 and HTTP/2"}[settings.http],
        settings.data_dir.resolve(),
    )
    if announce is not None:
        threading.Thread(
            target=_announce_when_ready, args=(settings, announce, stop), name="csscert-ready", daemon=True
        ).start()
    try:
        server.serve()
    finally:
        stop.set()
        with contextlib.suppress(Exception):
            sys.stdout.flush()
