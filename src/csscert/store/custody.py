"""Store operations of key custody: re-sealing columns in one transaction, and streaming every table
out of one consistent snapshot (backup) or into an empty database (restore).

Generic over tables and columns (the callers pass ``schema.metadata.sorted_tables`` and the sealed
column registry), so tables other parts add are covered without edits here. Memory stays bounded:
rows move in batches of :data:`BATCH`, read by key ranges (re-seal) or from a streaming cursor
(backup), never a whole table at once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Table, bindparam, delete, func, insert, select, update

from csscert.audit import AuditEntry
from csscert.model import CAState, CertificateAuthority
from csscert.store import schema as t
from csscert.store.sql import Conflict, SqlStore

__all__ = ["BATCH", "CustodyStore", "PendingAuthority", "Snapshot"]

BATCH = 500


class Snapshot:
    """One read transaction that sees the database at one instant (SQLite: a WAL read snapshot;
    PostgreSQL: REPEATABLE READ, READ ONLY). Writers go on meanwhile."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def scalar(self, statement: Any) -> Any:
        return self._conn.execute(statement).scalar()

    def rows(self, table: Table) -> Iterator[Sequence[Any]]:
        """Every row of ``table`` (column order of ``table.columns``), streamed in batches."""
        result = self._conn.execution_options(stream_results=True, yield_per=BATCH).execute(select(table))
        for partition in result.partitions():
            yield from partition


@dataclass(frozen=True)
class PendingAuthority:
    id: str
    scope: str
    csr_pem: bytes
    key_sealed: str
    created_at: datetime


def _ca_row(ca: CertificateAuthority) -> dict[str, Any]:
    return {
        "id": ca.id,
        "scope": ca.scope,
        "serial": ca.serial,
        "subject": ca.subject,
        "fingerprint_sha256": ca.fingerprint_sha256,
        "not_before": ca.not_before,
        "not_after": ca.not_after,
        "cert_pem": ca.cert_pem.decode("ascii"),
        "key_sealed": ca.key_sealed,
        "state": ca.state.value,
        "created_at": ca.created_at,
        "changed_at": ca.changed_at,
        "chain_pem": ca.chain_pem.decode("ascii"),
    }


class _ExternalCAs:
    """CA records csscert did not make itself (ca/external.py): mixed into :class:`CustodyStore`."""

    store: SqlStore

    def add_trusted_authority(self, ca: CertificateAuthority, *, audit: AuditEntry) -> None:
        """Insert ``ca`` as one more trusted (not signing) CA of its scope."""
        with self.store._write(audit) as tx:
            tx.execute(insert(t.certificate_authorities).values(**_ca_row(ca)))
            tx.changed("ca", ca.scope)

    def add_pending(self, pending: PendingAuthority, *, audit: AuditEntry) -> None:
        with self.store._write(audit) as tx:
            tx.execute(
                insert(t.pending_authorities).values(
                    id=pending.id,
                    scope=pending.scope,
                    csr_pem=pending.csr_pem.decode("ascii"),
                    key_sealed=pending.key_sealed,
                    created_at=pending.created_at,
                )
            )
            tx.changed("pending_ca", pending.id)

    def pending(self, scope: str) -> list[PendingAuthority]:
        pa = t.pending_authorities
        with self.store.engine.connect() as conn:
            rows = conn.execute(select(pa).where(pa.c.scope == scope).order_by(pa.c.created_at.desc())).all()
        return [
            PendingAuthority(r.id, r.scope, r.csr_pem.encode("ascii"), r.key_sealed, r.created_at)
            for r in rows
        ]

    def install_pending(self, pending_id: str, ca: CertificateAuthority, *, audit: AuditEntry) -> None:
        """In one transaction: the pending key becomes the scope's active CA (the previous active
        one stays trusted) and leaves the pending table."""
        cas = t.certificate_authorities
        with self.store._write(audit) as tx:
            gone = tx.execute(
                delete(t.pending_authorities).where(t.pending_authorities.c.id == pending_id)
            ).rowcount
            if gone != 1:
                raise Conflict("that intermediate was installed meanwhile")
            tx.execute(
                update(cas)
                .where(cas.c.scope == ca.scope, cas.c.state == CAState.ACTIVE.value)
                .values(state=CAState.TRUSTED.value, changed_at=ca.created_at)
            )
            tx.execute(insert(cas).values(**_ca_row(ca)))
            tx.changed("ca", ca.scope)
            tx.changed("pending_ca", pending_id)


