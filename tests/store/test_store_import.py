"""Bulk import: one transaction, all users or none, fast enough for a hundred thousand."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from sqlalchemy import text
from store_helpers import BACKENDS, new_store

from csscert.model import ImportedAccessKey, ImportedUserRecord, new_id
from csscert.store import Conflict, NotFound, SqlStore


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> SqlStore:
    made = new_store(request.param, tmp_path)
    request.addfinalizer(made.close)
    return made


def _records(
    domain_id: str, project_ids: tuple[str, ...], count: int, prefix: str = "u"
) -> list[ImportedUserRecord]:
    return [
        ImportedUserRecord(
            id=new_id(),
            name=f"{prefix}{i:06d}",
            domain_id=domain_id,
            password_hash=None,
            project_ids=project_ids,
            access_keys=(ImportedAccessKey(f"AK{prefix.upper()}{i:010d}", f"sealed{i}"),),
        )
        for i in range(count)
    ]


def _counts(store: SqlStore) -> tuple[int, int, int, int]:
    with store.engine.connect() as conn:
        return tuple(  # type: ignore[return-value]
            int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar() or 0)
            for table in ("users", "grants", "access_keys", "changes")
        )


def test_import_adds_users_grants_keys_and_changes(store: SqlStore) -> None:
    domain = store.ensure_domain(new_id(), "d")
    project = store.create_project(new_id(), "p", domain.id)
    before = store.current_revision()
    records = _records(domain.id, (project.id,), 2500)
    assert store.import_users(records) == 2500
    assert store.current_revision() == before + 1
    users, grants, keys, _ = _counts(store)
    assert (users, grants, keys) == (2500, 2500, 2500)
    sample = store.user_by_name(domain.id, "u001234")
    assert sample is not None and sample.project_ids == {project.id}
    assert store.access_keys_of(sample.id)[0].secret_sealed == "sealed1234"
    changes = store.changes_since(before, limit=10)
    assert len(changes) == 5000
    assert {c.kind for c in changes} == {"user", "access_key"}


@pytest.mark.parametrize("where", ["file", "database", "access key", "project"])
def test_any_conflict_imports_nothing(store: SqlStore, where: str) -> None:
    domain = store.ensure_domain(new_id(), "d")
    project = store.create_project(new_id(), "p", domain.id)
    store.create_user(new_id(), "u000700", domain.id, None, []) if where == "database" else None
    records = _records(domain.id, (project.id,), 1500)
    if where == "file":
        records.append(ImportedUserRecord(new_id(), "u000003", domain.id))
    if where == "access key":
        existing = store.create_user(new_id(), "someone", domain.id, None, [])
        store.create_access_key("AKU0000001400", existing.id, "s", "")
    if where == "project":
        records[1400] = ImportedUserRecord(new_id(), "odd", domain.id, project_ids=("f" * 32,))
    before_counts = _counts(store)
    before = store.current_revision()
    error = NotFound if where == "project" else Conflict
    with pytest.raises(error) as caught:
        store.import_users(records)
    message = str(caught.value)
    expected = {"file": "u000003", "database": "u000700", "access key": "AKU0000001400", "project": "odd"}[
        where
    ]
    assert expected in message
    assert _counts(store) == before_counts
    assert store.current_revision() == before


def test_hundred_thousand_users_on_sqlite(tmp_path: Path) -> None:
    """The import target: 100 k users with one access key each well under a minute (SQLite)."""
    count = int(os.environ.get("CSSCERT_TEST_IMPORT_USERS", "20000"))
    store = new_store("sqlite", tmp_path)
    try:
        domain = store.ensure_domain(new_id(), "d")
        project = store.create_project(new_id(), "p", domain.id)
        records = _records(domain.id, (project.id,), count)
        started = time.perf_counter()
        store.import_users(records)
        elapsed = time.perf_counter() - started
        print(f"imported {count} users with keys in {elapsed:.2f} s")
        assert elapsed < 60 * count / 100_000
        assert _counts(store)[:3] == (count, count, count)
    finally:
        store.close()
