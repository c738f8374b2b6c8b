"""The change feed: how one worker's caches learn, change by change, what any process wrote.

Every write records what it changed in the store's change log, under the revision it committed
(``SqlStore.changes_since``). A worker remembers the last revision it applied and, when it learns
that there is more, reads just the changes after it and evicts just those cache entries. It learns
that there is more from three sources, fastest first:

1. the change signal, a memory-mapped word in the data directory that every writer on this
   machine bumps after its commit (read on every request: a memory read, no system call);
2. on PostgreSQL, ``NOTIFY csscert_changes`` sent by every write transaction, pushed to a listener
   thread that wakes the event loop (other hosts of the same database learn within milliseconds);
3. a poll of the store revision every ``revision_poll_seconds``, the fallback for both.

A request that finds the feed behind waits for the catch-up (one query, shared by every request
that arrives meanwhile) before it is answered, so a change is applied before the next request
that could depend on it. When the catch-up cannot reach the database, the worker knows it may be
stale and answers 503 (``StoreUnavailable``) until it has caught up; while it is *not* behind
(the database went away but nothing changed since), it keeps serving what it has cached, and only
requests that need a lookup get 503.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable
from typing import Any

from csscert.ca.trust import TrustCache
from csscert.cache import SingleFlight
from csscert.identity.directory import Directory
from csscert.model import Change
from csscert.sealing import MASTER_KEY_CHECK, Sealer
from csscert.store import ChangesPruned, SqlStore, StoreUnavailable
from csscert.store.signal import ChangeSignal

__all__ = ["ChangeFeed"]

log = logging.getLogger("csscert.feed")

_BATCH = 1000  # change rows read per query
_CLEAR_ABOVE = 5000  # a catch-up this large clears the caches instead of evicting one by one


class ChangeFeed:
    """Applies the store's change log to one worker's caches (see the module docstring)."""

    def __init__(
        self,
        store: SqlStore,
        directory: Directory,
        trust: TrustCache,
        signal: ChangeSignal | None,
        poll_seconds: float,
        sealer: Sealer | None = None,
    ) -> None:
        self._store = store
        self._directory = directory
        self._trust = trust
        self._signal = signal
        self._poll_seconds = poll_seconds
        self._sealer = sealer  # follows master-key rotations (custody/masterkey.py)
        self._word = signal.current() if signal is not None else b""
        # Taken before any lookup can be cached: nothing cached can predate it.
        self.applied = store.current_revision()
        self.known = self.applied  # the newest revision we heard of (NOTIFY, poll)
        self.stale = False  # a catch-up failed: cached data may predate a change
        self.listener_connected: bool | None = None  # None: no push channel (SQLite)
        self._flight: SingleFlight[str, None] = SingleFlight()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._listener: object | None = None
        self.catch_ups = 0
        self.applied_changes = 0
        # Other per-worker caches derived from the store (``apply(changes)``, ``clear()``),
        # e.g. the CRLs (ca/crls.py); evicted with the same changes as the read model.
        self.also: list[Any] = []

    # -- the request path ---------------------------------------------------------------

    def behind(self) -> bool:
        """True when changes may exist that this worker has not applied (cheap: per request)."""
        signal = self._signal
        return (
            self.known > self.applied or self.stale or (signal is not None and signal.current() != self._word)
        )

    async def catch_up(self) -> None:
        """Apply every change up to now; shared by concurrent callers. Raises
        :class:`StoreUnavailable` when the log cannot be read (the caller answers 503)."""
        await self._flight.load("catch-up", self._catch_up)

    async def _catch_up(self) -> None:
        # The word is read before the query: a commit after this point bumps it again, so a
        # change can never be both missed by the query and hidden by the word we keep.
        word = self._signal.current() if self._signal is not None else b""
        try:
            while True:
                try:
                    changes: list[Change] = await self._store.read(
                        self._store.changes_since, self.applied, _BATCH
                    )
                except ChangesPruned:
                    await self._restart()
                    continue
                if not changes:
                    break
                await self._apply(changes)
                if len(changes) < _BATCH:
                    # The log had no more: a commit after this query moved the word read above
                    # (or ``known``), so the next request catches up again. Asking once more
                    # here would only double the cost of every catch-up.
                    break
        except StoreUnavailable:
            self.stale = True
            raise
        self.stale = False
        self._word = word
        self.known = max(self.known, self.applied)
        self.catch_ups += 1

    async def _apply(self, changes: list[Change]) -> None:
        if self._sealer is not None and any(c.kind == "meta" and c.key == MASTER_KEY_CHECK for c in changes):
            # A rotation committed: seal under the new key from now on (and know it before the
            # token keys are re-opened below).
            check = await self._store.read(self._store.get_meta, MASTER_KEY_CHECK)
            self._sealer.follow(check)
        if len(changes) > _CLEAR_ABOVE:
            # A bulk import or a long absence: forgetting everything is cheaper than evicting
            # key by key on the event loop, and the caches refill on demand.
            self._directory.clear()
            self._trust.clear()
            for other in self.also:
                other.clear()
            keys_changed = any(c.kind == "fernet_key" for c in changes)
        else:
            keys_changed = self._directory.apply(changes)
            self._trust.apply(changes)
            for other in self.also:
                other.apply(changes)
        if keys_changed:
            keys = await self._store.read(self._store.fernet_keys)
            self._directory.reload_codec(keys)
        self.applied = changes[-1].rev
        self.applied_changes += len(changes)

    async def _restart(self) -> None:
        """The log no longer reaches back to what we applied: start over from now."""
        log.warning("change log pruned past revision %s: dropping every cache", self.applied)
        current = await self._store.read(self._store.current_revision)
        keys = await self._store.read(self._store.fernet_keys)
        self._directory.clear()
        self._trust.clear()
        for other in self.also:
            other.clear()
        self._directory.reload_codec(keys)
        self.applied = current

    # -- background sources -------------------------------------------------------------

    def start(self, loop: asyncio.AbstractEventLoop | None) -> None:
        """Start the poll thread (and, on PostgreSQL, the NOTIFY listener)."""
        if self._threads:
            return
        self._loop = loop
        poll = threading.Thread(target=self._poll, name="csscert-revision-poll", daemon=True)
        poll.start()
        self._threads.append(poll)
        if self._store.url.startswith("postgresql"):
            from csscert.store.notify import ChangeListener

            listener = ChangeListener(self._store.url, self._heard, self._listener_state)
            listener.start()
            self._listener = listener

    def stop(self) -> None:
        self._stop.set()
        stop: Callable[[], None] | None = getattr(self._listener, "stop", None)
        if stop is not None:
            stop()

    def _heard(self, revision: int) -> None:
        """A revision announced by NOTIFY (listener thread)."""
        if revision > self.known:
            self.known = revision
            self._wake()

    def _listener_state(self, connected: bool) -> None:
        was = self.listener_connected
        self.listener_connected = connected
        if connected and was is False:
            # Notifications sent while we were away are lost: ask the store where it is now.
            self._wake(poll=True)

    def _wake(self, *, poll: bool = False) -> None:
        """Start a catch-up on the event loop now, so the next request finds it done."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        if poll:
            self._poll_once()
        with contextlib.suppress(RuntimeError):  # the loop is shutting down
            loop.call_soon_threadsafe(self._schedule)

    def _schedule(self) -> None:
        if self.behind():
            task = asyncio.ensure_future(self.catch_up())
            task.add_done_callback(_ignore_failure)

    def _poll(self) -> None:
        while not self._stop.wait(self._poll_seconds):
            self._poll_once()
            if self._signal is not None and self._signal.refresh():
                self._wake()

    def _poll_once(self) -> None:
        try:
            revision = self._store.run_read(self._store.current_revision)
        except StoreUnavailable:
            return  # nothing can change while the database is away; the next poll tries again
        except Exception:  # a database hiccup must not kill the poll
            log.exception("revision poll failed")
            return
        if revision > self.known:
            self.known = revision
            self._wake()


def _ignore_failure(task: asyncio.Future[None]) -> None:
    if not task.cancelled():
        task.exception()  # retrieved; a failed background catch-up is retried by the next request
