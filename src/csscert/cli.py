"""``csscert``: serve the API and administer projects, CAs, node certificates and identities.

Rich output for people, ``--json`` for scripts. Errors print one clear line and exit non-zero.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import os
import socket
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any, NoReturn, TypeVar, get_args

import click
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from rich.rule import Rule
from rich.table import Table
from sqlalchemy.exc import SQLAlchemyError

from csscert.authority import REGION_SCOPE, AuthorityError
from csscert.errors import CsscertError
from csscert.model import CAState, CertificateAuthority
from csscert.sealing import MasterKeyError
from csscert.service import FirstStart, Service
from csscert.settings import KeyType, Settings
from csscert.store import Conflict, NotFound, SchemaError


def _console(stderr: bool = False) -> Console:
    """Piped output gets room for full ids and fingerprints (rich would cut them at 80 columns,
    or at $COLUMNS, which describes a terminal, not a pipe)."""
    stream = sys.stderr if stderr else sys.stdout
    # emoji=False: rich would turn ":AB:" and ":CD:" inside a colon fingerprint into emoji.
    return Console(stderr=stderr, highlight=False, emoji=False, width=None if stream.isatty() else 200)


console = _console()
err_console = _console(stderr=True)

F = TypeVar("F", bound=Callable[..., Any])
KEY_TYPES = list(get_args(KeyType))


def _fail(message: str, code: int = 1) -> NoReturn:
    err_console.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)
    sys.exit(code)


def _emit_json(payload: object) -> None:
    click.echo(json.dumps(payload, indent=2, default=str))


def _settings(ctx: click.Context, **overrides: Any) -> Settings:
    options = {k: v for k, v in {**ctx.obj, **overrides}.items() if v is not None}
    try:
        return Settings(**options)
    except ValidationError as exc:
        _fail("; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()))


def _database_error(exc: SQLAlchemyError) -> str:
    """One line about a database failure (the driver's message, not SQL or parameters)."""
    orig = getattr(exc, "orig", None)
    return f"database error: {(str(orig) if orig is not None else str(exc)).splitlines()[0]}"


def _open_service(settings: Settings, *, bootstrap: bool = False) -> tuple[Service, FirstStart | None]:
    try:
        service = Service(settings, create=True)
    except (MasterKeyError, ValueError, OSError) as exc:
        _fail(str(exc))
    except SQLAlchemyError as exc:
        _fail(_database_error(exc))
    except ImportError as exc:  # e.g. a PostgreSQL URL without the driver
        _fail(f"the database driver {exc.name or ''} is not installed "
              "(for PostgreSQL: pip install 'csscert[postgres]')")
    try:
        first = service.initialize(bootstrap=bootstrap)
    except (MasterKeyError, SchemaError, ValueError, OSError) as exc:
        service.close()
        _fail(str(exc))
    except SQLAlchemyError as exc:
        service.close()
        _fail(_database_error(exc))
    return service, first


@contextmanager
def _service(ctx: click.Context, **overrides: Any) -> Iterator[Service]:
    service, _ = _open_service(_settings(ctx, **overrides))
    try:
        yield service
    finally:
        service.close()


def _friendly_errors(func: F) -> F:
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (CsscertError, AuthorityError, Conflict, NotFound, MasterKeyError) as exc:
            _fail(str(exc))

    return wrapper  # type: ignore[return-value]


json_option = click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--data-dir", type=click.Path(path_type=Path), help="Data directory [CSSCERT_DATA_DIR].")
@click.option("--database-url", help="SQLAlchemy URL instead of SQLite [CSSCERT_DATABASE_URL].")
@click.option("--region", help="Region name, also the first project's name [CSSCERT_REGION].")
@click.option(
    "--ca-scope", type=click.Choice(["region", "project"]), help="One CA per region (default) or per project."
)
@click.option("--ca-key-type", type=click.Choice(KEY_TYPES), help="Key of new CAs (default rsa2048).")
@click.option("--ca-validity-days", type=int, help="Validity of new CAs (default 3650).")
@click.option("--ca-subject", help="Subject of new CAs, RFC 4514 (default CN=CloudSearchService).")
@click.version_option(package_name="csscert")
@click.pass_context
def cli(ctx: click.Context, /, **options: Any) -> None:
    """csscert: the Cloud Search Service certificate download API, with its own CA and identity."""
    ctx.obj = options


# -- serve ------------------------------------------------------------------------------


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
        _fail("give a real port with --port (0 would pick a random one that nobody can be told)")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, kind, proto, _, address = infos[0]
        with socket.socket(family, kind, proto) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(address)
    except OSError as exc:
        _fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}")


