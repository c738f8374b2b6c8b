"""PostgreSQL pushes every write to ChangeListener: NOTIFY in the write's transaction, at commit."""

from __future__ import annotations

import statistics
import threading
import time
from pathlib import Path

import pytest
from store_helpers import needs_postgres, new_store, wait_until

from csscert.store.notify import ChangeListener

pytestmark = needs_postgres


def test_a_commit_reaches_the_listener_within_100_ms(tmp_path: Path) -> None:
    store = new_store("postgresql", tmp_path)
    received: list[tuple[int, float]] = []
    states: list[bool] = []
    arrived = threading.Condition()

    def on_revision(rev: int) -> None:
        with arrived:
            received.append((rev, time.perf_counter()))
            arrived.notify_all()

    listener = ChangeListener(store.url, on_revision, states.append).start()
    try:
        assert wait_until(lambda: states == [True] and received, 10)
        assert received[0][0] == store.current_revision()  # the catch-up report on connect
        latencies: list[float] = []
        round_trips: list[float] = []
        for i in range(20):
            called = time.perf_counter()
            store.set_meta("k", str(i))
            committed = time.perf_counter()  # the commit happened just before set_meta returned
            rev = store.current_revision()
            with arrived:

                def delivered(rev: int = rev) -> bool:
                    return any(r == rev for r, _ in received)

                assert arrived.wait_for(delivered, timeout=1)
            got = next(at for r, at in received if r == rev)
            latencies.append(max(0.0, got - committed))
            round_trips.append(got - called)
        print(
            f"NOTIFY after commit: median {statistics.median(latencies) * 1000:.2f} ms, "
            f"max {max(latencies) * 1000:.2f} ms; write call to delivery: median "
            f"{statistics.median(round_trips) * 1000:.2f} ms, max {max(round_trips) * 1000:.2f} ms"
        )
        assert max(latencies) < 0.1
        seen = [r for r, _ in received[1:]]
        assert seen == sorted(seen) and len(set(seen)) == 20
    finally:
        listener.stop()
        store.close()
    assert states == [True, False]


def test_a_failed_write_notifies_nothing(tmp_path: Path) -> None:
    store = new_store("postgresql", tmp_path)
    received: list[int] = []
    states: list[bool] = []
    listener = ChangeListener(store.url, received.append, states.append).start()
    try:
        assert wait_until(lambda: bool(received), 10)
        with pytest.raises(RuntimeError), store._write() as tx:
            tx.changed("meta", "x")
            raise RuntimeError("rolled back")
        store.set_meta("ok", "1")
        assert wait_until(lambda: len(received) == 2, 2)
        time.sleep(0.1)
        assert received[1] == store.current_revision() and len(received) == 2
    finally:
        listener.stop()
        store.close()
