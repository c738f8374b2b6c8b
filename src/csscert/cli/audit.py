"""``csscert audit``: the audit trail, every change to the store, who made it and from where."""

from __future__ import annotations

import datetime as dt
import re

import click

from csscert.cli.common import service_for
from csscert.cli.output import fail, show_rows

_RELATIVE = re.compile(r"^(\d+)\s*([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_since(value: str, now: dt.datetime | None = None) -> dt.datetime:
    """``30m``, ``12h``, ``7d`` (that long ago) or an ISO 8601 time (UTC unless it says otherwise)."""
    match = _RELATIVE.match(value.strip())
    if match:
        delta = dt.timedelta(**{_UNITS[match[2]]: int(match[1])})
        return (now or dt.datetime.now(dt.UTC)) - delta
    try:
        moment = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        fail(f"--since {value!r} is neither a duration (30m, 12h, 7d) nor an ISO 8601 time")
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


@click.group()
def audit() -> None:
    """The audit trail: every change, who made it, from where."""


@audit.command("list")
@click.option("--since", default=None, help="Only changes since: 30m, 12h, 7d or an ISO 8601 time.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def audit_list(ctx: click.Context, since: str | None, as_json: bool) -> None:
    """List changes, oldest first."""
    start = parse_since(since) if since else None
    with service_for(ctx) as service:
        records = service.store.audit_records(start)
    rows = [
        {
            "at": record.at.isoformat(),
            "revision": record.revision,
            "actor": record.actor,
            "origin": record.origin,
            "action": record.action,
            "target": record.target,
            "detail": record.detail,
        }
        for record in records
    ]
    columns = [("at", "at"), ("actor", "who"), ("origin", "from"), ("action", "action"), ("target", "target")]
    show_rows(rows, [*columns, ("detail", "detail")], as_json)
