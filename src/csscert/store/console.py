"""The web console's reads: paged, bounded queries over CAs, node certificates and the audit trail.

Each method is one or a few indexed queries with a LIMIT, never a scan of a whole table into
memory: a console page costs what it shows. The async methods run the query on the store's read
threads with its deadline (``SqlStore.read``), so the event loop never waits on the database.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar

from sqlalchemy import func, or_, select

from csscert.model import AuditRecord, CertificateAuthority, IssuedCertificate
from csscert.store import schema as t
from csscert.store.sql import SqlStore, _ca, _issued, _unavailable_on_failure, _utc

__all__ = ["ConsoleReads", "Dependents", "Page"]

T = TypeVar("T")
PAGE_MAX = 200  # rows a page may ask for


@dataclass(frozen=True, slots=True)
class Dependents:
    """Node certificates of one project a CA signed that are unexpired and not replaced:
    the soonest to expire first (at most the asked number) and how many there are in all."""

    first: tuple[IssuedCertificate, ...]
    total: int


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    rows: tuple[T, ...]
    more: bool  # another page follows


class ConsoleReads:
    def __init__(self, store: SqlStore) -> None:
        self._store = store

    # -- certificate authorities --------------------------------------------------------

    async def authorities(self, scope: str, limit: int) -> list[CertificateAuthority]:
        """The scope's newest ``limit`` CAs, retired ones included, newest first."""
        return await self._store.read(self._authorities, scope, limit)

    @_unavailable_on_failure
    def _authorities(self, scope: str, limit: int) -> list[CertificateAuthority]:
        cas = t.certificate_authorities
        query = select(cas).where(cas.c.scope == scope).order_by(cas.c.created_at.desc()).limit(limit)
        with self._store.engine.connect() as conn:
            return [_ca(r) for r in conn.execute(query)]

    async def dependents(
        self, project_id: str, ca_ids: list[str], now: datetime, per_ca: int
    ) -> dict[str, Dependents]:
        return await self._store.read(self._dependents, project_id, ca_ids, now, per_ca)

    @_unavailable_on_failure
    def _dependents(
        self, project_id: str, ca_ids: list[str], now: datetime, per_ca: int
    ) -> dict[str, Dependents]:
        ic = t.issued_certificates
        live = (ic.c.project_id == project_id, ic.c.status == "valid", ic.c.not_after > now)
        found: dict[str, Dependents] = {}
        with self._store.engine.connect() as conn:
            counts: dict[str, int] = dict(
                conn.execute(
                    select(ic.c.ca_id, func.count()).where(*live, ic.c.ca_id.in_(ca_ids)).group_by(ic.c.ca_id)
                ).all()
            )
            for ca_id in ca_ids:
                total = int(counts.get(ca_id, 0))
                first: tuple[IssuedCertificate, ...] = ()
                if total:
                    query = (
                        select(ic).where(*live, ic.c.ca_id == ca_id).order_by(ic.c.not_after).limit(per_ca)
                    )
                    first = tuple(_issued(r) for r in conn.execute(query))
                found[ca_id] = Dependents(first, total)
        return found

    # -- node certificates --------------------------------------------------------------

    async def certificates(
        self, project_id: str, after: tuple[str, str] | None, limit: int
    ) -> Page[IssuedCertificate]:
        """One page of a project's certificate records by (name, serial), after ``after``."""
        return await self._store.read(self._certificates, project_id, after, min(limit, PAGE_MAX))

    @_unavailable_on_failure
    def _certificates(
        self, project_id: str, after: tuple[str, str] | None, limit: int
    ) -> Page[IssuedCertificate]:
        ic = t.issued_certificates
        query = select(ic).where(ic.c.project_id == project_id)
        if after is not None:
            query = query.where(or_(ic.c.name > after[0], (ic.c.name == after[0]) & (ic.c.serial > after[1])))
        query = query.order_by(ic.c.name, ic.c.serial).limit(limit + 1)
        with self._store.engine.connect() as conn:
            rows = [_issued(r) for r in conn.execute(query)]
        return Page(tuple(rows[:limit]), len(rows) > limit)

    # -- the audit trail ----------------------------------------------------------------

    async def audit(self, before: int | None, limit: int) -> Page[AuditRecord]:
        """One page of the audit trail, newest first, with ids below ``before``."""
        return await self._store.read(self._audit, before, min(limit, PAGE_MAX))

    @_unavailable_on_failure
    def _audit(self, before: int | None, limit: int) -> Page[AuditRecord]:
        query = select(t.audit).order_by(t.audit.c.id.desc()).limit(limit + 1)
        if before is not None:
            query = query.where(t.audit.c.id < before)
        with self._store.engine.connect() as conn:
            rows = [
                AuditRecord(r.id, _utc(r.at), r.revision, r.actor, r.origin, r.action, r.target, r.detail)
                for r in conn.execute(query)
            ]
        return Page(tuple(rows[:limit]), len(rows) > limit)
