"""The SQLAlchemy implementation of the store: SQLite (embedded, WAL) or PostgreSQL by URL.

Every write runs in one transaction that first bumps the ``revision`` counter (on PostgreSQL that
row lock serialises writers, so revisions commit in order) and, before committing, records in the
``changes`` table what it changed (kind + key, under that revision). Readers keep caches filled by
point lookups and apply :meth:`SqlStore.changes_since` the revision they last saw, evicting just
those entries. After the commit the change signal (a shared word in a file of the data directory)
is bumped; on PostgreSQL the transaction also sends ``NOTIFY csscert_changes, '<rev>'`` (see
:mod:`.notify`), delivered at commit.

Change kinds and keys: ``domain`` (id), ``project`` (id), ``user`` (user id: the row, its grants,
password, enabled flag, ``tokens_valid_after``, deletion), ``access_key`` (access), ``revocation``
(audit id), ``ca`` (scope), ``fernet_key`` (``"*"``), ``meta`` (meta key), ``issued`` (serial),
``crl`` (CA fingerprint: its revocation list changed), ``policy`` (project id). Roles are ``user``.
Creations carry only the id: a reader that caches negative lookups by *name* must drop those on
any ``domain``/``project``/``user`` change for an id it does not hold. Pruning expired
revocations is not a change (a token past its expiry is refused anyway).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import queue
import threading
from collections.abc import Callable, Collection, Iterator, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from sqlalchemy import (
    Connection,
    CursorResult,
    Engine,
    Executable,
    case,
    create_engine,
    delete,
    event,
    func,
    insert,
    literal,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.exc import (
    DBAPIError,
    IntegrityError,
    InterfaceError,
    OperationalError,
    ProgrammingError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeout

from csscert.audit import AuditEntry, current_actor
from csscert.errors import Conflict, CsscertError, InvalidRequest, ResourceNotFound, ServiceUnavailable
from csscert.model import (
    AccessKey,
    AuditRecord,
    CAState,
    CertificateAuthority,
    Change,
    Domain,
    FernetKey,
    ImportedUserRecord,
    IssuedCertificate,
    Project,
    User,
)
from csscert.store import schema as t
from csscert.store.signal import ChangeSignal

__all__ = [
    "NOTIFY_CHANNEL",
    "ChangesPruned",
    "Conflict",
    "LastGrant",
    "NotFound",
    "SqlStore",
    "StoreUnavailable",
    # for the store's other modules (store/issuance.py): row converters and the failure wrapper
    "_ca",
    "_issued",
    "_unavailable_on_failure",
    "_utc",
]

NOTIFY_CHANNEL = "csscert_changes"
audit_log = logging.getLogger("csscert.audit")
_BATCH = 1000  # rows per executemany batch
_IN_BATCH = 500  # values per IN (...) list
_PRUNE_IN_WRITE = 200  # change rows / expired revocations a write prunes on the side, at most

P = ParamSpec("P")
R = TypeVar("R")


class NotFound(ResourceNotFound):
    """The record to change does not exist (callers usually re-raise it naming what they looked for)."""


class LastGrant(InvalidRequest):
    """Revoking this grant would leave a user without any project."""


class StoreUnavailable(ServiceUnavailable):
    """The database cannot be reached or did not answer in time (the API answers 503).

    The message is safe to show to a client; the driver's error is chained as ``__cause__``."""

    def __init__(self, message: str = "the identity store is unavailable; try again shortly") -> None:
        super().__init__(message)


class ChangesPruned(CsscertError):
    """The change log no longer reaches back to the asked revision: drop every cache and
    restart from :meth:`SqlStore.current_revision`."""

    def __init__(self, asked: int, horizon: int) -> None:
        super().__init__(f"changes after revision {asked} were pruned (the log starts after {horizon})")
        self.asked = asked
        self.horizon = horizon


_UNAVAILABLE = (OperationalError, InterfaceError, PoolTimeout)


def _unavailable_on_failure(method: Callable[P, R]) -> Callable[P, R]:
    """Connection failures and timeouts of a read become :class:`StoreUnavailable`."""

    @functools.wraps(method)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(*args, **kwargs)
        except _UNAVAILABLE as exc:
            raise StoreUnavailable() from exc
        except DBAPIError as exc:
            if exc.connection_invalidated:
                raise StoreUnavailable() from exc
            raise

    return wrapper


def _utc(value: datetime) -> datetime:
    """Everything we store is UTC: SQLite hands naive datetimes back, PostgreSQL aware ones in the
    session's time zone; both become ``datetime.UTC`` (HTTP dates insist on that exact zone)."""
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)