class CustodyStore(_ExternalCAs):
    """Custody operations over one :class:`SqlStore`."""

    def __init__(self, store: SqlStore) -> None:
        self.store = store

    # -- master-key rotation ----------------------------------------------------------------

    def first_sealed(self, table: Table, key: str, sealed: str) -> tuple[str, str] | None:
        """One row's (key, sealed value) of a sealed column, to tell which master key opens it."""
        with self.store.engine.connect() as conn:
            row = conn.execute(select(table.c[key], table.c[sealed]).order_by(table.c[key]).limit(1)).first()
        return None if row is None else (str(row[0]), str(row[1]))

    def reseal(
        self,
        columns: Sequence[tuple[Table, str, str]],
        transform: Callable[[int, str, str], str | None],
        meta: dict[str, str],
        *,
        audit: AuditEntry,
        changed: Iterable[tuple[str, str]] = (),
        progress: Callable[[str], None] | None = None,
    ) -> dict[str, int]:
        """In ONE write transaction: replace every value of each ``(table, key, sealed)`` column
        by ``transform(column_index, key, value)`` (None: leave it), set the ``meta`` rows, and
        record ``changed``. Rows are read in key order, :data:`BATCH` at a time. Either every
        row is re-sealed and the meta rows say so, or (an error, a crash) nothing changed."""
        counts: dict[str, int] = {}
        with self.store._write(audit) as tx:
            for index, (table, key, sealed) in enumerate(columns):
                key_col, sealed_col = table.c[key], table.c[sealed]
                statement = (
                    update(table).where(key_col == bindparam("_key")).values({sealed: bindparam("_value")})
                )
                done, last = 0, None
                while True:
                    query = select(key_col, sealed_col).order_by(key_col).limit(BATCH)
                    if last is not None:
                        query = query.where(key_col > last)
                    batch: Sequence[Any] = tx.execute(query).all()
                    if not batch:
                        break
                    last = batch[-1][0]
                    updates = []
                    for row in batch:
                        new = transform(index, str(row[0]), str(row[1]))
                        if new is not None:
                            updates.append({"_key": row[0], "_value": new})
                    if updates:
                        tx.execute(statement, updates)
                    done += len(updates)
                    if progress is not None:
                        progress(table.name)
                counts[f"{table.name}.{sealed}"] = done
            for name, value in meta.items():
                if tx.execute(update(t.meta).where(t.meta.c.key == name).values(value=value)).rowcount == 0:
                    tx.execute(insert(t.meta).values(key=name, value=value))
                tx.changed("meta", name)
            for kind, change_key in changed:
                tx.changed(kind, change_key)
            if progress is not None:
                progress("before-commit")
        return counts

    # -- backup -----------------------------------------------------------------------------

    @contextmanager
    def snapshot(self) -> Iterator[Snapshot]:
        """A consistent read of every table (see :class:`Snapshot`); no statement timeout."""
        engine = self.store.engine
        if engine.dialect.name == "postgresql":
            with (
                engine.connect().execution_options(
                    isolation_level="REPEATABLE READ", postgresql_readonly=True
                ) as conn,
                conn.begin(),
            ):
                conn.exec_driver_sql("SET LOCAL statement_timeout = 0")
                yield Snapshot(conn)
        else:
            with engine.connect() as conn:
                # pysqlite starts no transaction for a SELECT: without this BEGIN each table
                # would be read at a different instant. The snapshot starts at the first read.
                conn.exec_driver_sql("BEGIN")
                try:
                    yield Snapshot(conn)
                finally:
                    conn.rollback()

    # -- restore ----------------------------------------------------------------------------

    def is_empty(self, tables: Iterable[Table]) -> bool:
        """No row in any of ``tables`` (the schema may exist: ``csscert db upgrade`` made it),
        except the revision counter, which the migrations seed."""
        with self.store.engine.connect() as conn:
            for table in tables:
                if table is t.revision:
                    continue
                if conn.execute(select(func.count()).select_from(table)).scalar():
                    return False
        return True

    @contextmanager
    def loading(self) -> Iterator[Callable[[Table, list[dict[str, Any]]], None]]:
        """One transaction that inserts batches of rows (``load(table, rows)``); committed when the
        block ends without an error. On PostgreSQL, sequences of auto-increment keys are set past
        the loaded rows before the commit (the audit trail's ids continue where they stopped)."""
        loaded: set[Table] = set()
        with self.store.engine.begin() as conn:
            if self.store.engine.dialect.name == "postgresql":
                conn.exec_driver_sql("SET LOCAL statement_timeout = 0")

            def load(table: Table, rows: list[dict[str, Any]]) -> None:
                if table not in loaded:
                    # The target was checked empty; what is here came from the migrations
                    # (the revision row) and is replaced by the backup's own.
                    conn.execute(delete(table))
                for start in range(0, len(rows), BATCH):
                    conn.execute(insert(table), rows[start : start + BATCH])
                loaded.add(table)

            yield load
            if self.store.engine.dialect.name == "postgresql":
                for table in loaded:
                    column = table.autoincrement_column
                    if column is None:
                        continue
                    following = select(func.coalesce(func.max(column), 0) + 1).scalar_subquery()
                    sequence = func.pg_get_serial_sequence(table.name, column.name)
                    conn.execute(select(func.setval(sequence, following, False)))
        self.store.touch_hint()
