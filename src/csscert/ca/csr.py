"""Reading a certificate signing request and deciding what of it may be signed.

Pure functions: the CSR's own signature must verify (proof that its maker holds the key), its
key must be one csscert would generate itself or stronger, and what it asks for (subject
alternative names, extended key usages, CA rights) must fit the profile. Every refusal is one
sentence that says what to change.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from csscert.ca.names import AuthorityError, validate_dns_name, validate_ip
from csscert.ca.profiles import ProfileRule, usage_name

__all__ = ["MAX_CSR_BYTES", "CheckedRequest", "check_csr", "key_type_of"]

MAX_CSR_BYTES = 64 * 1024


@dataclass(frozen=True)
class CheckedRequest:
    subject: x509.Name
    public_key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey
    dns_names: tuple[str, ...]
    ip_addresses: tuple[str, ...]
    key_type: str


def key_type_of(key: object) -> str:
    """``rsa2048``, ``p256``...; :class:`AuthorityError` for a key csscert does not sign."""
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < 2048:
            raise AuthorityError(f"the CSR's RSA key has {key.key_size} bits; at least 2048 are required")
        return f"rsa{key.key_size}"
    if isinstance(key, ec.EllipticCurvePublicKey):
        names = {"secp256r1": "p256", "secp384r1": "p384", "secp521r1": "p521"}
        if key.curve.name not in names:
            raise AuthorityError(
                f"the CSR's EC curve {key.curve.name} is not supported (P-256, P-384, P-521)"
            )
        return names[key.curve.name]
    raise AuthorityError(
        "the CSR's key type is not supported (RSA of 2048 bits or more, or EC P-256/384/521)"
    )


def _load(data: bytes) -> x509.CertificateSigningRequest:
    if len(data) > MAX_CSR_BYTES:
        raise AuthorityError(f"the CSR file is larger than {MAX_CSR_BYTES} bytes; is it really a CSR?")
    try:
        if b"-----BEGIN" in data:
            return x509.load_pem_x509_csr(data)
        return x509.load_der_x509_csr(data)
    except ValueError as exc:
        raise AuthorityError(
            "the file is not a certificate signing request (PEM 'BEGIN CERTIFICATE REQUEST' or DER); "
            "make one with e.g. 'openssl req -new -key node.key -subj /CN=node-1 -out node.csr'"
        ) from exc


def check_csr(data: bytes, rule: ProfileRule, *, empty_subject: x509.Name | None = None) -> CheckedRequest:
    """The parts of the CSR in ``data`` that will be signed under ``rule``, all checked.

    ``empty_subject`` is the subject a CSR without one gets (ACME clients send none); without
    it such a CSR is refused."""
    csr = _load(data)
    try:
        signature_ok = csr.is_signature_valid
    except Exception as exc:  # an unsupported signature algorithm
        raise AuthorityError(f"the CSR's signature cannot be checked: {exc}") from exc
    if not signature_ok:
        raise AuthorityError("the CSR's signature does not verify: it was altered or not signed with its key")
    key_type = key_type_of(csr.public_key())
    public_key = csr.public_key()
    assert isinstance(public_key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey)
    subject = csr.subject
    if not list(subject):
        if empty_subject is None:
            raise AuthorityError("the CSR has an empty subject; give it one (e.g. -subj /CN=node-1)")
        subject = empty_subject
    dns: list[str] = []
    ips: list[str] = []
    try:
        extensions = list(csr.extensions)
    except (ValueError, x509.DuplicateExtension, x509.UnsupportedGeneralNameType) as exc:
        raise AuthorityError(f"the CSR's extensions cannot be read: {exc}") from exc
    for extension in extensions:
        value = extension.value
        if isinstance(value, x509.SubjectAlternativeName):
            for general in value:
                if isinstance(general, x509.DNSName):
                    dns.append(validate_dns_name(general.value))
                elif isinstance(general, x509.IPAddress):
                    ips.append(str(validate_ip(str(general.value))))
                else:
                    raise AuthorityError(
                        f"the CSR asks for a {type(general).__name__} name; only DNS names and IP "
                        "addresses are signed"
                    )
        elif isinstance(value, x509.ExtendedKeyUsage):
            extra = [oid for oid in value if oid not in rule.usages]
            if extra:
                raise AuthorityError(
                    f"the CSR asks for {', '.join(usage_name(o) for o in extra)}, which the {rule.name} "
                    f"profile does not allow ({rule.summary}); "
                    + ("use --profile node" if rule.name != "node" else "remove it from the CSR")
                )
        elif isinstance(value, x509.BasicConstraints) and value.ca:
            raise AuthorityError("the CSR asks to be a CA; csscert signs only end-entity certificates")
        elif isinstance(value, x509.KeyUsage) and (value.key_cert_sign or value.crl_sign):
            raise AuthorityError("the CSR asks for keyCertSign or cRLSign; only a CA may have them")
    if rule.sans_required and not dns and not ips:
        raise AuthorityError(
            "the CSR names no DNS name or IP address, which a node certificate needs (clients check "
            "them); add subjectAltName to the CSR, or sign it with --profile client"
        )
    return CheckedRequest(subject, public_key, tuple(dns), tuple(ips), key_type)
