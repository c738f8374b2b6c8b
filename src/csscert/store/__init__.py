"""Storage behind a small interface: ``open_store`` gives a :class:`SqlStore` for SQLite or PostgreSQL.

Nothing above this package sees SQLAlchemy; it gets the plain records of :mod:`csscert.model`.
"""

from __future__ import annotations

import fcntl
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import make_url, text

from csscert.errors import ConfigurationError
from csscert.settings import Settings
from csscert.store.sql import Conflict, LastGrant, NotFound, SqlStore, StoreSnapshot

if TYPE_CHECKING:
    from alembic.config import Config

__all__ = [
    "Conflict",
    "LastGrant",
    "NotFound",
    "SchemaError",
    "SqlStore",
    "StoreSnapshot",
    "head_revision",
    "migrate",
    "open_store",
]


class SchemaError(ConfigurationError):
    """The database schema cannot be brought to this version's head (e.g. it is newer)."""


HINT_FILE = "revision.hint"
_VERSIONS = Path(__file__).parent / "migrations" / "versions"
_REVISION = re.compile(r'^revision\s*=\s*"([^"]+)"\s*$', re.M)
_DOWN_REVISION = re.compile(r'^down_revision\s*=\s*(?:None|"([^"]+)")\s*$', re.M)


def open_store(settings: Settings, *, create: bool = True) -> SqlStore:
    """The store of ``settings``; only with ``create`` is a missing data directory made (the
    CLI's read and admin commands pass False: they never conjure up new data)."""
    hint = None
    if create and settings.uses_embedded_database:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    if settings.data_dir.is_dir():
        hint = settings.data_dir / HINT_FILE
    return SqlStore(settings.sqlalchemy_url, hint_path=hint)


def head_revision() -> str | None:
    """The single head of the migration files, read without importing alembic (it costs every CLI
    command a tenth of a second). None when the files are not a simple chain: alembic decides then."""
    down_of: dict[str, str | None] = {}
    for path in _VERSIONS.glob("*.py"):
        text = path.read_text()
        revision = _REVISION.search(text)
        if revision is None:
            continue
        down = _DOWN_REVISION.search(text)
        if down is None:
            return None
        down_of[revision.group(1)] = down.group(1)
    heads = set(down_of) - {d for d in down_of.values() if d is not None}
    return heads.pop() if len(heads) == 1 else None


def _alembic_config(store: SqlStore) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    config.set_main_option("sqlalchemy.url", store.url.replace("%", "%%"))
    return config


_PG_MIGRATION_LOCK = 0x637373636572  # "csscer": one advisory lock id for every csscert database


@contextmanager
def _migration_lock(store: SqlStore) -> Iterator[None]:
    """One migrator at a time: processes starting together on a new database would otherwise
    all see an empty schema and race to create it."""
    url = make_url(store.url)
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        with open(f"{url.database}.migrate.lock", "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
    elif url.get_backend_name() == "postgresql":
        with store.engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": _PG_MIGRATION_LOCK})
            conn.commit()
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": _PG_MIGRATION_LOCK})
                conn.commit()
    else:
        yield


def migrate(store: SqlStore) -> str:
    """Bring the schema to the newest revision; returns that revision's id."""
    head = head_revision()
    if head is not None and store.schema_revision() == head:
        return head  # nothing to do (the common case for every CLI command and start)
    with _migration_lock(store):
        return _migrate_locked(store, head)


def _migrate_locked(store: SqlStore, head: str | None) -> str:
    if head is not None and store.schema_revision() == head:
        return head  # another process finished it while we waited
    from alembic import command
    from alembic.util import CommandError

    config = _alembic_config(store)
    try:
        with store.engine.begin() as conn:
            config.attributes["connection"] = conn
            command.upgrade(config, "head")
    except CommandError as exc:
        raise SchemaError(
            f"cannot migrate the database schema ({exc}); "
            f"it was probably written by a newer csscert (this one knows up to {head or 'head'})"
        ) from exc
    with store.engine.connect() as conn:
        from alembic.runtime.migration import MigrationContext

        head = MigrationContext.configure(conn).get_current_revision()
    store.touch_hint()
    return head or ""
