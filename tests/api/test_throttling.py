"""Throttling the cloud's way: per user and per address on password logins (Keystone's 429 with
Retry-After, refused before argon2 runs), per credential on the download and the token routes
(429 APIGW.0308 in the CSS shape); ``--rate-limits off`` turns it all off."""

from __future__ import annotations

import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from support.accounts import Account, new_account
from support.server import CsscertServer, ServerFactory


def _login_body(account: Account, password: str) -> dict[str, object]:
    return {
        "auth": {
            "identity": {
                "methods": ["password"],
                "password": {
                    "user": {"name": account.user, "domain": {"name": "csscert"}, "password": password}
                },
            },
            "scope": {"project": {"id": account.project_id}},
        }
    }


def _login(server: CsscertServer, account: Account, password: str) -> httpx.Response:
    return httpx.post(f"{server.url}/v3/auth/tokens", json=_login_body(account, password), timeout=30)


def _samples(server: CsscertServer, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    text = httpx.get(f"{server.url}/metrics", timeout=10).text
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                found[tuple(sorted(sample.labels.items()))] = sample.value
    return found


@pytest.fixture(scope="module")
def guarded(make_server: ServerFactory) -> CsscertServer:
    return make_server()


def test_a_burst_of_wrong_passwords_is_throttled_and_another_user_still_logs_in(
    guarded: CsscertServer,
) -> None:
    victim = new_account(guarded, password=True, prefix="victim")
    neighbour = new_account(guarded, password=True, prefix="neighbour", project_id=victim.project_id)
    started = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda i: _login(guarded, victim, f"wrong-{i}-password"), range(100)))
    elapsed = time.monotonic() - started
    statuses = [a.status_code for a in answers]
    assert set(statuses) <= {401, 429}, statuses
    # At most the user's burst (10) reached argon2; every other guess was refused before it.
    assert statuses.count(401) <= 10 and statuses.count(429) >= 90, statuses
    refused = next(a for a in answers if a.status_code == 429)
    assert int(refused.headers["retry-after"]) >= 1
    assert refused.headers["x-request-id"]
    error = refused.json()["error"]
    assert error["code"] == 429 and error["title"] == "Too Many Requests"
    assert "locked out" in error["message"]
    # Refusals cost no argon2: 100 guesses take about as long as the 10 that were checked.
    assert elapsed < 10, elapsed
    # The locked user is refused even with the right password (a lock-out), its neighbour is not.
    assert _login(guarded, victim, victim.password or "").status_code == 429
    ok = _login(guarded, neighbour, neighbour.password or "")
    assert ok.status_code == 201, ok.text
    assert _samples(guarded, "csscert_throttled_requests_total")[(("limit", "login_user"),)] >= 90


def test_a_user_name_that_does_not_exist_is_locked_out_the_same_way(guarded: CsscertServer) -> None:
    """A lock-out must not tell which users exist."""
    ghost = Account("no-such-user-here", "", guarded.project_id, "", "", "")
    statuses = [_login(guarded, ghost, f"guess-{i}-password").status_code for i in range(12)]
    assert statuses[:10] == [401] * 10 and statuses[10:] == [429, 429], statuses


def test_logins_per_address_are_limited_across_users(make_server: ServerFactory) -> None:
    server = make_server(env={"CSSCERT_RATE_LIMIT_LOGIN_ADDRESS": "5/600"})
    accounts = [new_account(server, password=True, prefix=f"spray{i}") for i in range(3)]
    statuses = [_login(server, accounts[i % 3], "not-the-password").status_code for i in range(7)]
    assert statuses == [401] * 5 + [429, 429], statuses
    assert "this address" in _login(server, accounts[0], "x" * 9).json()["error"]["message"]


def test_the_address_limit_is_looser_than_the_user_limit_by_default() -> None:
    from csscert.limits import parse_rate
    from csscert.settings import Settings

    settings = Settings()
    per_user, per_address = (
        parse_rate(settings.rate_limit_login_user),
        parse_rate(settings.rate_limit_login_address),
    )
    assert per_address[0] > per_user[0] and per_address[0] / per_address[1] > per_user[0] / per_user[1]


def test_one_credential_past_its_limit_gets_apigw_0308_and_others_do_not(make_server: ServerFactory) -> None:
    server = make_server(env={"CSSCERT_RATE_LIMIT_CREDENTIAL": "20/600"})
    busy, other = server.token(), server.token()
    with httpx.Client(timeout=10) as client:
        answers = [client.get(server.download_url(), headers={"X-Auth-Token": busy}) for _ in range(25)]
        assert [a.status_code for a in answers] == [200] * 20 + [429] * 5
        body = answers[-1].json()
        assert body["error_code"] == body["errCode"] == "APIGW.0308"
        assert body["request_id"] == answers[-1].headers["x-request-id"]
        assert int(answers[-1].headers["retry-after"]) >= 1
        assert client.get(server.download_url(), headers={"X-Auth-Token": other}).status_code == 200
        # The token routes count against the same credential, in Keystone's shape.
        check = client.get(
            f"{server.url}/v3/auth/tokens", headers={"X-Auth-Token": busy, "X-Subject-Token": busy}
        )
        assert check.status_code == 429 and check.json()["error"]["code"] == 429
        assert "retry-after" in check.headers


def test_rate_limits_off_lets_every_attempt_through(make_server: ServerFactory) -> None:
    server = make_server(serve_args=["--rate-limits", "off"], env={"CSSCERT_RATE_LIMIT_CREDENTIAL": "2/600"})
    account = new_account(server, password=True, prefix="open")
    assert {_login(server, account, f"wrong-{i}-pass").status_code for i in range(15)} == {401}
    token = server.token()
    assert {
        httpx.get(server.download_url(), headers={"X-Auth-Token": token}).status_code for _ in range(5)
    } == {200}


def test_rate_limits_are_validated_with_a_clear_error(guarded: CsscertServer) -> None:
    env = {**guarded.process_env(), "CSSCERT_RATE_LIMIT_LOGIN_USER": "ten per minute"}
    done = subprocess.run(
        [sys.executable, "-m", "csscert", "--data-dir", str(guarded.data_dir), "project", "list"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == 1
    assert "rate_limit_login_user" in done.stderr and "N/SECONDS" in done.stderr
