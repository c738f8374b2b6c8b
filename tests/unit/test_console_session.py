"""The console's session cookie and CSRF tokens (api/console/session.py): pure, in process."""

from __future__ import annotations

import base64
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from csscert.api.console.session import SESSION_COOKIE, SessionCodec, cookie_value
from csscert.sealing import Sealer

TOKEN = "gAAAAABexampletoken-" + "x" * 180
NOW = 1_800_000_000.0


@pytest.fixture
def codec() -> SessionCodec:
    return SessionCodec.from_sealer(Sealer(os.urandom(32)))


def test_a_sealed_cookie_opens_to_its_token_and_holds_no_trace_of_it(codec: SessionCodec) -> None:
    value = codec.seal(TOKEN, NOW + 60)
    assert codec.open(value, NOW) == TOKEN
    assert "example" not in value and "gAAAA" not in value
    assert "example" not in base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode("latin-1")


def test_every_single_byte_changed_makes_the_cookie_refused(codec: SessionCodec) -> None:
    raw = bytearray(
        base64.urlsafe_b64decode((value := codec.seal(TOKEN, NOW + 60)) + "=" * (-len(value) % 4))
    )
    for index in range(len(raw)):
        changed = bytearray(raw)
        changed[index] ^= 0x01
        forged = base64.urlsafe_b64encode(bytes(changed)).decode().rstrip("=")
        assert codec.open(forged, NOW) is None, index


def test_a_cookie_expires_with_its_token(codec: SessionCodec) -> None:
    value = codec.seal(TOKEN, NOW + 60)
    assert codec.open(value, NOW + 59) == TOKEN
    assert codec.open(value, NOW + 60) is None
    assert codec.open(value, NOW + 3600) is None


def test_a_cookie_sealed_under_another_master_key_is_refused(codec: SessionCodec) -> None:
    other = SessionCodec.from_sealer(Sealer(os.urandom(32)))
    assert codec.open(other.seal(TOKEN, NOW + 60), NOW) is None


def test_hosts_sharing_the_master_key_accept_each_others_cookies() -> None:
    master = os.urandom(32)
    one, two = SessionCodec.from_sealer(Sealer(master)), SessionCodec.from_sealer(Sealer(master))
    assert two.open(one.seal(TOKEN, NOW + 60), NOW) == TOKEN
    assert one.csrf("session:a") == two.csrf("session:a")


@pytest.mark.parametrize(
    "value", ["", "not base64 !!", "AAAA", "A" * 5000, base64.b64encode(b"\x02" * 64).decode()]
)
def test_garbage_cookies_are_refused_without_an_error(codec: SessionCodec, value: str) -> None:
    assert codec.open(value, NOW) is None


def test_csrf_tokens_are_bound_to_what_they_protect(codec: SessionCodec) -> None:
    token = codec.csrf("session:audit-1")
    assert codec.csrf_ok("session:audit-1", token)
    assert not codec.csrf_ok("session:audit-2", token)
    assert not codec.csrf_ok("login:audit-1", token)
    assert not codec.csrf_ok("session:audit-1", None)
    assert not codec.csrf_ok("session:audit-1", token[:-1] + ("A" if token[-1] != "A" else "B"))


def test_the_session_and_csrf_keys_differ_from_each_other_and_from_the_master_key() -> None:
    master = os.urandom(32)
    sealer = Sealer(master)
    keys = {sealer.derive_key("console-session"), sealer.derive_key("console-csrf"), master}
    assert len(keys) == 3 and all(len(k) == 32 for k in keys)


def test_the_cookie_header_is_parsed_for_the_named_cookie_only() -> None:
    headers = {"cookie": f"other=1; {SESSION_COOKIE}=abc; {SESSION_COOKIE}=second"}
    assert cookie_value(headers, SESSION_COOKIE) == "abc"
    assert cookie_value({"cookie": "x=1"}, SESSION_COOKIE) is None
    assert cookie_value({}, SESSION_COOKIE) is None
    assert cookie_value({"cookie": f"{SESSION_COOKIE}={'a' * 5000}"}, SESSION_COOKIE) is None


@given(st.text(max_size=6000))
@settings(max_examples=300)
def test_opening_any_text_never_raises(value: str) -> None:
    codec = SessionCodec.from_sealer(Sealer(b"k" * 32))
    assert codec.open(value, NOW) is None


@given(
    st.text(max_size=3000), st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), max_size=20)
)
@settings(max_examples=300)
def test_any_cookie_header_parses_to_a_bounded_value_or_none(header: str, name: str) -> None:
    found = cookie_value({"cookie": header}, name or "x")
    assert found is None or 0 < len(found) <= 4096
