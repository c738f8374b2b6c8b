"""Master-key rotation on several hosts that take ``CSSCERT_MASTER_KEY`` (no key files), as the README
describes it: new key plus ``CSSCERT_MASTER_KEY_PREVIOUS`` on every host (rolling restart), one
``master-key rotate``, then the previous key dropped. Every step keeps the old token, AK/SK and bytes
working on every host; a secret sealed after the rotation opens on a host that was not restarted; a
host left with only the old key refuses to start.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import httpx
import pytest
from custody_helpers import create_database, seen
from support.accounts import new_account
from support.server import CsscertServer
from support.signing import sdk_sign

ADMIN_URL = os.environ.get("CSSCERT_TEST_POSTGRES_URL")
pytestmark = pytest.mark.skipif(not ADMIN_URL, reason="CSSCERT_TEST_POSTGRES_URL is not set")


def test_several_hosts_rotate_through_a_previous_key_setting(tmp_path: Path) -> None:
    assert ADMIN_URL
    url = create_database(ADMIN_URL)
    old, new = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    hosts = [
        CsscertServer(
            data_dir=tmp_path / f"host-{i}" / "data",
            env={
                "CSSCERT_DATABASE_URL": url,
                "CSSCERT_MASTER_KEY": old,
                "CSSCERT_REVISION_POLL_SECONDS": "0.2",
            },
        )
        for i in range(2)
    ]
    try:
        for host in hosts:
            host.data_dir.parent.mkdir(parents=True)
            host.start()
        account = new_account(hosts[0], prefix="hosts")
        token = hosts[0].token(account.user, account.project_id)
        before = seen(hosts[1], token, account)

        for host in hosts:  # step 2: new key + the previous one, one host after the other
            host.env.update(CSSCERT_MASTER_KEY=new, CSSCERT_MASTER_KEY_PREVIOUS=old)
            host.restart()
            assert seen(host, token, account) == before
        during = new_account(
            hosts[1], project_id=account.project_id, prefix="hosts"
        )  # sealed under old still

        done = hosts[0].cli_json("master-key", "rotate")  # step 3
        assert hosts[0].cli_json("master-key", "check")["database"] == done["new_key_check"]
        after = new_account(hosts[0], project_id=account.project_id, prefix="hosts")  # sealed under new
        for host in hosts:  # not restarted: both open what was sealed before and after
            for acct in (account, during, after):
                url_, headers = sdk_sign(
                    acct.access, acct.secret, "GET", host.download_url(account.project_id)
                )
                assert httpx.get(url_, headers=headers, timeout=10).status_code == 200

        for host in hosts:  # step 4: the previous key dropped
            del host.env["CSSCERT_MASTER_KEY_PREVIOUS"]
            host.restart()
            assert seen(host, token, account) == before

        stale = hosts[1].cli("ca", "list", check=False, env_extra={"CSSCERT_MASTER_KEY": old})
        assert stale.returncode == 1 and "no master key given opens this database" in stale.stderr
    finally:
        for host in hosts:
            host.stop()
