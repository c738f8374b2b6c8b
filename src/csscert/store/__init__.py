"""Storage behind a small interface: ``open_store`` gives a :class:`SqlStore` for SQLite or PostgreSQL.

Nothing above this package sees SQLAlchemy; it gets the plain records of :mod:`csscert.model`.
"""

from __future__ import annotations

import ast
import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import make_url, text

from csscert.errors import ConfigurationError
from csscert.files import create_private, private_directory
from csscert.settings import Settings
from csscert.store.sql import (
    NOTIFY_CHANNEL,
    ChangesPruned,
    Conflict,
    LastGrant,
    NotFound,
    SqlStore,
    StoreUnavailable,
)

if TYPE_CHECKING:
    from alembic.config import Config

__all__ = [
    "NOTIFY_CHANNEL",
    "ChangesPruned",
    "Conflict",
    "LastGrant",
    "NotFound",
    "SchemaError",
    "SqlStore",
    "StoreUnavailable",
    "exclusive",
    "head_revision",
    "migrate",
    "open_store",
]


class SchemaError(ConfigurationError):
    """The database schema cannot be brought to this version's head (e.g. it is newer)."""


HINT_FILE = "revision.hint"
_VERSIONS = Path(__file__).parent / "migrations" / "versions"


def open_store(settings: Settings, *, create: bool = True) -> SqlStore:
    """The store of ``settings``; only with ``create`` is a missing data directory made (the
    CLI's read and admin commands pass False: they never conjure up new data). The data directory
    is made private on the way (0700, files in it 0600, existing ones tightened), and an SQLite
    file is created 0600 before SQLite opens it (its -wal and -shm files then get the same mode)."""
    hint = None
    if (create and settings.uses_embedded_database) or settings.data_dir.is_dir():
        private_directory(settings.data_dir)
    if settings.data_dir.is_dir():
        hint = settings.data_dir / HINT_FILE
    url = make_url(settings.sqlalchemy_url)
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        database = Path(url.database)
        if database.parent.is_dir():
            create_private(database)
    return SqlStore(
        settings.sqlalchemy_url,
        hint_path=hint,
        connect_timeout=settings.db_connect_timeout_seconds,
        statement_timeout=settings.db_statement_timeout_seconds,
        read_deadline=settings.db_read_deadline_seconds,
        read_threads=settings.db_read_threads,
        change_keep_seconds=settings.change_log_keep_seconds,
    )


def head_revision(versions: Path = _VERSIONS) -> str | None:
    """The single head of the migration files, read without importing alembic (it costs every CLI
    command a tenth of a second). None when the files are not a simple chain: alembic decides then.

    The module-level ``revision`` / ``down_revision`` assignments are read with :mod:`ast`, so any
    spelling alembic's templates produce counts (``repr()`` writes single quotes; annotated
    assignments such as ``revision: str = '0002'`` too)."""
    down_of: dict[str, str | None] = {}
    for path in versions.glob("*.py"):
        names = _module_constants(path.read_text())
        revision = names.get("revision")
        if not isinstance(revision, str):
            continue
        down = names.get("down_revision", ...)
        if down is not None and not isinstance(down, str):
            return None  # missing, a merge (tuple) or computed: let alembic decide
        down_of[revision] = down
    heads = set(down_of) - {d for d in down_of.values() if d is not None}
    return heads.pop() if len(heads) == 1 else None


def _module_constants(source: str) -> dict[str, object]:
    """Module-level ``name = <literal>`` assignments (plain or annotated) of a migration file."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return {}
    found: dict[str, object] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            target, value = node.target, node.value
        else:
            continue
        if isinstance(target, ast.Name):
            try:
                found[target.id] = ast.literal_eval(value)
            except (ValueError, TypeError, SyntaxError, RecursionError):
                found[target.id] = ...  # not a literal
    return found


def _alembic_config(store: SqlStore) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    config.set_main_option("sqlalchemy.url", store.url.replace("%", "%%"))
    return config


_PG_MIGRATION_LOCK = 0x637373636572  # "csscer": one advisory lock id for every csscert database


@contextmanager
def exclusive(store: SqlStore) -> Iterator[None]:
    """One process at a time for this database, on every host that shares it (a PostgreSQL
    advisory lock; for SQLite a file lock beside the database). Migrations and first starts take
    it: processes starting together on a new database would otherwise all see an empty schema,
    or no bootstrap yet, and race to create it."""
    url = make_url(store.url)
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        fd = os.open(f"{url.database}.migrate.lock", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
    elif url.get_backend_name() == "postgresql":
        with store.engine.connect() as conn:
            conn.exec_driver_sql("SET statement_timeout = 0")  # waiting for another migrator is fine
            conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": _PG_MIGRATION_LOCK})
            conn.commit()
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": _PG_MIGRATION_LOCK})
                conn.exec_driver_sql("RESET statement_timeout")  # the pooled connection's default again
                conn.commit()
    else:
        yield


def migrate(store: SqlStore, to: str = "head") -> str:
    """Bring the schema to the newest revision (or to revision ``to``: a restore builds the
    schema its backup was taken at); returns the revision's id."""
    head = head_revision() if to == "head" else to
    if head is not None and store.schema_revision() == head:
        return head  # nothing to do (the common case for every CLI command and start)
    with exclusive(store):
        return _migrate_locked(store, head, to)


def _migrate_locked(store: SqlStore, head: str | None, to: str = "head") -> str:
    if head is not None and store.schema_revision() == head:
        return head  # another process finished it while we waited
    from alembic import command
    from alembic.util import CommandError

    config = _alembic_config(store)
    try:
        with store.engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.exec_driver_sql("SET LOCAL statement_timeout = 0")  # big tables take a while
            config.attributes["connection"] = conn
            command.upgrade(config, to)
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
