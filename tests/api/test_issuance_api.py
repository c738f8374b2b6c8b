"""The issuance API on the real server: CSRs from ``openssl req`` and ``cryptography`` signed with a
token and with AK/SK (the official SDK signer), the policy and profile refusals (400 naming the
offending name), the role check (403), paged listing, revocation and the CRL it feeds."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from support.accounts import Account, new_account
from support.http import assert_css_error, download
from support.issuance import (
    certificates_url,
    crl_url_of,
    crypto_csr,
    forged,
    openssl_csr,
    revoke_with_token,
    sign_with_aksk,
    sign_with_token,
)
from support.server import CsscertServer
from support.signing import sdk_sign


@dataclass(frozen=True)
class Issuer:
    account: Account
    token: str


@pytest.fixture(scope="module")
def issuer(server: CsscertServer, account: Account) -> Issuer:
    """The module's account with the role certificate-issuer, and a token for its project."""
    server.cli("user", "grant", account.user, "--role", "certificate-issuer")
    return Issuer(account, server.token(account.user, account.project_id))


@pytest.fixture
def work(tmp_path: Path) -> Path:
    return tmp_path


def test_an_openssl_req_csr_is_signed_over_the_api_with_a_token(
    server: CsscertServer, issuer: Issuer, work: Path
) -> None:
    csr = openssl_csr(work, "api-node-1", dns=("api-node-1.search.internal",), ips=("10.1.0.1",))
    response = sign_with_token(server, issuer.token, issuer.account.project_id, csr)
    assert response.status_code == 201, response.text
    body = response.json()
    cert = x509.load_pem_x509_certificate(body["certificate"].encode())
    assert format(cert.serial_number, "x") == body["serial"]
    assert body["name"] == "api-node-1" and body["profile"] == "node" and body["status"] == "valid"
    assert body["sans"] == ["api-node-1.search.internal", "10.1.0.1"]
    assert body["origin"] == "api"
    assert (
        response.headers["location"]
        == f"/v1.0/{issuer.account.project_id}/csscert/certificates/{body['serial']}"
    )
    # The certificate carries its CA's CRL URL, and the chain verifies against the CA bundle.
    ca = x509.load_pem_x509_certificate(body["ca_bundle"].encode())
    assert (
        crl_url_of(body["certificate"].encode())
        == f"{server.url}/v1.0/crl/{ca.fingerprint(hashes.SHA256()).hex()}.crl"
    )
    (work / "ca.pem").write_text(body["ca_bundle"])
    (work / "node.pem").write_text(body["certificate"])
    verify = subprocess.run(
        ["openssl", "verify", "-CAfile", str(work / "ca.pem"), str(work / "node.pem")],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert verify.returncode == 0, verify.stderr
    # GET by serial gives the same certificate back.
    got = httpx.get(
        certificates_url(server, issuer.account.project_id, body["serial"]),
        headers={"X-Auth-Token": issuer.token},
        timeout=10,
    )
    assert got.status_code == 200 and got.json()["certificate"] == body["certificate"]
    # The audit trail names who asked.
    trail = server.cli_json("audit", "list")
    issued = [r for r in trail if r["action"] == "cert.issue" and body["serial"] in r["target"]]
    assert issued and issued[0]["actor"] == f"user:{issuer.account.user_id}"


def test_a_cryptography_csr_is_signed_with_aksk_by_the_sdk_signer(
    server: CsscertServer, issuer: Issuer
) -> None:
    csr = crypto_csr("api-node-2", dns=("api-node-2.search.internal",))
    account = issuer.account
    response = sign_with_aksk(
        server, account.access, account.secret, account.project_id, csr, validity_days=30
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["key_type"] == "p256" and body["name"] == "api-node-2"
    cert = x509.load_pem_x509_certificate(body["certificate"].encode())
    assert (cert.not_valid_after_utc - cert.not_valid_before_utc).days in (30, 29)
    # A body changed after signing is refused: the signature covers it.
    body_bytes = json.dumps({"csr": csr.pem.decode()}).encode()
    url, headers = sdk_sign(
        account.access, account.secret, "POST", certificates_url(server, account.project_id),
        {"Content-Type": "application/json"}, body_bytes,
    )  # fmt: skip
    changed = body_bytes.replace(b"node", b"nodf", 1) if b"node" in body_bytes else body_bytes + b" "
    assert_css_error(httpx.post(url, content=changed, headers=headers, timeout=10), 401, "APIGW.0301")


@pytest.fixture(scope="module")
def fenced(server: CsscertServer) -> Iterator[Issuer]:
    """A project with a policy: *.fenced.internal, 10.9.0.0/16, at most 30 days."""
    account = new_account(server, prefix="fenced")
    server.cli("user", "grant", account.user, "--role", "certificate-issuer")
    server.cli(
        "project", "policy", account.project_id,
        "--allow-dns", "*.fenced.internal", "--allow-ip", "10.9.0.0/16", "--max-days", "30",
    )  # fmt: skip
    yield Issuer(account, server.token(account.user, account.project_id))


def test_a_csr_inside_the_policy_is_signed_and_gets_the_policys_validity(
    server: CsscertServer, fenced: Issuer
) -> None:
    csr = crypto_csr("in-1", dns=("in-1.fenced.internal",), ips=("10.9.1.1",))
    response = sign_with_token(server, fenced.token, fenced.account.project_id, csr)
    assert response.status_code == 201, response.text
    cert = x509.load_pem_x509_certificate(response.json()["certificate"].encode())
    assert (cert.not_valid_after_utc - cert.not_valid_before_utc).days <= 30  # the default, capped


@pytest.mark.parametrize(
    ("case", "named"),
    [
        ("name outside the pattern", "a.b.fenced.internal"),
        ("other domain", "db.other.internal"),
        ("ip outside the cidr", "10.10.0.1"),
        ("too many days", "31 days"),
        ("profile the csr cannot have", "serverAuth"),
        ("node without names", "names no DNS name"),
        ("forged signature", "signature does not verify"),
    ],
)
def test_refusals_answer_400_naming_what_is_wrong(
    server: CsscertServer, fenced: Issuer, case: str, named: str
) -> None:
    fields: dict[str, object] = {}
    if case == "name outside the pattern":
        csr = crypto_csr("x", dns=("ok.fenced.internal", "a.b.fenced.internal"))
    elif case == "other domain":
        csr = crypto_csr("x", dns=("db.other.internal",))
    elif case == "ip outside the cidr":
        csr = crypto_csr("x", dns=("ok.fenced.internal",), ips=("10.10.0.1",))
    elif case == "too many days":
        csr = crypto_csr("x", dns=("ok.fenced.internal",))
        fields["validity_days"] = 31
    elif case == "profile the csr cannot have":
        csr = crypto_csr("x", server_auth=True)
        fields["profile"] = "client"
    elif case == "node without names":
        csr = crypto_csr("x")
    else:
        csr = forged(crypto_csr("good-name", dns=("ok.fenced.internal",)), "good-name", "evil-name")
    response = sign_with_token(server, fenced.token, fenced.account.project_id, csr, **fields)
    body = assert_css_error(response, 400, "CSS.0001")
    assert named in body["error_msg"]


def test_a_download_only_user_gets_403_and_can_still_download(server: CsscertServer, issuer: Issuer) -> None:
    plain = new_account(server, project_id=issuer.account.project_id, prefix="plain")
    token = server.token(plain.user, plain.project_id)
    csr = crypto_csr("nope", dns=("nope.search.internal",))
    body = assert_css_error(sign_with_token(server, token, plain.project_id, csr), 403, "CSS.0015")
    assert "certificate-issuer" in body["error_msg"]
    assert_css_error(
        sign_with_aksk(server, plain.access, plain.secret, plain.project_id, csr), 403, "CSS.0015"
    )
    listing = httpx.get(
        certificates_url(server, plain.project_id), headers={"X-Auth-Token": token}, timeout=10
    )
    assert_css_error(listing, 403, "CSS.0015")
    assert download(server, token, project=plain.project_id).status_code == 200
    # Granted the role, the same token may issue at once; revoked, it may not.
    server.cli("user", "grant", plain.user, "--role", "certificate-issuer")
    assert sign_with_token(server, token, plain.project_id, csr).status_code == 201
    server.cli("user", "revoke-grant", plain.user, "--role", "certificate-issuer")
    assert_css_error(sign_with_token(server, token, plain.project_id, csr), 403, "CSS.0015")


def test_another_projects_issuer_gets_403_and_unauthenticated_callers_401(
    server: CsscertServer, issuer: Issuer, fenced: Issuer
) -> None:
    csr = crypto_csr("cross", dns=("cross.fenced.internal",))
    assert_css_error(sign_with_token(server, issuer.token, fenced.account.project_id, csr), 403, "CSS.0015")
    anonymous = httpx.post(certificates_url(server, fenced.account.project_id), json={"csr": "x"}, timeout=10)
    assert_css_error(anonymous, 401, "APIGW.0301")


def _list(server: CsscertServer, who: Issuer, **query: str) -> httpx.Response:
    return httpx.get(
        certificates_url(server, who.account.project_id),
        params=query,
        headers={"X-Auth-Token": who.token},
        timeout=10,
    )


def test_the_listing_is_paged_and_filtered(server: CsscertServer) -> None:
    account = new_account(server, prefix="paged")
    server.cli("user", "grant", account.user, "--role", "certificate-issuer")
    who = Issuer(account, server.token(account.user, account.project_id))
    serials = []
    for index in range(3):
        made = sign_with_token(
            server, who.token, account.project_id, crypto_csr(f"p{index}", dns=(f"p{index}.x.internal",))
        )
        assert made.status_code == 201, made.text
        serials.append(made.json()["serial"])
    first = _list(server, who, limit="2").json()
    assert [c["serial"] for c in first["certificates"]] == serials[:2] and first["next_marker"] == serials[1]
    assert "certificate" not in first["certificates"][0]  # listings carry no PEM
    rest = _list(server, who, limit="2", marker=first["next_marker"]).json()
    assert [c["serial"] for c in rest["certificates"]] == serials[2:] and rest["next_marker"] is None
    assert [c["serial"] for c in _list(server, who, name="p1").json()["certificates"]] == [serials[1]]
    revoked = revoke_with_token(server, who.token, account.project_id, serials[0], "cessationOfOperation")
    assert revoked.status_code == 200, revoked.text
    assert [c["serial"] for c in _list(server, who, status="revoked").json()["certificates"]] == [serials[0]]
    assert [c["serial"] for c in _list(server, who, status="valid").json()["certificates"]] == serials[1:]
    for bad in ({"limit": "0"}, {"limit": "1001"}, {"status": "lost"}, {"color": "red"}):
        assert_css_error(_list(server, who, **bad), 400, "CSS.0001")
    assert_css_error(_list(server, who, marker="ffff"), 404, "CSS.0016")


def test_revocation_is_listed_in_the_cas_crl_with_its_reason(server: CsscertServer, issuer: Issuer) -> None:
    project = issuer.account.project_id
    made = sign_with_token(
        server, issuer.token, project, crypto_csr("gone-1", dns=("gone-1.search.internal",))
    )
    body = made.json()
    assert_css_error(
        revoke_with_token(server, issuer.token, project, body["serial"], "sideways"), 400, "CSS.0001"
    )
    assert_css_error(
        revoke_with_token(server, issuer.token, project, "abc123", "keyCompromise"), 404, "CSS.0016"
    )
    revoked = revoke_with_token(server, issuer.token, project, body["serial"], "keyCompromise")
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["status"] == "revoked" and revoked.json()["revocation_reason"] == "keyCompromise"
    again = revoke_with_token(server, issuer.token, project, body["serial"], "keyCompromise")
    assert "already revoked" in assert_css_error(again, 400, "CSS.0001")["error_msg"]
    crl_response = httpx.get(crl_url_of(body["certificate"].encode()), timeout=10)
    assert crl_response.status_code == 200
    assert crl_response.headers["content-type"] == "application/pkix-crl"
    max_age = int(crl_response.headers["cache-control"].split("max-age=")[1])
    crl = x509.load_der_x509_crl(crl_response.content)
    assert crl.next_update_utc is not None and crl.last_update_utc is not None
    assert 0 < max_age <= (crl.next_update_utc - crl.last_update_utc).total_seconds()
    ca = x509.load_pem_x509_certificate(body["ca_bundle"].encode())
    public_key = ca.public_key()
    assert isinstance(public_key, rsa.RSAPublicKey)
    assert crl.is_signature_valid(public_key) and crl.issuer == ca.subject
    entry = crl.get_revoked_certificate_by_serial_number(int(body["serial"], 16))
    assert entry is not None
    assert (
        entry.extensions.get_extension_for_class(x509.CRLReason).value.reason
        is x509.ReasonFlags.key_compromise
    )
    # openssl reads it too, and a conditional GET answers 304.
    text = subprocess.run(
        ["openssl", "crl", "-inform", "DER", "-noout", "-text"], input=crl_response.content,
        capture_output=True, timeout=30,
    ).stdout.decode()  # fmt: skip
    assert body["serial"].upper() in text and "Key Compromise" in text
    again_crl = httpx.get(
        crl_url_of(body["certificate"].encode()),
        headers={"If-None-Match": crl_response.headers["etag"]},
        timeout=10,
    )
    assert again_crl.status_code == 304
    trail = server.cli_json("audit", "list")
    assert any(
        r["action"] == "cert.revoke"
        and body["serial"] in r["target"]
        and r["actor"] == f"user:{issuer.account.user_id}"
        for r in trail
    )


def test_unknown_crls_are_404_and_the_route_is_public(server: CsscertServer) -> None:
    assert_css_error(httpx.get(f"{server.url}/v1.0/crl/{'0' * 64}.crl", timeout=10), 404, "CSS.0016")
    assert_css_error(httpx.get(f"{server.url}/v1.0/crl/zz.crl", timeout=10), 404, "CSS.0016")
    fingerprint = server.cli_json("ca", "show")["fingerprint_sha256"]
    response = httpx.head(f"{server.url}/v1.0/crl/{fingerprint}.crl", timeout=10)
    assert response.status_code == 200 and int(response.headers["content-length"]) > 100


def test_bodies_must_be_json_objects_with_known_fields(server: CsscertServer, issuer: Issuer) -> None:
    url = certificates_url(server, issuer.account.project_id)
    headers = {"X-Auth-Token": issuer.token}
    for content in (b"", b"[]", b"{", json.dumps({"csr": 1}).encode(), json.dumps({"cert": "x"}).encode()):
        assert_css_error(httpx.post(url, content=content, headers=headers, timeout=10), 400, "CSS.0001")
    assert_css_error(
        sign_with_token(server, issuer.token, issuer.account.project_id, b"not a csr"), 400, "CSS.0001"
    )
