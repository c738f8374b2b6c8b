"""``csscert project policy`` and ``csscert cert revoke``: what a project's certificates may name,
and taking a certificate back. Registered on the ``project`` and ``cert`` groups.

The logic lives in :class:`~csscert.ca.Authority` (``set_policy``, ``revoke``); these commands
only resolve names and print.
"""

from __future__ import annotations

from typing import Any

import click

from csscert.cli.common import service_for
from csscert.cli.output import console, emit_json, fail, json_option

__all__ = ["policy", "revoke"]

_REASONS = [
    "unspecified",
    "keyCompromise",
    "cACompromise",
    "affiliationChanged",
    "superseded",
    "cessationOfOperation",
    "privilegeWithdrawn",
    "aACompromise",
]


def _policy_json(project_id: str, found: Any) -> dict[str, Any]:
    if found is None:
        return {"project_id": project_id, "policy": None}
    return {
        "project_id": project_id,
        "policy": {
            "allow_dns": list(found.allow_dns),
            "allow_ip": list(found.allow_ip),
            "max_days": found.max_days,
        },
    }


@click.command("policy")
@click.argument("project_ref", metavar="PROJECT")
@click.option(
    "--allow-dns", multiple=True, help="A DNS name or '*.domain' (one label) certificates may carry."
)
@click.option("--allow-ip", multiple=True, help="An IP network (CIDR) certificates' addresses must be in.")
@click.option("--max-days", type=click.IntRange(1, 36500), default=None, help="Longest validity, in days.")
@click.option("--clear", is_flag=True, help="Remove the policy (anything the CLI allows is allowed).")
@json_option
@click.pass_context
def policy(
    ctx: click.Context,
    project_ref: str,
    allow_dns: tuple[str, ...],
    allow_ip: tuple[str, ...],
    max_days: int | None,
    clear: bool,
    as_json: bool,
) -> None:
    """Show or set PROJECT's issuance policy (every issuance path obeys it: CLI, API, ACME).

    With no option it shows the policy. The options replace it as a whole: names of a
    certificate must then match an --allow-dns pattern ('*.search.internal' allows exactly one
    more label) or lie in an --allow-ip network, and its validity may not pass --max-days.
    """
    changing = bool(allow_dns or allow_ip or max_days is not None)
    if clear and changing:
        fail("--clear takes no other option; run it alone, then set a new policy")
    with service_for(ctx) as service:
        project = service.identity.resolve_project(project_ref)
        authority = service.authority
        if clear:
            authority.clear_policy(project.id)
            found = None
        elif changing:
            found = authority.set_policy(project.id, allow_dns, allow_ip, max_days)
        else:
            found = authority.policy(project.id)
    if as_json:
        emit_json({**_policy_json(project.id, found), "project": project.name})
        return
    out = console()
    if found is None:
        out.print(f"project {project.name}: no issuance policy (the CLI's rules apply)", markup=False)
        return
    out.print(f"project {project.name} issuance policy:", markup=False)
    out.print(f"  DNS names: {', '.join(found.allow_dns) or '(none)'}", markup=False)
    out.print(f"  IP networks: {', '.join(found.allow_ip) or '(none)'}", markup=False)
    out.print(f"  longest validity: {found.max_days or '(no limit)'} days", markup=False)


@click.command("revoke")
@click.argument("ref", metavar="NAME|SERIAL")
@click.option(
    "--reason",
    type=click.Choice(_REASONS, case_sensitive=False),
    required=True,
    help="RFC 5280 reason (keyCompromise when the key leaked).",
)
@click.option(
    "--project", "project_ref", default=None, help="Project of NAME (id or name; default: the region's)."
)
@json_option
@click.pass_context
def revoke(ctx: click.Context, ref: str, reason: str, project_ref: str | None, as_json: bool) -> None:
    """Revoke a certificate: its CA's CRL lists it from the next fetch on.

    NAME revokes the newest certificate of that name in the project; a serial (hex, colons
    optional) revokes exactly that one.
    """
    from csscert.ca.crl import parse_reason
    from csscert.errors import ResourceNotFound

    with service_for(ctx) as service:
        authority = service.authority
        project_id = service.identity.resolve_project(project_ref or service.settings.region).id
        try:
            serial = authority.latest(project_id, ref).serial
        except ResourceNotFound:
            try:
                serial = authority.certificate(ref).serial  # a serial, in any project
            except ResourceNotFound:
                fail(
                    f"no certificate named {ref!r} in this project and none with that serial; "
                    "see 'csscert cert list' (give --project for another project's name)"
                )
        done = authority.revoke(serial, parse_reason(reason))
        ca = next((c for c in authority.authorities() if c.id == done.ca_id), None)
        crl_url = authority.crl_url(ca) if ca is not None else None
    if as_json:
        emit_json(
            {
                "name": done.name,
                "serial": done.serial,
                "project_id": done.project_id,
                "status": done.status,
                "revoked_at": done.revoked_at.isoformat() if done.revoked_at else None,
                "reason": done.revocation_reason,
                "crl_url": crl_url,
            }
        )
    else:
        console().print(
            f"revoked {done.name} serial {done.serial} ({done.revocation_reason}); CRL: {crl_url}",
            markup=False,
        )
