"""Change log for incremental readers; per-user token cut-off column; point-lookup indexes.

Revision ID: 0002
Revises: 0001

- ``changes``: what each write changed (kind + key), under the store revision it bumped to.
- ``revision.changes_pruned_through``: the change-log horizon (rows up to it were pruned).
- ``users.tokens_valid_after`` (epoch ms): replaces the revocation rows ``user:<user id>@<ms>``,
  which are converted (the newest per user) and deleted.
- ``revocations.user_id`` (so deleting a user deletes them) and an index on ``expires_at`` (pruning).
- Indexes for point lookups: ``access_keys.user_id``, ``grants.project_id``, ``users.name``,
  ``issued_certificates(project_id, name)``.
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_TS = sa.DateTime(timezone=True)
_USER_PREFIX = "user:"


def _parse_user_revocation(audit_id: str) -> tuple[str, int] | None:
    user_id, at, millis = audit_id[len(_USER_PREFIX) :].partition("@")
    if not user_id or not at or not millis.isdigit():
        return None
    return user_id, int(millis)


def upgrade() -> None:
    op.create_table(
        "changes",
        sa.Column("rev", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("kind", sa.String(32), primary_key=True),
        sa.Column("key", sa.String(128), primary_key=True),
        sa.Column("at", _TS, nullable=False),
    )
    op.add_column(
        "revision", sa.Column("changes_pruned_through", sa.BigInteger, nullable=False, server_default="0")
    )
    op.add_column("users", sa.Column("tokens_valid_after", sa.BigInteger, nullable=True))
    op.add_column("revocations", sa.Column("user_id", sa.String(32), nullable=True))
    op.create_index("ix_revocations_user_id", "revocations", ["user_id"])
    op.create_index("ix_revocations_expires_at", "revocations", ["expires_at"])
    op.create_index("ix_users_name", "users", ["name"])
    op.create_index("ix_access_keys_user_id", "access_keys", ["user_id"])
    op.create_index("ix_grants_project_id", "grants", ["project_id"])
    op.create_index("ix_issued_certificates_project_name", "issued_certificates", ["project_id", "name"])

    conn = op.get_bind()
    revocations = sa.table("revocations", sa.column("audit_id", sa.String))
    users = sa.table("users", sa.column("id", sa.String), sa.column("tokens_valid_after", sa.BigInteger))
    newest: dict[str, int] = {}
    converted: list[str] = []
    query = sa.select(revocations.c.audit_id).where(revocations.c.audit_id.startswith(_USER_PREFIX))
    for (audit_id,) in conn.execute(query):
        parsed = _parse_user_revocation(audit_id)
        if parsed is None:
            continue  # not one of ours: leave it alone
        converted.append(audit_id)
        newest[parsed[0]] = max(parsed[1], newest.get(parsed[0], 0))
    if newest:
        conn.execute(
            sa.update(users)
            .where(users.c.id == sa.bindparam("uid"))
            .values(tokens_valid_after=sa.bindparam("ms")),
            [{"uid": user_id, "ms": millis} for user_id, millis in newest.items()],
        )
    for start in range(0, len(converted), 500):
        conn.execute(sa.delete(revocations).where(revocations.c.audit_id.in_(converted[start : start + 500])))


def downgrade() -> None:
    conn = op.get_bind()
    now = datetime.now(UTC)
    rows = conn.execute(
        sa.text("SELECT id, tokens_valid_after FROM users WHERE tokens_valid_after IS NOT NULL")
    )
    revocations = sa.table(
        "revocations",
        sa.column("audit_id", sa.String),
        sa.column("expires_at", _TS),
        sa.column("created_at", _TS),
    )
    back = [
        {
            "audit_id": f"{_USER_PREFIX}{r.id}@{r.tokens_valid_after}",
            "expires_at": datetime(9999, 12, 31, tzinfo=UTC),
            "created_at": now,
        }
        for r in rows
    ]
    if back:
        conn.execute(sa.insert(revocations), back)
    op.drop_index("ix_issued_certificates_project_name", "issued_certificates")
    op.drop_index("ix_grants_project_id", "grants")
    op.drop_index("ix_access_keys_user_id", "access_keys")
    op.drop_index("ix_users_name", "users")
    op.drop_index("ix_revocations_expires_at", "revocations")
    op.drop_index("ix_revocations_user_id", "revocations")
    with op.batch_alter_table("revocations") as batch:
        batch.drop_column("user_id")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("tokens_valid_after")
    with op.batch_alter_table("revision") as batch:
        batch.drop_column("changes_pruned_through")
    op.drop_table("changes")
