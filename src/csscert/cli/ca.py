"""``csscert ca``: show, list, rotate and retire certificate authorities."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from typing import Any

import click
from rich.markup import escape
from rich.table import Table

from csscert.ca import REGION_SCOPE
from csscert.cli.common import service_for
from csscert.cli.output import console, emit_json, err_console, fail, json_option
from csscert.model import CAState, CertificateAuthority
from csscert.service import Service


def _scope(service: Service, project_ref: str | None) -> str:
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


def colon(fp: str) -> str:
    return ":".join(fp[i : i + 2] for i in range(0, len(fp), 2)).upper()


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
    table = Table(show_header=False, box=None)
    table.add_row("subject", info["subject"])
    table.add_row("fingerprint SHA-256", colon(info["fingerprint_sha256"]))
    table.add_row("serial", info["serial"])
    table.add_row("not before", info["not_before"])
    table.add_row("not after", info["not_after"])
    table.add_row("scope", f"{info['ca_scope']} ({info['scope']})")
    table.add_row("state", info["state"])
    console.print(table)
    if info["expires_soon"]:
        err_console.print(
            f"[bold yellow]warning:[/] this CA expires on {info['not_after']}; run 'csscert ca rotate'"
        )


@ca.command("list")
@click.option("--project", "project_ref", help="Project (id or name); needed in project scope.")
@json_option
@click.pass_context
def ca_list(ctx: click.Context, project_ref: str | None, as_json: bool) -> None:
    """Every CA of a scope: fingerprint, state (active / trusted / retired), validity."""
    with service_for(ctx) as service:
        days = service.settings.ca_expiry_warning_days
        cas = [_ca_json(c, days) for c in service.authority.authorities(_scope(service, project_ref))]
    if as_json:
        emit_json(cas)
        return
    table = Table("fingerprint SHA-256", "state", "not before", "not after", "subject")
    for c in cas:
        table.add_row(c["fingerprint_sha256"], c["state"], c["not_before"], c["not_after"], c["subject"])
    console.print(table)


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
        console.print(f"new active CA {colon(new.fingerprint_sha256)}; the previous one stays trusted")


@ca.command("retire")
@click.argument("fingerprint")
@click.option("--force", is_flag=True, help="Retire even while unexpired node certificates it signed exist.")
@json_option
@click.pass_context
def ca_retire(ctx: click.Context, fingerprint: str, force: bool, as_json: bool) -> None:
    """Remove an old CA from the bundle (never the only or the newest one)."""
    with service_for(ctx) as service:
        live = service.authority.unexpired_issued(service.authority.find(fingerprint))
        retired = service.authority.retire(fingerprint, force=force)
        info = _ca_json(replace(retired, state=CAState.RETIRED), service.settings.ca_expiry_warning_days)
    if live:
        err_console.print(
            f"[bold yellow]warning:[/] {len(live)} unexpired node certificate(s) signed by this CA are no "
            "longer trusted by clients that re-download: "
            f"{escape(', '.join(sorted({c.name for c in live})))}",
            soft_wrap=True,
        )
    if as_json:
        emit_json({**info, "unexpired_node_certificates": [c.serial for c in live]})
    else:
        console.print(f"retired CA {colon(retired.fingerprint_sha256)}")