@cli.command()
@click.option("--host", default=None, help="Address to bind (default 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port (default 8080).")
@click.option("--workers", type=int, default=None, help="Worker processes (default 1).")
@click.option("--public-url", default=None, help="Base URL clients use, for the Keystone catalog.")
@click.pass_context
def serve(
    ctx: click.Context, host: str | None, port: int | None, workers: int | None, public_url: str | None
) -> None:
    """Run the API server (creates the database, CA and first credentials on first start)."""
    settings = _settings(ctx, host=host, port=port, workers=workers, public_url=public_url)
    _check_can_listen(settings.host, settings.port)  # before a first start writes anything
    service, first = _open_service(settings, bootstrap=True)
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


# -- db ---------------------------------------------------------------------------------


@cli.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@click.pass_context
def db_upgrade(ctx: click.Context) -> None:
    """Migrate the schema to the newest revision."""
    from csscert.store import migrate

    with _service(ctx) as service:
        head = migrate(service.store)
    console.print(f"schema at revision {head}")


# -- projects ---------------------------------------------------------------------------


@cli.group()
def project() -> None:
    """Projects (tenants); ids are 32 hex characters, names the region or <region>_<suffix>."""


@project.command("create")
@click.argument("name")
@json_option
@click.pass_context
@_friendly_errors
def project_create(ctx: click.Context, name: str, as_json: bool) -> None:
    """Create a project and print its id."""
    with _service(ctx) as service:
        created = service.create_project(name)
    if as_json:
        _emit_json({"id": created.id, "name": created.name, "domain_id": created.domain_id})
    else:
        click.echo(created.id)


@project.command("list")
@json_option
@click.pass_context
def project_list(ctx: click.Context, as_json: bool) -> None:
    """List projects."""
    with _service(ctx) as service:
        projects = service.store.projects()
    if as_json:
        _emit_json(
            [
                {"id": p.id, "name": p.name, "enabled": p.enabled, "created_at": p.created_at.isoformat()}
                for p in projects
            ]
        )
        return
    table = Table("id", "name", "enabled", "created")
    for p in projects:
        table.add_row(p.id, p.name, "yes" if p.enabled else "no", p.created_at.isoformat(timespec="seconds"))
    console.print(table)


# -- certificate authorities ------------------------------------------------------------


def _scope(service: Service, project_ref: str | None) -> str:
    if service.settings.ca_scope == "region":
        return REGION_SCOPE
    if project_ref is None:
        _fail("CA scope is 'project': name the project with --project")
    return service.identity.resolve_project(project_ref).id


def _ca_json(ca: CertificateAuthority, warning_days: int) -> dict[str, Any]:
    return {
        "id": ca.id,
        "scope": ca.scope,
        "subject": ca.subject,
        "serial": ca.serial,
        "fingerprint_sha256": ca.fingerprint_sha256,
        "not_before": ca.not_before.isoformat(),
        "not_after": ca.not_after.isoformat(),
        "state": ca.state.value,
        "expires_soon": ca.not_after - dt.datetime.now(dt.UTC) <= dt.timedelta(days=warning_days),
    }


def _colon(fp: str) -> str:
    return ":".join(fp[i : i + 2] for i in range(0, len(fp), 2)).upper()


