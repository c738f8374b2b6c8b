"""What the ACME server refuses, each with its RFC 8555 problem type (application/problem+json),
driven by a small client whose JWS are made by josepy (certbot's JOSE library): no EAB, a wrong
EAB MAC, a name outside policy, a failed challenge, a replayed nonce, a JWS signed by another
account; and the shapes every answer has (Replay-Nonce, Link index, no-store)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
from acme import jws as acme_jws
from cryptography.hazmat.primitives import serialization
from josepy.b64 import b64decode, b64encode
from josepy.jwa import ES256
from josepy.jwk import JWKEC
from support.acme import AcmeSetup, Client, http01_responder, new_key, obtain, problem, start_acme_server
from support.server import ServerFactory


@pytest.fixture(scope="module")
def acme(make_server: ServerFactory, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AcmeSetup]:
    setup = start_acme_server(make_server, tmp_path_factory.mktemp("acme-refusals"))
    # The project's issuance policy: loopback names only.
    setup.server.cli(
        "project", "policy", setup.server.project_id, "--allow-dns", "localhost", "--allow-ip", "127.0.0.0/8"
    )
    yield setup


@pytest.fixture
def client(acme: AcmeSetup) -> Client:
    """A client with an account of its own."""
    registered = Client(acme)
    assert registered.register(*acme.eab()).status_code == 201
    return registered


def test_the_directory_announces_that_external_account_binding_is_required(acme: AcmeSetup) -> None:
    directory = httpx.get(acme.directory, verify=acme.trust()).json()
    assert directory["meta"]["externalAccountRequired"] is True
    assert directory["newNonce"] == f"{acme.base}/new-nonce"
    unknown = httpx.get(acme.directory.replace(acme.server.project_id, "0" * 32), verify=acme.trust())
    assert unknown.status_code == 404 and problem(unknown) == "malformed"


def test_an_account_without_eab_is_refused(acme: AcmeSetup) -> None:
    anonymous = Client(acme)
    response = anonymous.post(f"{acme.base}/new-account", {"termsOfServiceAgreed": True}, use_jwk=True)
    assert response.status_code == 400 and problem(response) == "externalAccountRequired"
    assert response.headers["replay-nonce"]  # every answer carries a fresh nonce


def test_a_wrong_eab_mac_is_refused_and_the_key_stays_usable(acme: AcmeSetup) -> None:
    kid, hmac_key = acme.eab()
    wrong = b64encode(b"\x00" * 32).decode()
    intruder = Client(acme)
    refused = intruder.register(kid, wrong)
    assert refused.status_code == 403 and problem(refused) == "unauthorized"
    assert "MAC" in refused.json()["detail"]
    assert Client(acme).register(kid, hmac_key).status_code == 201


def test_an_eab_key_binds_one_account_only(acme: AcmeSetup) -> None:
    kid, hmac_key = acme.eab()
    assert Client(acme).register(kid, hmac_key).status_code == 201
    second = Client(acme).register(kid, hmac_key)
    assert second.status_code == 403 and problem(second) == "unauthorized"


def test_a_revoked_eab_key_opens_nothing_and_its_account_is_deactivated(acme: AcmeSetup) -> None:
    kid, hmac_key = acme.eab()
    holder = Client(acme)
    assert holder.register(kid, hmac_key).status_code == 201
    acme.server.cli("acme", "eab", "revoke", kid)
    listed = {row["kid"]: row for row in acme.server.cli_json("acme", "eab", "list")}
    assert listed[kid]["revoked_at"] and "hmac" not in json.dumps(listed[kid]).lower()
    refused = holder.order("localhost")
    assert refused.status_code == 403 and problem(refused) == "unauthorized"


def test_a_name_outside_policy_is_a_rejected_identifier(client: Client) -> None:
    outside = client.order("db.example.com")  # a valid name, but not one the project's policy allows
    assert outside.status_code == 400 and problem(outside) == "rejectedIdentifier"
    assert "db.example.com" in outside.json()["detail"]
    ip = client.post(f"{client.setup.base}/new-order", {"identifiers": [{"type": "ip", "value": "10.1.2.3"}]})
    assert ip.status_code == 400 and problem(ip) == "rejectedIdentifier"
    for name in ("*.example.com", "bad_name!", "127.0.0.1"):  # wildcard, invalid, an IP typed as dns
        response = client.order(name)
        assert response.status_code == 400 and problem(response) == "rejectedIdentifier", name
    assert client.order("localhost").status_code == 201


def test_only_certificate_issuers_get_eab_keys_and_orders(acme: AcmeSetup) -> None:
    project = acme.server.project_id
    acme.server.cli("user", "create", "acme-ops", "--project", project)
    refused = acme.server.cli(
        "acme", "eab", "create", "--user", "acme-ops", "--project", project, check=False
    )
    assert refused.returncode == 1 and "certificate-issuer" in refused.stderr
    acme.server.cli("user", "grant", "acme-ops", "--role", "certificate-issuer")
    holder = Client(acme)
    assert holder.register(*acme.eab("acme-ops")).status_code == 201
    assert holder.order("localhost").status_code == 201
    acme.server.cli("user", "revoke-grant", "acme-ops", "--role", "certificate-issuer")
    withdrawn = holder.order("localhost")
    assert withdrawn.status_code == 403 and problem(withdrawn) == "unauthorized"
    assert "certificate-issuer" in withdrawn.json()["detail"]


def test_a_replayed_nonce_is_a_bad_nonce_with_a_fresh_one(client: Client, acme: AcmeSetup) -> None:
    nonce = client.nonce()
    url = f"{acme.base}/new-order"
    first = client.post(url, {"identifiers": [{"type": "dns", "value": "localhost"}]}, nonce=nonce)
    assert first.status_code == 201
    replay = client.post(url, {"identifiers": [{"type": "dns", "value": "localhost"}]}, nonce=nonce)
    assert replay.status_code == 400 and problem(replay) == "badNonce"
    fresh = replay.headers["replay-nonce"]
    assert fresh and fresh != nonce
    retried = client.post(url, {"identifiers": [{"type": "dns", "value": "localhost"}]}, nonce=fresh)
    assert retried.status_code == 201


def test_a_jws_signed_by_another_account_is_unauthorized(client: Client, acme: AcmeSetup) -> None:
    other = Client(acme)
    assert other.register(*acme.eab()).status_code == 201
    # The first account's kid, but the other account's key: the signature does not verify.
    forged = client.post(f"{acme.base}/new-order", {"identifiers": [{"type": "dns", "value": "localhost"}]},
                         key=other.key)  # fmt: skip
    assert forged.status_code == 403 and problem(forged) == "unauthorized"
    # Signed properly by the other account, but acting on the first one's order.
    order_url = client.order("localhost").headers["location"]
    foreign = other.post(order_url, None)
    assert foreign.status_code == 404 and problem(foreign) == "malformed"


def test_a_failed_challenge_invalidates_the_authorization_and_the_order(
    client: Client, acme: AcmeSetup
) -> None:
    order = client.order("localhost")
    authz_url = order.json()["authorizations"][0]
    authz = client.post(authz_url, None).json()
    http01 = next(c for c in authz["challenges"] if c["type"] == "http-01")
    answered = client.post(http01["url"], {})  # nothing listens on the validation port
    assert answered.status_code == 200
    assert answered.json()["status"] == "invalid"
    assert answered.json()["error"]["type"] == "urn:ietf:params:acme:error:connection"
    assert client.post(authz_url, None).json()["status"] == "invalid"
    failed = client.post(order.headers["location"], None).json()
    assert failed["status"] == "invalid" and failed["error"]["type"].endswith(":connection")
    finalize = client.post(failed["finalize"], {"csr": "AA"})
    assert finalize.status_code == 403 and problem(finalize) == "orderNotReady"


def test_the_jws_url_must_be_the_request_url(client: Client, acme: AcmeSetup) -> None:
    body = client.signed(f"{acme.base}/new-order", {"identifiers": [{"type": "dns", "value": "localhost"}]})
    response = client.http.post(
        f"{acme.base}/key-change", content=body, headers={"content-type": "application/jose+json"}
    )
    assert response.status_code == 401 and problem(response) == "unauthorized"


def test_unsigned_or_wrongly_typed_requests_are_malformed(client: Client, acme: AcmeSetup) -> None:
    url = f"{acme.base}/new-order"
    not_jose = client.http.post(url, content=b"{}", headers={"content-type": "application/json"})
    assert not_jose.status_code == 415 and problem(not_jose) == "malformed"
    garbage = client.http.post(url, content=b"\xff" * 100, headers={"content-type": "application/jose+json"})
    assert garbage.status_code == 400 and problem(garbage) == "malformed"
    header = {"alg": "HS256", "kid": client.kid, "nonce": client.nonce(), "url": url}
    protected = b64encode(json.dumps(header).encode()).decode()
    hs256 = {"protected": protected, "payload": "", "signature": "AA"}
    weak = client.http.post(url, content=json.dumps(hs256), headers={"content-type": "application/jose+json"})
    assert weak.status_code == 400 and problem(weak) == "badSignatureAlgorithm"
    get = client.http.get(url)
    assert get.status_code == 405 and problem(get) == "malformed"


def test_key_change_moves_the_account_to_a_new_key(client: Client, acme: AcmeSetup) -> None:
    new = new_key()
    url = f"{acme.base}/key-change"
    # The inner JWS is signed by the new key and carries no nonce (RFC 8555 §7.3.5).
    inner = acme_jws.JWS.sign(
        json.dumps({"account": client.kid, "oldKey": client.key.public_key().to_json()}).encode(),
        key=new, alg=ES256, nonce=None, url=url, kid=None,
    )  # fmt: skip
    changed = client.post(url, json.loads(inner.json_dumps()))
    assert changed.status_code == 200, changed.text
    old_key = client.order("localhost")
    assert old_key.status_code == 403 and problem(old_key) == "unauthorized"
    client.key = new
    assert client.order("localhost").status_code == 201


def test_orders_are_listed_for_their_account(client: Client, acme: AcmeSetup) -> None:
    made = client.order("localhost").headers["location"]
    listed = client.post(f"{client.kid}/orders", None)
    assert listed.status_code == 200 and made in listed.json()["orders"]


def test_no_eab_secret_is_stored_in_clear(acme: AcmeSetup) -> None:
    kid, hmac_key = acme.eab()
    raw = b64decode(hmac_key)
    database = (acme.server.data_dir / "csscert.db").read_bytes()
    wal = acme.server.data_dir / "csscert.db-wal"
    everything = database + (wal.read_bytes() if wal.exists() else b"")
    assert kid.encode() in everything
    assert hmac_key.encode() not in everything and raw not in everything


def test_each_client_address_is_rate_limited_with_retry_after(make_server: ServerFactory) -> None:
    server = make_server(env={"CSSCERT_RATE_LIMIT_CREDENTIAL": "3/60"})
    url = f"{server.url}/acme/{server.project_id}/new-nonce"
    statuses = [httpx.head(url, timeout=10).status_code for _ in range(3)]
    assert statuses == [200, 200, 200]
    limited = httpx.get(url, timeout=10)
    assert limited.status_code == 429 and problem(limited) == "rateLimited"
    assert int(limited.headers["retry-after"]) >= 1


def test_revocation_by_the_certificate_key_or_the_ordering_account_only(
    client: Client, acme: AcmeSetup
) -> None:
    with http01_responder(acme.http_port) as (_, answers):
        leaf, key = obtain(client, answers)
        second, _ = obtain(client, answers)
    der = b64encode(leaf.public_bytes(serialization.Encoding.DER)).decode()
    url = f"{acme.base}/revoke-cert"
    stranger = Client(acme)
    assert stranger.register(*acme.eab()).status_code == 201
    refused = stranger.post(url, {"certificate": der})
    assert refused.status_code == 403 and problem(refused) == "unauthorized"
    bad_reason = client.post(url, {"certificate": der, "reason": 7})
    assert bad_reason.status_code == 400 and problem(bad_reason) == "badRevocationReason"
    by_key = client.post(url, {"certificate": der, "reason": 1}, key=JWKEC(key=key), use_jwk=True)
    assert by_key.status_code == 200, by_key.text
    again = client.post(url, {"certificate": der})
    assert again.status_code == 400 and problem(again) == "alreadyRevoked"
    other = b64encode(second.public_bytes(serialization.Encoding.DER)).decode()
    assert client.post(url, {"certificate": other}).status_code == 200  # the ordering account
    statuses = {row["serial"]: row["status"] for row in acme.server.cli_json("cert", "list", "--all")}
    assert (
        statuses[format(leaf.serial_number, "x")] == statuses[format(second.serial_number, "x")] == "revoked"
    )


def test_an_account_acts_only_in_its_own_project(client: Client, acme: AcmeSetup) -> None:
    other_project = acme.server.cli_json("project", "create", f"{acme.server.bootstrap['region']}_other")[
        "id"
    ]
    url = f"https://localhost:{acme.server.port}/acme/{other_project}/new-order"
    assert client.kid is not None
    foreign_kid = client.kid.replace(acme.server.project_id, other_project)
    payload = {"identifiers": [{"type": "dns", "value": "localhost"}]}
    response = client.post(url, payload, kid=foreign_kid)
    assert response.status_code == 400 and problem(response) == "accountDoesNotExist"
