"""``csscert backup`` and ``csscert restore``: a consistent copy of the store, and bringing it back."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from csscert.cli.common import one_line, service_for, settings_for
from csscert.cli.output import console, emit_json, fail, json_option


def _summary(summary: Any, path: Path) -> dict[str, Any]:
    return {
        "file": str(path),
        "bytes": summary.size,
        "schema_revision": summary.header.get("schema_revision"),
        "master_key_check": summary.header.get("master_key_check"),
        "ca_fingerprints": summary.ca_fingerprints,
        "rows": summary.tables,
        "sha256": summary.sha256,
    }


@click.command("backup")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@json_option
@click.pass_context
def backup(ctx: click.Context, file: Path, as_json: bool) -> None:
    """Write a consistent backup of the store to FILE (a new file) while the service runs.

    Secrets stay sealed: restoring needs the master key the store is sealed under now."""
    from csscert.custody.backup import write_backup

    with service_for(ctx) as service:
        summary = write_backup(service.store, service.sealer.known_keys()[0], file)
    shown = _summary(summary, file)
    if as_json:
        emit_json(shown)
        return
    rows = sum(summary.tables.values())
    console().print(
        f"wrote {file} ({summary.size} bytes, {rows} rows, schema {shown['schema_revision']}, "
        f"{len(summary.ca_fingerprints)} CA(s)); sha256 of its content {summary.sha256}"
    )


@click.command("restore")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.option(
    "--master-key-file",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="The master key that sealed the backup (default: CSSCERT_MASTER_KEY, or <data-dir>/master.key).",
)
@click.option("--check", is_flag=True, help="Only check the file (format, key, checksum); restore nothing.")
@json_option
@click.pass_context
def restore(ctx: click.Context, file: Path, master_key_file: Path | None, check: bool, as_json: bool) -> None:
    """Restore the backup FILE into an empty data directory or an empty database.

    Refuses a damaged, truncated, altered or newer file, and a master key that did not seal it,
    before touching anything."""
    from csscert.custody import backup as backups
    from csscert.files import write_new
    from csscert.sealing import MASTER_KEY_FILE, decode_master_key, key_check
    from csscert.service import prepare_data_dir
    from csscert.store import open_store

    settings = settings_for(ctx)
    key_path = settings.data_dir / MASTER_KEY_FILE
    if master_key_file is not None:
        key = decode_master_key(master_key_file.read_text(), str(master_key_file))
    elif settings.master_key is not None:
        key = decode_master_key(settings.master_key.get_secret_value(), "CSSCERT_MASTER_KEY")
    elif key_path.exists():
        key = decode_master_key(key_path.read_text(), str(key_path))
    else:
        fail(
            "restore needs the master key that sealed the backup: give it with --master-key-file "
            "or CSSCERT_MASTER_KEY"
        )
    summary = backups.verify(file, key)
    if not check:
        prepare_data_dir(settings, create=True)
        if settings.master_key is None:
            if key_path.exists():
                existing = decode_master_key(key_path.read_text(), str(key_path))
                if key_check(existing) != key_check(key):
                    fail(f"{key_path} holds another master key: restore into a new data directory")
            else:
                text = (master_key_file.read_text() if master_key_file else "").strip()
                write_new(key_path, (text + "\n").encode(), 0o600)
        store = open_store(settings, create=True)
        try:
            backups.restore(store, file, key, verified=summary)
        except Exception as exc:
            shown = one_line(exc, settings)
            if shown is None:
                raise
            fail(*shown)
        finally:
            store.close()
    report = _summary(summary, file)
    if as_json:
        emit_json({**report, "restored": not check})
        return
    what = "checked" if check else "restored"
    console().print(
        f"{what} {file}: {sum(summary.tables.values())} rows, schema {report['schema_revision']}, "
        f"{len(summary.ca_fingerprints)} CA(s)"
    )
