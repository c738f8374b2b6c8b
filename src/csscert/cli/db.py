"""``csscert db``: the database schema."""

from __future__ import annotations

import click

from csscert.cli.common import service_for
from csscert.cli.output import console


@click.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@click.pass_context
def db_upgrade(ctx: click.Context) -> None:
    """Migrate the schema to the newest revision."""
    from csscert.store import migrate

    with service_for(ctx) as service:
        head = migrate(service.store)
    console().print(f"schema at revision {head}")
