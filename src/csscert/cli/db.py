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
    """Migrate the schema to the newest revision (also builds it in an empty database, e.g. a new
    PostgreSQL database; the data directory must exist: 'csscert init' makes one)."""
    from csscert.store import migrate

    with service_for(ctx, schema_only=True) as service:
        head = migrate(service.store)
    console().print(f"schema at revision {head}")
