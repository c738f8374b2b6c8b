"""The database going away: defined errors, on time, and recovery. Runs on a private cluster
(stopped, restarted, frozen with SIGSTOP), never the shared one."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import threading
import time
from collections.abc import Iterator

import psycopg
import pytest
from sqlalchemy import make_url
from store_helpers import PrivatePostgres, private_postgres, wait_until

from csscert.model import new_id
from csscert.store import SqlStore, StoreUnavailable, migrate
from csscert.store.notify import ChangeListener


@pytest.fixture(scope="module")
def cluster() -> Iterator[PrivatePostgres]:
    with private_postgres() as made:
        yield made


@pytest.fixture
def store(cluster: PrivatePostgres) -> Iterator[SqlStore]:
    url = make_url(cluster.admin_url)
    name = f"csscert_{secrets.token_hex(4)}"
    with psycopg.connect(
        host=url.host, port=url.port, user="postgres", dbname="postgres", autocommit=True
    ) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    made = SqlStore(url.set(database=name).render_as_string(hide_password=False))
    migrate(made)
    yield made
    made.close()


def test_listener_reconnects_after_a_restart(cluster: PrivatePostgres, store: SqlStore) -> None:
    received: list[int] = []
    states: list[bool] = []
    listener = ChangeListener(store.url, received.append, states.append, backoff_max=0.5).start()
    try:
        assert wait_until(lambda: states == [True], 10)
        store.set_meta("before", "1")
        assert wait_until(lambda: store.current_revision() in received, 2)
        cluster.ctl("-w", "-m", "fast", "restart")
        assert wait_until(lambda: states == [True, False, True], 20), states
        store.set_meta("after", "1")  # the pool notices the dead connections by itself (pre-ping)
        rev = store.current_revision()
        assert wait_until(lambda: rev in received, 2), (rev, received)
    finally:
        listener.stop()


def test_a_lookup_against_a_stopped_server_fails_fast(cluster: PrivatePostgres, store: SqlStore) -> None:
    domain = store.ensure_domain(new_id(), "d")
    assert store.domain(domain.id) == domain
    cluster.stop()
    try:
        for lookup in (lambda: store.domain(domain.id), lambda: store.run_read(store.user, "nobody")):
            started = time.monotonic()
            with pytest.raises(StoreUnavailable):
                lookup()
            assert time.monotonic() - started < 1.5
    finally:
        cluster.start()
    assert wait_until(lambda: _answers(store, domain.id), 10)


def _answers(store: SqlStore, domain_id: str) -> bool:
    try:
        return store.run_read(store.domain, domain_id) is not None
    except StoreUnavailable:
        return False


def test_a_lookup_against_a_frozen_server_gives_up_at_the_deadline(
    cluster: PrivatePostgres, store: SqlStore
) -> None:
    domain = store.ensure_domain(new_id(), "d")
    assert store.run_read(store.domain, domain.id) == domain  # a pooled connection to hang on
    with cluster.frozen():
        started = time.monotonic()
        with pytest.raises(StoreUnavailable):
            store.run_read(store.domain, domain.id)  # the pooled connection never answers
        assert time.monotonic() - started < 1.5 + 0.3
        started = time.monotonic()
        with pytest.raises(StoreUnavailable):
            asyncio.run(store.read(store.domain_by_name, "d"))  # and from a coroutine
        assert time.monotonic() - started < 1.5 + 0.3
        started = time.monotonic()
        with pytest.raises(StoreUnavailable):
            store.run_read(store.project, new_id(), deadline=0.3)
        assert time.monotonic() - started < 0.6
        # the event loop stays free meanwhile
        ticks = asyncio.run(_ticks_while_reading(store, domain.id))
        assert ticks >= 5
    assert wait_until(lambda: _answers(store, domain.id), 15)  # thawed: back to normal


async def _ticks_while_reading(store: SqlStore, domain_id: str) -> int:
    ticks = 0
    stop = threading.Event()

    async def tick() -> None:
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            await asyncio.sleep(0.05)

    task = asyncio.create_task(tick())
    with contextlib.suppress(StoreUnavailable):
        await store.read(store.domain, domain_id, deadline=0.5)
    stop.set()
    await task
    return ticks
