"""Audit chains in token claims: what a rescoped token carries, how old tokens parse, the bound.

Pure functions of ``csscert.identity.tokens`` (no server): the claims record round-trips through
the Fernet codec, a 7-field record from before audit chains still parses, and the revocation
question over a chain is "is any of these audit ids revoked".
"""

from __future__ import annotations

import json

import pytest
from cryptography.fernet import Fernet
from hypothesis import example, given
from hypothesis import strategies as st

from csscert.errors import AccessDenied, AuthenticationFailed
from csscert.identity.tokens import MAX_AUDIT_CHAIN, TokenClaims, TokenCodec


def _claims(audit_ids: tuple[str, ...] = ("own",), project: str | None = "p" * 32) -> TokenClaims:
    return TokenClaims(
        "u" * 32, "d" * 32, project, ("password",), audit_ids, 1_700_000_000.123, 1_700_086_400
    )


def test_a_token_without_a_parent_shows_one_audit_id() -> None:
    claims = _claims(("own",))
    assert claims.audit_id == "own"
    assert claims.keystone_audit_ids == ["own"]


def test_a_rescoped_token_shows_its_own_and_the_first_of_its_chain_as_keystone_does() -> None:
    root = _claims(("root",))
    child = _claims(root.chain_for_child("child"))
    grandchild = _claims(child.chain_for_child("grandchild"))
    assert child.audit_ids == ("child", "root")
    assert grandchild.audit_ids == ("grandchild", "child", "root")
    # Keystone's [own, original]: the middle link is kept in the claims, not shown.
    assert child.keystone_audit_ids == ["child", "root"]
    assert grandchild.keystone_audit_ids == ["grandchild", "root"]


def test_claims_round_trip_through_the_codec_with_their_whole_chain() -> None:
    codec = TokenCodec([Fernet.generate_key()])
    claims = _claims(("a", "b", "c"))
    assert codec.parse(codec.mint(claims)) == claims
    unscoped = _claims(("a",), project=None)
    assert codec.parse(codec.mint(unscoped)) == unscoped


def test_a_token_minted_before_audit_chains_still_parses() -> None:
    key = Fernet.generate_key()
    old = json.dumps(["u" * 32, "d" * 32, None, ["password"], "old-audit", 1_700_000_000.5, 1_700_086_400])
    token = Fernet(key).encrypt(old.encode()).decode()
    claims = TokenCodec([key]).parse(token)
    assert claims.audit_ids == ("old-audit",)
    assert claims.project_id is None
    assert claims.keystone_audit_ids == ["old-audit"]
    # ... and a token got from it starts a chain.
    assert claims.chain_for_child("new") == ("new", "old-audit")


def test_a_chain_stops_at_its_bound_and_says_how_to_start_a_new_one() -> None:
    claims = _claims(("root",))
    for depth in range(1, MAX_AUDIT_CHAIN):
        claims = _claims(claims.chain_for_child(f"link{depth}"))
    assert len(claims.audit_ids) == MAX_AUDIT_CHAIN
    with pytest.raises(AccessDenied, match="log in again"):
        claims.chain_for_child("one-too-many")


def test_a_payload_with_a_chain_longer_than_the_bound_is_refused() -> None:
    key = Fernet.generate_key()
    chain = [f"a{i}" for i in range(MAX_AUDIT_CHAIN)]  # plus the own id: one too many
    raw = json.dumps(["u", "d", None, ["token"], "own", 1.0, 2, chain])
    with pytest.raises(AuthenticationFailed):
        TokenCodec([key]).parse(Fernet(key).encrypt(raw.encode()).decode())


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=9) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=20,
)


@given(payload=_JSON | st.lists(_JSON, min_size=7, max_size=8))
@example(payload=["u", "d", None, ["token"], "a", 1.0, float("inf")])
@example(payload=["u", "d", None, ["token"], "a", 1.0, 2, "not a list"])
def test_any_decrypted_payload_parses_or_is_a_401(payload: object) -> None:
    """Whatever a (validly encrypted) payload holds, parsing never raises anything but the 401."""
    try:
        claims = TokenClaims.from_json(json.dumps(payload).encode())
    except AuthenticationFailed:
        return
    assert 1 <= len(claims.audit_ids) <= MAX_AUDIT_CHAIN
