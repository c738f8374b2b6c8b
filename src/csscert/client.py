"""Client side of the API, for ``csscert download`` and ``csscert verify``.

``download`` goes through the real HTTP API exactly as the official clients do (token or
SDK-HMAC-SHA256 signature); ``verify`` opens a TLS connection and checks the chain and name.
"""

from __future__ import annotations

import json
import socket
import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.serialization import pkcs7, pkcs12

from csscert import signing
from csscert.errors import CsscertError

__all__ = ["DownloadError", "DownloadResult", "VerifyResult", "certificates_in", "download", "verify"]

DEFAULT_TRUSTSTORE_PASSWORD = "changeit"  # noqa: S105 - the documented public default for jks/p12


class DownloadError(CsscertError):
    """The API refused the download; the message carries its status, code and text."""


@dataclass(frozen=True)
class DownloadResult:
    body: bytes
    content_type: str
    filename: str | None
    fingerprints: list[str]
    request_id: str | None
    etag: str | None = None
    warning: str | None = None


def _colon(digest: bytes) -> str:
    return digest.hex(":").upper()


def certificates_in(body: bytes, password: str | None = None) -> list[x509.Certificate]:
    """The certificates in any download format: PEM, DER, PKCS#7, PKCS#12 truststore."""
    if b"-----BEGIN CERTIFICATE-----" in body:
        try:
            return x509.load_pem_x509_certificates(body)
        except ValueError:
            return []
    for loader in (
        lambda data: [x509.load_der_x509_certificate(data)],
        pkcs7.load_der_pkcs7_certificates,
    ):
        try:
            return loader(body)
        except ValueError:
            continue
    try:
        store = pkcs12.load_pkcs12(body, (password or DEFAULT_TRUSTSTORE_PASSWORD).encode())
    except ValueError:
        return []
    return [entry.certificate for entry in store.additional_certs]


def _fingerprints(body: bytes, content_type: str, password: str | None) -> list[str]:
    if content_type.startswith("application/json"):
        try:
            listed = json.loads(body)["certificates"]
            return [bytes.fromhex(str(item["fingerprint_sha256"])).hex(":").upper() for item in listed]
        except (ValueError, KeyError, TypeError):
            return []
    return [_colon(cert.fingerprint(hashes.SHA256())) for cert in certificates_in(body, password)]


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
    """GET the certificate through the API; raises :class:`DownloadError` with a clear reason."""
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise DownloadError(f"the endpoint must be an http:// or https:// URL, not {endpoint!r}")
    base = endpoint.rstrip("/")
    url = f"{base}/v1.0/{signing.quote_component(project_id)}/cer/download"
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
    try:
        with httpx.Client(verify=verify_tls, timeout=timeout) as client:
            response = client.get(url, headers=headers)
    except httpx.ConnectError as exc:
        raise DownloadError(f"could not connect to {base}: {_reason(exc)}") from exc
    except httpx.TimeoutException as exc:
        raise DownloadError(f"{base} did not answer within {timeout:g} seconds") from exc
    except (httpx.HTTPError, httpx.InvalidURL, OSError, ssl.SSLError) as exc:
        raise DownloadError(f"request to {base} failed: {_reason(exc)}") from exc
    if response.status_code != 200:
        try:
            payload = response.json()
            detail = f"{payload.get('error_code')}: {payload.get('error_msg')}"
        except (ValueError, AttributeError):
            detail = response.text[:200]
        raise DownloadError(f"HTTP {response.status_code} {detail}")
    disposition = response.headers.get("content-disposition", "")
    filename = None
    if 'filename="' in disposition:
        filename = disposition.split('filename="', 1)[1].split('"', 1)[0]
        filename = filename.replace("/", "_").replace("\\", "_").lstrip(".") or None
    content_type = response.headers.get("content-type", "")
    return DownloadResult(
        body=response.content,
        content_type=content_type,
        filename=filename,
        fingerprints=_fingerprints(response.content, content_type, password),
        request_id=response.headers.get("x-request-id"),
        etag=response.headers.get("etag"),
        warning=response.headers.get("warning"),
    )


