"""``csscert project``: projects (tenants); ids are 32 hex, names are the region or <region>_<suffix>."""

from __future__ import annotations

import click

from csscert.cli.common import service_for
from csscert.cli.output import console, emit_json, json_option


@click.group()
def project() -> None:
    """Projects (tenants); ids are 32 hex characters, names the region or <region>_<suffix>."""


@project.command("create")
@click.argument("name")
@json_option
@click.pass_context
def project_create(ctx: click.Context, name: str, as_json: bool) -> None:
    """Create a project and print its id."""
    with service_for(ctx) as service:
        created = service.create_project(name)
    if as_json:
        emit_json({"id": created.id, "name": created.name, "domain_id": created.domain_id})
    else:
        click.echo(created.id)


@project.command("list")
@json_option
@click.pass_context
def project_list(ctx: click.Context, as_json: bool) -> None:
    """List projects."""
    with service_for(ctx) as service:
        projects = service.store.projects()
    if as_json:
        emit_json(
            [
                {"id": p.id, "name": p.name, "enabled": p.enabled, "created_at": p.created_at.isoformat()}
                for p in projects
            ]
        )
        return
    from rich.table import Table

    table = Table("id", "name", "enabled", "created")
    for p in projects:
        table.add_row(p.id, p.name, "yes" if p.enabled else "no", p.created_at.isoformat(timespec="seconds"))
    console().print(table)


def _register() -> None:
    from csscert.cli.issuance import policy

    project.add_command(policy)


_register()
