"""A revocation reaches every worker's CRL at once: two workers serve CRLs from their own caches;
after `csscert cert revoke` returns, every CRL any worker answers lists the serial (the change
feed drops the cached CRL before the next request), with a larger CRL number."""

from __future__ import annotations

import httpx
from cryptography import x509
from support.server import ServerFactory


def _fetch(url: str) -> x509.CertificateRevocationList:
    # A new connection per request, so the kernel spreads them over both workers.
    with httpx.Client(timeout=10) as client:
        response = client.get(url, headers={"Connection": "close"})
    assert response.status_code == 200
    return x509.load_der_x509_crl(response.content)


def test_every_worker_serves_the_revocation_from_the_next_request_on(make_server: ServerFactory) -> None:
    server = make_server(serve_args=["--workers", "2"])
    fingerprint = server.cli_json("ca", "show")["fingerprint_sha256"]
    url = f"{server.url}/v1.0/crl/{fingerprint}.crl"
    out = server.data_dir.parent / "fresh-out"
    serials = [
        server.cli_json("cert", "issue", "--name", f"w{i}", "--dns", f"w{i}.x", "--out", str(out))["serial"]
        for i in range(2)
    ]
    before = [_fetch(url) for _ in range(12)]  # both workers now hold a cached CRL
    assert all(len(list(crl)) == 0 for crl in before)
    numbers = {crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number for crl in before}
    assert len(numbers) == 1  # the workers agree on the CRL they derive
    for serial in serials:
        server.cli("cert", "revoke", serial, "--reason", "keyCompromise")
        after = [_fetch(url) for _ in range(12)]
        for crl in after:
            assert crl.get_revoked_certificate_by_serial_number(int(serial, 16)) is not None
            number = crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
            assert number > max(numbers)
        numbers = {crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number for crl in after}
        assert len(numbers) == 1
