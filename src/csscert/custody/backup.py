"""``csscert backup`` and ``csscert restore``: a consistent, portable, authenticated copy of the store.

The file is gzip-compressed JSON lines, written while the service runs from ONE read transaction
(:meth:`csscert.store.custody.CustodyStore.snapshot`)::

    {"format": "csscert-backup", "version": 1, "schema_revision": ..., "master_key_check": ..., ...}
    {"table": "domains", "columns": ["id", "name", "enabled"]}
    ["...", "...", true]                                  one line per row
    ...                                                   every table of schema.metadata.sorted_tables
    {"manifest": {"tables": {...counts...}, "ca_fingerprints": [...], "sha256": "..."}, "mac": "..."}

``sha256`` covers every byte before the manifest line (uncompressed); ``mac`` is an HMAC-SHA256
of those bytes followed by the canonical manifest JSON, under a key derived (HKDF, its own label)
from the master key that sealed the secrets. Secrets stay sealed: sealed columns are copied as
they are. The header's ``master_key_check`` (:func:`csscert.sealing.key_check`) tells whether a key
is the right one before anything else, and reveals nothing about it.

Restore reads the file twice: once to check it (format, version, schema, key, checksum, MAC;
nothing is touched when any fails), then to load it into an empty database at the backup's schema
revision in one transaction (hashing again, so a file changed between the passes is refused before
the commit), and migrates to this version's head. Rows move in batches: memory does not grow with
the size of the store.
"""

from __future__ import annotations

import base64
import datetime as dt
import gzip
import hashlib
import hmac
import json
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import Date, DateTime, LargeBinary, Table, select, text

import csscert
from csscert.errors import BackupRefused
from csscert.files import streamed_new
from csscert.sealing import MASTER_KEY_CHECK, key_check
from csscert.store import SqlStore, migrate
from csscert.store import schema as t
from csscert.store.custody import BATCH, CustodyStore

__all__ = ["FORMAT", "VERSION", "BackupSummary", "read_header", "restore", "verify", "write_backup"]

FORMAT = "csscert-backup"
VERSION = 1
_MAC_INFO = b"csscert backup mac v1"
_MAX_LINE = 16 * 1024 * 1024  # a longer line is not one csscert wrote


@dataclass
class BackupSummary:
    header: dict[str, Any]
    tables: dict[str, int] = field(default_factory=dict)
    ca_fingerprints: list[str] = field(default_factory=list)
    sha256: str = ""
    size: int = 0


def _mac_key(master_key: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_MAC_INFO).derive(master_key)


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def _line(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=True).encode() + b"\n"


def _encode(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        # Everything stored is UTC; SQLite hands it back naive.
        return (value if value.tzinfo else value.replace(tzinfo=dt.UTC)).isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode()
    return value


def _decoder(table: Table, columns: list[str]) -> list[Any]:
    decoders: list[Any] = []
    for name in columns:
        kind = table.c[name].type
        if isinstance(kind, DateTime):
            decoders.append(lambda v: None if v is None else dt.datetime.fromisoformat(v))
        elif isinstance(kind, Date):
            decoders.append(lambda v: None if v is None else dt.date.fromisoformat(v))
        elif isinstance(kind, LargeBinary):
            decoders.append(lambda v: None if v is None else base64.b64decode(v))
        else:
            decoders.append(None)
    return decoders


# -- backup -----------------------------------------------------------------------------------


def write_backup(store: SqlStore, master_key: bytes, path: Path) -> BackupSummary:
    """Write the backup of ``store`` to ``path`` (a new file, complete or not at all)."""
    custody = CustodyStore(store)
    digest = hashlib.sha256()
    mac = hmac.new(_mac_key(master_key), digestmod="sha256")
    with (
        streamed_new(path, 0o600) as raw,
        custody.snapshot() as snap,
        gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=6, mtime=0) as out,
    ):

        def put(data: bytes) -> None:
            digest.update(data)
            mac.update(data)
            out.write(data)

        check = snap.scalar(select(t.meta.c.value).where(t.meta.c.key == MASTER_KEY_CHECK))
        if check is not None and check != key_check(master_key):
            raise BackupRefused(
                "the database was re-sealed under another master key as the backup started; run it again"
            )
        header = {
            "format": FORMAT,
            "version": VERSION,
            "created_at": dt.datetime.now(dt.UTC).isoformat(),
            "csscert": csscert.__version__,
            "dialect": store.engine.dialect.name,
            "schema_revision": snap.scalar(_alembic_revision()),
            "master_key_check": key_check(master_key),
        }
        summary = BackupSummary(header)
        put(_line(header))
        for table in t.metadata.sorted_tables:
            columns = [c.name for c in table.columns]
            put(_line({"table": table.name, "columns": columns}))
            count = 0
            fingerprint = columns.index("fingerprint_sha256") if table is t.certificate_authorities else -1
            for row in snap.rows(table):
                put(_line([_encode(v) for v in row]))
                count += 1
                if fingerprint >= 0:
                    summary.ca_fingerprints.append(str(row[fingerprint]))
            summary.tables[table.name] = count
        summary.sha256 = digest.hexdigest()
        manifest = {
            "tables": summary.tables,
            "ca_fingerprints": sorted(summary.ca_fingerprints),
            "sha256": summary.sha256,
        }
        mac.update(_canonical(manifest))
        out.write(_line({"manifest": manifest, "mac": mac.hexdigest()}))
    summary.size = path.stat().st_size
    return summary


