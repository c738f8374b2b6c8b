"""A write that sealed a secret under a master key the database was rotated away from meanwhile is
refused inside its transaction (custody.masterkey.write_guard), so no secret nobody can open is ever
stored; writes that seal nothing pass. In process, on a real SQLite store."""

from __future__ import annotations

from pathlib import Path

import pytest

from csscert.custody.masterkey import MasterKeyChanged
from csscert.sealing import MASTER_KEY_CHECK, key_check
from csscert.service import Service
from csscert.settings import Settings


def test_a_write_sealed_under_a_key_the_database_left_is_refused(tmp_path: Path) -> None:
    service = Service(Settings(data_dir=tmp_path / "data"), create=True)
    try:
        service.initialize(bootstrap=True)
        before = len(service.store.access_keys_page(None, 100))
        # As if another process had rotated since this one sealed: the row names another key.
        service.store.set_meta(MASTER_KEY_CHECK, key_check(bytes(32)))
        with pytest.raises(MasterKeyChanged, match="run it again"):
            service.identity.create_credential("csscert-admin", "sealed under the old key")
        assert len(service.store.access_keys_page(None, 100)) == before
        service.store.set_meta("unrelated", "a write that seals nothing passes")
        service.store.set_meta(MASTER_KEY_CHECK, service.sealer.check)
        service.identity.create_credential("csscert-admin", "sealed under the current key")
        assert len(service.store.access_keys_page(None, 100)) == before + 1
    finally:
        service.close()
