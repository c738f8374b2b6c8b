"""The SQLAlchemy implementation of the store: SQLite (embedded, WAL) or PostgreSQL by URL.

Every write runs in one transaction that also bumps the ``revision`` counter, so a reader that
sees the same revision sees the same data. After the commit the change signal (a shared word in
a file of the data directory) is bumped; servers read it on each request, through a memory map,
to notice changes made by other processes at once without a database round trip.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, delete, event, insert, select, text, update
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError

from csscert.errors import Conflict, InvalidRequest, ResourceNotFound
from csscert.model import (
    AccessKey,
    CAState,
    CertificateAuthority,
    Domain,
    FernetKey,
    IssuedCertificate,
    Project,
    Revocation,
    User,
)
from csscert.store import schema as t
from csscert.store.signal import ChangeSignal

__all__ = ["Conflict", "LastGrant", "NotFound", "SqlStore", "StoreSnapshot"]


class NotFound(ResourceNotFound):
    """The record to change does not exist (callers usually re-raise it naming what they looked for)."""


class LastGrant(InvalidRequest):
    """Revoking this grant would leave a user without any project."""


@dataclass(frozen=True, slots=True)
class StoreSnapshot:
    """Everything the hot path needs, read in one consistent transaction."""

    revision: int
    domains: tuple[Domain, ...]
    projects: tuple[Project, ...]
    users: tuple[User, ...]
    access_keys: tuple[AccessKey, ...]
    authorities: tuple[CertificateAuthority, ...]
    fernet_keys: tuple[FernetKey, ...]
    revocations: tuple[Revocation, ...]


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


class SqlStore:
    """Durable state behind a small, explicit interface."""

    def __init__(self, url: str, hint_path: Path | None = None) -> None:
        self.url = url
        self.hint_path = hint_path
        self.change_signal = ChangeSignal(hint_path) if hint_path is not None else None
        self.engine: Engine = create_engine(url, future=True, pool_pre_ping=not url.startswith("sqlite"))
        if url.startswith("sqlite"):
            event.listen(self.engine, "connect", _sqlite_pragmas)

    def close(self) -> None:
        self.engine.dispose()

    # -- transactions -------------------------------------------------------------------

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        with self.engine.begin() as conn:
            # The bump comes first so SQLite takes the write lock before any read.
            result = conn.execute(update(t.revision).values(value=t.revision.c.value + 1))
            if result.rowcount == 0:
                conn.execute(insert(t.revision).values(id=1, value=1))
            yield conn
        self.touch_hint()

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

    # -- meta ---------------------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        with self.engine.connect() as conn:
            value = conn.execute(select(t.meta.c.value).where(t.meta.c.key == key)).scalar()
        return None if value is None else str(value)

    def set_meta(self, key: str, value: str) -> None:
        with self._write() as conn:
            if conn.execute(update(t.meta).where(t.meta.c.key == key).values(value=value)).rowcount == 0:
                conn.execute(insert(t.meta).values(key=key, value=value))

    # -- snapshot -----------------------------------------------------------------------

    def snapshot(self) -> StoreSnapshot:
        with self.engine.connect() as conn:
            if self.engine.dialect.name == "postgresql":
                conn = conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():
                return self._snapshot(conn)

    def _snapshot(self, conn: Connection) -> StoreSnapshot:
        if conn.dialect.name == "sqlite":
            # pysqlite only opens a transaction before a write; without it every SELECT below
            # would see whatever was committed by then, mixing two revisions in one view.
            conn.exec_driver_sql("BEGIN")
        revision = conn.execute(select(t.revision.c.value)).scalar()
        return StoreSnapshot(
            revision=int(revision or 0),
            domains=tuple(_domain(r) for r in conn.execute(select(t.domains))),
            projects=tuple(_project(r) for r in conn.execute(select(t.projects))),
            users=self._users(conn),
            access_keys=tuple(_access_key(r) for r in conn.execute(select(t.access_keys))),
            authorities=tuple(_ca(r) for r in conn.execute(select(t.certificate_authorities))),
            fernet_keys=tuple(_fernet(r) for r in conn.execute(select(t.fernet_keys))),
            revocations=tuple(
                Revocation(r.audit_id, _utc(r.expires_at))
                for r in conn.execute(select(t.revocations).where(t.revocations.c.expires_at > _now()))
            ),
        )

    # -- domains & projects -------------------------------------------------------------

    def ensure_domain(self, domain_id: str, name: str) -> Domain:
        """The domain called ``name``, created if missing. Only a creation is a write (and so
        a change every server notices); finding it is a plain read."""
        query = select(t.domains).where(t.domains.c.name == name)
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        if row is not None:
            return _domain(row)
        with self._write() as conn:
            row = conn.execute(query).first()  # another process may have made it meanwhile
            if row is not None:
                return _domain(row)
            conn.execute(insert(t.domains).values(id=domain_id, name=name, enabled=True))
            return Domain(domain_id, name, True)

    def domains(self) -> list[Domain]:
        with self.engine.connect() as conn:
            return [_domain(r) for r in conn.execute(select(t.domains).order_by(t.domains.c.name))]

    def create_project(self, project_id: str, name: str, domain_id: str) -> Project:
        project = Project(project_id, name, domain_id, True, _now())
        try:
            with self._write() as conn:
                conn.execute(
                    insert(t.projects).values(
                        id=project.id,
                        name=project.name,
                        domain_id=domain_id,
                        enabled=True,
                        created_at=project.created_at,
                    )
                )
        except IntegrityError as exc:
            raise Conflict(f"a project named {name!r} already exists") from exc
        return project

    def projects(self) -> list[Project]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(t.projects).order_by(t.projects.c.created_at, t.projects.c.name))
            return [_project(r) for r in rows]

    # -- users & grants -----------------------------------------------------------------

    def _users(self, conn: Connection) -> tuple[User, ...]:
        granted: dict[str, set[str]] = {}
        for row in conn.execute(select(t.grants)):
            granted.setdefault(row.user_id, set()).add(row.project_id)
        return tuple(
            _user(r, frozenset(granted.get(r.id, ())))
            for r in conn.execute(select(t.users).order_by(t.users.c.created_at))
        )

    def users(self) -> list[User]:
        with self.engine.connect() as conn:
            return list(self._users(conn))

    def create_user(
        self, user_id: str, name: str, domain_id: str, password_hash: str | None, project_ids: Sequence[str]
    ) -> User:
        created = _now()
        try:
            with self._write() as conn:
                conn.execute(
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
                    conn.execute(insert(t.grants).values(user_id=user_id, project_id=project_id))
        except IntegrityError as exc:
            raise Conflict(f"a user named {name!r} already exists in this domain") from exc
        return User(user_id, name, domain_id, password_hash, True, created, frozenset(project_ids))

    def grant(self, user_id: str, project_id: str) -> None:
        try:
            with self._write() as conn:
                conn.execute(insert(t.grants).values(user_id=user_id, project_id=project_id))
        except IntegrityError as exc:
            raise Conflict("the user already has that project") from exc

    def revoke_grant(self, user_id: str, project_id: str) -> None:
        """Take ``project_id`` from the user, but never its last project (one transaction, so two
        concurrent revocations cannot both pass the check)."""
        g = t.grants
        with self._write() as conn:
            held = {r.project_id for r in conn.execute(select(g.c.project_id).where(g.c.user_id == user_id))}
            if project_id not in held:
                raise NotFound("the user does not have that project")
            if len(held) == 1:
                raise LastGrant("that is the user's only project")
            conn.execute(delete(g).where(g.c.user_id == user_id, g.c.project_id == project_id))

    def set_user_enabled(self, user_id: str, enabled: bool) -> None:
        with self._write() as conn:
            result = conn.execute(update(t.users).where(t.users.c.id == user_id).values(enabled=enabled))
            if result.rowcount == 0:
                raise NotFound("no such user")

    def set_user_password(self, user_id: str, password_hash: str) -> None:
        with self._write() as conn:
            result = conn.execute(
                update(t.users).where(t.users.c.id == user_id).values(password_hash=password_hash)
            )
            if result.rowcount == 0:
                raise NotFound("no such user")

    def delete_user(self, user_id: str) -> None:
        with self._write() as conn:
            conn.execute(delete(t.access_keys).where(t.access_keys.c.user_id == user_id))
            conn.execute(delete(t.grants).where(t.grants.c.user_id == user_id))
            if conn.execute(delete(t.users).where(t.users.c.id == user_id)).rowcount == 0:
                raise NotFound("no such user")

    # -- access keys --------------------------------------------------------------------

    def create_access_key(self, access: str, user_id: str, secret_sealed: str, description: str) -> AccessKey:
        key = AccessKey(access, user_id, secret_sealed, True, description, _now())
        try:
            with self._write() as conn:
                conn.execute(
                    insert(t.access_keys).values(
                        access=access,
                        user_id=user_id,
                        secret_sealed=secret_sealed,
                        enabled=True,
                        description=description,
                        created_at=key.created_at,
                    )
                )
        except IntegrityError as exc:
            raise Conflict("access key collision") from exc
        return key

    def access_keys(self) -> list[AccessKey]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(t.access_keys).order_by(t.access_keys.c.created_at))
            return [_access_key(r) for r in rows]

    def set_access_key_enabled(self, access: str, enabled: bool) -> None:
        with self._write() as conn:
            result = conn.execute(
                update(t.access_keys).where(t.access_keys.c.access == access).values(enabled=enabled)
            )
            if result.rowcount == 0:
                raise NotFound("no such access key")

    def delete_access_key(self, access: str) -> None:
        with self._write() as conn:
            if conn.execute(delete(t.access_keys).where(t.access_keys.c.access == access)).rowcount == 0:
                raise NotFound("no such access key")

    # -- certificate authorities --------------------------------------------------------

    def authorities(self, scope: str | None = None) -> list[CertificateAuthority]:
        query = select(t.certificate_authorities).order_by(t.certificate_authorities.c.created_at.desc())
        if scope is not None:
            query = query.where(t.certificate_authorities.c.scope == scope)
        with self.engine.connect() as conn:
            return [_ca(r) for r in conn.execute(query)]

    def add_authority(self, ca: CertificateAuthority, *, only_if_scope_empty: bool = False) -> bool:
        """Insert ``ca`` as the active CA of its scope; the previous active one becomes trusted.

        Both changes are one transaction: a crash leaves the old state or the new one. With
        ``only_if_scope_empty`` nothing happens (False) when the scope already has a CA, which
        makes first-start creation safe when several processes start together.
        """
        cas = t.certificate_authorities
        with self._write() as conn:
            existing = conn.execute(select(cas.c.id).where(cas.c.scope == ca.scope).limit(1)).first()
            if only_if_scope_empty and existing is not None:
                return False
            conn.execute(
                update(cas)
                .where(cas.c.scope == ca.scope, cas.c.state == CAState.ACTIVE.value)
                .values(state=CAState.TRUSTED.value, changed_at=ca.created_at)
            )
            conn.execute(
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
                )
            )
        return True

    def retire_authority(self, ca_id: str) -> None:
        cas = t.certificate_authorities
        with self._write() as conn:
            result = conn.execute(
                update(cas)
                .where(cas.c.id == ca_id, cas.c.state == CAState.TRUSTED.value)
                .values(state=CAState.RETIRED.value, changed_at=_now())
            )
            if result.rowcount == 0:
                raise NotFound("no trusted (non-active) CA with that id")

    # -- issued node certificates -------------------------------------------------------

    def record_issued(self, cert: IssuedCertificate) -> None:
        with self._write() as conn:
            conn.execute(
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
                )
            )

    def supersede_issued(self, newest: IssuedCertificate) -> None:
        """Mark every other valid certificate of ``newest``'s project and name as superseded."""
        ic = t.issued_certificates
        with self._write() as conn:
            conn.execute(
                update(ic)
                .where(
                    ic.c.project_id == newest.project_id,
                    ic.c.name == newest.name,
                    ic.c.serial != newest.serial,
                    ic.c.status == "valid",
                )
                .values(status="superseded")
            )

    def delete_issued(self, serial: str) -> None:
        with self._write() as conn:
            conn.execute(delete(t.issued_certificates).where(t.issued_certificates.c.serial == serial))

    def issued(self, ca_id: str | None = None) -> list[IssuedCertificate]:
        query = select(t.issued_certificates).order_by(t.issued_certificates.c.created_at)
        if ca_id is not None:
            query = query.where(t.issued_certificates.c.ca_id == ca_id)
        with self.engine.connect() as conn:
            return [_issued(r) for r in conn.execute(query)]

    # -- token keys and revocations -----------------------------------------------------

    def add_fernet_key(self, key: FernetKey, *, keep: int) -> None:
        """Make ``key`` primary and keep at most ``keep`` keys in all (newest first)."""
        fk = t.fernet_keys
        with self._write() as conn:
            if key.primary:
                conn.execute(update(fk).values(is_primary=False))
            conn.execute(
                insert(fk).values(
                    id=key.id, key_sealed=key.key_sealed, is_primary=key.primary, created_at=key.created_at
                )
            )
            ids = [r.id for r in conn.execute(select(fk.c.id).order_by(fk.c.created_at.desc()))]
            if len(ids) > keep:
                conn.execute(delete(fk).where(fk.c.id.in_(ids[keep:])))

    def fernet_keys(self) -> list[FernetKey]:
        with self.engine.connect() as conn:
            return [_fernet(r) for r in conn.execute(select(t.fernet_keys))]

    def add_revocation(self, audit_id: str, expires_at: datetime, *, supersedes: str | None = None) -> None:
        """Record a revocation; ``supersedes`` drops older rows whose id starts with that prefix."""
        rv = t.revocations
        with self._write() as conn:
            conn.execute(delete(rv).where(rv.c.expires_at <= _now()))
            if supersedes is not None:
                conn.execute(delete(rv).where(rv.c.audit_id.startswith(supersedes, autoescape=True)))
            if conn.execute(select(rv.c.audit_id).where(rv.c.audit_id == audit_id)).first() is None:
                conn.execute(insert(rv).values(audit_id=audit_id, expires_at=expires_at, created_at=_now()))


def _domain(r: Any) -> Domain:
    return Domain(r.id, r.name, bool(r.enabled))


def _project(r: Any) -> Project:
    return Project(r.id, r.name, r.domain_id, bool(r.enabled), _utc(r.created_at))


def _user(r: Any, project_ids: frozenset[str]) -> User:
    return User(r.id, r.name, r.domain_id, r.password_hash, bool(r.enabled), _utc(r.created_at), project_ids)


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
    )


def _fernet(r: Any) -> FernetKey:
    return FernetKey(r.id, r.key_sealed, bool(r.is_primary), _utc(r.created_at))