def _now() -> datetime:
    return datetime.now(UTC)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def _chunks(values: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


class _Tx:
    """One write transaction: its connection, the revision it bumped to, what it changed."""

    __slots__ = ("at", "changes", "conn", "rev", "unchanged")

    def __init__(self, conn: Connection, rev: int, at: datetime) -> None:
        self.conn = conn
        self.rev = rev
        self.at = at
        self.changes: dict[tuple[str, str], None] = {}  # ordered, without duplicates
        self.unchanged = False  # set when the write changed nothing after all (no audit record)

    def execute(self, statement: Executable, parameters: Any = None) -> CursorResult[Any]:
        return self.conn.execute(statement, parameters)

    def changed(self, kind: str, key: str) -> None:
        self.changes[(kind, key)] = None


class _ReadPool:
    """A few daemon threads that run blocking reads for :meth:`SqlStore.run_read`.

    Daemon threads (not ``ThreadPoolExecutor``, whose threads are joined at exit): a thread stuck
    on a frozen database must not keep the process from exiting."""

    def __init__(self, threads: int) -> None:
        self.threads = threads
        self.overdue = 0  # tasks still running past their caller's deadline (stuck threads)
        self._lock = threading.Lock()
        self._queue: queue.SimpleQueue[tuple[Future[Any], Callable[[], Any]] | None] = queue.SimpleQueue()
        self._started = 0

    def submit(self, call: Callable[[], R]) -> Future[R]:
        future: Future[R] = Future()
        with self._lock:
            if self._started < self.threads:
                self._started += 1
                threading.Thread(target=self._work, name="csscert-store-read", daemon=True).start()
        self._queue.put((future, call))
        return future

    def _work(self) -> None:
        while (item := self._queue.get()) is not None:
            future, call = item
            if not future.set_running_or_notify_cancel():
                continue  # its caller gave up while it waited in the queue
            try:
                result = call()
            except BaseException as exc:
                future.set_exception(exc)
            else:
                future.set_result(result)

    def mark_overdue(self, future: Future[Any]) -> None:
        with self._lock:
            self.overdue += 1

        def done(_: Future[Any]) -> None:
            with self._lock:
                self.overdue -= 1

        future.add_done_callback(done)

    def all_stuck(self) -> bool:
        return self.overdue >= self.threads

    def close(self) -> None:
        for _ in range(self._started):
            self._queue.put(None)


class SqlStore:
    """Durable state behind a small, explicit interface.

    Timeouts (PostgreSQL): connections get ``connect_timeout`` (libpq rounds anything under 2 s up
    to 2 s) and a server-side ``statement_timeout`` for reads; writes, snapshots and migrations lift
    the statement timeout for their transaction (a writer may legitimately wait for the revision
    row lock behind a long import). A *frozen* server (SIGSTOP, a hung VM) runs no timeout at all
    and its kernel still acknowledges TCP, so a read on an open connection waits forever: the
    bound for that is client-side, :meth:`run_read` / :meth:`read`, which run a read on one of
    ``read_threads`` daemon threads and give up after ``read_deadline`` seconds with
    :class:`StoreUnavailable` (the stuck thread comes back when the server does). Async code must
    call point lookups through :meth:`read`, never directly on the event loop.
    """

    def __init__(
        self,
        url: str,
        hint_path: Path | None = None,
        *,
        connect_timeout: float = 1.0,
        statement_timeout: float = 1.0,
        read_deadline: float = 1.0,
        read_threads: int = 4,
        change_keep_seconds: float | None = 86400.0,
    ) -> None:
        self.url = url
        self.hint_path = hint_path
        self.change_signal = ChangeSignal(hint_path) if hint_path is not None else None
        self.read_deadline = read_deadline
        self.change_keep_seconds = change_keep_seconds
        self._is_postgresql = url.startswith("postgresql")
        options: dict[str, Any] = {}
        if self._is_postgresql:
            connect_args: dict[str, Any] = {
                "connect_timeout": max(1, math.ceil(connect_timeout)),
                # A dead peer (host gone, cable cut) is noticed within ~10 s even mid-query.
                "keepalives": 1,
                "keepalives_idle": 5,
                "keepalives_interval": 2,
                "keepalives_count": 3,
            }
            if statement_timeout > 0:
                connect_args["options"] = f"-c statement_timeout={max(1, round(statement_timeout * 1000))}"
            options = {"connect_args": connect_args, "pool_timeout": max(connect_timeout, 0.1)}
        self.engine: Engine = create_engine(url, pool_pre_ping=not url.startswith("sqlite"), **options)
        if url.startswith("sqlite"):
            event.listen(self.engine, "connect", _sqlite_pragmas)
        self.errors = 0  # errors the driver raised, for metrics
        event.listen(self.engine, "handle_error", self._count_error)
        self._reads = _ReadPool(read_threads)
        # Called in every write transaction before it commits (custody: refuses a write that
        # sealed a secret under a master key the database was rotated away from meanwhile).
        self.write_guard: Callable[[_Tx], None] | None = None

    def _count_error(self, _context: Any) -> None:
        self.errors += 1

    def close(self) -> None:
        self._reads.close()
        self.engine.dispose()

    # -- transactions -------------------------------------------------------------------

    def _no_statement_timeout(self, conn: Connection) -> None:
        if self._is_postgresql:
            conn.exec_driver_sql("SET LOCAL statement_timeout = 0")

    @contextmanager
    def _write(self, audit: AuditEntry | None = None) -> Iterator[_Tx]:
        """One write transaction. The revision bump comes first: SQLite takes its write lock before
        any read, PostgreSQL locks the revision row (writers queue there, so revisions commit in
        order). Before the commit go the change rows under that revision, the audit record (given
        ``audit``, unless the write changed nothing), then the NOTIFY; after it, the change signal
        and the audit log line."""
        record: dict[str, Any] | None = None
        with self.engine.begin() as conn:
            # PostgreSQL: lifted first, since waiting for the revision row lock behind a long
            # write (an import) is normal. (Only SQL for PostgreSQL: on SQLite the bump below
            # is still the first statement, so SQLite takes its write lock before any read.)
            self._no_statement_timeout(conn)
            rev = self._bump(conn)
            tx = _Tx(conn, rev, _now())
            yield tx
            if self.write_guard is not None:
                self.write_guard(tx)
            if audit is not None and not tx.unchanged:
                record = self._audit(tx, audit)
            self._finish(tx)
        self.touch_hint()
        if record is not None:
            audit_log.info(
                "%s %s by %s from %s%s",
                record["action"],
                record["target"],
                record["actor"],
                record["origin"],
                f" ({record['detail']})" if record["detail"] else "",
            )

    @staticmethod
    def _audit(tx: _Tx, entry: AuditEntry) -> dict[str, Any]:
        actor = current_actor()
        record = {
            "at": tx.at,
            "revision": tx.rev,
            "actor": actor.who[:200],
            "origin": actor.origin[:200],
            "action": entry.action[:64],
            "target": entry.target[:255],
            "detail": entry.detail[:2000],
        }
        tx.execute(insert(t.audit).values(**record))
        return record

    def audit_records(self, since: datetime | None = None, limit: int = 10_000) -> list[AuditRecord]:
        """The audit trail, oldest first (from ``since`` on), at most ``limit`` records."""
        query = select(t.audit).order_by(t.audit.c.id).limit(limit)
        if since is not None:
            query = query.where(t.audit.c.at >= since)
        with self.engine.connect() as conn:
            return [
                AuditRecord(r.id, _utc(r.at), r.revision, r.actor, r.origin, r.action, r.target, r.detail)
                for r in conn.execute(query)
            ]

    def _bump(self, conn: Connection) -> int:
        rv = t.revision
        value = conn.execute(update(rv).values(value=rv.c.value + 1).returning(rv.c.value)).scalar()
        if value is None:
            conn.execute(insert(rv).values(id=1, value=1))
            value = 1
        return int(value)

    def _finish(self, tx: _Tx) -> None:
        rows = [{"rev": tx.rev, "kind": kind, "key": key, "at": tx.at} for kind, key in tx.changes]
        for batch in _chunks(rows, _BATCH):
            tx.execute(insert(t.changes), list(batch))
        if self.change_keep_seconds is not None:
            self._prune_changes(tx.conn, tx.at - timedelta(seconds=self.change_keep_seconds), _PRUNE_IN_WRITE)
        if self._is_postgresql:
            tx.execute(select(func.pg_notify(NOTIFY_CHANNEL, str(tx.rev))))

    def touch_hint(self) -> None:
        """Tell every reader on this machine that the store changed (see :mod:`.signal`)."""
        if self.change_signal is not None:
            self.change_signal.bump()

    def schema_revision(self) -> str | None:
        """The Alembic revision the database is at; None for an empty database."""
        try:
            with self.engine.connect() as conn:
                value = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
        except (OperationalError, ProgrammingError) as exc:
            message = str(exc.orig).lower()
            if "no such table" in message or "does not exist" in message:
                return None  # an empty database
            raise  # a full disk, a read-only file, an unreachable server: not "empty"
        return None if value is None else str(value)

    def revision(self) -> int:
        with self.engine.connect() as conn:
            value = conn.execute(select(t.revision.c.value)).scalar()
        return int(value or 0)

    # -- bounded reads for async callers ------------------------------------------------

    def run_read(self, fn: Callable[..., R], *args: Any, deadline: float | None = None) -> R:
        """``fn(*args)`` on a read thread, waiting at most ``deadline`` seconds (default
        ``read_deadline``) before raising :class:`StoreUnavailable`. For threads that must not
        hang on a frozen database; coroutines use :meth:`read`."""
        future = self._submit(fn, args)
        try:
            return future.result(timeout=self.read_deadline if deadline is None else deadline)
        except FutureTimeout:
            raise self._gave_up(future) from None

    async def read(self, fn: Callable[..., R], *args: Any, deadline: float | None = None) -> R:
        """``await store.read(store.user, user_id)``: the lookup runs off the event loop, and the
        caller gets :class:`StoreUnavailable` after ``deadline`` seconds whatever the database does."""
        future = self._submit(fn, args)
        try:
            return await asyncio.wait_for(
                asyncio.wrap_future(future), self.read_deadline if deadline is None else deadline
            )
        except TimeoutError:
            raise self._gave_up(future) from None

    def _submit(self, fn: Callable[..., R], args: tuple[Any, ...]) -> Future[R]:
        if self._reads.all_stuck():
            # Every read thread waits on a database that stopped answering: fail now rather than
            # queue behind them (they come back when the database does).
            raise StoreUnavailable()
        call: Callable[[], R] = functools.partial(fn, *args)
        return self._reads.submit(call)

    def _gave_up(self, future: Future[Any]) -> StoreUnavailable:
        if not future.cancel():  # already running: its thread is stuck until the database answers
            self._reads.mark_overdue(future)
        return StoreUnavailable()

    # -- point lookups for the read model (one indexed query each) ----------------------

    @_unavailable_on_failure
    def current_revision(self) -> int:
        """The revision of the last committed write."""
        return self.revision()

    @_unavailable_on_failure
    def domain(self, domain_id: str) -> Domain | None:
        return self._one(select(t.domains).where(t.domains.c.id == domain_id), _domain)

    @_unavailable_on_failure
    def domain_by_name(self, name: str) -> Domain | None:
        return self._one(select(t.domains).where(t.domains.c.name == name), _domain)

    @_unavailable_on_failure
    def project(self, project_id: str) -> Project | None:
        return self._one(select(t.projects).where(t.projects.c.id == project_id), _project)

    @_unavailable_on_failure
    def project_by_name(self, name: str) -> Project | None:
        return self._one(select(t.projects).where(t.projects.c.name == name), _project)

    @_unavailable_on_failure
    def user(self, user_id: str) -> User | None:
        """The user with its grants (``project_ids``), or None."""
        return self._user_where(t.users.c.id == user_id)

    @_unavailable_on_failure
    def user_by_name(self, domain_id: str, name: str) -> User | None:
        return self._user_where((t.users.c.domain_id == domain_id) & (t.users.c.name == name))

    @_unavailable_on_failure
    def access_key(self, access: str) -> AccessKey | None:
        return self._one(select(t.access_keys).where(t.access_keys.c.access == access), _access_key)

    @_unavailable_on_failure
    def revoked(self, audit_ids: Collection[str]) -> set[str]:
        """Which of ``audit_ids`` are revoked (and the revocation not yet expired)."""
        ids = sorted(set(audit_ids))
        found: set[str] = set()
        if not ids:
            return found
        rv = t.revocations
        now = _now()
        with self.engine.connect() as conn:
            for chunk in _chunks(ids, _IN_BATCH):
                query = select(rv.c.audit_id).where(rv.c.audit_id.in_(chunk), rv.c.expires_at > now)
                found.update(conn.execute(query).scalars())
        return found

    @_unavailable_on_failure
    def changes_since(self, rev: int, limit: int = 1000) -> list[Change]:
        """The changes of the revisions after ``rev``, ordered, whole revisions only: about
        ``limit`` rows, but never less than one whole revision (an import may be one big one).

        Raises :class:`ChangesPruned` when changes after ``rev`` were already pruned: the caller
        must then drop all its caches and restart from :meth:`current_revision`. (The horizon is
        read after the rows, in the same transaction, so a prune in between cannot go unseen.)
        A reader starting empty takes :meth:`current_revision` *before* its first lookup."""
        ch = t.changes
        order = (ch.c.rev, ch.c.kind, ch.c.key)
        with self.engine.connect() as conn, conn.begin():
            rows = conn.execute(select(ch).where(ch.c.rev > rev).order_by(*order).limit(limit + 1)).all()
            if len(rows) > limit:
                last = rows[limit].rev
                # whole revisions only; one revision alone bigger than limit comes whole
                rows = [r for r in rows if r.rev < last] or conn.execute(
                    select(ch).where(ch.c.rev == last).order_by(*order)
                ).all()
            horizon = int(conn.execute(select(t.revision.c.changes_pruned_through)).scalar() or 0)
        if rev < horizon:
            raise ChangesPruned(rev, horizon)
        return [Change(int(r.rev), r.kind, r.key) for r in rows]

    @_unavailable_on_failure
    def oldest_change_rev(self) -> int:
        """The change-log horizon H: every change of a revision after H is still in the log, those
        up to H may be pruned. A reader whose last applied revision is below H fell behind and
        must drop all its caches (:meth:`changes_since` raises :class:`ChangesPruned` then)."""
        with self.engine.connect() as conn:
            return int(conn.execute(select(t.revision.c.changes_pruned_through)).scalar() or 0)

    def _one(self, query: Any, make: Callable[[Any], R]) -> R | None:
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        return None if row is None else make(row)

    def _user_where(self, condition: Any) -> User | None:
        """One statement: the user, its grants and its roles (0005) joined (a handful of rows)."""
        u, g, r = t.users, t.grants, t.user_roles
        query = (
            select(u, g.c.project_id.label("granted"), r.c.role.label("held_role"))
            .outerjoin(g, g.c.user_id == u.c.id)
            .outerjoin(r, r.c.user_id == u.c.id)
            .where(condition)
        )
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        if not rows:
            return None
        granted = frozenset(row.granted for row in rows if row.granted is not None)
        roles = frozenset(row.held_role for row in rows if row.held_role is not None)
        return _user(rows[0], granted, roles)

    # -- pruning ------------------------------------------------------------------------

    def prune_changes(self, keep_seconds: float) -> int:
        """Delete change rows older than ``keep_seconds`` (whole revisions) and move the horizon
        (:meth:`oldest_change_rev`) past them. Returns how many rows went. Writes also prune a
        little on the side when the store was given ``change_keep_seconds``."""
        cutoff = _now() - timedelta(seconds=keep_seconds)
        total = 0
        while True:
            with self.engine.begin() as conn:
                self._no_statement_timeout(conn)
                # The revision row lock, as a writer takes it: the horizon moves in order with writes.
                conn.execute(update(t.revision).values(value=t.revision.c.value))
                deleted = self._prune_changes(conn, cutoff, 5000)
            total += deleted
            if deleted == 0:
                return total

    def _prune_changes(self, conn: Connection, cutoff: datetime, limit: int) -> int:
        """One bounded step: the oldest ``limit`` rows, as far as they are older than ``cutoff``."""
        ch = t.changes
        oldest = conn.execute(select(ch.c.rev, ch.c.at).order_by(ch.c.rev).limit(limit)).all()
        through = None
        for row in oldest:
            if _utc(row.at) >= cutoff:
                break
            through = int(row.rev)
        if through is None:
            return 0
        deleted = conn.execute(delete(ch).where(ch.c.rev <= through)).rowcount
        rv = t.revision
        conn.execute(
            update(rv).values(
                changes_pruned_through=case(
                    (rv.c.changes_pruned_through < through, through), else_=rv.c.changes_pruned_through
                )
            )
        )
        return int(deleted)

    def prune_revocations(self, limit: int = 10_000) -> int:
        """Delete up to ``limit`` expired revocations (not a change: their tokens expired too)."""
        with self.engine.begin() as conn:
            self._no_statement_timeout(conn)
            return self._prune_revocations(conn, limit)

    def _prune_revocations(self, conn: Connection, limit: int) -> int:
        rv = t.revocations
        expired = select(rv.c.audit_id).where(rv.c.expires_at <= _now()).limit(limit).scalar_subquery()
        return int(conn.execute(delete(rv).where(rv.c.audit_id.in_(expired))).rowcount)

    # -- meta ---------------------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        with self.engine.connect() as conn:
            value = conn.execute(select(t.meta.c.value).where(t.meta.c.key == key)).scalar()
        return None if value is None else str(value)

    def set_meta(self, key: str, value: str, *, audit: AuditEntry | None = None) -> None:
        with self._write(audit) as tx:
            if tx.execute(update(t.meta).where(t.meta.c.key == key).values(value=value)).rowcount == 0:
                tx.execute(insert(t.meta).values(key=key, value=value))
            tx.changed("meta", key)

    # -- domains & projects -------------------------------------------------------------

    def ensure_domain(self, domain_id: str, name: str, *, audit: AuditEntry | None = None) -> Domain:
        """The domain called ``name``, created if missing. Only a creation is a write (and so
        a change every server notices); finding it is a plain read."""
        query = select(t.domains).where(t.domains.c.name == name)
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        if row is not None:
            return _domain(row)
        with self._write(audit) as tx:
            row = tx.execute(query).first()  # another process may have made it meanwhile
            if row is not None:
                tx.unchanged = True
                return _domain(row)
            tx.execute(insert(t.domains).values(id=domain_id, name=name, enabled=True))
            tx.changed("domain", domain_id)
            return Domain(domain_id, name, True)

    def create_project(
        self, project_id: str, name: str, domain_id: str, *, audit: AuditEntry | None = None
    ) -> Project:
        project = Project(project_id, name, domain_id, True, _now())
        try:
            with self._write(audit) as tx:
                tx.execute(
                    insert(t.projects).values(
                        id=project.id,
                        name=project.name,
                        domain_id=domain_id,
                        enabled=True,
                        created_at=project.created_at,
                    )
                )
                tx.changed("project", project.id)
        except IntegrityError as exc:
            raise Conflict(f"a project named {name!r} already exists") from exc
        return project

    def projects(self) -> list[Project]:
        """All projects (they are few), oldest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(t.projects).order_by(t.projects.c.created_at, t.projects.c.name))
            return [_project(r) for r in rows]

    # -- users & grants -----------------------------------------------------------------

    def projects_without_ca(self) -> list[str]:
        """Ids of projects no CA names as its scope (the per-project scope's missing CAs)."""
        cas = t.certificate_authorities
        query = select(t.projects.c.id).where(~t.projects.c.id.in_(select(cas.c.scope).distinct()))
        with self.engine.connect() as conn:
            return list(conn.execute(query).scalars())

    @_unavailable_on_failure
    def users_page(
        self,
        after_name: str | None,
        limit: int,
        *,
        after_id: str | None = None,
        domain_id: str | None = None,
    ) -> list[User]:
        """Up to ``limit`` users ordered by (name, id), after the cursor: with ``after_id`` (the
        last row's id) strictly after (after_name, after_id), which pages correctly when several
        domains share a name; without it, names greater than ``after_name``. Two queries (the
        page, then the grants of its users), whatever the number of users."""
        u = t.users
        query = select(u).order_by(u.c.name, u.c.id).limit(limit)
        if domain_id is not None:
            query = query.where(u.c.domain_id == domain_id)
        if after_name is not None:
            if after_id is None:
                query = query.where(u.c.name > after_name)
            else:
                query = query.where(
                    or_(u.c.name > after_name, (u.c.name == after_name) & (u.c.id > after_id))
                )
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
            granted: dict[str, set[str]] = {}
            roles: dict[str, set[str]] = {}
            if rows:
                ids = [r.id for r in rows]
                g, ur = t.grants, t.user_roles
                for chunk in _chunks(ids, _IN_BATCH):
                    # Grants and roles (0005) in one statement: (user, value, "g" or "r").
                    both = (
                        select(g.c.user_id, g.c.project_id.label("value"), literal("g").label("kind"))
                        .where(g.c.user_id.in_(chunk))
                        .union_all(
                            select(ur.c.user_id, ur.c.role.label("value"), literal("r").label("kind")).where(
                                ur.c.user_id.in_(chunk)
                            )
                        )
                    )
                    for row in conn.execute(both):
                        (granted if row.kind == "g" else roles).setdefault(row.user_id, set()).add(row.value)
        return [_user(r, frozenset(granted.get(r.id, ())), frozenset(roles.get(r.id, ()))) for r in rows]

    def create_user(
        self,
        user_id: str,
        name: str,
        domain_id: str,
        password_hash: str | None,
        project_ids: Sequence[str],
        *,
        audit: AuditEntry | None = None,
    ) -> User:
        created = _now()
        try:
            with self._write(audit) as tx:
                tx.execute(
                    insert(t.users).values(
                        id=user_id,
                        name=name,
                        domain_id=domain_id,
                        password_hash=password_hash,
                        enabled=True,
                        created_at=created,
                    )
                )
                for project_id in project_ids:
                    tx.execute(insert(t.grants).values(user_id=user_id, project_id=project_id))
                tx.changed("user", user_id)
        except IntegrityError as exc:
            raise Conflict(f"a user named {name!r} already exists in this domain") from exc
        return User(user_id, name, domain_id, password_hash, True, created, frozenset(project_ids))

    def grant(self, user_id: str, project_id: str, *, audit: AuditEntry | None = None) -> None:
        try:
            with self._write(audit) as tx:
                tx.execute(insert(t.grants).values(user_id=user_id, project_id=project_id))
                tx.changed("user", user_id)
        except IntegrityError as exc:
            raise Conflict("the user already has that project") from exc

    def revoke_grant(self, user_id: str, project_id: str, *, audit: AuditEntry | None = None) -> None:
        """Take ``project_id`` from the user, but never its last project (one transaction, so two
        concurrent revocations cannot both pass the check)."""
        g = t.grants
        with self._write(audit) as tx:
            held = {r.project_id for r in tx.execute(select(g.c.project_id).where(g.c.user_id == user_id))}
            if project_id not in held:
                raise NotFound("the user does not have that project")
            if len(held) == 1:
                raise LastGrant("that is the user's only project")
            tx.execute(delete(g).where(g.c.user_id == user_id, g.c.project_id == project_id))
            tx.changed("user", user_id)

    def set_user_enabled(self, user_id: str, enabled: bool, *, audit: AuditEntry | None = None) -> None:
        with self._write(audit) as tx:
            result = tx.execute(update(t.users).where(t.users.c.id == user_id).values(enabled=enabled))
            if result.rowcount == 0:
                raise NotFound("no such user")
            tx.changed("user", user_id)

    def set_user_password(self, user_id: str, password_hash: str, *, audit: AuditEntry | None = None) -> None:
        with self._write(audit) as tx:
            result = tx.execute(
                update(t.users).where(t.users.c.id == user_id).values(password_hash=password_hash)
            )
            if result.rowcount == 0:
                raise NotFound("no such user")
            tx.changed("user", user_id)

    def set_tokens_valid_after(self, user_id: str, ms: int, *, audit: AuditEntry | None = None) -> None:
        """Tokens of the user issued before ``ms`` (epoch milliseconds) are void. Keeps the
        later of the stored cut-off and ``ms``."""
        with self._write(audit) as tx:
            if not self._raise_tokens_valid_after(tx, user_id, ms):
                raise NotFound("no such user")

    def _raise_tokens_valid_after(self, tx: _Tx, user_id: str, ms: int) -> bool:
        u = t.users
        later = case(
            (or_(u.c.tokens_valid_after.is_(None), u.c.tokens_valid_after < ms), ms),
            else_=u.c.tokens_valid_after,
        )
        if tx.execute(update(u).where(u.c.id == user_id).values(tokens_valid_after=later)).rowcount == 0:
            return False
        tx.changed("user", user_id)
        return True

    def delete_user(self, user_id: str, *, audit: AuditEntry | None = None) -> None:
        """The user, its grants, access keys and revocations, in one transaction."""
        ak, rv = t.access_keys, t.revocations
        with self._write(audit) as tx:
            accesses = tx.execute(select(ak.c.access).where(ak.c.user_id == user_id)).scalars().all()
            audit_ids = tx.execute(select(rv.c.audit_id).where(rv.c.user_id == user_id)).scalars().all()
            tx.execute(delete(ak).where(ak.c.user_id == user_id))
            tx.execute(delete(t.grants).where(t.grants.c.user_id == user_id))
            tx.execute(delete(t.user_roles).where(t.user_roles.c.user_id == user_id))
            tx.execute(delete(rv).where(rv.c.user_id == user_id))
            if tx.execute(delete(t.users).where(t.users.c.id == user_id)).rowcount == 0:
                raise NotFound("no such user")
            tx.changed("user", user_id)
            for access in accesses:
                tx.changed("access_key", access)
            for audit_id in audit_ids:
                tx.changed("revocation", audit_id)

    def import_users(self, records: Sequence[ImportedUserRecord], *, audit: AuditEntry | None = None) -> int:
        """Insert users with their grants and (already sealed) access keys, all in ONE transaction:
        all of them or, on any conflict, none. Returns how many users were added.

        Raises :class:`Conflict` naming the user when a name appears twice in ``records`` or
        already exists in its domain (or an access key exists), :class:`NotFound` naming the
        project when a grant names a project id that does not exist."""
        seen: dict[tuple[str, str], str] = {}
        accesses: set[str] = set()
        for record in records:
            if (record.domain_id, record.name) in seen:
                raise Conflict(f"user {record.name!r} appears more than once in the import")
            seen[(record.domain_id, record.name)] = record.id
            for key in record.access_keys:
                if key.access in accesses:
                    raise Conflict(f"access key {key.access!r} (user {record.name!r}) appears twice")
                accesses.add(key.access)
        if not records:
            return 0
        created = _now()
        try:
            with self._write(audit) as tx:
                self._check_import(tx, records)
                users = [
                    {
                        "id": r.id,
                        "name": r.name,
                        "domain_id": r.domain_id,
                        "password_hash": r.password_hash,
                        "enabled": True,
                        "created_at": created,
                    }
                    for r in records
                ]
                for batch in _chunks(users, _BATCH):
                    tx.execute(insert(t.users), list(batch))
                grants = [
                    {"user_id": r.id, "project_id": p} for r in records for p in dict.fromkeys(r.project_ids)
                ]
                for batch in _chunks(grants, _BATCH):
                    tx.execute(insert(t.grants), list(batch))
                keys = [
                    {
                        "access": k.access,
                        "user_id": r.id,
                        "secret_sealed": k.secret_sealed,
                        "enabled": True,
                        "description": k.description,
                        "created_at": created,
                    }
                    for r in records
                    for k in r.access_keys
                ]
                for batch in _chunks(keys, _BATCH):
                    tx.execute(insert(t.access_keys), list(batch))
                for r in records:
                    tx.changed("user", r.id)
                    for k in r.access_keys:
                        tx.changed("access_key", k.access)
        except IntegrityError as exc:
            raise Conflict(
                "the import collides with existing users or access keys; nothing was imported"
            ) from exc
        return len(records)

    def _check_import(self, tx: _Tx, records: Sequence[ImportedUserRecord]) -> None:
        """Inside the write (so no other writer can slip in): names free, projects present."""
        by_domain: dict[str, list[str]] = {}
        for r in records:
            by_domain.setdefault(r.domain_id, []).append(r.name)
        u = t.users
        for domain_id, names in by_domain.items():
            for chunk in _chunks(names, _IN_BATCH):
                taken = tx.execute(
                    select(u.c.name).where(u.c.domain_id == domain_id, u.c.name.in_(chunk)).limit(1)
                ).scalar()
                if taken is not None:
                    raise Conflict(
                        f"a user named {taken!r} already exists in this domain; nothing was imported"
                    )
        wanted = sorted({p for r in records for p in r.project_ids})
        present: set[str] = set()
        for chunk in _chunks(wanted, _IN_BATCH):
            present.update(tx.execute(select(t.projects.c.id).where(t.projects.c.id.in_(chunk))).scalars())
        for r in records:
            for project_id in r.project_ids:
                if project_id not in present:
                    raise NotFound(
                        f"no project {project_id!r} (granted to user {r.name!r}); nothing was imported"
                    )
        ak = t.access_keys
        keys = sorted(k.access for r in records for k in r.access_keys)
        for chunk in _chunks(keys, _IN_BATCH):
            taken = tx.execute(select(ak.c.access).where(ak.c.access.in_(chunk)).limit(1)).scalar()
            if taken is not None:
                raise Conflict(f"access key {taken!r} already exists; nothing was imported")

    # -- access keys --------------------------------------------------------------------

    def create_access_key(
        self,
        access: str,
        user_id: str,
        secret_sealed: str,
        description: str,
        *,
        audit: AuditEntry | None = None,
    ) -> AccessKey:
        key = AccessKey(access, user_id, secret_sealed, True, description, _now())
        try:
            with self._write(audit) as tx:
                tx.execute(
                    insert(t.access_keys).values(
                        access=access,
                        user_id=user_id,
                        secret_sealed=secret_sealed,
                        enabled=True,
                        description=description,
                        created_at=key.created_at,
                    )
                )
                tx.changed("access_key", access)
        except IntegrityError as exc:
            raise Conflict("access key collision") from exc
        return key

    @_unavailable_on_failure
    def any_access_key(self) -> AccessKey | None:
        """One access key, any (the master-key check opens one secret, not all)."""
        return self._one(select(t.access_keys).limit(1), _access_key)

    def access_keys_page(self, after: str | None, limit: int) -> list[AccessKey]:
        """Up to ``limit`` access keys in key order, after the key ``after`` (CLI paging)."""
        ak = t.access_keys
        query = select(ak).order_by(ak.c.access).limit(limit)
        if after is not None:
            query = query.where(ak.c.access > after)
        with self.engine.connect() as conn:
            return [_access_key(r) for r in conn.execute(query)]

    def access_keys_of(self, user_id: str) -> list[AccessKey]:
        ak = t.access_keys
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(ak).where(ak.c.user_id == user_id).order_by(ak.c.created_at, ak.c.access)
            )
            return [_access_key(r) for r in rows]

    def set_access_key_enabled(self, access: str, enabled: bool, *, audit: AuditEntry | None = None) -> None:
        with self._write(audit) as tx:
            result = tx.execute(
                update(t.access_keys).where(t.access_keys.c.access == access).values(enabled=enabled)
            )
            if result.rowcount == 0:
                raise NotFound("no such access key")
            tx.changed("access_key", access)

    def delete_access_key(self, access: str, *, audit: AuditEntry | None = None) -> None:
        with self._write(audit) as tx:
            if tx.execute(delete(t.access_keys).where(t.access_keys.c.access == access)).rowcount == 0:
                raise NotFound("no such access key")
            tx.changed("access_key", access)

    # -- certificate authorities --------------------------------------------------------

    def authorities(self, scope: str | None = None) -> list[CertificateAuthority]:
        query = select(t.certificate_authorities).order_by(t.certificate_authorities.c.created_at.desc())
        if scope is not None:
            query = query.where(t.certificate_authorities.c.scope == scope)
        with self.engine.connect() as conn:
            return [_ca(r) for r in conn.execute(query)]

    def add_authority(
        self, ca: CertificateAuthority, *, only_if_scope_empty: bool = False, audit: AuditEntry | None = None
    ) -> bool:
        """Insert ``ca`` as the active CA of its scope; the previous active one becomes trusted.

        Both changes are one transaction: a crash leaves the old state or the new one. With
        ``only_if_scope_empty`` nothing happens (False) when the scope already has a CA, which
        makes first-start creation safe when several processes start together.
        """
        cas = t.certificate_authorities
        with self._write(audit) as tx:
            existing = tx.execute(select(cas.c.id).where(cas.c.scope == ca.scope).limit(1)).first()
            if only_if_scope_empty and existing is not None:
                tx.unchanged = True  # nothing to record in the audit trail
                return False
            tx.execute(
                update(cas)
                .where(cas.c.scope == ca.scope, cas.c.state == CAState.ACTIVE.value)
                .values(state=CAState.TRUSTED.value, changed_at=ca.created_at)
            )
            tx.execute(
                insert(cas).values(
                    id=ca.id,
                    scope=ca.scope,
                    serial=ca.serial,
                    subject=ca.subject,
                    fingerprint_sha256=ca.fingerprint_sha256,
                    not_before=ca.not_before,
                    not_after=ca.not_after,
                    cert_pem=ca.cert_pem.decode("ascii"),
                    key_sealed=ca.key_sealed,
                    state=ca.state.value,
                    created_at=ca.created_at,
                    changed_at=ca.changed_at,
                    chain_pem=ca.chain_pem.decode("ascii"),
                )
            )
            tx.changed("ca", ca.scope)
        return True

    def has_trusted_ca(self) -> bool:
        """Whether any scope has a CA in its bundle (one indexed query)."""
        cas = t.certificate_authorities
        query = select(cas.c.id).where(cas.c.state != CAState.RETIRED.value).limit(1)
        with self.engine.connect() as conn:
            return conn.execute(query).first() is not None

    def trusted_authorities(self, limit: int = 1000) -> list[CertificateAuthority]:
        """CAs in some bundle, soonest to expire first, at most ``limit``."""
        cas = t.certificate_authorities
        query = select(cas).where(cas.c.state != CAState.RETIRED.value).order_by(cas.c.not_after).limit(limit)
        with self.engine.connect() as conn:
            return [_ca(r) for r in conn.execute(query)]

    def retire_authority(self, ca_id: str, *, audit: AuditEntry | None = None) -> None:
        cas = t.certificate_authorities
        with self._write(audit) as tx:
            scope = tx.execute(
                update(cas)
                .where(cas.c.id == ca_id, cas.c.state == CAState.TRUSTED.value)
                .values(state=CAState.RETIRED.value, changed_at=_now())
                .returning(cas.c.scope)
            ).scalar()
            if scope is None:
                raise NotFound("no trusted (non-active) CA with that id")
            tx.changed("ca", scope)

    # -- issued node certificates -------------------------------------------------------

    def record_issued(self, cert: IssuedCertificate, *, audit: AuditEntry | None = None) -> None:
        with self._write(audit) as tx:
            tx.execute(
                insert(t.issued_certificates).values(
                    serial=cert.serial,
                    ca_id=cert.ca_id,
                    project_id=cert.project_id,
                    name=cert.name,
                    sans=cert.sans,
                    fingerprint_sha256=cert.fingerprint_sha256,
                    not_before=cert.not_before,
                    not_after=cert.not_after,
                    created_at=cert.created_at,
                    subject=cert.subject,
                    profile=cert.profile,
                    key_type=cert.key_type,
                    status=cert.status,
                    origin=cert.origin,
                    cert_pem=None if cert.cert_pem is None else cert.cert_pem.decode("ascii"),
                )
            )
            tx.changed("issued", cert.serial)

    def supersede_issued(self, newest: IssuedCertificate, *, audit: AuditEntry | None = None) -> None:
        """Mark every other valid certificate of ``newest``'s project and name as superseded."""
        ic = t.issued_certificates
        with self._write(audit) as tx:
            superseded = tx.execute(
                update(ic)
                .where(
                    ic.c.project_id == newest.project_id,
                    ic.c.name == newest.name,
                    ic.c.serial != newest.serial,
                    ic.c.status == "valid",
                )
                .values(status="superseded")
                .returning(ic.c.serial)
            ).scalars()
            for serial in superseded:
                tx.changed("issued", serial)

    def delete_issued(self, serial: str, *, audit: AuditEntry | None = None) -> None:
        with self._write(audit) as tx:
            tx.execute(delete(t.issued_certificates).where(t.issued_certificates.c.serial == serial))
            tx.changed("issued", serial)

    # -- token keys and revocations -----------------------------------------------------

    def add_fernet_key(self, key: FernetKey, *, keep: int, audit: AuditEntry | None = None) -> None:
        """Make ``key`` primary and keep at most ``keep`` keys in all (newest first)."""
        fk = t.fernet_keys
        with self._write(audit) as tx:
            if key.primary:
                tx.execute(update(fk).values(is_primary=False))
            tx.execute(
                insert(fk).values(
                    id=key.id, key_sealed=key.key_sealed, is_primary=key.primary, created_at=key.created_at
                )
            )
            ids = [r.id for r in tx.execute(select(fk.c.id).order_by(fk.c.created_at.desc()))]
            if len(ids) > keep:
                tx.execute(delete(fk).where(fk.c.id.in_(ids[keep:])))
            tx.changed("fernet_key", "*")

    def fernet_keys(self) -> list[FernetKey]:
        with self.engine.connect() as conn:
            return [_fernet(r) for r in conn.execute(select(t.fernet_keys))]

    def add_revocation(
        self,
        audit_id: str,
        expires_at: datetime,
        user_id: str | None = None,
        *,
        audit: AuditEntry | None = None,
    ) -> None:
        """Revoke the token with ``audit_id`` until ``expires_at`` (its own expiry); ``user_id``,
        when known, ties it to the user so deleting the user deletes it. Each call also prunes a
        bounded number of expired revocations (a revoked token past its expiry is refused anyway)."""
        rv = t.revocations
        with self._write(audit) as tx:
            self._prune_revocations(tx.conn, _PRUNE_IN_WRITE)
            if tx.execute(select(rv.c.audit_id).where(rv.c.audit_id == audit_id)).first() is None:
                tx.execute(
                    insert(rv).values(
                        audit_id=audit_id, expires_at=expires_at, created_at=_now(), user_id=user_id
                    )
                )
                tx.changed("revocation", audit_id)


def _domain(r: Any) -> Domain:
    return Domain(r.id, r.name, bool(r.enabled))


def _project(r: Any) -> Project:
    return Project(r.id, r.name, r.domain_id, bool(r.enabled), _utc(r.created_at))


def _user(r: Any, project_ids: frozenset[str], roles: frozenset[str] = frozenset()) -> User:
    valid_after = r.tokens_valid_after
    return User(
        r.id,
        r.name,
        r.domain_id,
        r.password_hash,
        bool(r.enabled),
        _utc(r.created_at),
        project_ids,
        None if valid_after is None else int(valid_after),
        roles,
    )


def _access_key(r: Any) -> AccessKey:
    return AccessKey(r.access, r.user_id, r.secret_sealed, bool(r.enabled), r.description, _utc(r.created_at))


def _ca(r: Any) -> CertificateAuthority:
    return CertificateAuthority(
        id=r.id,
        scope=r.scope,
        serial=r.serial,
        subject=r.subject,
        fingerprint_sha256=r.fingerprint_sha256,
        not_before=_utc(r.not_before),
        not_after=_utc(r.not_after),
        cert_pem=r.cert_pem.encode("ascii"),
        key_sealed=r.key_sealed,
        state=CAState(r.state),
        created_at=_utc(r.created_at),
        changed_at=_utc(r.changed_at),
        chain_pem=(r.chain_pem or "").encode("ascii"),
    )


def _issued(r: Any) -> IssuedCertificate:
    return IssuedCertificate(
        serial=r.serial,
        ca_id=r.ca_id,
        project_id=r.project_id,
        name=r.name,
        sans=r.sans,
        fingerprint_sha256=r.fingerprint_sha256,
        not_before=_utc(r.not_before),
        not_after=_utc(r.not_after),
        created_at=_utc(r.created_at),
        subject=r.subject,
        profile=r.profile,
        key_type=r.key_type,
        status=r.status,
        origin=r.origin,
        revoked_at=None if r.revoked_at is None else _utc(r.revoked_at),
        revocation_reason=r.revocation_reason,
        cert_pem=None if r.cert_pem is None else r.cert_pem.encode("ascii"),
    )


def _fernet(r: Any) -> FernetKey:
    return FernetKey(r.id, r.key_sealed, bool(r.is_primary), _utc(r.created_at))
