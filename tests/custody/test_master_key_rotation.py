"""``csscert master-key rotate``: every secret re-sealed in one transaction, safe against SIGKILL at
every step, while the server keeps serving and picks the new key up without a restart.

The crash tests kill the real command with a real SIGKILL at each named step
(``CSSCERT_TEST_KILL_AT``, see custody/masterkey.py) and then check what the issue asks: the next
start finds exactly one key file, that key opens everything, and nothing was lost (the same token,
AK/SK and bytes work; the CA signs on).
"""

from __future__ import annotations

import base64
import signal
from pathlib import Path

import httpx
import pytest
from custody_helpers import issue_and_verify, seen
from support.accounts import new_account
from support.server import CsscertServer, ServerFactory
from support.signing import sdk_sign

STEPS = ["new-key-written", "resealing", "before-commit", "committed", "swapped"]
COMMITTED = {"committed", "swapped"}


def _key(data_dir: Path) -> bytes:
    text = (data_dir / "master.key").read_text().strip()
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@pytest.fixture(scope="module")
def rotating(make_server: ServerFactory) -> CsscertServer:
    return make_server()


@pytest.mark.parametrize("step", STEPS)
def test_sigkill_at_every_step_leaves_one_working_key_and_loses_nothing(
    rotating: CsscertServer, step: str, tmp_path: Path
) -> None:
    server = rotating
    account = new_account(server, prefix="rot")
    token = server.token(account.user, account.project_id)
    before = seen(server, token, account)
    old_key = _key(server.data_dir)

    killed = server.cli("master-key", "rotate", check=False, env_extra={"CSSCERT_TEST_KILL_AT": step})
    assert killed.returncode == -signal.SIGKILL, killed.stderr

    # The running server keeps serving through the crash (and follows a committed rotation).
    assert seen(server, token, account) == before
    fresh = new_account(server, project_id=account.project_id, prefix="rot")  # sealed by the next CLI start
    url, headers = sdk_sign(fresh.access, fresh.secret, "GET", server.download_url(account.project_id))
    assert httpx.get(url, headers=headers, timeout=10).status_code == 200

    server.restart()
    keys = sorted(p.name for p in server.data_dir.iterdir() if p.name.startswith("master.key"))
    assert keys == ["master.key"], keys
    assert (_key(server.data_dir) != old_key) == (step in COMMITTED)
    assert seen(server, token, account) == before
    assert (
        seen(server, server.token(account.user, account.project_id), fresh).token_download
        == before.token_download
    )
    issue_and_verify(server, token, account.project_id, tmp_path / "issued")


def test_a_running_server_picks_up_the_new_key_without_a_restart(rotating: CsscertServer) -> None:
    server = rotating
    account = new_account(server, prefix="live")
    token = server.token(account.user, account.project_id)
    before = seen(server, token, account)
    old_key = _key(server.data_dir)
    done = server.cli_json("master-key", "rotate")
    assert _key(server.data_dir) != old_key
    assert sum(done["resealed"].values()) >= 3  # the CA key, the token keys, the secret keys
    assert not (server.data_dir / "master.key.new").exists()
    # Not restarted: cached secrets still work, and a key sealed after the rotation opens.
    assert seen(server, token, account) == before
    fresh = new_account(server, project_id=account.project_id, prefix="live")
    assert (
        seen(server, server.token(account.user, account.project_id), fresh).signed_download
        == before.signed_download
    )
    assert server.cli_json("master-key", "check")["database"] == done["new_key_check"]