def _reason(exc: BaseException) -> str:
    """The innermost cause's message: 'Connection refused' rather than a wrapper's repr."""
    while exc.__cause__ is not None or exc.__context__ is not None:
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


@dataclass(frozen=True)
class VerifyResult:
    """The verdict of :func:`verify`; ``problem`` is a short machine-readable cause."""

    ok: bool
    host: str
    port: int
    reason: str
    problem: str | None = None  # bad-url, bad-cafile, dns, refused, timeout, unreachable, not-tls,
    #                              wrong-ca, hostname-mismatch, expired, not-yet-valid, tls
    subject: str | None = None
    issuer: str | None = None
    fingerprint: str | None = None
    names: tuple[str, ...] = ()
    not_after: str | None = None
    ca_fingerprint: str | None = None  # which CA of the file signed the server's certificate


# OpenSSL X509_V_ERR_* codes seen in practice, mapped to (problem, explanation).
_VERIFY_CODES: dict[int, tuple[str, str]] = {
    2: ("wrong-ca", "wrong CA: the server's certificate was not issued by a CA in the CA file"),
    20: ("wrong-ca", "wrong CA: the server's certificate was not issued by a CA in the CA file"),
    21: ("wrong-ca", "wrong CA: the server's certificate was not issued by a CA in the CA file"),
    18: ("wrong-ca", "wrong CA: the server's certificate is self-signed and not in the CA file"),
    19: ("wrong-ca", "wrong CA: the server's chain ends in a self-signed CA that is not in the CA file"),
    7: ("wrong-ca", "wrong CA: the server's certificate signature does not verify with the CA file"),
    9: ("not-yet-valid", "a certificate in the chain is not valid yet"),
    10: ("expired", "a certificate in the chain has expired"),
    62: ("hostname-mismatch", "hostname mismatch"),
    64: ("hostname-mismatch", "IP address mismatch"),
}


def _load_cafile(cafile: str) -> list[x509.Certificate]:
    with open(cafile, "rb") as handle:
        return certificates_in(handle.read())


