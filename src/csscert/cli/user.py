"""``csscert user``: users of the default domain, and the projects granted to them."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from csscert.cli.common import service_for
from csscert.cli.output import console, emit_json, escape, fail, json_option, show_page
from csscert.identity.roles import ROLES


@click.group()
def user() -> None:
    """Users of the default domain."""


@user.command("create")
@click.argument("name")
@click.option("--project", "projects", multiple=True, required=True, help="Grant this project (repeatable).")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@json_option
@click.pass_context
def user_create(
    ctx: click.Context, name: str, projects: tuple[str, ...], password_stdin: bool, as_json: bool
) -> None:
    """Create a user (with a password only when --password-stdin is given)."""
    password = sys.stdin.readline().rstrip("\r\n") if password_stdin else None
    with service_for(ctx) as service:
        created = service.identity.create_user(name, projects, password)
    if as_json:
        emit_json({"id": created.id, "name": created.name, "projects": sorted(created.project_ids)})
    else:
        console().print(f"user {created.name} ({created.id}) created")


@user.command("list")
@click.option("--after", default=None, help="Start after this user name (paging).")
@click.option("--limit", type=click.IntRange(1, 100_000), default=1000, show_default=True)
@json_option
@click.pass_context
def user_list(ctx: click.Context, after: str | None, limit: int, as_json: bool) -> None:
    """List users in name order, a page at a time (never the whole directory at once)."""
    with service_for(ctx) as service:
        users = service.identity.users_page(after, limit + 1)
    more = len(users) > limit
    rows: list[dict[str, Any]] = [
        {
            "id": u.id,
            "name": u.name,
            "enabled": u.enabled,
            "projects": sorted(u.project_ids),
            "password": u.password_hash is not None,
            "roles": sorted(u.roles),
        }
        for u in users[:limit]
    ]
    columns = [("id", "id"), ("name", "name"), ("enabled", "enabled"), ("password", "password"),
               ("projects", "projects"), ("roles", "roles")]  # fmt: skip
    show_page(rows, columns, as_json, more=more, cursor="name", what="users")


def _user_switch(enabled: bool) -> Callable[..., None]:
    @click.argument("name")
    @click.pass_context
    def command(ctx: click.Context, name: str) -> None:
        with service_for(ctx) as service:
            service.identity.set_user_enabled(name, enabled)
        console().print(f"user {name} {'enabled' if enabled else 'disabled'}")

    return command


user.command("disable", help="Disable a user: its tokens and keys stop working at once.")(_user_switch(False))
user.command("enable", help="Enable a user again.")(_user_switch(True))


def _grant_switch(granted: bool, role_help: str) -> Callable[..., None]:
    """``user grant`` and ``user revoke-grant``: one project or one role, given or taken."""

    @click.argument("name")
    @click.option("--project", "project_ref", default=None, help="Project (id or name).")
    @click.option("--role", type=click.Choice(ROLES), default=None, help=role_help)
    @json_option
    @click.pass_context
    def command(
        ctx: click.Context, name: str, project_ref: str | None, role: str | None, as_json: bool
    ) -> None:
        if (project_ref is None) == (role is None):
            raise click.UsageError("give exactly one of --project or --role")
        with service_for(ctx) as service:
            identity = service.identity
            if role is not None:
                user = (identity.grant_role if granted else identity.revoke_role)(name, role)
                record: dict[str, object] = {"user": user.name, "role": role, "granted": granted}
                text = f"user {user.name} {'has' if granted else 'no longer has'} role {role}"
            else:
                assert project_ref is not None
                user, project = (identity.grant if granted else identity.revoke_grant)(name, project_ref)
                record = {
                    "user": user.name,
                    "project_id": project.id,
                    "project": project.name,
                    "granted": granted,
                }
                verb = "may use" if granted else "no longer has"
                text = f"user {user.name} {verb} project {project.name} ({project.id})"
        if as_json:
            emit_json(record)
        else:
            console().print(text, markup=False)

    return command


user.command(
    "grant", help="Let a user work in one more project (tokens and AK/SK requests), or give it a role."
)(
    _grant_switch(
        True, "certificate-issuer signs and revokes over the API; administrator reads the audit trail."
    )
)
user.command(
    "revoke-grant",
    help="Take a project (never the last one) or a role from a user; it stops working at once.",
)(_grant_switch(False, "The role to take."))


@user.command("delete")
@click.argument("name")
@click.pass_context
def user_delete(ctx: click.Context, name: str) -> None:
    """Delete a user and its access keys."""
    with service_for(ctx) as service:
        service.identity.delete_user(name)
    console().print(f"user {name} deleted")


@user.command("set-password")
@click.argument("name")
@click.pass_context
def user_set_password(ctx: click.Context, name: str) -> None:
    """Set a user's password from standard input."""
    password = sys.stdin.readline().rstrip("\r\n")
    with service_for(ctx) as service:
        service.identity.set_password(name, password)
    console().print(f"password of {name} set")


@user.command("import")
@click.argument("source", type=click.Path(path_type=Path, allow_dash=True))
@click.option(
    "--credentials-out",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Create one AK/SK per user and write them to this new file (0600, JSON Lines).",
)
@json_option
@click.pass_context
def user_import(ctx: click.Context, source: Path, credentials_out: Path | None, as_json: bool) -> None:
    """Import users from JSON Lines ({"name", "projects": [names or ids], "password"}), all or nothing."""
    from csscert.bulk import UserLinesError, parse_user_lines
    from csscert.files import write_new
    from csscert.identity.writer import NewCredential

    try:
        if str(source) == "-":
            users = parse_user_lines(sys.stdin)
        else:
            with source.open(encoding="utf-8", errors="strict") as handle:
                users = parse_user_lines(handle)
    except UserLinesError as exc:
        fail(f"{source}: {exc}; nothing was imported")
    except UnicodeDecodeError as exc:
        fail(f"{source} is not UTF-8 text ({exc.reason} at byte {exc.start}); nothing was imported")
    if credentials_out is not None and (credentials_out.exists() or credentials_out.is_symlink()):
        fail(f"{credentials_out} exists; the credentials file must be new (secrets are written once)")
    delivered: list[Path] = []

    def deliver(credentials: list[NewCredential]) -> None:
        if credentials_out is None:
            return
        lines = (
            json.dumps({"name": c.name, "access_key": c.access_key, "secret_key": c.secret_key}) + "\n"
            for c in credentials
        )
        write_new(credentials_out, "".join(lines).encode(), 0o600)
        delivered.append(credentials_out)

    with service_for(ctx) as service:
        try:
            count = service.identity.import_users(
                users, with_keys=credentials_out is not None, deliver=deliver
            )
        except BaseException:
            for path in delivered:  # the import failed: its secrets open nothing, drop them
                path.unlink(missing_ok=True)
            raise
    if as_json:
        emit_json({"imported": count, "credentials_file": str(credentials_out) if credentials_out else None})
    else:
        console().print(f"imported {count} user(s)")
        if credentials_out is not None:
            console().print(f"credentials in {escape(str(credentials_out))} (mode 0600; shown nowhere else)")
