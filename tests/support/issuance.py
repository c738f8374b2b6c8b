"""The issuance API from the outside: CSRs made by ``openssl req`` and by ``cryptography``, and
requests to ``/v1.0/{project}/csscert/certificates`` with a token or signed by the SDK signer."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from support.server import CsscertServer
from support.signing import sdk_sign


@dataclass(frozen=True)
class Csr:
    pem: bytes
    key_pem: bytes


def openssl_csr(work: Path, cn: str, dns: tuple[str, ...] = (), ips: tuple[str, ...] = ()) -> Csr:
    """A CSR made the way operators make them: ``openssl req -newkey rsa:2048`` with -addext."""
    key, csr = work / f"{cn}.key", work / f"{cn}.csr"
    command = [
        "openssl",
        "req",
        "-new",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        str(key),
        "-out",
        str(csr),
    ]
    command += ["-subj", f"/CN={cn}"]
    sans = [f"DNS:{d}" for d in dns] + [f"IP:{i}" for i in ips]
    if sans:
        command += ["-addext", "subjectAltName=" + ",".join(sans)]
    subprocess.run(command, check=True, capture_output=True, timeout=60)
    return Csr(csr.read_bytes(), key.read_bytes())


def crypto_csr(
    cn: str,
    dns: tuple[str, ...] = (),
    ips: tuple[str, ...] = (),
    *,
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | None = None,
    server_auth: bool = False,
) -> Csr:
    """A CSR built with ``cryptography`` (P-256 unless ``key`` is given)."""
    import ipaddress

    key = key or ec.generate_private_key(ec.SECP256R1())
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    )
    names: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
    names += [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    if server_auth:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
    csr = builder.sign(key, hashes.SHA256())
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return Csr(csr.public_bytes(serialization.Encoding.PEM), key_pem)


def forged(csr: Csr, cn: str, other: str) -> Csr:
    """``csr`` with its CN bytes changed after signing: the signature no longer matches."""
    der = x509.load_pem_x509_csr(csr.pem).public_bytes(serialization.Encoding.DER)
    assert len(cn) == len(other) and der.count(cn.encode()) == 1
    tampered = x509.load_der_x509_csr(der.replace(cn.encode(), other.encode()))
    return Csr(tampered.public_bytes(serialization.Encoding.PEM), csr.key_pem)


def certificates_url(server: CsscertServer, project_id: str, *rest: str) -> str:
    return "/".join([f"{server.url}/v1.0/{project_id}/csscert/certificates", *rest])


def sign_with_token(
    server: CsscertServer, token: str, project_id: str, csr: Csr | bytes, **fields: Any
) -> httpx.Response:
    pem = csr.pem if isinstance(csr, Csr) else csr
    body = {"csr": pem.decode(), **fields}
    return httpx.post(
        certificates_url(server, project_id), json=body, headers={"X-Auth-Token": token}, timeout=30
    )


def sign_with_aksk(
    server: CsscertServer, access: str, secret: str, project_id: str, csr: Csr, **fields: Any
) -> httpx.Response:
    """POST signed by the official huaweicloudsdkcore signer, body included."""
    body = json.dumps({"csr": csr.pem.decode(), **fields}).encode()
    url, headers = sdk_sign(
        access,
        secret,
        "POST",
        certificates_url(server, project_id),
        {"Content-Type": "application/json"},
        body,
    )
    return httpx.post(url, content=body, headers=headers, timeout=30)


def revoke_with_token(
    server: CsscertServer, token: str, project_id: str, serial: str, reason: str
) -> httpx.Response:
    return httpx.post(
        certificates_url(server, project_id, serial, "revoke"),
        json={"reason": reason},
        headers={"X-Auth-Token": token},
        timeout=30,
    )


def crl_url_of(cert_pem: bytes) -> str:
    cert = x509.load_pem_x509_certificate(cert_pem)
    points = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    full_name = points[0].full_name
    assert full_name is not None
    return str(full_name[0].value)