def _peer_certificate(host: str, port: int, timeout: float) -> x509.Certificate | None:
    """The server's certificate without verifying it, to explain a failed verification."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with (
            socket.create_connection((host, port), timeout=timeout) as sock,
            context.wrap_socket(sock, server_hostname=host) as tls,
        ):
            der = tls.getpeercert(binary_form=True)
    except (OSError, ssl.SSLError):
        return None
    return x509.load_der_x509_certificate(der) if der else None


def _names(cert: x509.Certificate) -> tuple[str, ...]:
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return ()
    ips = (str(ip) for ip in sans.get_values_for_type(x509.IPAddress))
    return (*sans.get_values_for_type(x509.DNSName), *ips)


def _signer(cert: x509.Certificate, authorities: list[x509.Certificate]) -> x509.Certificate | None:
    for ca in authorities:
        if ca.subject != cert.issuer:
            continue
        try:
            cert.verify_directly_issued_by(ca)
        except (ValueError, TypeError, InvalidSignature):
            continue
        return ca
    return None


def _describe(
    host: str,
    port: int,
    ok: bool,
    reason: str,
    problem: str | None,
    cert: x509.Certificate | None,
    authorities: list[x509.Certificate],
) -> VerifyResult:
    if cert is None:
        return VerifyResult(ok, host, port, reason, problem)
    signer = _signer(cert, authorities)
    return VerifyResult(
        ok,
        host,
        port,
        reason,
        problem,
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        fingerprint=_colon(cert.fingerprint(hashes.SHA256())),
        names=_names(cert),
        not_after=cert.not_valid_after_utc.isoformat(),
        ca_fingerprint=_colon(signer.fingerprint(hashes.SHA256())) if signer else None,
    )


def verify(url: str, cafile: str, *, timeout: float = 10.0) -> VerifyResult:
    """Connect to ``https://HOST:PORT`` trusting only ``cafile``; check chain and hostname.

    ``cafile`` may be any download format (PEM bundle, DER, PKCS#7, or a truststore with the
    default password). The verdict says why a check failed: wrong CA, name mismatch,
    expiry, or that nothing could be reached.
    """
    parts = urlsplit(url if "://" in url else f"https://{url}")
    host = parts.hostname or ""
    try:
        port = parts.port or 443
    except ValueError:
        return VerifyResult(False, host, 0, f"{url!r} has an invalid port", "bad-url")
    if parts.scheme != "https" or not host:
        return VerifyResult(False, host, port, f"give an https://HOST:PORT URL, not {url!r}", "bad-url")
    try:
        authorities = _load_cafile(cafile)
    except OSError as exc:
        reason = f"cannot read the CA file {cafile}: {exc.strerror}"
        return VerifyResult(False, host, port, reason, "bad-cafile")
    if not authorities:
        return VerifyResult(
            False,
            host,
            port,
            f"the CA file {cafile} holds no certificate (PEM, DER, PKCS#7, or a truststore with "
            f"password {DEFAULT_TRUSTSTORE_PASSWORD!r})",
            "bad-cafile",
        )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies the chain and the name
    context.load_verify_locations(
        cadata="".join(ca.public_bytes(serialization.Encoding.PEM).decode() for ca in authorities)
    )
    where = f"{host}:{port}"
    try:
        with (
            socket.create_connection((host, port), timeout=timeout) as sock,
            context.wrap_socket(sock, server_hostname=host) as tls,
        ):
            der = tls.getpeercert(binary_form=True)
    except ssl.SSLCertVerificationError as exc:
        problem, text = _VERIFY_CODES.get(exc.verify_code, ("tls", str(exc.verify_message)))
        peer = _peer_certificate(host, port, timeout)
        if problem == "hostname-mismatch":
            names = ", ".join(_names(peer)) if peer else "unknown"
            text = f"{text}: the certificate is not valid for {host!r} (it names: {names or 'nothing'})"
        elif problem == "wrong-ca" and peer is not None:
            text = f"{text}; it was issued by {peer.issuer.rfc4514_string()}"
        elif problem in ("expired", "not-yet-valid") and peer is not None:
            text = (
                f"{text} (server certificate valid {peer.not_valid_before_utc.isoformat()} to "
                f"{peer.not_valid_after_utc.isoformat()})"
            )
        return _describe(host, port, False, text, problem, peer, authorities)
    except ssl.SSLError as exc:
        detail = exc.reason or str(exc)
        if detail in ("WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "PACKET_LENGTH_TOO_LONG"):
            reason = f"{where} does not speak TLS (plain HTTP?): {detail}"
            return VerifyResult(False, host, port, reason, "not-tls")
        return VerifyResult(False, host, port, f"TLS handshake with {where} failed: {detail}", "tls")
    except socket.gaierror as exc:
        return VerifyResult(False, host, port, f"cannot resolve {host!r}: {exc.strerror}", "dns")
    except ConnectionRefusedError:
        return VerifyResult(False, host, port, f"connection refused: nothing listens on {where}", "refused")
    except TimeoutError:
        reason = f"{where} did not answer within {timeout:g} seconds"
        return VerifyResult(False, host, port, reason, "timeout")
    except OSError as exc:
        return VerifyResult(
            False, host, port, f"could not connect to {where}: {exc.strerror or exc}", "unreachable"
        )
    if not der:
        return VerifyResult(False, host, port, "the server sent no certificate", "tls")
    cert = x509.load_der_x509_certificate(der)
    return _describe(
        host,
        port,
        True,
        f"the chain verifies against {cafile} and the certificate is valid for {host!r}",
        None,
        cert,
        authorities,
    )
