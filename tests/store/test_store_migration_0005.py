"""Migration 0005 on a database made at 0004: the bootstrap user gets both roles, rows an older
certificate of the same name replaced become superseded, and the new tables and indexes exist;
downgrading removes them again."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import Connection, inspect, text
from store_helpers import BACKENDS, empty_url

from csscert.store import SqlStore, _alembic_config, head_revision, migrate

NOW = datetime(2025, 1, 1, tzinfo=UTC)


def _at(store: SqlStore, revision: str, *, down: bool = False) -> None:
    config = _alembic_config(store)
    with store.engine.begin() as conn:
        config.attributes["connection"] = conn
        (command.downgrade if down else command.upgrade)(config, revision)


def _issued(conn: Connection, serial: str, name: str, created: datetime) -> None:
    conn.execute(
        text(
            "INSERT INTO issued_certificates (serial, ca_id, project_id, name, sans, fingerprint_sha256, "
            "not_before, not_after, created_at) VALUES (:s, 'ca', 'p', :n, '', :s, :c, :e, :c)"
        ),
        {"s": serial, "n": name, "c": created, "e": created + timedelta(days=365)},
    )


@pytest.mark.parametrize("backend", BACKENDS)
def test_0005_gives_the_bootstrap_user_its_roles_and_settles_old_certificates(
    backend: str, tmp_path: Path
) -> None:
    store = SqlStore(empty_url(backend, tmp_path))
    try:
        _at(store, "0004")
        with store.engine.begin() as conn:
            conn.execute(text("INSERT INTO domains (id, name, enabled) VALUES ('d', 'dom', true)"))
            for user in ("csscert-admin", "alice"):
                conn.execute(
                    text(
                        "INSERT INTO users (id, name, domain_id, password_hash, enabled, created_at) "
                        "VALUES (:id, :id, 'd', NULL, true, :now)"
                    ),
                    {"id": user, "now": NOW},
                )
            conn.execute(
                text(
                    "INSERT INTO certificate_authorities (id, scope, serial, subject, fingerprint_sha256, "
                    "not_before, not_after, cert_pem, key_sealed, state, created_at, changed_at) VALUES "
                    "('ca', 'region', '1', 'CN=x', 'f', :n, :n, '', '', 'active', :n, :n)"
                ),
                {"n": NOW},
            )
            _issued(conn, "a1", "node-1", NOW)
            _issued(conn, "a2", "node-1", NOW + timedelta(hours=1))  # replaced a1 before 0003 counted it
            _issued(conn, "b1", "node-2", NOW)
        assert migrate(store) == head_revision()
        admin, alice = store.user("csscert-admin"), store.user("alice")
        assert admin is not None and admin.roles == {"certificate-issuer", "administrator"}
        assert alice is not None and alice.roles == frozenset()
        with store.engine.connect() as conn:
            statuses: dict[str, str] = dict(
                conn.execute(text("SELECT serial, status FROM issued_certificates")).all()
            )
        assert statuses == {"a1": "superseded", "a2": "valid", "b1": "valid"}
        indexes = {i["name"] for i in inspect(store.engine).get_indexes("issued_certificates")}
        assert {
            "ix_issued_certificates_project_created",
            "ix_issued_certificates_project_status",
            "ix_issued_certificates_ca_status",
        } <= indexes
        _at(store, "0004", down=True)
        tables = set(inspect(store.engine).get_table_names())
        assert "user_roles" not in tables and "issuance_policies" not in tables
        columns = {c["name"] for c in inspect(store.engine).get_columns("issued_certificates")}
        assert "revoked_at" not in columns and "cert_pem" not in columns
    finally:
        store.close()
