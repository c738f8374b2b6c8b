"""Pure parts of key custody: the master-key check value, the sealer that knows two keys, and the
backup reader, which turns any damaged input into one :class:`BackupRefused` (never another error)."""

from __future__ import annotations

import gzip
import json
import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from csscert.custody.backup import FORMAT, VERSION, verify
from csscert.errors import BackupRefused
from csscert.sealing import MasterKeyError, Sealer, key_check

KEY = bytes(range(32))


def test_the_key_check_names_a_key_without_containing_it() -> None:
    check = key_check(KEY)
    assert check == key_check(bytes(range(32))) and check != key_check(bytes(32))
    assert len(check) == 64 and KEY.hex() not in check


def test_a_sealer_with_two_keys_seals_under_the_one_it_follows_and_opens_both() -> None:
    old, new = os.urandom(32), os.urandom(32)
    sealed_old = Sealer(old).seal(b"secret", "ak:A")
    sealer = Sealer(new, old)
    assert sealer.follow(key_check(old)) and sealer.check == key_check(old)
    assert Sealer(old).open(sealer.seal(b"x", "ak:B"), "ak:B") == b"x"
    assert sealer.open(sealed_old, "ak:A") == b"secret"
    assert sealer.follow(key_check(new)) and Sealer(new).open(sealer.seal(b"y", "ak:C"), "ak:C") == b"y"
    assert not sealer.follow(key_check(os.urandom(32)))
    with pytest.raises(MasterKeyError):
        Sealer(os.urandom(32)).open(sealed_old, "ak:A")


def test_a_sealer_rereads_its_source_when_nothing_it_knows_opens_a_blob() -> None:
    old, new = os.urandom(32), os.urandom(32)
    keys = [old]
    sealer = Sealer(old, source=lambda: list(keys))
    keys.insert(0, new)  # another process rotated
    assert sealer.open(Sealer(new).seal(b"s", "fernet:1"), "fernet:1") == b"s"


def _check(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as where:
        path = Path(where) / "x.backup"
        path.write_bytes(data)
        with pytest.raises(BackupRefused):
            verify(path, KEY)


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=400))
def test_arbitrary_bytes_are_refused_as_a_backup(data: bytes) -> None:
    _check(data)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.binary(max_size=60),
            st.just(b'{"manifest":{}}'),
            st.just(b'{"table":"meta","columns":["key"]}'),
            st.just(b'["a"]'),
        ),
        max_size=6,
    )
)
def test_arbitrary_lines_after_a_valid_header_are_refused(lines: list[bytes]) -> None:
    header = json.dumps({"format": FORMAT, "version": VERSION, "master_key_check": key_check(KEY)}).encode()
    _check(gzip.compress(b"\n".join([header, *lines]) + b"\n"))