@cli.group()
def ca() -> None:
    """Certificate authorities."""


@ca.command("show")
@click.option("--project", "project_ref", help="Project (id or name); needed in project scope.")
@json_option
@click.pass_context
@_friendly_errors
def ca_show(ctx: click.Context, project_ref: str | None, as_json: bool) -> None:
    """Show the active CA: subject, SHA-256 fingerprint, validity, scope."""
    with _service(ctx) as service:
        active = service.authority.active(_scope(service, project_ref))
        info = _ca_json(active, service.settings.ca_expiry_warning_days)
        info["ca_scope"] = service.settings.ca_scope
    if as_json:
        _emit_json(info)
        return
    table = Table(show_header=False, box=None)
    table.add_row("subject", info["subject"])
    table.add_row("fingerprint SHA-256", _colon(info["fingerprint_sha256"]))
    table.add_row("serial", info["serial"])
    table.add_row("not before", info["not_before"])
    table.add_row("not after", info["not_after"])
    table.add_row("scope", f"{info['ca_scope']} ({info['scope']})")
    table.add_row("state", info["state"])
    console.print(table)
    if info["expires_soon"]:
        err_console.print(
            f"[bold yellow]warning:[/] this CA expires on {info['not_after']}; run 'csscert ca rotate'"
        )


@ca.command("list")
@click.option("--project", "project_ref", help="Project (id or name); needed in project scope.")
@json_option
@click.pass_context
@_friendly_errors
def ca_list(ctx: click.Context, project_ref: str | None, as_json: bool) -> None:
    """Every CA of a scope: fingerprint, state (active / trusted / retired), validity."""
    with _service(ctx) as service:
        days = service.settings.ca_expiry_warning_days
        cas = [_ca_json(c, days) for c in service.authority.authorities(_scope(service, project_ref))]
    if as_json:
        _emit_json(cas)
        return
    table = Table("fingerprint SHA-256", "state", "not before", "not after", "subject")
    for c in cas:
        table.add_row(c["fingerprint_sha256"], c["state"], c["not_before"], c["not_after"], c["subject"])
    console.print(table)


@ca.command("rotate")
@click.option("--project", "project_ref", help="Project (id or name); needed in project scope.")
@json_option
@click.pass_context
@_friendly_errors
def ca_rotate(ctx: click.Context, project_ref: str | None, as_json: bool) -> None:
    """Create the next CA; the download then serves new and old until the old one is retired."""
    with _service(ctx) as service:
        new = service.authority.rotate(_scope(service, project_ref))
        info = _ca_json(new, service.settings.ca_expiry_warning_days)
    if as_json:
        _emit_json(info)
    else:
        console.print(f"new active CA {_colon(new.fingerprint_sha256)}; the previous one stays trusted")


@ca.command("retire")
@click.argument("fingerprint")
@click.option("--force", is_flag=True, help="Retire even while unexpired node certificates it signed exist.")
@json_option
@click.pass_context
@_friendly_errors
def ca_retire(ctx: click.Context, fingerprint: str, force: bool, as_json: bool) -> None:
    """Remove an old CA from the bundle (never the only or the newest one)."""
    with _service(ctx) as service:
        live = service.authority.unexpired_issued(service.authority.find(fingerprint))
        retired = service.authority.retire(fingerprint, force=force)
        info = _ca_json(replace(retired, state=CAState.RETIRED), service.settings.ca_expiry_warning_days)
    if live:
        err_console.print(
            f"[bold yellow]warning:[/] {len(live)} unexpired node certificate(s) signed by this CA are no "
            "longer trusted by clients that re-download: "
            f"{escape(', '.join(sorted({c.name for c in live})))}",
            soft_wrap=True,
        )
    if as_json:
        _emit_json({**info, "unexpired_node_certificates": [c.serial for c in live]})
    else:
        console.print(f"retired CA {_colon(retired.fingerprint_sha256)}")


