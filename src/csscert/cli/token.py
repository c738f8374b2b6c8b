"""``csscert token``: X-Auth-Token tokens (Fernet) and their keys."""

from __future__ import annotations

import datetime as dt
import sys

import click

from csscert.cli.common import service_for
from csscert.cli.output import console, emit_json, json_option


@click.group()
def token() -> None:
    """X-Auth-Token tokens (Fernet, 24 hours)."""


@token.command("issue")
@click.option("--user", "user_ref", required=True)
@click.option("--project", "project_ref", required=True)
@json_option
@click.pass_context
def token_issue(ctx: click.Context, user_ref: str, project_ref: str, as_json: bool) -> None:
    """Print a project-scoped token for a user."""
    with service_for(ctx) as service:
        issued = service.identity.issue_token(user_ref, project_ref)
    if as_json:
        emit_json(
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
def token_revoke(ctx: click.Context, token_value: str | None) -> None:
    """Revoke a token (argument, or standard input)."""
    value = token_value or sys.stdin.readline().strip()
    with service_for(ctx) as service:
        claims = service.identity.revoke_token(value)
    console().print(f"token {claims.audit_id} revoked")


@token.command("rotate-keys")
@click.option("--keep", type=int, default=3, show_default=True, help="Keys kept; older tokens stop working.")
@click.pass_context
def token_rotate_keys(ctx: click.Context, keep: int) -> None:
    """New primary token key; tokens signed by keys beyond --keep are revoked."""
    with service_for(ctx) as service:
        service.identity.rotate_token_keys(keep)
    console().print("token keys rotated")
