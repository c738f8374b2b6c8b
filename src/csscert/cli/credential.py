"""``csscert credential``: access keys (AK/SK); a secret key is shown once and kept only sealed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from csscert.cli.common import service_for
from csscert.cli.output import console, emit_json, err_console, json_option, show_page


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
@click.option("--user", "user_ref", default=None, help="Only this user's keys.")
@click.option("--after", default=None, help="Start after this access key (paging).")
@click.option("--limit", type=click.IntRange(1, 100_000), default=1000, show_default=True)
@json_option
@click.pass_context
def credential_list(
    ctx: click.Context, user_ref: str | None, after: str | None, limit: int, as_json: bool
) -> None:
    """List access keys (never their secrets), a page at a time."""
    with service_for(ctx) as service:
        if user_ref is not None:
            keys = service.identity.credentials(user_ref)
        else:
            keys = service.identity.credentials_page(after, limit + 1)
        more = len(keys) > limit
        keys = keys[:limit]
        names = service.identity.user_names(k.user_id for k in keys)
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
    columns = [("access", "access key"), ("user", "user"), ("enabled", "enabled"),
               ("description", "description"), ("created_at", "created")]  # fmt: skip
    show_page(rows, columns, as_json, more=more, cursor="access", what="keys")


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
