"""``csscert user``: users of the default domain."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import click
from rich.markup import escape

from csscert.cli.common import service_for
from csscert.cli.output import console, emit_json, err_console, json_option, show_rows


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
        console.print(f"user {created.name} ({created.id}) created")


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
        }
        for u in users[:limit]
    ]
    columns = [("id", "id"), ("name", "name"), ("enabled", "enabled"), ("password", "password"),
               ("projects", "projects")]  # fmt: skip
    show_rows(rows, columns, as_json)
    if more:
        err_console.print(f"more users follow: --after {escape(rows[-1]['name'])}", soft_wrap=True)


def _user_switch(enabled: bool) -> Callable[..., None]:
    @click.argument("name")
    @click.pass_context
    def command(ctx: click.Context, name: str) -> None:
        with service_for(ctx) as service:
            service.identity.set_user_enabled(name, enabled)
        console.print(f"user {name} {'enabled' if enabled else 'disabled'}")

    return command


user.command("disable", help="Disable a user: its tokens and keys stop working at once.")(_user_switch(False))
user.command("enable", help="Enable a user again.")(_user_switch(True))


@user.command("delete")
@click.argument("name")
@click.pass_context
def user_delete(ctx: click.Context, name: str) -> None:
    """Delete a user and its access keys."""
    with service_for(ctx) as service:
        service.identity.delete_user(name)
    console.print(f"user {name} deleted")


@user.command("set-password")
@click.argument("name")
@click.pass_context
def user_set_password(ctx: click.Context, name: str) -> None:
    """Set a user's password from standard input."""
    password = sys.stdin.readline().rstrip("\r\n")
    with service_for(ctx) as service:
        service.identity.set_password(name, password)
    console.print(f"password of {name} set")