def _alembic_revision() -> Any:
    return text("SELECT version_num FROM alembic_version")


# -- reading ----------------------------------------------------------------------------------


def _lines(path: Path) -> Iterator[bytes]:
    """The decompressed lines of ``path``; a damaged or truncated file raises :class:`BackupRefused`."""
    try:
        raw = path.open("rb")
    except OSError as exc:
        raise BackupRefused(f"cannot read the backup {path}: {exc.strerror or exc}") from exc
    with raw, gzip.GzipFile(fileobj=raw, mode="rb") as handle:
        try:
            while True:
                line = handle.readline(_MAX_LINE)
                if not line:
                    return
                if not line.endswith(b"\n"):
                    raise BackupRefused(f"the backup {path} is damaged (a line is cut off or too long)")
                yield line
        except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
            raise BackupRefused(
                f"the backup {path} is damaged or truncated ({exc}); use another copy"
            ) from exc


def _json(line: bytes, path: Path) -> Any:
    try:
        return json.loads(line)
    except ValueError as exc:
        raise BackupRefused(f"the backup {path} is damaged (a line is not JSON); use another copy") from exc


def read_header(path: Path) -> dict[str, Any]:
    """The header, checked for format and version (a newer file is refused)."""
    first = next(_lines(path), None)
    header = _json(first, path) if first is not None else None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise BackupRefused(f"{path} is not a csscert backup (or its start is damaged)")
    version = header.get("version")
    if not isinstance(version, int) or version > VERSION:
        raise BackupRefused(
            f"the backup {path} has format version {version}, newer than this csscert reads ({VERSION}); "
            "restore it with the csscert version that wrote it (or newer)"
        )
    return header


def verify(path: Path, master_key: bytes) -> BackupSummary:
    """Check the whole file without touching any database: format, key, checksum, MAC, counts."""
    header = read_header(path)
    if header.get("master_key_check") != key_check(master_key):
        raise BackupRefused(
            f"the master key given is not the one that sealed the backup {path} (its key check is "
            f"{str(header.get('master_key_check'))[:16]}...): give that key with --master-key-file or "
            "CSSCERT_MASTER_KEY"
        )
    summary = BackupSummary(header)
    for _ in _walk(path, master_key, summary):
        pass
    return summary


