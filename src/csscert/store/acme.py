"""ACME state in the store: EAB keys, accounts, orders, authorizations, challenges and nonces.

Everything the ACME server knows lives in these tables, so any csscert host on the same database
answers any request of a conversation (the nonce one host handed out, another host accepts).
State changes that race between hosts are conditional updates (``... WHERE status = 'pending'``)
whose row count says who won, and a nonce is spent by deleting it: of two requests carrying the
same nonce, exactly one deletes the row.

None of this is cached by the read model, so protocol traffic (nonces, orders, challenges) is
written in plain transactions that neither bump the revision nor touch the change log; the rare
administrative writes (EAB keys, account creation and key changes) go through
``SqlStore._write`` and leave an audit record. Expired nonces and expired orders (with their
authorizations and challenges) are pruned in bounded steps on the side of the writes that add them.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from csscert.audit import AuditEntry
from csscert.store import schema as t
from csscert.store.sql import Conflict, SqlStore

__all__ = [
    "AcmeAccount",
    "AcmeAuthorization",
    "AcmeChallenge",
    "AcmeOrder",
    "AcmeStore",
    "EabKey",
    "eab_context",
    "new_token",
]

_PRUNE_STEP = 100  # expired rows a write removes on the side, at most
_PRUNE_EVERY = 32  # nonce inserts per pruning step (on average)


def _utc(value: datetime) -> datetime:
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)


def _opt(value: datetime | None) -> datetime | None:
    return None if value is None else _utc(value)


@dataclass(frozen=True)
class EabKey:
    kid: str
    project_id: str
    user_id: str
    hmac_sealed: str
    created_at: datetime
    revoked_at: datetime | None
    account_id: str | None


@dataclass(frozen=True)
class AcmeAccount:
    id: str
    project_id: str
    thumbprint: str
    jwk: str  # JSON
    status: str
    contact: tuple[str, ...]
    eab_kid: str
    created_at: datetime


@dataclass(frozen=True)
class AcmeChallenge:
    id: str
    authz_id: str
    kind: str
    token: str
    status: str
    validated: datetime | None
    error: str | None


@dataclass(frozen=True)
class AcmeAuthorization:
    id: str
    order_id: str
    kind: str
    value: str
    status: str
    expires: datetime
    challenges: tuple[AcmeChallenge, ...] = ()


@dataclass(frozen=True)
class AcmeOrder:
    id: str
    account_id: str
    project_id: str
    status: str
    identifiers: tuple[tuple[str, str], ...]  # (type, value)
    expires: datetime
    error: str | None
    cert_serial: str | None
    cert_pem: str | None
    created_at: datetime
    authz_ids: tuple[str, ...] = ()


def _eab(r: Any) -> EabKey:
    return EabKey(
        r.kid, r.project_id, r.user_id, r.hmac_sealed, _utc(r.created_at), _opt(r.revoked_at), r.account_id
    )


def _account(r: Any) -> AcmeAccount:
    return AcmeAccount(
        r.id,
        r.project_id,
        r.thumbprint,
        r.jwk,
        r.status,
        tuple(json.loads(r.contact)),
        r.eab_kid,
        _utc(r.created_at),
    )


def _challenge(r: Any) -> AcmeChallenge:
    return AcmeChallenge(r.id, r.authz_id, r.kind, r.token, r.status, _opt(r.validated), r.error)


def _order(r: Any, authz_ids: Sequence[str]) -> AcmeOrder:
    identifiers = tuple((i["type"], i["value"]) for i in json.loads(r.identifiers))
    return AcmeOrder(
        r.id,
        r.account_id,
        r.project_id,
        r.status,
        identifiers,
        _utc(r.expires),
        r.error,
        r.cert_serial,
        r.cert_pem,
        _utc(r.created_at),
        tuple(authz_ids),
    )


def eab_context(kid: str) -> str:
    """The sealing context of an EAB key's HMAC key (the custody registry's entry for
    ``acme_eab_keys.hmac_sealed``, keyed by ``kid``, uses it to re-seal it)."""
    return f"eab:{kid}"


def new_token() -> str:
    """128 random bits, base64url without padding (challenge tokens and nonces)."""
    return secrets.token_urlsafe(16)


class AcmeStore:
    """The ACME tables over one :class:`SqlStore` (its engine, its ``_write`` for audited writes)."""

    def __init__(self, store: SqlStore) -> None:
        self._store = store

    @contextmanager
    def _tx(self) -> Iterator[Connection]:
        """A plain transaction for protocol state (no revision, no change rows: nothing caches it)."""
        with self._store.engine.begin() as conn:
            yield conn

    # -- nonces -------------------------------------------------------------------------

    def new_nonce(self, expires: datetime) -> str:
        value = new_token()
        with self._tx() as conn:
            conn.execute(insert(t.acme_nonces).values(value=value, expires=expires))
            if os.urandom(1)[0] < 256 // _PRUNE_EVERY:
                self._prune_nonces(conn, datetime.now(UTC))
        return value

    def take_nonce(self, value: str, now: datetime) -> bool:
        """Spend ``value``: True for exactly one caller, and only before it expired."""
        if not value or len(value) > 64:
            return False
        n = t.acme_nonces
        with self._tx() as conn:
            deleted = conn.execute(delete(n).where(n.c.value == value, n.c.expires > now)).rowcount
        return deleted == 1

    @staticmethod
    def _prune_nonces(conn: Connection, now: datetime) -> int:
        n = t.acme_nonces
        expired = select(n.c.value).where(n.c.expires <= now).limit(_PRUNE_STEP).scalar_subquery()
        return int(conn.execute(delete(n).where(n.c.value.in_(expired))).rowcount)

    def prune(self, now: datetime) -> tuple[int, int]:
        """Remove expired nonces and orders, all of them, in bounded steps: (nonces, orders)."""
        nonces = orders = 0
        while True:
            with self._tx() as conn:
                step_n = self._prune_nonces(conn, now)
                step_o = self._prune_orders(conn, now)
            nonces, orders = nonces + step_n, orders + step_o
            if step_n == 0 and step_o == 0:
                return nonces, orders

    # -- EAB keys -----------------------------------------------------------------------

    def create_eab(self, key: EabKey, *, audit: AuditEntry) -> None:
        with self._store._write(audit) as tx:
            # A change row, so master-key rotation's write guard sees that this write sealed a secret.
            tx.changed("eab_key", key.kid)
            tx.execute(
                insert(t.acme_eab_keys).values(
                    kid=key.kid,
                    project_id=key.project_id,
                    user_id=key.user_id,
                    hmac_sealed=key.hmac_sealed,
                    created_at=key.created_at,
                )
            )

    def eab(self, kid: str) -> EabKey | None:
        with self._store.engine.connect() as conn:
            row = conn.execute(select(t.acme_eab_keys).where(t.acme_eab_keys.c.kid == kid)).first()
        return None if row is None else _eab(row)

    def eab_keys(self, project_id: str | None = None, limit: int = 1000) -> list[EabKey]:
        e = t.acme_eab_keys
        query = select(e).order_by(e.c.created_at, e.c.kid).limit(limit)
        if project_id is not None:
            query = query.where(e.c.project_id == project_id)
        with self._store.engine.connect() as conn:
            return [_eab(r) for r in conn.execute(query)]

    def revoke_eab(self, kid: str, now: datetime, *, audit: AuditEntry) -> bool:
        """Revoke an EAB key and deactivate the account it bound. False when none was active."""
        e = t.acme_eab_keys
        with self._store._write(audit) as tx:
            account_id = tx.execute(
                update(e)
                .where(e.c.kid == kid, e.c.revoked_at.is_(None))
                .values(revoked_at=now)
                .returning(e.c.account_id)
            ).first()
            if account_id is None:
                tx.unchanged = True
                return False
            if account_id[0] is not None:
                a = t.acme_accounts
                tx.execute(update(a).where(a.c.id == account_id[0]).values(status="deactivated"))
        return True

    # -- accounts -----------------------------------------------------------------------

    def create_account(self, account: AcmeAccount, *, audit: AuditEntry) -> bool:
        """Insert ``account`` and bind its EAB key to it, both or neither. False when the key was
        revoked or already bound meanwhile; :class:`Conflict` when the JWK has an account."""
        e = t.acme_eab_keys
        try:
            with self._store._write(audit) as tx:
                bound = tx.execute(
                    update(e)
                    .where(e.c.kid == account.eab_kid, e.c.revoked_at.is_(None), e.c.account_id.is_(None))
                    .values(account_id=account.id)
                ).rowcount
                if bound != 1:
                    raise _Unbound
                tx.execute(
                    insert(t.acme_accounts).values(
                        id=account.id,
                        project_id=account.project_id,
                        thumbprint=account.thumbprint,
                        jwk=account.jwk,
                        status=account.status,
                        contact=json.dumps(list(account.contact)),
                        eab_kid=account.eab_kid,
                        created_at=account.created_at,
                    )
                )
        except _Unbound:
            return False
        except IntegrityError as exc:
            raise Conflict("an account with this key exists already") from exc
        return True

    def account(self, account_id: str) -> AcmeAccount | None:
        with self._store.engine.connect() as conn:
            row = conn.execute(select(t.acme_accounts).where(t.acme_accounts.c.id == account_id)).first()
        return None if row is None else _account(row)

    def account_by_thumbprint(self, thumbprint: str) -> AcmeAccount | None:
        a = t.acme_accounts
        with self._store.engine.connect() as conn:
            row = conn.execute(select(a).where(a.c.thumbprint == thumbprint)).first()
        return None if row is None else _account(row)

    def update_account(
        self, account_id: str, *, contact: Sequence[str] | None = None, status: str | None = None
    ) -> None:
        values: dict[str, Any] = {}
        if contact is not None:
            values["contact"] = json.dumps(list(contact))
        if status is not None:
            values["status"] = status
        if values:
            with self._tx() as conn:
                conn.execute(
                    update(t.acme_accounts).where(t.acme_accounts.c.id == account_id).values(**values)
                )

    def change_key(
        self, account_id: str, old_thumbprint: str, jwk: str, thumbprint: str, *, audit: AuditEntry
    ) -> bool:
        """Replace the account's key if it is still ``old_thumbprint`` (False otherwise);
        :class:`Conflict` when another account holds the new key."""
        a = t.acme_accounts
        try:
            with self._store._write(audit) as tx:
                changed = tx.execute(
                    update(a)
                    .where(a.c.id == account_id, a.c.thumbprint == old_thumbprint)
                    .values(jwk=jwk, thumbprint=thumbprint)
                ).rowcount
                if changed != 1:
                    tx.unchanged = True
        except IntegrityError as exc:
            raise Conflict("another account holds the new key") from exc
        return changed == 1

    # -- orders, authorizations, challenges -----------------------------------------------

    def create_order(
        self, order: AcmeOrder, authorizations: Sequence[AcmeAuthorization], now: datetime
    ) -> None:
        with self._tx() as conn:
            self._prune_orders(conn, now)
            conn.execute(
                insert(t.acme_orders).values(
                    id=order.id,
                    account_id=order.account_id,
                    project_id=order.project_id,
                    status=order.status,
                    identifiers=json.dumps([{"type": k, "value": v} for k, v in order.identifiers]),
                    expires=order.expires,
                    created_at=order.created_at,
                )
            )
            for authz in authorizations:
                conn.execute(
                    insert(t.acme_authorizations).values(
                        id=authz.id,
                        order_id=order.id,
                        kind=authz.kind,
                        value=authz.value,
                        status=authz.status,
                        expires=authz.expires,
                    )
                )
                for ch in authz.challenges:
                    conn.execute(
                        insert(t.acme_challenges).values(
                            id=ch.id, authz_id=authz.id, kind=ch.kind, token=ch.token, status=ch.status
                        )
                    )

    @staticmethod
    def _prune_orders(conn: Connection, now: datetime) -> int:
        """Expired orders go with their authorizations and challenges (explicitly: SQLite's
        cascades need its foreign-key pragma, and PostgreSQL's would hide the cost)."""
        o, az, ch = t.acme_orders, t.acme_authorizations, t.acme_challenges
        ids = list(conn.execute(select(o.c.id).where(o.c.expires <= now).limit(_PRUNE_STEP)).scalars())
        if not ids:
            return 0
        authz_ids = select(az.c.id).where(az.c.order_id.in_(ids)).scalar_subquery()
        conn.execute(delete(ch).where(ch.c.authz_id.in_(authz_ids)))
        conn.execute(delete(az).where(az.c.order_id.in_(ids)))
        return int(conn.execute(delete(o).where(o.c.id.in_(ids))).rowcount)

    def order(self, order_id: str) -> AcmeOrder | None:
        o, az = t.acme_orders, t.acme_authorizations
        with self._store.engine.connect() as conn:
            row = conn.execute(select(o).where(o.c.id == order_id)).first()
            if row is None:
                return None
            authz = conn.execute(select(az.c.id).where(az.c.order_id == order_id).order_by(az.c.id)).scalars()
            return _order(row, list(authz))

    def order_by_serial(self, serial: str) -> AcmeOrder | None:
        o = t.acme_orders
        with self._store.engine.connect() as conn:
            row = conn.execute(select(o).where(o.c.cert_serial == serial)).first()
        return None if row is None else _order(row, ())

    def orders_of(self, account_id: str, now: datetime, limit: int = 100) -> list[str]:
        """Ids of the account's unexpired orders, newest first, at most ``limit``."""
        o = t.acme_orders
        query = (
            select(o.c.id)
            .where(o.c.account_id == account_id, o.c.expires > now)
            .order_by(o.c.created_at.desc())
            .limit(limit)
        )
        with self._store.engine.connect() as conn:
            return list(conn.execute(query).scalars())

    def authorization(self, authz_id: str) -> tuple[AcmeAuthorization, AcmeOrder] | None:
        az, ch, o = t.acme_authorizations, t.acme_challenges, t.acme_orders
        with self._store.engine.connect() as conn:
            row = conn.execute(select(az).where(az.c.id == authz_id)).first()
            if row is None:
                return None
            order_row = conn.execute(select(o).where(o.c.id == row.order_id)).first()
            challenges = conn.execute(select(ch).where(ch.c.authz_id == authz_id).order_by(ch.c.kind)).all()
        if order_row is None:
            return None
        authz = AcmeAuthorization(
            row.id,
            row.order_id,
            row.kind,
            row.value,
            row.status,
            _utc(row.expires),
            tuple(_challenge(c) for c in challenges),
        )
        return authz, _order(order_row, ())

    def challenge(self, challenge_id: str) -> AcmeChallenge | None:
        ch = t.acme_challenges
        with self._store.engine.connect() as conn:
            row = conn.execute(select(ch).where(ch.c.id == challenge_id)).first()
        return None if row is None else _challenge(row)

    def start_challenge(self, challenge: AcmeChallenge) -> bool:
        """Claim the validation (pending -> processing, authorization still pending): True for
        exactly one caller across every host."""
        ch, az = t.acme_challenges, t.acme_authorizations
        with self._tx() as conn:
            authz_pending = conn.execute(
                select(az.c.id).where(az.c.id == challenge.authz_id, az.c.status == "pending")
            ).first()
            if authz_pending is None:
                return False
            claimed = conn.execute(
                update(ch)
                .where(ch.c.id == challenge.id, ch.c.status == "pending")
                .values(status="processing")
            ).rowcount
        return claimed == 1

    def finish_challenge(self, challenge: AcmeChallenge, error: str | None, now: datetime) -> None:
        """Record the validation's outcome on the challenge, its authorization and its order: a
        valid authorization makes the order ready once all of its authorizations are valid; an
        invalid one makes the order invalid (RFC 8555 §7.1.6)."""
        ch, az, o = t.acme_challenges, t.acme_authorizations, t.acme_orders
        status = "invalid" if error else "valid"
        with self._tx() as conn:
            conn.execute(
                update(ch)
                .where(ch.c.id == challenge.id, ch.c.status == "processing")
                .values(status=status, error=error, validated=now if error is None else None)
            )
            changed = conn.execute(
                update(az)
                .where(az.c.id == challenge.authz_id, az.c.status == "pending")
                .values(status=status)
            ).rowcount
            if changed != 1:
                return
            order_id = conn.execute(select(az.c.order_id).where(az.c.id == challenge.authz_id)).scalar_one()
            if error is not None:
                conn.execute(
                    update(o)
                    .where(o.c.id == order_id, o.c.status == "pending")
                    .values(status="invalid", error=error)
                )
                return
            open_authz = conn.execute(
                select(az.c.id).where(az.c.order_id == order_id, az.c.status != "valid").limit(1)
            ).first()
            if open_authz is None:
                conn.execute(
                    update(o).where(o.c.id == order_id, o.c.status == "pending").values(status="ready")
                )

    def expire(self, order_id: str, now: datetime) -> None:
        """Mark a pending or ready order that passed its expiry invalid (so is every pending authz)."""
        o, az = t.acme_orders, t.acme_authorizations
        with self._tx() as conn:
            conn.execute(
                update(o)
                .where(o.c.id == order_id, o.c.status.in_(("pending", "ready")), o.c.expires <= now)
                .values(status="invalid")
            )
            conn.execute(
                update(az)
                .where(az.c.order_id == order_id, az.c.status == "pending", az.c.expires <= now)
                .values(status="expired")
            )

    def start_finalize(self, order_id: str) -> bool:
        """ready -> processing: True for exactly one caller across every host."""
        o = t.acme_orders
        with self._tx() as conn:
            return (
                conn.execute(
                    update(o).where(o.c.id == order_id, o.c.status == "ready").values(status="processing")
                ).rowcount
                == 1
            )

    def finish_finalize(
        self,
        order_id: str,
        *,
        serial: str | None,
        cert_pem: str | None,
        expires: datetime | None,
        error: str | None,
    ) -> None:
        """processing -> valid (with the certificate, kept until it expires) or back to ready
        when the CSR was refused (the client may send a better one), or invalid."""
        o = t.acme_orders
        values: dict[str, Any]
        if error is None:
            values = {
                "status": "valid",
                "cert_serial": serial,
                "cert_pem": cert_pem,
                "expires": expires,
                "error": None,
            }
        else:
            values = {"status": "ready", "error": None}
        with self._tx() as conn:
            conn.execute(update(o).where(o.c.id == order_id, o.c.status == "processing").values(**values))


class _Unbound(Exception):
    """The EAB key was revoked or bound meanwhile (rolls the account insert back)."""
