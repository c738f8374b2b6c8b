"""The first thing a newcomer does: start, download, compare with `csscert ca show`."""

from __future__ import annotations

import hashlib

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from conftest import CsscertServer


def test_download_is_the_ca_that_ca_show_reports(server: CsscertServer, admin_token: str) -> None:
    response = httpx.get(server.download_url(), headers={"X-Auth-Token": admin_token})
    assert response.status_code == 200, response.text
    certs = x509.load_pem_x509_certificates(response.content)
    shown = server.cli_json("ca", "show")
    assert certs[0].fingerprint(hashes.SHA256()).hex() == shown["fingerprint_sha256"]
    assert response.headers["content-type"] == "application/octet-stream"
    assert response.headers["content-disposition"] == 'attachment; filename="CloudSearchService.cer"'
    assert response.headers["etag"] == f'"{hashlib.sha256(response.content).hexdigest()}"'
