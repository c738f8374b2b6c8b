"""The console's paged reads (store/console.py) on SQLite and PostgreSQL: bounded pages that walk
everything exactly once, and the dependents of each CA."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from store_helpers import BACKENDS, new_store, sample_ca, sample_issued

from csscert.audit import AuditEntry
from csscert.model import CAState, IssuedCertificate, new_id
from csscert.store import SqlStore
from csscert.store.console import ConsoleReads


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqlStore]:
    made = new_store(request.param, tmp_path)
    yield made
    made.close()


def test_certificate_pages_walk_every_record_once_in_name_order(store: SqlStore) -> None:
    ca = sample_ca()
    store.add_authority(ca)
    project, other = new_id(), new_id()
    names = ["a", "b", "b", "c", "d", "e", "e"]  # re-issued names share a page boundary
    for name in names:
        store.record_issued(replace(sample_issued(ca.id, project), name=name))
    store.record_issued(sample_issued(ca.id, other))
    reads = ConsoleReads(store)
    seen: list[IssuedCertificate] = []
    after: tuple[str, str] | None = None
    pages = 0
    while True:
        page = asyncio.run(reads.certificates(project, after, 2))
        assert len(page.rows) <= 2
        seen += page.rows
        pages += 1
        if not page.more:
            break
        after = (page.rows[-1].name, page.rows[-1].serial)
    assert [c.name for c in seen] == names and pages == 4
    assert len({c.serial for c in seen}) == len(names)
    assert all(c.project_id == project for c in seen)


def test_audit_pages_go_newest_first(store: SqlStore) -> None:
    for index in range(5):
        store.set_meta(f"k{index}", "v", audit=AuditEntry("meta.set", f"k{index}"))
    reads = ConsoleReads(store)
    first = asyncio.run(reads.audit(None, 3))
    second = asyncio.run(reads.audit(first.rows[-1].id, 3))
    assert [r.target for r in first.rows] == ["k4", "k3", "k2"] and first.more
    assert [r.target for r in second.rows] == ["k1", "k0"] and not second.more


def test_dependents_are_the_live_certificates_of_the_project_soonest_first(store: SqlStore) -> None:
    old = sample_ca(state=CAState.ACTIVE)
    store.add_authority(old)
    new = replace(sample_ca(), created_at=old.created_at + timedelta(seconds=1))
    store.add_authority(new)
    project = new_id()
    now = datetime.now(UTC)

    def cert(name: str, days: int, status: str = "valid", project_id: str = project) -> None:
        made = replace(sample_issued(old.id, project_id), name=name, not_after=now + timedelta(days=days))
        store.record_issued(replace(made, status=status))

    cert("late", 300)
    cert("soon", 10)
    cert("middle", 100)
    cert("expired", -1)
    cert("replaced", 50, status="superseded")
    cert("elsewhere", 50, project_id=new_id())
    found = asyncio.run(ConsoleReads(store).dependents(project, [old.id, new.id], now, 2))
    assert found[old.id].total == 3
    assert [c.name for c in found[old.id].first] == ["soon", "middle"]
    assert found[new.id].total == 0 and found[new.id].first == ()
    authorities = asyncio.run(ConsoleReads(store).authorities("region", 1))
    assert [ca.id for ca in authorities] == [new.id]
