"""The fast "is the schema at head?" check must see migrations written by the project's own template."""

from __future__ import annotations

import shutil
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

import csscert.store

MIGRATIONS = Path(csscert.store.__file__).parent / "migrations"


def _copy(tmp_path: Path) -> tuple[Config, Path]:
    folder = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS, folder, ignore=shutil.ignore_patterns("__pycache__"))
    config = Config()
    config.set_main_option("script_location", str(folder))
    return config, folder / "versions"


def test_a_migration_rendered_from_the_template_is_the_new_head(tmp_path: Path) -> None:
    config, versions = _copy(tmp_path)
    before = csscert.store.head_revision(versions)
    assert before == csscert.store.head_revision()
    script = command.revision(config, message="added later", rev_id="0999")
    assert script is not None and not isinstance(script, list)
    rendered = Path(script.path).read_text()
    assert "revision = '0999'" in rendered  # the template writes repr(): single quotes
    assert f"down_revision = '{before}'" in rendered
    assert csscert.store.head_revision(versions) == "0999"
    assert ScriptDirectory.from_config(config).get_current_head() == "0999"


def test_annotated_and_double_quoted_spellings(tmp_path: Path) -> None:
    _, versions = _copy(tmp_path)
    head = csscert.store.head_revision(versions)
    (versions / "x1.py").write_text(f'revision: str = "a1"\ndown_revision: str | None = "{head}"\n')
    (versions / "x2.py").write_text("revision = 'a2'  # trailing comment\ndown_revision = 'a1'\n")
    assert csscert.store.head_revision(versions) == "a2"
    (versions / "x3.py").write_text("revision = 'm'\ndown_revision = ('a2', 'a1')\n")
    assert csscert.store.head_revision(versions) is None  # a merge: alembic decides


def test_a_branch_has_no_single_head(tmp_path: Path) -> None:
    _, versions = _copy(tmp_path)
    head = csscert.store.head_revision(versions)
    (versions / "b1.py").write_text(f"revision = 'b1'\ndown_revision = '{head}'\n")
    (versions / "b2.py").write_text(f"revision = 'b2'\ndown_revision = '{head}'\n")
    assert csscert.store.head_revision(versions) is None
