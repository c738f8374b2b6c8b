"""The store's issuance side (0005): per-user roles, per-project issuance policies, revocation,
and the indexed reads that list, find and count issued certificates without loading them all.

A small class over :class:`~csscert.store.sql.SqlStore`: every write goes through its
``_write(audit=...)`` (one transaction, one revision bump, change rows, the audit record), every
read is one indexed query. Change kinds: ``user`` (roles are part of the user), ``policy``
(project id), ``issued`` (serial) and ``crl`` (the fingerprint of the CA whose revocation list
changed: workers drop their cached CRL of that CA).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from csscert.audit import AuditEntry
from csscert.model import CertificateAuthority, IssuancePolicy, IssuedCertificate
from csscert.store import schema as t
from csscert.store.sql import Conflict, NotFound, SqlStore, _ca, _issued, _unavailable_on_failure, _utc

__all__ = ["MAX_PAGE", "IssuanceStore"]

MAX_PAGE = 1000  # rows one listing query returns, at most
_ic = t.issued_certificates


class IssuanceStore:
    """Roles, policies, revocations and certificate queries, over one :class:`SqlStore`."""

    def __init__(self, store: SqlStore) -> None:
        self._store = store

    # -- roles --------------------------------------------------------------------------

    def grant_role(self, user_id: str, role: str, *, audit: AuditEntry | None = None) -> None:
        try:
            with self._store._write(audit) as tx:
                tx.execute(insert(t.user_roles).values(user_id=user_id, role=role))
                tx.changed("user", user_id)
        except IntegrityError as exc:
            if self._store.user(user_id) is None:
                raise NotFound("no such user") from exc
            raise Conflict("the user already has that role") from exc

    def revoke_role(self, user_id: str, role: str, *, audit: AuditEntry | None = None) -> None:
        ur = t.user_roles
        with self._store._write(audit) as tx:
            if tx.execute(delete(ur).where(ur.c.user_id == user_id, ur.c.role == role)).rowcount == 0:
                raise NotFound("the user does not have that role")
            tx.changed("user", user_id)

    # -- policies -----------------------------------------------------------------------

    @_unavailable_on_failure
    def policy(self, project_id: str) -> IssuancePolicy | None:
        p = t.issuance_policies
        with self._store.engine.connect() as conn:
            row = conn.execute(select(p).where(p.c.project_id == project_id)).first()
        if row is None:
            return None
        return IssuancePolicy(
            row.project_id, tuple(json.loads(row.allow_dns)), tuple(json.loads(row.allow_ip)), row.max_days
        )

    def set_policy(self, policy: IssuancePolicy, *, audit: AuditEntry | None = None) -> None:
        p = t.issuance_policies
        values = {
            "allow_dns": json.dumps(list(policy.allow_dns)),
            "allow_ip": json.dumps(list(policy.allow_ip)),
            "max_days": policy.max_days,
            "changed_at": datetime.now(UTC),
        }
        with self._store._write(audit) as tx:
            if (
                tx.execute(update(p).where(p.c.project_id == policy.project_id).values(**values)).rowcount
                == 0
            ):
                tx.execute(insert(p).values(project_id=policy.project_id, **values))
            tx.changed("policy", policy.project_id)

    def clear_policy(self, project_id: str, *, audit: AuditEntry | None = None) -> None:
        p = t.issuance_policies
        with self._store._write(audit) as tx:
            if tx.execute(delete(p).where(p.c.project_id == project_id)).rowcount == 0:
                raise NotFound("the project has no issuance policy")
            tx.changed("policy", project_id)

    # -- revocation ---------------------------------------------------------------------

    def revoke(
        self, serial: str, reason: str, ca_fingerprint: str, *, audit: AuditEntry | None = None
    ) -> IssuedCertificate:
        """Mark ``serial`` revoked with ``reason`` (an RFC 5280 reason name). Its time is now, or
        a microsecond after the CA's last revocation: revocation times of one CA strictly increase
        (writers are serialised), which is what numbers the CRLs (:mod:`csscert.ca.crl`)."""
        with self._store._write(audit) as tx:
            row = tx.execute(select(_ic).where(_ic.c.serial == serial)).first()
            if row is None:
                raise NotFound("no such certificate")
            if row.status == "revoked":
                raise Conflict("the certificate is already revoked")
            last = tx.execute(select(func.max(_ic.c.revoked_at)).where(_ic.c.ca_id == row.ca_id)).scalar()
            at = tx.at
            if last is not None and _utc(last) >= at:
                at = _utc(last) + timedelta(microseconds=1)
            tx.execute(
                update(_ic)
                .where(_ic.c.serial == serial)
                .values(status="revoked", revoked_at=at, revocation_reason=reason)
            )
            tx.changed("issued", serial)
            tx.changed("crl", ca_fingerprint)
            done = tx.execute(select(_ic).where(_ic.c.serial == serial)).one()
        return _issued(done)

    @_unavailable_on_failure
    def revoked_of(self, ca_id: str, not_after_from: datetime) -> list[IssuedCertificate]:
        """Revoked certificates of a CA that expire after ``not_after_from`` (a CRL may drop the
        expired ones, RFC 5280 3.3), oldest revocation first: what its CRL lists, no more."""
        query = (
            select(_ic)
            .where(_ic.c.ca_id == ca_id, _ic.c.status == "revoked", _ic.c.not_after > not_after_from)
            .order_by(_ic.c.revoked_at, _ic.c.serial)
        )
        with self._store.engine.connect() as conn:
            return [_issued(r) for r in conn.execute(query)]

    @_unavailable_on_failure
    def last_revoked_at(self, ca_id: str) -> datetime | None:
        query = select(func.max(_ic.c.revoked_at)).where(_ic.c.ca_id == ca_id, _ic.c.status == "revoked")
        with self._store.engine.connect() as conn:
            value = conn.execute(query).scalar()
        return None if value is None else _utc(value)

    @_unavailable_on_failure
    def authority(self, ca_id: str) -> CertificateAuthority | None:
        cas = t.certificate_authorities
        with self._store.engine.connect() as conn:
            row = conn.execute(select(cas).where(cas.c.id == ca_id)).first()
        return None if row is None else _ca(row)

    @_unavailable_on_failure
    def revoked_count(self, ca_id: str) -> int:
        """Revocations of a CA ever made (they are final, so this only grows: the CRL number)."""
        query = select(func.count()).select_from(_ic).where(_ic.c.ca_id == ca_id, _ic.c.status == "revoked")
        with self._store.engine.connect() as conn:
            return int(conn.execute(query).scalar() or 0)

    @_unavailable_on_failure
    def authority_by_fingerprint(self, fingerprint: str) -> CertificateAuthority | None:
        cas = t.certificate_authorities
        with self._store.engine.connect() as conn:
            row = conn.execute(select(cas).where(cas.c.fingerprint_sha256 == fingerprint)).first()
        return None if row is None else _ca(row)

    # -- certificate queries (indexed, bounded) -----------------------------------------

    @_unavailable_on_failure
    def certificate(self, serial: str) -> IssuedCertificate | None:
        with self._store.engine.connect() as conn:
            row = conn.execute(select(_ic).where(_ic.c.serial == serial)).first()
        return None if row is None else _issued(row)

    @_unavailable_on_failure
    def latest(self, project_id: str, name: str) -> IssuedCertificate | None:
        query = (
            select(_ic)
            .where(_ic.c.project_id == project_id, _ic.c.name == name)
            .order_by(_ic.c.created_at.desc(), _ic.c.serial.desc())
            .limit(1)
        )
        with self._store.engine.connect() as conn:
            row = conn.execute(query).first()
        return None if row is None else _issued(row)

    @_unavailable_on_failure
    def page(
        self,
        project_id: str | None,
        *,
        status: str | None = None,
        name: str | None = None,
        after: IssuedCertificate | None = None,
        limit: int = 100,
        expired_before: datetime | None = None,
    ) -> list[IssuedCertificate]:
        """Up to ``limit`` certificates in issue order (created_at, serial), after ``after``.

        ``status`` is a stored status (valid, superseded, revoked); ``expired_before`` with
        ``status="valid"`` keeps the unexpired ones only (``"expired"`` is derived, see callers).
        Every filter is a prefix of an index on (project_id[, status], created_at, serial)."""
        conditions: list[Any] = []
        if project_id is not None:
            conditions.append(_ic.c.project_id == project_id)
        if status is not None:
            conditions.append(_ic.c.status == status)
        if name is not None:
            conditions.append(_ic.c.name == name)
        if expired_before is not None:
            conditions.append(_ic.c.not_after > expired_before)
        return self._page(conditions, after, limit)

    @_unavailable_on_failure
    def expired_page(
        self, project_id: str, now: datetime, *, after: IssuedCertificate | None, limit: int
    ) -> list[IssuedCertificate]:
        """Certificates still marked valid whose not_after has passed (status ``expired``)."""
        conditions: list[Any] = [
            _ic.c.project_id == project_id,
            _ic.c.status == "valid",
            _ic.c.not_after <= now,
        ]
        return self._page(conditions, after, limit)

    def _page(
        self, conditions: list[Any], after: IssuedCertificate | None, limit: int
    ) -> list[IssuedCertificate]:
        """One page in (created_at, serial) order, continuing after ``after`` (keyset paging)."""
        if after is not None:
            conditions.append(
                or_(
                    _ic.c.created_at > after.created_at,
                    and_(_ic.c.created_at == after.created_at, _ic.c.serial > after.serial),
                )
            )
        query = (
            select(_ic)
            .where(*conditions)
            .order_by(_ic.c.created_at, _ic.c.serial)
            .limit(max(1, min(limit, MAX_PAGE)))
        )
        with self._store.engine.connect() as conn:
            return [_issued(r) for r in conn.execute(query)]

    @_unavailable_on_failure
    def live_of_ca(self, ca_id: str, now: datetime, limit: int) -> tuple[int, list[IssuedCertificate]]:
        """How many certificates of ``ca_id`` still count (valid: neither superseded, nor
        revoked, nor expired), and the first ``limit`` of them. Two indexed queries."""
        where = (_ic.c.ca_id == ca_id, _ic.c.status == "valid", _ic.c.not_after > now)
        with self._store.engine.connect() as conn:
            count = int(conn.execute(select(func.count()).select_from(_ic).where(*where)).scalar() or 0)
            rows = conn.execute(select(_ic).where(*where).order_by(_ic.c.name).limit(limit)).all()
        return count, [_issued(r) for r in rows]
