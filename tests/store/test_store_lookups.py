"""Point lookups and paged listings: what the read model and the CLI ask for, one query each."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import event
from store_helpers import BACKENDS, new_store

from csscert.model import new_id
from csscert.store import SqlStore


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> SqlStore:
    made = new_store(request.param, tmp_path)
    request.addfinalizer(made.close)
    return made


def _statements(store: SqlStore) -> list[str]:
    seen: list[str] = []
    event.listen(store.engine, "before_cursor_execute", lambda *a: seen.append(a[2]))
    return seen


def test_point_lookups(store: SqlStore) -> None:
    domain = store.ensure_domain(new_id(), "dom")
    p1 = store.create_project(new_id(), "p1", domain.id)
    p2 = store.create_project(new_id(), "p2", domain.id)
    user_id = new_id()
    store.create_user(user_id, "alice", domain.id, "hash", [p1.id, p2.id])
    lonely = new_id()
    store.create_user(lonely, "bob", domain.id, None, [])
    store.create_access_key("AKALICE", user_id, "sealed", "laptop")
    seen = _statements(store)

    assert store.domain(domain.id) == domain
    assert store.domain_by_name("dom") == domain
    assert store.domain(new_id()) is None and store.domain_by_name("nope") is None
    assert store.project(p1.id) == p1
    assert store.project_by_name("p2") == p2
    assert store.project(new_id()) is None and store.project_by_name("nope") is None
    alice = store.user(user_id)
    assert alice is not None and alice.name == "alice" and alice.project_ids == {p1.id, p2.id}
    assert alice.password_hash == "hash" and alice.tokens_valid_after_ms is None
    assert store.user_by_name(domain.id, "alice") == alice
    bob = store.user_by_name(domain.id, "bob")
    assert bob is not None and bob.id == lonely and bob.project_ids == frozenset()
    assert store.user(new_id()) is None and store.user_by_name(domain.id, "carol") is None
    key = store.access_key("AKALICE")
    assert key is not None and key.user_id == user_id and key.description == "laptop"
    assert store.access_key("AKNONE") is None
    assert len(seen) == 15  # one statement per lookup, grants included

    assert store.access_keys_of(user_id) == [key]
    assert store.access_keys_of(lonely) == []


def test_revoked_answers_for_a_batch(store: SqlStore) -> None:
    soon = datetime.now(UTC) + timedelta(hours=1)
    for i in range(3):
        store.add_revocation(f"a{i}", soon)
    assert store.revoked([]) == set()
    assert store.revoked(["a0", "a2", "zz"]) == {"a0", "a2"}
    many = [f"x{i}" for i in range(1200)] + ["a1"]
    assert store.revoked(many) == {"a1"}


def test_users_page_walks_everyone_once(store: SqlStore) -> None:
    d1 = store.ensure_domain(new_id(), "d1")
    d2 = store.ensure_domain(new_id(), "d2")
    project = store.create_project(new_id(), "p", d1.id)
    names = [f"user{i:03d}" for i in range(25)]
    for name in names:
        store.create_user(new_id(), name, d1.id, None, [project.id])
    store.create_user(new_id(), "user010", d2.id, None, [])  # the same name in another domain
    seen: list[tuple[str, str]] = []
    after_name: str | None = None
    after_id: str | None = None
    while page := store.users_page(after_name, 4, after_id=after_id):
        seen.extend((u.name, u.domain_id) for u in page)
        after_name, after_id = page[-1].name, page[-1].id
    assert sorted(seen) == sorted([(n, d1.id) for n in names] + [("user010", d2.id)])
    assert len(seen) == len(set(seen))
    only_d1 = store.users_page(None, 100, domain_id=d1.id)
    assert [u.name for u in only_d1] == names
    assert all(u.project_ids == {project.id} for u in only_d1)
    assert [u.name for u in store.users_page("user020", 100, domain_id=d1.id)] == names[21:]
    assert [p.name for p in store.projects()] == ["p"]