# -- node certificates ------------------------------------------------------------------


def _publish_new(files: list[tuple[Path, bytes, int]]) -> None:
    """Write every file or none: each goes to a private temporary file first, then is linked
    into place (a link never replaces an existing file); on any failure nothing is left."""
    staged: list[Path] = []
    published: list[Path] = []
    try:
        for path, data, mode in files:
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
            staged.append(tmp)
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
        for (path, _, _), tmp in zip(files, staged, strict=True):
            os.link(tmp, path)
            published.append(path)
    except BaseException:
        for path in published:
            path.unlink(missing_ok=True)
        raise
    finally:
        for tmp in staged:
            tmp.unlink(missing_ok=True)


@cli.group()
def cert() -> None:
    """Node certificates signed by the active CA."""


@cert.command("issue")
@click.option("--project", "project_ref", required=True, help="Project (id or name).")
@click.option("--name", required=True, help="Node name (certificate CN and file name).")
@click.option("--dns", "dns_names", multiple=True, help="DNS subject alternative name (repeatable).")
@click.option("--ip", "ips", multiple=True, help="IP subject alternative name (repeatable).")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), required=True, help="Output directory.")
@click.option(
    "--days",
    type=click.IntRange(1, 36500),
    default=None,
    help="Validity in days (default 365, never past the CA).",
)
@click.option("--key-type", type=click.Choice(KEY_TYPES), help="Node key type (default: --ca-key-type).")
@json_option
@click.pass_context
@_friendly_errors
def cert_issue(
    ctx: click.Context,
    project_ref: str,
    name: str,
    dns_names: tuple[str, ...],
    ips: tuple[str, ...],
    out_dir: Path,
    days: int | None,
    key_type: Any,
    as_json: bool,
) -> None:
    """Write NAME.key (PKCS#8, 0600), NAME.crt (certificate + chain) and ca.crt (trust bundle)."""
    safe_name = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
    targets = {kind: out_dir / f"{safe_name}.{kind}" for kind in ("key", "crt")}
    targets["ca"] = out_dir / "ca.crt"
    if len(set(targets.values())) != len(targets):
        _fail(f"--name {name!r} would write the node's files over ca.crt; choose another name")
    if out_dir.exists() and not out_dir.is_dir():
        _fail(f"--out {out_dir} exists and is not a directory")
    existing = [str(p) for p in targets.values() if p.exists() or p.is_symlink()]
    if existing:
        _fail(f"refusing to overwrite {', '.join(existing)}")
    with _service(ctx) as service:
        project_id = service.identity.resolve_project(project_ref).id
        node = service.authority.issue_node(
            project_id, name, dns_names, ips, validity_days=days, key_type=key_type
        )
        failure: str | None = None
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
            _publish_new(
                [
                    (targets["key"], node.key_pem, 0o600),
                    (targets["crt"], node.chain_pem, 0o644),
                    (targets["ca"], node.ca_bundle_pem, 0o644),
                ]
            )
        except FileExistsError as exc:
            failure = f"refusing to overwrite {exc.filename2 or exc.filename}"
        except OSError as exc:
            failure = f"could not write to {out_dir}: {exc.strerror or exc}"
        if failure is not None:
            service.authority.forget_issued(node.record)  # never delivered: not on record either
            _fail(failure)
    record = node.record
    if as_json:
        _emit_json(
            {
                "serial": record.serial,
                "fingerprint_sha256": record.fingerprint_sha256,
                "not_after": record.not_after.isoformat(),
                "sans": record.sans.split(","),
                "files": {k: str(v) for k, v in targets.items()},
            }
        )
        return
    console.print(f"issued {name} (serial {record.serial}), valid until {record.not_after.isoformat()}")
    for kind, path in targets.items():
        console.print(f"  {kind:4} {path}")


# -- users, credentials, tokens ---------------------------------------------------------


@cli.group()
def user() -> None:
    """Users of the default domain."""


