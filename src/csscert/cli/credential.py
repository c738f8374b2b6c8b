"""``csscert credential``: access keys (AK/SK); a secret key is shown once and kept only sealed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from csscert.cli.common import service_for
from csscert.cli.output import console, emit_json, err_console, json_option


@click.group()
def credential() -> None:
    """Access keys (AK/SK) for SDK-HMAC-SHA256 signing."""


@credential.command("create")
@click.option("--user", "user_ref", required=True)
@click.option("--description", default="")
@json_option
@click.pass_context
def credential_create(ctx: click.Context, user_ref: str, description: str, as_json: bool) -> None:
    """Create an access key; the secret key is shown this once."""
    with service_for(ctx) as service:
        key, secret = service.identity.create_credential(user_ref, description)
    if as_json:
        emit_json({"access": key.access, "secret": secret, "user_id": key.user_id})
    else:
        console().print(f"AK {key.access}")
        console().print(f"SK {secret}")
        err_console().print("the secret key is not shown again")


@credential.command("list")
@click.option("--user", "user_ref", default=None)
@json_option
@click.pass_context
def credential_list(ctx: click.Context, user_ref: str | None, as_json: bool) -> None:
    """List access keys (never their secrets)."""
    with service_for(ctx) as service:
        keys = service.identity.credentials(user_ref)
        names = {u.id: u.name for u in service.identity.users()}
    rows: list[dict[str, Any]] = [
        {
            "access": k.access,
            "user": names.get(k.user_id, k.user_id),
            "enabled": k.enabled,
            "description": k.description,
            "created_at": k.created_at.isoformat(),
        }
        for k in keys
    ]
    if as_json:
        emit_json(rows)
        return
    from rich.table import Table

    table = Table("access key", "user", "enabled", "description", "created")
    for r in rows:
        table.add_row(r["access"], r["user"], str(r["enabled"]), r["description"], r["created_at"])
    console().print(table)


def _credential_switch(enabled: bool) -> Callable[..., None]:
    @click.argument("access")
    @click.pass_context
    def command(ctx: click.Context, access: str) -> None:
        with service_for(ctx) as service:
            service.identity.set_credential_enabled(access, enabled)
        console().print(f"access key {access} {'enabled' if enabled else 'disabled'}")

    return command


credential.command("disable", help="Disable an access key at once.")(_credential_switch(False))
credential.command("enable", help="Enable an access key again.")(_credential_switch(True))


@credential.command("delete")
@click.argument("access")
@click.pass_context
def credential_delete(ctx: click.Context, access: str) -> None:
    """Delete an access key."""
    with service_for(ctx) as service:
        service.identity.delete_credential(access)
    console().print(f"access key {access} deleted")
