"""``csscert user``: users of the default domain, and the projects granted to them."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import click

from csscert.cli.common import service_for
from csscert.cli.output import console, emit_json, json_option


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
@json_option
@click.pass_context
def user_list(ctx: click.Context, as_json: bool) -> None:
    """List users."""
    with service_for(ctx) as service:
        users = service.identity.users()
    rows: list[dict[str, Any]] = [
        {
            "id": u.id,
            "name": u.name,
            "enabled": u.enabled,
            "projects": sorted(u.project_ids),
            "password": u.password_hash is not None,
        }
        for u in users
    ]
    if as_json:
        emit_json(rows)
        return
    from rich.table import Table

    table = Table("id", "name", "enabled", "password", "projects")
    for r in rows:
        table.add_row(r["id"], r["name"], str(r["enabled"]), str(r["password"]), ", ".join(r["projects"]))
    console().print(table)


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


@user.command("grant")
@click.argument("name")
@click.option("--project", "project_ref", required=True, help="Project (id or name).")
@json_option
@click.pass_context
def user_grant(ctx: click.Context, name: str, project_ref: str, as_json: bool) -> None:
    """Let a user work in one more project (tokens and AK/SK requests)."""
    with service_for(ctx) as service:
        user, project = service.identity.grant(name, project_ref)
    if as_json:
        emit_json({"user": user.name, "project_id": project.id, "project": project.name, "granted": True})
    else:
        console().print(f"user {user.name} may use project {project.name} ({project.id})", markup=False)


@user.command("revoke-grant")
@click.argument("name")
@click.option("--project", "project_ref", required=True, help="Project (id or name).")
@json_option
@click.pass_context
def user_revoke_grant(ctx: click.Context, name: str, project_ref: str, as_json: bool) -> None:
    """Take a project from a user; its tokens for it stop working at once. Never the last one."""
    with service_for(ctx) as service:
        user, project = service.identity.revoke_grant(name, project_ref)
    if as_json:
        emit_json({"user": user.name, "project_id": project.id, "project": project.name, "granted": False})
    else:
        console().print(f"user {user.name} no longer has project {project.name} ({project.id})", markup=False)


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
