"""Migration 0002 on a database made at 0001: per-user revocation rows become users.tokens_valid_after."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import inspect, text
from store_helpers import BACKENDS, empty_url

from csscert.store import SqlStore, _alembic_config, head_revision, migrate

NEVER = datetime(9999, 12, 31, tzinfo=UTC)
NOW = datetime(2024, 1, 1, tzinfo=UTC)


def _at(store: SqlStore, revision: str, *, down: bool = False) -> None:
    config = _alembic_config(store)
    with store.engine.begin() as conn:
        config.attributes["connection"] = conn
        (command.downgrade if down else command.upgrade)(config, revision)


@pytest.mark.parametrize("backend", BACKENDS)
def test_0002_converts_user_revocations(backend: str, tmp_path: Path) -> None:
    store = SqlStore(empty_url(backend, tmp_path))
    try:
        _at(store, "0001")
        assert store.schema_revision() == "0001"
        with store.engine.begin() as conn:
            conn.execute(text("INSERT INTO domains (id, name, enabled) VALUES ('d', 'dom', true)"))
            for user in ("alice", "bob", "carol"):
                conn.execute(
                    text(
                        "INSERT INTO users (id, name, domain_id, password_hash, enabled, created_at) "
                        "VALUES (:id, :id, 'd', NULL, true, :now)"
                    ),
                    {"id": user, "now": NOW},
                )
            rows = [
                ("user:alice@1000", NEVER),
                ("user:alice@3000", NEVER),
                ("user:alice@2000", NEVER),
                ("user:bob@5", NEVER),
                ("user:gone@7", NEVER),  # a user deleted since
                ("user:odd", NEVER),  # not the per-user spelling: left alone
                ("0123abcd", NEVER),  # an ordinary token revocation
            ]
            for audit_id, expires in rows:
                conn.execute(
                    text("INSERT INTO revocations (audit_id, expires_at, created_at) VALUES (:a, :e, :c)"),
                    {"a": audit_id, "e": expires, "c": NOW},
                )
        assert migrate(store) == head_revision()  # through 0002 (and whatever follows it)
        with store.engine.connect() as conn:
            cutoffs: dict[str, int | None] = dict(
                conn.execute(text("SELECT id, tokens_valid_after FROM users")).all()
            )
            left = sorted(r[0] for r in conn.execute(text("SELECT audit_id FROM revocations")))
            pruned = conn.execute(text("SELECT changes_pruned_through FROM revision")).scalar()
        assert cutoffs == {"alice": 3000, "bob": 5, "carol": None}
        assert left == ["0123abcd", "user:odd"]
        assert pruned == 0
        indexes = {
            table: {i["name"] for i in inspect(store.engine).get_indexes(table)}
            for table in ("access_keys", "grants", "issued_certificates", "revocations", "users")
        }
        assert "ix_access_keys_user_id" in indexes["access_keys"]
        assert "ix_grants_project_id" in indexes["grants"]
        assert "ix_issued_certificates_project_name" in indexes["issued_certificates"]
        assert {"ix_revocations_user_id", "ix_revocations_expires_at"} <= indexes["revocations"]
        assert {"ix_users_domain_name", "ix_users_name"} <= indexes["users"]
        alice = store.user("alice")
        assert alice is not None and alice.tokens_valid_after_ms == 3000
        store.set_meta("after", "migration")  # writes work and log changes
        assert [c.kind for c in store.changes_since(0)] == ["meta"]

        _at(store, "0001", down=True)  # and back: the cut-offs become rows again
        with store.engine.connect() as conn:
            back = sorted(r[0] for r in conn.execute(text("SELECT audit_id FROM revocations")))
        assert back == ["0123abcd", "user:alice@3000", "user:bob@5", "user:odd"]
    finally:
        store.close()
