"""The ACME tables on SQLite and PostgreSQL: a nonce is spent exactly once and not after it expired;
expired nonces and orders (with their authorizations and challenges) are pruned; an EAB key binds
one account; a challenge is claimed by one validator and a finalize by one caller."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from store_helpers import ADMIN_URL, new_store

from csscert.audit import AuditEntry
from csscert.model import new_id
from csscert.store import SqlStore
from csscert.store import schema as t
from csscert.store.acme import AcmeAccount, AcmeAuthorization, AcmeChallenge, AcmeOrder, AcmeStore, EabKey

BACKENDS = [
    "sqlite",
    pytest.param("postgresql", marks=pytest.mark.skipif(not ADMIN_URL, reason="no PostgreSQL")),
]
AUDIT = AuditEntry("test", "acme")


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqlStore]:
    made = new_store(request.param, tmp_path)
    yield made
    made.close()


def _now() -> datetime:
    return datetime.now(UTC)


def _count(store: SqlStore, table: object) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())  # type: ignore[arg-type]


def _account(store: SqlStore) -> tuple[AcmeStore, AcmeAccount]:
    acme = AcmeStore(store)
    domain = store.ensure_domain(new_id(), "Default")
    project = store.create_project(new_id(), "eu-de", domain.id)
    user = store.create_user(new_id(), "ops", domain.id, None, [project.id])
    kid = "eab-1"
    acme.create_eab(EabKey(kid, project.id, user.id, "sealed", _now(), None, None), audit=AUDIT)
    account = AcmeAccount(new_id(), project.id, "thumb-1", "{}", "valid", (), kid, _now())
    assert acme.create_account(account, audit=AUDIT)
    return acme, account


def _order(acme: AcmeStore, account: AcmeAccount, expires: datetime) -> AcmeOrder:
    order = AcmeOrder(
        new_id(),
        account.id,
        account.project_id,
        "pending",
        (("dns", "n1"),),
        expires,
        None,
        None,
        None,
        _now(),
    )
    authz_id = new_id()
    challenge = AcmeChallenge(new_id(), authz_id, "http-01", "tok", "pending", None, None)
    authz = AcmeAuthorization(authz_id, order.id, "dns", "n1", "pending", expires, (challenge,))
    acme.create_order(order, [authz], _now())
    return order


def test_a_nonce_is_spent_once_and_never_after_it_expired(store: SqlStore) -> None:
    acme = AcmeStore(store)
    nonce = acme.new_nonce(_now() + timedelta(minutes=5))
    assert acme.take_nonce(nonce, _now())
    assert not acme.take_nonce(nonce, _now())
    stale = acme.new_nonce(_now() - timedelta(seconds=1))
    assert not acme.take_nonce(stale, _now())
    assert not acme.take_nonce("x" * 65, _now()) and not acme.take_nonce("", _now())


def test_expired_nonces_and_orders_are_pruned_with_their_authorizations(store: SqlStore) -> None:
    acme, account = _account(store)
    for _ in range(3):
        acme.new_nonce(_now() - timedelta(seconds=1))
    live = acme.new_nonce(_now() + timedelta(minutes=5))
    kept = _order(acme, account, _now() + timedelta(hours=1))
    old = _order(acme, account, _now() - timedelta(seconds=1))  # (each new order prunes before it)
    nonces, orders = acme.prune(_now())
    # new_nonce itself prunes now and then (at random), so some may already be gone: none is left.
    assert nonces <= 3 and orders == 1
    assert _count(store, t.acme_nonces) == 1
    assert acme.take_nonce(live, _now())
    assert acme.order(old.id) is None and acme.order(kept.id) is not None
    assert _count(store, t.acme_authorizations) == 1 and _count(store, t.acme_challenges) == 1


def test_an_eab_key_binds_one_account_and_a_revoked_one_none(store: SqlStore) -> None:
    acme, account = _account(store)
    second = AcmeAccount(new_id(), account.project_id, "thumb-2", "{}", "valid", (), account.eab_kid, _now())
    assert not acme.create_account(second, audit=AUDIT)
    assert acme.account(second.id) is None
    assert acme.revoke_eab(account.eab_kid, _now(), audit=AUDIT)
    assert not acme.revoke_eab(account.eab_kid, _now(), audit=AUDIT)
    deactivated = acme.account(account.id)
    assert deactivated is not None and deactivated.status == "deactivated"


def test_one_validator_claims_a_challenge_and_one_caller_a_finalize(store: SqlStore) -> None:
    acme, account = _account(store)
    order = _order(acme, account, _now() + timedelta(hours=1))
    stored = acme.order(order.id)
    assert stored is not None
    found = acme.authorization(stored.authz_ids[0])
    assert found is not None
    challenge = found[0].challenges[0]
    assert acme.start_challenge(challenge)
    assert not acme.start_challenge(challenge)
    acme.finish_challenge(challenge, None, _now())
    ready = acme.order(order.id)
    assert ready is not None and ready.status == "ready"
    assert acme.start_finalize(order.id)
    assert not acme.start_finalize(order.id)
