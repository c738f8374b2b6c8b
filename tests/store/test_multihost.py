"""Two hosts of one deployment: two ``csscert serve`` with separate data directories on one
PostgreSQL database. What one host (or the CLI beside it) writes, the other must act on within the
bound, pushed by NOTIFY (the revision poll runs every 2 s, so a delay under 1 s is the push).

Each wait is measured from the moment the write was acknowledged (the 204, or the CLI's exit) and
printed (``pytest -rP``); the benchmark (bench/) measures the p99 < 100 ms target, these tests
only hold every delay under 1 s on a shared machine.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from server_helpers import (
    download,
    login,
    login_token,
    revoke,
    servers_on,
    signed_download,
    status_within,
)
from store_helpers import ADMIN_URL, create_database, needs_postgres
from support.server import CsscertServer

pytestmark = [needs_postgres, pytest.mark.slow]

BOUND = 1.0  # seconds; the target (p99 < 100 ms) is the benchmark's to measure


@pytest.fixture(scope="module")
def hosts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[CsscertServer, CsscertServer]]:
    assert ADMIN_URL
    with servers_on(create_database(ADMIN_URL), tmp_path_factory.mktemp("multihost")) as (a, b):
        yield a, b


@pytest.fixture
def on_b() -> Iterator[httpx.Client]:
    """Kept-alive connections for the polls of B, so a delay measures B, not connection set-up."""
    with httpx.Client() as client:
        yield client


def _seen_within_bound(
    what: str, since: float, status: int, request: Callable[..., httpx.Response], *args: Any, **kwargs: Any
) -> float:
    """Poll until ``request`` answers ``status``; the delay counts from ``since`` (the moment the
    write was acknowledged) and must stay under the bound."""
    seen = status_within(status, BOUND, request, *args, **kwargs)
    delay = time.monotonic() - since
    assert seen is not None and delay < BOUND, f"{what}: not seen on the other host within {BOUND} s"
    print(f"{what}: seen on the other host {delay * 1000:.1f} ms after the write was acknowledged")
    return delay


def test_a_token_revoked_on_one_host_is_refused_on_the_other_within_the_bound(
    hosts: tuple[CsscertServer, CsscertServer], on_b: httpx.Client
) -> None:
    a, b = hosts
    boot = a.bootstrap
    delays = []
    for _ in range(5):
        token = login_token(a, boot["user_name"], boot["password"], a.project_id)
        assert download(b, token, a.project_id).status_code == 200  # B now holds an accepted verdict for it
        assert revoke(a, token).status_code == 204
        acknowledged = time.monotonic()
        delays.append(
            _seen_within_bound("revocation", acknowledged, 401, download, b, token, a.project_id, client=on_b)
        )
        assert download(a, token, a.project_id).status_code == 401  # and on the host that wrote it
    print(f"revocation delays (ms): {[round(d * 1000, 1) for d in delays]}")


@dataclass(frozen=True)
class Imported:
    name: str
    password: str
    access: str
    secret: str


def _import_user(host: CsscertServer, project_id: str, tmp_path: Path) -> Imported:
    """A user with a password and an AK/SK, granted ``project_id``: one ``csscert user import``."""
    name, password = f"mh-{secrets.token_hex(4)}", secrets.token_urlsafe(18)
    line = json.dumps({"name": name, "projects": [project_id], "password": password}) + "\n"
    credentials = tmp_path / f"{name}.jsonl"
    host.cli("user", "import", "-", "--credentials-out", str(credentials), input=line)
    key = json.loads(credentials.read_text())
    return Imported(name, password, key["access_key"], key["secret_key"])


def test_a_user_disabled_by_the_cli_on_one_host_is_refused_on_the_other_within_the_bound(
    hosts: tuple[CsscertServer, CsscertServer], on_b: httpx.Client, tmp_path: Path
) -> None:
    a, b = hosts
    user = _import_user(a, a.project_id, tmp_path)
    token = login_token(a, user.name, user.password, a.project_id)
    assert download(b, token, a.project_id, client=on_b).status_code == 200
    assert signed_download(b, user.access, user.secret, a.project_id, client=on_b).status_code == 200
    a.cli("user", "disable", user.name)
    acknowledged = time.monotonic()
    _seen_within_bound("user disable", acknowledged, 401, download, b, token, a.project_id, client=on_b)
    assert signed_download(b, user.access, user.secret, a.project_id).status_code == 401
    assert login(b, user.name, user.password, a.project_id).status_code == 401


def test_a_new_project_and_its_grant_are_usable_on_the_other_host_within_the_bound(
    hosts: tuple[CsscertServer, CsscertServer], on_b: httpx.Client, tmp_path: Path
) -> None:
    a, b = hosts
    boot = a.bootstrap
    name = f"mh-project-{secrets.token_hex(4)}"
    # B learns that no project of that name exists (a negative entry it must later drop).
    refused = login(b, boot["user_name"], boot["password"], project_name=f"{boot['region']}_{name}")
    assert refused.status_code == 401
    project = a.cli_json("project", "create", name)
    user = _import_user(a, project["id"], tmp_path)  # granted the new project, with an AK/SK
    acknowledged = time.monotonic()  # the last of these writes
    _seen_within_bound(
        "new project (and a user granted it)",
        acknowledged,
        201,
        login,
        b,
        user.name,
        user.password,
        project_name=project["name"],
        client=on_b,
    )
    token = login_token(a, user.name, user.password, project["id"])  # minted on A
    answer = download(b, token, project["id"], client=on_b)
    assert answer.status_code == 200, answer.text
    assert signed_download(b, user.access, user.secret, project["id"], client=on_b).status_code == 200


def test_a_new_user_is_accepted_on_the_other_host_at_once_and_never_refused(
    hosts: tuple[CsscertServer, CsscertServer], on_b: httpx.Client
) -> None:
    a, b = hosts
    name = f"mh-new-{secrets.token_hex(4)}"
    password = secrets.token_urlsafe(18)
    # B learns that the name does not exist yet (the old read model answered a new user's first
    # tokens with 401 "disabled or deleted" until its next rebuild).
    assert login(b, name, password, a.project_id, client=on_b).status_code == 401
    made = a.cli(
        "user", "create", name, "--project", a.project_id, "--password-stdin", "--json",
        input=password + "\n",
    )  # fmt: skip
    acknowledged = time.monotonic()
    token = login_token(a, name, password, a.project_id)  # minted by A through Keystone
    first = download(b, token, a.project_id, client=on_b)
    assert first.status_code == 200, f"B refused a new user's valid token: {first.text}"
    _seen_within_bound(
        "new user (password login by name)", acknowledged, 201, login, b, name, password, a.project_id,
        client=on_b,
    )  # fmt: skip
    key = a.cli_json("credential", "create", "--user", json.loads(made.stdout)["id"])
    answer = signed_download(b, key["access"], key["secret"], a.project_id, client=on_b)
    assert answer.status_code == 200, answer.text


def test_hosts_keep_their_own_data_directories(hosts: tuple[CsscertServer, CsscertServer]) -> None:
    a, b = hosts
    assert a.data_dir != b.data_dir
    assert (a.data_dir / "bootstrap-credentials.json").exists()
    assert not (b.data_dir / "bootstrap-credentials.json").exists()  # the data was bootstrapped once


def test_a_certificate_revoked_on_one_host_is_in_the_other_hosts_crl_within_the_bound(
    hosts: tuple[CsscertServer, CsscertServer], on_b: httpx.Client, tmp_path: Path
) -> None:
    """Each host derives and caches the CRL itself; NOTIFY drops B's cached CRL when A revokes."""
    from cryptography import x509

    a, b = hosts
    fingerprint = a.cli_json("ca", "show")["fingerprint_sha256"]
    path = f"/v1.0/crl/{fingerprint}.crl"
    issued = a.cli_json(
        "cert", "issue", "--name", f"mh-{secrets.token_hex(3)}", "--dns", "mh.x", "--out", str(tmp_path)
    )
    serial = int(issued["serial"], 16)
    before = x509.load_der_x509_crl(on_b.get(b.url + path).content)  # B caches its CRL
    assert before.get_revoked_certificate_by_serial_number(serial) is None
    a.cli("cert", "revoke", issued["serial"], "--reason", "keyCompromise")
    acknowledged = time.monotonic()
    while time.monotonic() - acknowledged < BOUND:
        crl = x509.load_der_x509_crl(on_b.get(b.url + path).content)
        if crl.get_revoked_certificate_by_serial_number(serial) is not None:
            break
        time.sleep(0.01)
    delay = time.monotonic() - acknowledged
    assert delay < BOUND, f"the revocation was not in the other host's CRL within {BOUND} s"
    print(f"CRL on the other host listed the revocation {delay * 1000:.1f} ms after the CLI returned")
