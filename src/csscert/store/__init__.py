"""Storage behind a small interface: ``open_store`` gives a :class:`SqlStore` for SQLite or PostgreSQL.

Nothing above this package sees SQLAlchemy; it gets the plain records of :mod:`csscert.model`.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from csscert.settings import Settings
from csscert.store.sql import Conflict, NotFound, SqlStore, StoreSnapshot

__all__ = ["Conflict", "NotFound", "SqlStore", "StoreSnapshot", "migrate", "open_store"]

HINT_FILE = "revision.hint"


def open_store(settings: Settings) -> SqlStore:
    hint = None
    if settings.uses_embedded_database or settings.data_dir.exists():
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        hint = settings.data_dir / HINT_FILE
    return SqlStore(settings.sqlalchemy_url, hint_path=hint)


def _alembic_config(store: SqlStore) -> Config:
    config = Config()
    config.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    config.set_main_option("sqlalchemy.url", store.url.replace("%", "%%"))
    return config


def migrate(store: SqlStore) -> str:
    """Bring the schema to the newest revision; returns that revision's id."""
    config = _alembic_config(store)
    with store.engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "head")
    with store.engine.connect() as conn:
        from alembic.runtime.migration import MigrationContext

        head = MigrationContext.configure(conn).get_current_revision()
    store.touch_hint()
    return head or ""
