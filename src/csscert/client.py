"""Client side of the API, for ``csscert download`` and ``csscert verify``.

``download`` goes through the real HTTP API exactly as the official clients do (token or
SDK-HMAC-SHA256 signature); ``verify`` opens a TLS connection and checks the chain and name.
"""

from __future__ import annotations

import hashlib
import socket
import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from csscert import signing

__all__ = ["DownloadError", "DownloadResult", "VerifyResult", "download", "verify"]


class DownloadError(RuntimeError):
    """The API refused the download; the message carries its status, code and text."""


@dataclass(frozen=True)
class DownloadResult:
    body: bytes
    content_type: str
    filename: str | None
    fingerprints: list[str]
    request_id: str | None


def _fingerprints(body: bytes) -> list[str]:
    certs: list[x509.Certificate] = []
    try:
        certs = x509.load_pem_x509_certificates(body)
    except ValueError:
        try:
            certs = [x509.load_der_x509_certificate(body)]
        except ValueError:
            return []
    return [c.fingerprint(hashes.SHA256()).hex(":").upper() for c in certs]


def download(
    endpoint: str,
    project_id: str,
    *,
    token: str | None = None,
    access_key: str | None = None,
    secret_key: str | None = None,
    fmt: str | None = None,
    password: str | None = None,
    verify_tls: bool | str = True,
    timeout: float = 30.0,
) -> DownloadResult:
    base = endpoint.rstrip("/")
    url = f"{base}/v1.0/{project_id}/cer/download"
    params = {key: value for key, value in (("format", fmt), ("password", password)) if value}
    if params:
        url += "?" + "&".join(f"{k}={signing.quote_component(v)}" for k, v in sorted(params.items()))
    headers: dict[str, str] = {"Content-Type": "application/json"}
    if token:
        headers["X-Auth-Token"] = token
    elif access_key and secret_key:
        headers["X-Project-Id"] = project_id
        headers = signing.sign_request(access_key, secret_key, "GET", url, headers)
    else:
        raise DownloadError("give a token, or an access key and secret key")
    with httpx.Client(verify=verify_tls, timeout=timeout) as client:
        response = client.get(url, headers=headers)
    if response.status_code != 200:
        try:
            payload = response.json()
            detail = f"{payload.get('error_code')}: {payload.get('error_msg')}"
        except ValueError:
            detail = response.text[:200]
        raise DownloadError(f"HTTP {response.status_code} {detail}")
    disposition = response.headers.get("content-disposition", "")
    filename = None
    if 'filename="' in disposition:
        filename = disposition.split('filename="', 1)[1].split('"', 1)[0]
    return DownloadResult(
        body=response.content,
        content_type=response.headers.get("content-type", ""),
        filename=filename,
        fingerprints=_fingerprints(response.content),
        request_id=response.headers.get("x-request-id"),
    )


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    host: str
    port: int
    reason: str
    subject: str | None = None
    issuer: str | None = None
    fingerprint: str | None = None


def verify(url: str, cafile: str, *, timeout: float = 10.0) -> VerifyResult:
    """Connect to ``https://HOST:PORT`` trusting only ``cafile``; check chain and hostname."""
    parts = urlsplit(url if "://" in url else f"https://{url}")
    host = parts.hostname or ""
    port = parts.port or 443
    context = ssl.create_default_context(cafile=cafile)
    context.check_hostname = True
    context.verify_mode = ssl.CERT_REQUIRED
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock, context.wrap_socket(
            sock, server_hostname=host
        ) as tls:
            der = tls.getpeercert(binary_form=True)
    except ssl.SSLCertVerificationError as exc:
        return VerifyResult(False, host, port, f"certificate verification failed: {exc.verify_message}")
    except ssl.SSLError as exc:
        return VerifyResult(False, host, port, f"TLS handshake failed: {exc.reason or exc}")
    except OSError as exc:
        return VerifyResult(False, host, port, f"could not connect: {exc}")
    if der is None:
        return VerifyResult(False, host, port, "the server sent no certificate")
    cert = x509.load_der_x509_certificate(der)
    return VerifyResult(
        True,
        host,
        port,
        "the chain verifies against the CA file and the name matches",
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        fingerprint=hashlib.sha256(der).hexdigest(),
    )
