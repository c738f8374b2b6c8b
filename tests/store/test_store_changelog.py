"""The change log: each write records exactly what it changed, under its own revision, in its own
transaction; readers page through it and learn when it was pruned past them."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, text, update
from store_helpers import BACKENDS, new_store, sample_ca, sample_fernet, sample_issued

from csscert.model import Change, ImportedAccessKey, ImportedUserRecord, new_id
from csscert.store import ChangesPruned, Conflict, NotFound, SqlStore
from csscert.store import schema as t


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> SqlStore:
    made = new_store(request.param, tmp_path)
    request.addfinalizer(made.close)
    return made


def _tail(store: SqlStore, since: int) -> list[tuple[str, str]]:
    return [(c.kind, c.key) for c in store.changes_since(since, limit=10_000)]


def _record(store: SqlStore, action: object) -> tuple[int, list[Change]]:
    before = store.current_revision()
    action()  # type: ignore[operator]
    after = store.current_revision()
    assert after == before + 1, "one write, one revision"
    changes = store.changes_since(before, limit=10_000)
    assert {c.rev for c in changes} <= {after}
    return after, changes


def test_every_write_records_what_it_changed_in_order(store: SqlStore) -> None:
    domain_id, project_id, user_id = new_id(), new_id(), new_id()
    ca = sample_ca()
    steps: list[tuple[object, list[tuple[str, str]]]] = [
        (lambda: store.set_meta("k", "v"), [("meta", "k")]),
        (lambda: store.ensure_domain(domain_id, "d"), [("domain", domain_id)]),
        (lambda: store.create_project(project_id, "p", domain_id), [("project", project_id)]),
        (lambda: store.create_user(user_id, "u", domain_id, None, [project_id]), [("user", user_id)]),
        (lambda: store.set_user_password(user_id, "hash"), [("user", user_id)]),
        (lambda: store.set_user_enabled(user_id, False), [("user", user_id)]),
        (lambda: store.set_tokens_valid_after(user_id, 123), [("user", user_id)]),
        (lambda: store.create_access_key("AK1", user_id, "sealed", ""), [("access_key", "AK1")]),
        (lambda: store.set_access_key_enabled("AK1", False), [("access_key", "AK1")]),
        (lambda: store.delete_access_key("AK1"), [("access_key", "AK1")]),
        (lambda: store.add_authority(ca), [("ca", "region")]),
        (lambda: store.add_authority(sample_ca()), [("ca", "region")]),
        (lambda: store.retire_authority(ca.id), [("ca", "region")]),
        (lambda: store.add_fernet_key(sample_fernet(), keep=2), [("fernet_key", "*")]),
        (
            lambda: store.add_revocation("audit-1", datetime.now(UTC) + timedelta(hours=1), user_id),
            [("revocation", "audit-1")],
        ),
        (lambda: store.set_tokens_valid_after(user_id, 999), [("user", user_id)]),
    ]
    seen: list[int] = []
    for action, expected in steps:
        rev, changes = _record(store, action)
        assert [(c.kind, c.key) for c in changes] == expected
        seen.append(rev)
    issued = sample_issued(store.authorities("region")[0].id, project_id)
    _, changes = _record(store, lambda: store.record_issued(issued))
    assert [(c.kind, c.key) for c in changes] == [("issued", issued.serial)]
    _, changes = _record(store, lambda: store.delete_issued(issued.serial))
    assert [(c.kind, c.key) for c in changes] == [("issued", issued.serial)]
    store.create_access_key("AK2", user_id, "sealed", "")
    _, changes = _record(store, lambda: store.delete_user(user_id))
    assert sorted((c.kind, c.key) for c in changes) == sorted(
        [("user", user_id), ("access_key", "AK2"), ("revocation", "audit-1")]
    )
    everything = store.changes_since(0, limit=10_000)
    assert [c.rev for c in everything] == sorted(c.rev for c in everything)
    assert seen == sorted(seen)


def test_a_failed_write_leaves_no_change_and_no_revision(store: SqlStore) -> None:
    domain = store.ensure_domain(new_id(), "d")
    user_id = new_id()
    store.create_user(user_id, "u", domain.id, None, [])
    before = store.current_revision()
    with pytest.raises(Conflict):
        store.create_user(new_id(), "u", domain.id, None, [])
    with pytest.raises(NotFound):
        store.set_user_enabled(new_id(), False)
    with pytest.raises(NotFound):
        store.delete_user(new_id())
    with pytest.raises(NotFound):
        store.retire_authority(new_id())
    assert store.current_revision() == before
    assert store.changes_since(before) == []


def test_change_rows_are_written_in_the_writes_own_transaction(store: SqlStore) -> None:
    """A write that fails after its changes were noted rolls them back with everything else."""
    before = store.current_revision()
    with pytest.raises(RuntimeError), store._write() as tx:
        tx.changed("user", "ghost")
        raise RuntimeError("boom")
    assert store.current_revision() == before
    with store.engine.connect() as conn:
        assert conn.execute(select(t.changes).where(t.changes.c.key == "ghost")).first() is None


def test_changes_since_hands_out_whole_revisions(store: SqlStore) -> None:
    domain = store.ensure_domain(new_id(), "d")
    start = store.current_revision()
    records = [
        ImportedUserRecord(new_id(), f"user{i}", domain.id, access_keys=(ImportedAccessKey(f"AK{i}", "s"),))
        for i in range(5)
    ]
    store.import_users(records)  # one revision, ten changes
    store.set_meta("a", "1")
    store.set_meta("b", "2")
    page = store.changes_since(start, limit=3)
    assert len(page) == 10 and {c.rev for c in page} == {start + 1}  # bigger than limit, yet whole
    page2 = store.changes_since(start + 1, limit=1)
    assert [(c.kind, c.key) for c in page2] == [("meta", "a")]
    page3 = store.changes_since(page2[-1].rev, limit=5)
    assert [(c.kind, c.key) for c in page3] == [("meta", "b")]
    assert store.changes_since(store.current_revision()) == []
    # a limit that cuts into a revision stops before it
    page4 = store.changes_since(start, limit=10)
    assert {c.rev for c in page4} == {start + 1}


def test_pruning_moves_the_horizon_and_readers_behind_it_are_told(store: SqlStore) -> None:
    store.change_keep_seconds = None  # only explicit pruning here
    assert store.oldest_change_rev() == 0
    store.set_meta("a", "1")
    store.set_meta("b", "2")
    old = store.current_revision()
    with store.engine.begin() as conn:  # make them look a day old
        conn.execute(update(t.changes).values(at=datetime.now(UTC) - timedelta(days=1)))
    store.set_meta("c", "3")
    assert store.prune_changes(keep_seconds=3600) == 2
    assert store.oldest_change_rev() == old
    assert [(c.kind, c.key) for c in store.changes_since(old)] == [("meta", "c")]
    with pytest.raises(ChangesPruned) as caught:
        store.changes_since(old - 1)
    assert caught.value.horizon == old
    assert store.prune_changes(keep_seconds=3600) == 0
    assert store.oldest_change_rev() == old  # never goes back


def test_writes_prune_old_changes_on_the_side(store: SqlStore) -> None:
    store.change_keep_seconds = 60
    store.set_meta("a", "1")
    with store.engine.begin() as conn:
        conn.execute(update(t.changes).values(at=datetime.now(UTC) - timedelta(hours=1)))
    pruned_rev = store.current_revision()
    store.set_meta("b", "2")
    assert store.oldest_change_rev() == pruned_rev
    assert [(c.kind, c.key) for c in store.changes_since(pruned_rev)] == [("meta", "b")]


def test_expired_revocations_are_pruned_without_a_change(store: SqlStore) -> None:
    past = datetime.now(UTC) - timedelta(seconds=1)
    with store.engine.begin() as conn:
        conn.execute(
            t.revocations.insert(),
            [{"audit_id": f"old{i}", "expires_at": past, "created_at": past} for i in range(5)],
        )
    store.add_revocation("fresh", datetime.now(UTC) + timedelta(hours=1))
    assert store.revoked(["old0", "fresh"]) == {"fresh"}
    with store.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM revocations")).scalar() == 1
    assert store.prune_revocations() == 0


def test_tokens_valid_after_only_moves_forward(store: SqlStore) -> None:
    domain = store.ensure_domain(new_id(), "d")
    user_id = new_id()
    store.create_user(user_id, "u", domain.id, None, [])
    store.set_tokens_valid_after(user_id, 2000)
    store.set_tokens_valid_after(user_id, 1000)
    user = store.user(user_id)
    assert user is not None and user.tokens_valid_after_ms == 2000
    store.set_tokens_valid_after(user_id, 3000)
    assert store.user(user_id).tokens_valid_after_ms == 3000  # type: ignore[union-attr]
    with store.engine.connect() as conn:  # a column, not revocation rows named after the user
        assert conn.execute(text("SELECT count(*) FROM revocations")).scalar() == 0
    with pytest.raises(NotFound):
        store.set_tokens_valid_after(new_id(), 1)


def test_revisions_commit_in_order_under_concurrent_writers(store: SqlStore) -> None:
    """Writers from several threads: every revision has its change rows, none is skipped."""
    import threading

    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            for i in range(10):
                store.set_meta(f"w{n}-{i}", "x")
        except BaseException as exc:
            errors.append(exc)

    start = store.current_revision()
    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    revs = [c.rev for c in store.changes_since(start, limit=1000)]
    assert revs == list(range(start + 1, start + 41))
    time.sleep(0)


def test_a_writer_may_wait_longer_than_the_statement_timeout(tmp_path: Path) -> None:
    """Reads are bounded by statement_timeout; a writer queued behind a long write is not."""
    import threading

    from store_helpers import ADMIN_URL, create_database

    if not ADMIN_URL:
        pytest.skip("CSSCERT_TEST_POSTGRES_URL is not set")
    from csscert.store import migrate

    store = SqlStore(create_database(ADMIN_URL), statement_timeout=0.2)
    migrate(store)
    try:
        done = threading.Event()
        with store._write() as tx:  # holds the revision row lock
            tx.changed("meta", "long")

            def queue_a_write() -> None:
                store.set_meta("queued", "1")
                done.set()

            waiter = threading.Thread(target=queue_a_write)
            waiter.start()
            time.sleep(0.6)
            assert not done.is_set()
        waiter.join(5)
        assert done.is_set()
        assert [c.key for c in store.changes_since(0)][-2:] == ["long", "queued"]
    finally:
        store.close()
