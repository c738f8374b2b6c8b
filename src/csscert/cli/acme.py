"""``csscert acme``: External Account Binding keys for the ACME server (``/acme/{project}/directory``).

``acme eab create`` prints the key id and HMAC key once (certbot's ``--eab-kid``/``--eab-hmac-key``,
lego's ``--kid``/``--hmac``); the store keeps the HMAC key sealed under the master key.
"""

from __future__ import annotations

import click

from csscert.cli.common import service_for
from csscert.cli.output import console, emit_json, json_option, show_rows


@click.group()
def acme() -> None:
    """The ACME server (RFC 8555) at /acme/{project_id}/directory."""


@acme.group()
def eab() -> None:
    """External Account Binding keys: who may open an ACME account in which project."""


@eab.command("create")
@click.option("--user", "user_ref", required=True, help="The user the key acts for (name or id).")
@click.option("--project", "project_ref", required=True, help="Project (id or name) the key opens.")
@json_option
@click.pass_context
def eab_create(ctx: click.Context, user_ref: str, project_ref: str, as_json: bool) -> None:
    """Create an EAB key and print its kid and HMAC key (shown only this once)."""
    with service_for(ctx) as service:
        user = service.identity.resolve_user(user_ref)
        project = service.identity.resolve_project(project_ref)
        key, hmac_key = service.acme.create_eab(user, project)
        directory = service.acme.directory_url(project.id)
    if as_json:
        emit_json({"kid": key.kid, "hmac_key": hmac_key, "project_id": project.id, "directory": directory})
        return
    out = console()
    out.print(f"kid       {key.kid}", markup=False)
    out.print(f"hmac key  {hmac_key}", markup=False)
    out.print(f"directory {directory}", markup=False, soft_wrap=True)
    out.print("The HMAC key is not shown again; it binds one ACME account.", markup=False)


@eab.command("list")
@click.option("--project", "project_ref", default=None, help="Only this project's keys (id or name).")
@json_option
@click.pass_context
def eab_list(ctx: click.Context, project_ref: str | None, as_json: bool) -> None:
    """List EAB keys (never their HMAC keys): project, user, the account bound, revoked or not."""
    with service_for(ctx) as service:
        project_id = service.identity.resolve_project(project_ref).id if project_ref else None
        keys = service.acme.store.eab_keys(project_id)
        names = service.identity.user_names({k.user_id for k in keys})
    rows = [
        {
            "kid": k.kid,
            "project_id": k.project_id,
            "user": names.get(k.user_id, k.user_id),
            "account": k.account_id or "",
            "created_at": k.created_at.isoformat(timespec="seconds"),
            "revoked_at": k.revoked_at.isoformat(timespec="seconds") if k.revoked_at else "",
        }
        for k in keys
    ]
    columns = [
        ("kid", "kid"),
        ("project_id", "project"),
        ("user", "user"),
        ("account", "account"),
        ("created_at", "created"),
        ("revoked_at", "revoked"),
    ]
    show_rows(rows, columns, as_json)


@eab.command("revoke")
@click.argument("kid")
@click.pass_context
def eab_revoke(ctx: click.Context, kid: str) -> None:
    """Revoke an EAB key; the ACME account it opened is deactivated with it."""
    with service_for(ctx) as service:
        service.acme.revoke_eab(kid)
    console().print(f"EAB key {kid} revoked", markup=False)


@acme.command("prune")
@json_option
@click.pass_context
def acme_prune(ctx: click.Context, as_json: bool) -> None:
    """Remove every expired nonce and order now (the server also prunes them on the side of writes)."""
    with service_for(ctx) as service:
        nonces, orders = service.acme.store.prune(service.acme.now())
    if as_json:
        emit_json({"nonces": nonces, "orders": orders})
    else:
        console().print(f"pruned {nonces} expired nonces and {orders} expired orders", markup=False)
