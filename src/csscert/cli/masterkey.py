"""``csscert master-key``: rotate the master key that seals every secret, and tell keys apart."""

from __future__ import annotations

import click

from csscert.cli.common import service_for
from csscert.cli.output import console, emit_json, json_option


@click.group("master-key")
def master_key() -> None:
    """The master key that seals every CA key, secret key and token key."""


@master_key.command("rotate")
@json_option
@click.pass_context
def master_key_rotate(ctx: click.Context, as_json: bool) -> None:
    """Re-seal every secret under a new master key, in one transaction, while servers keep serving.

    With a key file (the default) the new key is generated and replaces <data-dir>/master.key.
    With CSSCERT_MASTER_KEY: set it to the new key and CSSCERT_MASTER_KEY_PREVIOUS to the current
    one (on every host first), then run this; drop CSSCERT_MASTER_KEY_PREVIOUS afterwards."""
    from csscert.custody.masterkey import rotate

    with service_for(ctx) as service:
        done = rotate(service.settings, service.store, service.sealer)
    total = sum(done.counts.values())
    if as_json:
        emit_json(
            {
                "resealed": done.counts,
                "old_key_check": done.old_check,
                "new_key_check": done.new_check,
                "key_file": str(done.key_file) if done.key_file else None,
            }
        )
        return
    where = f"; the new key is in {done.key_file}" if done.key_file else ""
    console().print(
        f"re-sealed {total} secrets under the new master key (check {done.new_check[:16]}){where}"
    )


@master_key.command("check")
@json_option
@click.pass_context
def master_key_check(ctx: click.Context, as_json: bool) -> None:
    """Show the check value of the configured master key and of the key the database is sealed
    under (an HMAC of a fixed label: it names a key and reveals nothing about it)."""
    from csscert.sealing import MASTER_KEY_CHECK

    with service_for(ctx) as service:
        stored = service.store.get_meta(MASTER_KEY_CHECK)
        checks = service.sealer.checks()
    if as_json:
        emit_json({"database": stored, "configured": checks})
        return
    console().print(f"database sealed under key check {stored}")
    for check in checks:
        console().print(f"configured key check {check}{' (current)' if check == stored else ''}")