@user.command("create")
@click.argument("name")
@click.option("--project", "projects", multiple=True, required=True, help="Grant this project (repeatable).")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@json_option
@click.pass_context
@_friendly_errors
def user_create(
    ctx: click.Context, name: str, projects: tuple[str, ...], password_stdin: bool, as_json: bool
) -> None:
    """Create a user (with a password only when --password-stdin is given)."""
    password = sys.stdin.readline().rstrip("\r\n") if password_stdin else None
    with _service(ctx) as service:
        created = service.identity.create_user(name, projects, password)
    if as_json:
        _emit_json({"id": created.id, "name": created.name, "projects": sorted(created.project_ids)})
    else:
        console.print(f"user {created.name} ({created.id}) created")


@user.command("list")
@json_option
@click.pass_context
def user_list(ctx: click.Context, as_json: bool) -> None:
    """List users."""
    with _service(ctx) as service:
        users = service.identity.users()
    rows: list[dict[str, Any]] = [
        {"id": u.id, "name": u.name, "enabled": u.enabled, "projects": sorted(u.project_ids),
         "password": u.password_hash is not None}
        for u in users
    ]
    if as_json:
        _emit_json(rows)
        return
    table = Table("id", "name", "enabled", "password", "projects")
    for r in rows:
        table.add_row(r["id"], r["name"], str(r["enabled"]), str(r["password"]), ", ".join(r["projects"]))
    console.print(table)


def _user_switch(enabled: bool) -> Callable[..., None]:
    @click.argument("name")
    @click.pass_context
    @_friendly_errors
    def command(ctx: click.Context, name: str) -> None:
        with _service(ctx) as service:
            service.identity.set_user_enabled(name, enabled)
        console.print(f"user {name} {'enabled' if enabled else 'disabled'}")

    return command


user.command("disable", help="Disable a user: its tokens and keys stop working at once.")(_user_switch(False))
user.command("enable", help="Enable a user again.")(_user_switch(True))


@user.command("delete")
@click.argument("name")
@click.pass_context
@_friendly_errors
def user_delete(ctx: click.Context, name: str) -> None:
    """Delete a user and its access keys."""
    with _service(ctx) as service:
        service.identity.delete_user(name)
    console.print(f"user {name} deleted")


@user.command("set-password")
@click.argument("name")
@click.pass_context
@_friendly_errors
def user_set_password(ctx: click.Context, name: str) -> None:
    """Set a user's password from standard input."""
    password = sys.stdin.readline().rstrip("\r\n")
    with _service(ctx) as service:
        service.identity.set_password(name, password)
    console.print(f"password of {name} set")


@cli.group()
def credential() -> None:
    """Access keys (AK/SK) for SDK-HMAC-SHA256 signing."""


@credential.command("create")
@click.option("--user", "user_ref", required=True)
@click.option("--description", default="")
@json_option
@click.pass_context
@_friendly_errors
def credential_create(ctx: click.Context, user_ref: str, description: str, as_json: bool) -> None:
    """Create an access key; the secret key is shown this once."""
    with _service(ctx) as service:
        key, secret = service.identity.create_credential(user_ref, description)
    if as_json:
        _emit_json({"access": key.access, "secret": secret, "user_id": key.user_id})
    else:
        console.print(f"AK {key.access}")
        console.print(f"SK {secret}")
        err_console.print("the secret key is not shown again")


@credential.command("list")
@click.option("--user", "user_ref", default=None)
@json_option
@click.pass_context
@_friendly_errors
def credential_list(ctx: click.Context, user_ref: str | None, as_json: bool) -> None:
    """List access keys (never their secrets)."""
    with _service(ctx) as service:
        keys = service.identity.credentials(user_ref)
        names = {u.id: u.name for u in service.identity.users()}
    rows: list[dict[str, Any]] = [
        {"access": k.access, "user": names.get(k.user_id, k.user_id), "enabled": k.enabled,
         "description": k.description, "created_at": k.created_at.isoformat()}
        for k in keys
    ]
    if as_json:
        _emit_json(rows)
        return
    table = Table("access key", "user", "enabled", "description", "created")
    for r in rows:
        table.add_row(r["access"], r["user"], str(r["enabled"]), r["description"], r["created_at"])
    console.print(table)