def _walk(
    path: Path, master_key: bytes, summary: BackupSummary
) -> Iterator[tuple[str, list[str], list[Any]]]:
    """Every row as (table, columns, values), checking counts, checksum and MAC at the end; the
    caller must consume it to the end (a refusal comes last when the end is wrong)."""
    digest = hashlib.sha256()
    mac = hmac.new(_mac_key(master_key), digestmod="sha256")
    table: str | None = None
    columns: list[str] = []
    counts: dict[str, int] = {}
    trailer: Any = None
    for line in _lines(path):
        if trailer is not None:
            raise BackupRefused(f"the backup {path} is damaged (data after its manifest)")
        if line.startswith(b'{"manifest"'):
            trailer = _json(line, path)
            continue
        digest.update(line)
        mac.update(line)
        value = _json(line, path)
        if isinstance(value, list):
            if table is None or len(value) != len(columns):
                raise BackupRefused(f"the backup {path} is damaged (a row does not fit its table)")
            counts[table] += 1
            yield table, columns, value
        elif isinstance(value, dict) and "table" in value:
            names = value.get("columns")
            if not isinstance(names, list) or not all(isinstance(c, str) for c in names):
                raise BackupRefused(f"the backup {path} is damaged (a table has no column list)")
            table, columns = str(value["table"]), names
            counts[table] = 0
    if not isinstance(trailer, dict) or not isinstance(trailer.get("manifest"), dict):
        raise BackupRefused(f"the backup {path} is truncated (it has no manifest); use another copy")
    manifest = trailer["manifest"]
    mac.update(_canonical(manifest))
    if manifest.get("sha256") != digest.hexdigest() or manifest.get("tables") != counts:
        raise BackupRefused(f"the backup {path} is damaged (its checksum does not match); use another copy")
    if not hmac.compare_digest(str(trailer.get("mac")), mac.hexdigest()):
        raise BackupRefused(
            f"the backup {path} was altered after it was written (its authentication code does not match)"
        )
    summary.tables = counts
    summary.ca_fingerprints = list(manifest.get("ca_fingerprints", []))
    summary.sha256 = digest.hexdigest()
    summary.size = path.stat().st_size


# -- restore ----------------------------------------------------------------------------------


def known_revisions() -> set[str]:
    """Every schema revision this csscert's migrations know (a backup at another one is newer)."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(Path(t.__file__).parent / "migrations"))
    return {script.revision for script in ScriptDirectory.from_config(config).walk_revisions()}


def restore(
    store: SqlStore, path: Path, master_key: bytes, verified: BackupSummary | None = None
) -> BackupSummary:
    """Load the backup ``path`` into the empty database of ``store`` (module docstring); pass
    ``verified``, what :func:`verify` said, when the caller already checked the file."""
    summary = verified if verified is not None else verify(path, master_key)
    revision = summary.header.get("schema_revision")
    if not isinstance(revision, str) or revision not in known_revisions():
        raise BackupRefused(
            f"the backup {path} was written at schema revision {revision}, which this csscert does not know "
            "(it was written by a newer csscert): restore it with that version or newer"
        )
    tables = {table.name: table for table in t.metadata.sorted_tables}
    unknown = sorted(set(summary.tables) - set(tables))
    if unknown:
        raise BackupRefused(
            f"the backup {path} holds tables this csscert does not know ({', '.join(unknown)}): "
            "restore it with the csscert version that wrote it"
        )
    custody = CustodyStore(store)
    if store.schema_revision() is not None and not custody.is_empty(tables.values()):
        raise BackupRefused(
            "the target database is not empty: restore into a new data directory or an empty database"
        )
    migrate(store, to=revision)
    again = BackupSummary(summary.header)
    with custody.loading() as load:
        pending: list[dict[str, Any]] = []
        current: str | None = None
        decoders: list[Any] = []
        names: list[str] = []
        for table_name, columns, values in _walk(path, master_key, again):
            if table_name != current:
                if pending and current is not None:
                    load(tables[current], pending)
                pending, current, names = [], table_name, columns
                decoders = _decoder(tables[table_name], columns)
            pending.append(
                {n: (d(v) if d is not None else v) for n, d, v in zip(names, decoders, values, strict=True)}
            )
            if len(pending) >= BATCH:
                load(tables[table_name], pending)
                pending = []
        if pending and current is not None:
            load(tables[current], pending)
        # _walk raised before this point if the file changed since verify(): nothing is committed
        if again.sha256 != summary.sha256:
            raise BackupRefused(
                f"the backup {path} changed while it was being restored; nothing was restored"
            )
    migrate(store)
    return summary
