"""Push from PostgreSQL: every write NOTIFYs ``csscert_changes`` with its revision at commit.

:class:`ChangeListener` keeps one dedicated connection LISTENing on a daemon thread and hands each
revision to ``on_revision`` (called on that thread: keep it short, e.g. set a number and wake the
event loop with ``loop.call_soon_threadsafe``). Notifications sent while it was disconnected are
lost, so after every (re)connect it reports the current revision once, read from the database;
the reader then applies the change log from where it was. ``on_state(True/False)`` says whether
the push is live: while it is not, a reader falls back to polling the revision.

SQLite has no push; there the change word of :mod:`.signal` does the job on one machine.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from sqlalchemy import make_url

from csscert.store.sql import NOTIFY_CHANNEL

__all__ = ["ChangeListener", "libpq_conninfo"]

log = logging.getLogger(__name__)


def libpq_conninfo(url: str) -> str:
    """A libpq URI from an SQLAlchemy URL (``postgresql+psycopg://…`` → ``postgresql://…``)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


class ChangeListener:
    """LISTEN ``csscert_changes`` on a thread of its own, reconnecting with backoff."""

    def __init__(
        self,
        url: str,
        on_revision: Callable[[int], None],
        on_state: Callable[[bool], None],
        *,
        connect_timeout: float = 2.0,
        poll_seconds: float = 0.5,
        backoff_initial: float = 0.1,
        backoff_max: float = 5.0,
    ) -> None:
        self._conninfo = libpq_conninfo(url)
        self._on_revision = on_revision
        self._on_state = on_state
        self._connect_timeout = max(2, round(connect_timeout))
        self._poll = poll_seconds
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="csscert-change-listener", daemon=True)
        self.connected = False

    def start(self) -> ChangeListener:
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Ask the thread to end; it notices within ``poll_seconds`` (or a connect timeout)."""
        self._stop.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    def _set_state(self, connected: bool) -> None:
        if connected != self.connected:
            self.connected = connected
            try:
                self._on_state(connected)
            except Exception:
                log.exception("change listener: on_state failed")

    def _run(self) -> None:
        delay = self._backoff_initial
        while not self._stop.is_set():
            try:
                self._listen()
                delay = self._backoff_initial
            except Exception as exc:  # any failure: report it, wait, reconnect
                if not self._stop.is_set():
                    log.warning("change listener: %s; reconnecting in %.1f s", str(exc).strip(), delay)
            self._set_state(False)
            if self._stop.wait(delay):
                break
            delay = min(delay * 2, self._backoff_max)

    def _listen(self) -> None:
        import psycopg

        with psycopg.connect(
            self._conninfo,
            autocommit=True,
            connect_timeout=self._connect_timeout,
            keepalives=1,
            keepalives_idle=5,
            keepalives_interval=2,
            keepalives_count=3,
        ) as conn:
            conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
            row = conn.execute("SELECT value FROM revision").fetchone()
            self._set_state(True)
            if row is not None:
                self._deliver(str(row[0]))  # whatever happened while we were not listening
            while not self._stop.is_set():
                for notice in conn.notifies(timeout=self._poll):
                    self._deliver(notice.payload)
                    if self._stop.is_set():
                        break
                if conn.closed or conn.broken:
                    raise ConnectionError("the LISTEN connection was closed")

    def _deliver(self, payload: str) -> None:
        try:
            revision = int(payload)
        except ValueError:
            log.warning("change listener: ignoring payload %r", payload[:40])
            return
        try:
            self._on_revision(revision)
        except Exception:
            log.exception("change listener: on_revision failed")
