"""A user-wide revocation (password change, disable) must outlive every token it revoked.

Token lifetimes are set by whichever process minted the token (`CSSCERT_TOKEN_TTL_SECONDS` may
differ between the server and an operator's shell), so the revocation event may not expire with
the revoking process's TTL: found in review, where a token revived once a 60 s event expired.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing

import httpx
from support.accounts import new_account
from support.server import CsscertServer


def _user_cutoff(server: CsscertServer, user_id: str) -> tuple[int | None, list[str]]:
    """The user's token cut-off (users.tokens_valid_after, epoch ms; it never expires) and any
    revocation rows still spelled the pre-0002 way (``user:<id>@<ms>``; there must be none)."""
    with closing(sqlite3.connect(server.data_dir / "csscert.db")) as db:
        (cutoff,) = db.execute("SELECT tokens_valid_after FROM users WHERE id = ?", (user_id,)).fetchone()
        legacy = db.execute(
            "SELECT audit_id FROM revocations WHERE audit_id LIKE ?", (f"user:{user_id}@%",)
        ).fetchall()
        return cutoff, [r[0] for r in legacy]


def test_user_revocation_outlives_any_token_lifetime_and_only_the_newest_is_kept(
    server: CsscertServer,
) -> None:
    account = new_account(server, password=True, prefix="life")
    token = server.token(account.user, account.project_id)
    url = server.download_url(account.project_id)
    assert httpx.get(url, headers={"X-Auth-Token": token}).status_code == 200
    short_lived_cli = {**server.env, "CSSCERT_TOKEN_TTL_SECONDS": "60"}
    original_env = server.env
    server.env = short_lived_cli
    try:
        server.cli("user", "set-password", account.user, input="first-new-password\n")
        server.cli("user", "set-password", account.user, input="second-new-password\n")
    finally:
        server.env = original_env
    user_id = account.user_id
    cutoff, legacy = _user_cutoff(server, user_id)
    assert legacy == []  # one column per user, not an expiring row per event
    assert cutoff is not None and cutoff > 0  # the newer event moved the same cut-off forward
    server.cli("project", "create", f"unrelated-{user_id[:6]}")  # any write rebuilds the view
    assert httpx.get(url, headers={"X-Auth-Token": token}).status_code == 401
