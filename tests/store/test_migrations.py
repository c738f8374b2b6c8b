"""The migration chain: the fast "already at head" check agrees with Alembic, and upgrades really run."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

from alembic.config import Config
from alembic.script import ScriptDirectory
from support.server import CsscertServer

import csscert.store


def test_the_fast_head_revision_agrees_with_alembic() -> None:
    config = Config()
    config.set_main_option("script_location", str(Path(csscert.store.__file__).parent / "migrations"))
    assert csscert.store.head_revision() == ScriptDirectory.from_config(config).get_current_head()


def test_a_database_behind_head_is_migrated(tmp_path: Path) -> None:
    """A data directory whose schema is missing (as after a failed first start) is rebuilt by
    `db upgrade`, and then every command works on it."""
    data = CsscertServer(data_dir=tmp_path / "data")
    data.cli("init")
    with closing(sqlite3.connect(data.data_dir / "csscert.db")) as db, db:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        for table in tables:
            db.execute(f'DROP TABLE "{table}"')
    result = data.cli("db", "upgrade")
    assert result.stdout.strip() == f"schema at revision {csscert.store.head_revision()}"
    created = data.cli_json("project", "create", "after-upgrade")
    assert created["name"] == "local-1_after-upgrade"


def test_a_database_from_a_newer_csscert_is_refused_clearly(tmp_path: Path) -> None:
    data = CsscertServer(data_dir=tmp_path / "data")
    data.cli("init")
    with closing(sqlite3.connect(data.data_dir / "csscert.db")) as db, db:
        db.execute("UPDATE alembic_version SET version_num = '0099'")
    for command in (["db", "upgrade"], ["project", "list"]):
        result = data.cli(*command, check=False)
        assert result.returncode == 1, result.stderr
        assert "'0099'" in result.stderr and "newer csscert" in result.stderr
        assert "Traceback" not in result.stderr
    assert data.cli("serve", "--port", str(data.port), check=False).returncode == 1
