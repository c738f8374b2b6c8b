"""``csscert ca``: show, list, rotate and retire certificate authorities."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import click

from csscert.cli.common import service_for
from csscert.cli.output import colon, console, emit_json, fail, json_option, show_pairs, show_rows, warn

if TYPE_CHECKING:
    from csscert.model import CertificateAuthority
    from csscert.service import Service


def _scope(service: Service, project_ref: str | None) -> str:
    from csscert.ca import REGION_SCOPE

    if service.settings.ca_scope == "region":
        return REGION_SCOPE
    if project_ref is None:
        fail("CA scope is 'project': name the project with --project")
    return service.identity.resolve_project(project_ref).id


def _ca_json(ca: CertificateAuthority, warning_days: int) -> dict[str, Any]:
    return {
        "id": ca.id,
        "scope": ca.scope,
        "subject": ca.subject,
        "serial": ca.serial,
        "fingerprint_sha256": ca.fingerprint_sha256,
        "not_before": ca.not_before.isoformat(),
        "not_after": ca.not_after.isoformat(),
        "state": ca.state.value,
        "expires_soon": ca.not_after - dt.datetime.now(dt.UTC) <= dt.timedelta(days=warning_days),
    }


@click.group()
def ca() -> None:
    """Certificate authorities."""


@ca.command("show")
@click.option("--project", "project_ref", help="Project (id or name); needed in project scope.")
@json_option
@click.pass_context
def ca_show(ctx: click.Context, project_ref: str | None, as_json: bool) -> None:
    """Show the active CA: subject, SHA-256 fingerprint, validity, scope."""
    with service_for(ctx) as service:
        active = service.authority.active(_scope(service, project_ref))
        info = _ca_json(active, service.settings.ca_expiry_warning_days)
        info["ca_scope"] = service.settings.ca_scope
    if as_json:
        emit_json(info)
        return
    show_pairs(
        [
            ("subject", info["subject"]),
            ("fingerprint SHA-256", colon(info["fingerprint_sha256"])),
            ("serial", info["serial"]),
            ("not before", info["not_before"]),
            ("not after", info["not_after"]),
            ("scope", f"{info['ca_scope']} ({info['scope']})"),
            ("state", info["state"]),
        ]
    )
    if info["expires_soon"]:
        warn(f"this CA expires on {info['not_after']}; run 'csscert ca rotate'")


@ca.command("list")
@click.option("--project", "project_ref", help="Project (id or name); needed in project scope.")
@json_option
@click.pass_context
def ca_list(ctx: click.Context, project_ref: str | None, as_json: bool) -> None:
    """Every CA of a scope: fingerprint, state (active / trusted / retired), validity."""
    with service_for(ctx) as service:
        days = service.settings.ca_expiry_warning_days
        cas = [_ca_json(c, days) for c in service.authority.authorities(_scope(service, project_ref))]
    if not as_json:
        cas = [{**c, "fingerprint_sha256": colon(c["fingerprint_sha256"])} for c in cas]
    show_rows(
        cas,
        [
            ("fingerprint_sha256", "fingerprint SHA-256"),
            ("state", "state"),
            ("not_before", "not before"),
            ("not_after", "not after"),
            ("subject", "subject"),
        ],
        as_json,
    )


@ca.command("rotate")
@click.option("--project", "project_ref", help="Project (id or name); needed in project scope.")
@json_option
@click.pass_context
def ca_rotate(ctx: click.Context, project_ref: str | None, as_json: bool) -> None:
    """Create the next CA; the download then serves new and old until the old one is retired."""
    with service_for(ctx) as service:
        new = service.authority.rotate(_scope(service, project_ref))
        info = _ca_json(new, service.settings.ca_expiry_warning_days)
    if as_json:
        emit_json(info)
    else:
        console().print(f"new active CA {colon(new.fingerprint_sha256)}; the previous one stays trusted")


@ca.command("retire")
@click.argument("fingerprint")
@click.option("--force", is_flag=True, help="Retire even while unexpired node certificates it signed exist.")
@json_option
@click.pass_context
def ca_retire(ctx: click.Context, fingerprint: str, force: bool, as_json: bool) -> None:
    """Remove an old CA from the bundle (never the only or the newest one).

    FINGERPRINT: at least 8 hex digits of its SHA-256 fingerprint, colons optional.
    """
    from csscert.model import CAState

    with service_for(ctx) as service:
        target = service.authority.find(fingerprint)
        live = service.authority.unexpired_issued(target)
        count = service.authority.live_count(target) if live else 0
        retired = service.authority.retire(fingerprint, force=force)
        info = _ca_json(replace(retired, state=CAState.RETIRED), service.settings.ca_expiry_warning_days)
    if live:
        warn(
            f"{count} unexpired node certificate(s) signed by this CA are no longer trusted by "
            f"clients that re-download: {', '.join(sorted({c.name for c in live}))}"
            + (" ..." if count > len(live) else "")
        )
    if as_json:
        emit_json({**info, "unexpired_node_certificates": [c.serial for c in live]})
    else:
        console().print(f"retired CA {colon(retired.fingerprint_sha256)}")


def _custody_commands() -> None:
    """``ca import`` and ``ca intermediate`` live in cli/ca_custody.py (key custody)."""
    from csscert.cli.ca_custody import ca_import, ca_intermediate

    ca.add_command(ca_import)
    ca.add_command(ca_intermediate)


_custody_commands()