def _credential_switch(enabled: bool) -> Callable[..., None]:
    @click.argument("access")
    @click.pass_context
    @_friendly_errors
    def command(ctx: click.Context, access: str) -> None:
        with _service(ctx) as service:
            service.identity.set_credential_enabled(access, enabled)
        console.print(f"access key {access} {'enabled' if enabled else 'disabled'}")

    return command


credential.command("disable", help="Disable an access key at once.")(_credential_switch(False))
credential.command("enable", help="Enable an access key again.")(_credential_switch(True))


@credential.command("delete")
@click.argument("access")
@click.pass_context
@_friendly_errors
def credential_delete(ctx: click.Context, access: str) -> None:
    """Delete an access key."""
    with _service(ctx) as service:
        service.identity.delete_credential(access)
    console.print(f"access key {access} deleted")


@cli.group()
def token() -> None:
    """X-Auth-Token tokens (Fernet, 24 hours)."""


@token.command("issue")
@click.option("--user", "user_ref", required=True)
@click.option("--project", "project_ref", required=True)
@json_option
@click.pass_context
@_friendly_errors
def token_issue(ctx: click.Context, user_ref: str, project_ref: str, as_json: bool) -> None:
    """Print a project-scoped token for a user."""
    with _service(ctx) as service:
        issued = service.identity.issue_token(user_ref, project_ref)
    if as_json:
        _emit_json(
            {
                "token": issued.token,
                "project_id": issued.claims.project_id,
                "expires_at": dt.datetime.fromtimestamp(issued.claims.expires_at, dt.UTC).isoformat(),
                "audit_id": issued.claims.audit_id,
            }
        )
    else:
        click.echo(issued.token)


@token.command("revoke")
@click.argument("token_value", required=False)
@click.pass_context
@_friendly_errors
def token_revoke(ctx: click.Context, token_value: str | None) -> None:
    """Revoke a token (argument, or standard input)."""
    value = token_value or sys.stdin.readline().strip()
    with _service(ctx) as service:
        claims = service.identity.revoke_token(value)
    console.print(f"token {claims.audit_id} revoked")


@token.command("rotate-keys")
@click.option("--keep", type=int, default=3, show_default=True, help="Keys kept; older tokens stop working.")
@click.pass_context
@_friendly_errors
def token_rotate_keys(ctx: click.Context, keep: int) -> None:
    """New primary token key; tokens signed by keys beyond --keep are revoked."""
    with _service(ctx) as service:
        service.identity.rotate_token_keys(keep)
    console.print("token keys rotated")


# -- client commands --------------------------------------------------------------------


@cli.command()
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
        _fail("give --token, or --ak and --sk")
    if output is not None and output.exists() and not force:
        _fail(f"{output} exists; pass --force to overwrite")
    try:
        result = fetch(endpoint, project_id, token=token, access_key=ak, secret_key=sk, fmt=fmt,
                       password=password, verify_tls=cacert or True)
    except DownloadError as exc:
        _fail(str(exc))
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
        _fail(f"{target} exists; pass --force to overwrite")
    except OSError as exc:
        _fail(f"cannot write {target}: {exc.strerror or exc}")
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


@cli.command()
@click.argument("url")
@click.option("--cafile", required=True, type=click.Path(exists=True, dir_okay=False))
@json_option
def verify(url: str, cafile: str, as_json: bool) -> None:
    """Connect to https://HOST:PORT and verify its chain and hostname against CAFILE."""
    from csscert.client import verify as check

    result = check(url, cafile)
    if as_json:
        _emit_json(result.__dict__)
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


def main() -> None:
    cli(auto_envvar_prefix=None)

