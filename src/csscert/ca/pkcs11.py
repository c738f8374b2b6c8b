"""CA keys inside a PKCS#11 token (a hardware security module, or SoftHSM2): generated there,
never extractable, used there for every signature.

``CSSCERT_CA_KEY_STORE=pkcs11`` with ``CSSCERT_PKCS11_MODULE`` (the vendor's library),
``CSSCERT_PKCS11_TOKEN_LABEL`` and the user PIN from ``CSSCERT_PKCS11_PIN_FILE`` (or
``CSSCERT_PKCS11_PIN``; never logged): new CAs get an RSA or ECDSA key pair made by the token with
CKA_SENSITIVE true and CKA_EXTRACTABLE false; the database keeps only a reference
(``pkcs11:token=<label>;id=<hex>`` in the CA's ``key_sealed`` column, which master-key rotation
and backups leave as it is).

Signing: cryptography cannot sign with a key it does not hold, so the certificate or CRL is built
and signed by cryptography with a throw-away placeholder key of the same algorithm (which fixes
the signature algorithm inside the to-be-signed part), the to-be-signed bytes are signed by the
token, and the final DER is assembled with asn1crypto (docs/adr/0006). The result is checked
against the CA's public key before it leaves this module.
"""

from __future__ import annotations

import hashlib
import os
import threading
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from csscert.ca.keys import PKCS11_PREFIX
from csscert.ca.names import AuthorityError
from csscert.errors import ConfigurationError
from csscert.settings import Settings

__all__ = ["PREFIX", "Pkcs11Error", "Pkcs11Key", "Token", "token_for"]

PREFIX = PKCS11_PREFIX
PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey
_CURVES = {"p256": ("secp256r1", ec.SECP256R1()), "p384": ("secp384r1", ec.SECP384R1())}


class Pkcs11Error(ConfigurationError):
    """The token cannot be used: module, label or PIN wrong, or the key is missing."""


@cache
def _placeholder(kind: str) -> rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey:
    """A throw-away key whose only use is to make cryptography emit the to-be-signed bytes with
    the right signature algorithm (its signature is discarded)."""
    if kind == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return ec.generate_private_key(ec.SECP256R1())


def _pin(settings: Settings) -> str:
    if settings.pkcs11_pin_file is not None:
        try:
            return settings.pkcs11_pin_file.read_text().strip()
        except OSError as exc:
            raise Pkcs11Error(
                f"cannot read the PKCS#11 PIN file {settings.pkcs11_pin_file}: {exc.strerror or exc}"
            ) from exc
    if settings.pkcs11_pin is not None:
        return settings.pkcs11_pin.get_secret_value()
    raise Pkcs11Error("CSSCERT_CA_KEY_STORE=pkcs11 needs the token's PIN: set CSSCERT_PKCS11_PIN_FILE")


class Token:
    """One logged-in session on the token, shared by the process (PKCS#11 sessions are not
    thread-safe: every operation holds the lock)."""

    def __init__(self, module: Path, label: str, pin: str) -> None:
        import pkcs11

        self.label = label
        self._lock = threading.Lock()
        try:
            lib = pkcs11.lib(str(module))
            token = lib.get_token(token_label=label)
            self._session = token.open(rw=True, user_pin=pin)
        except (pkcs11.PKCS11Error, RuntimeError, OSError) as exc:
            raise Pkcs11Error(
                f"cannot open the PKCS#11 token {label!r} with {module} ({type(exc).__name__}): check "
                "CSSCERT_PKCS11_MODULE, CSSCERT_PKCS11_TOKEN_LABEL and the PIN"
            ) from None  # the driver's message may quote what it was given

    def generate(self, key_type: str, label: str) -> tuple[str, PublicKey]:
        """A new signing key pair inside the token (never extractable); its reference and public key."""
        from pkcs11 import Attribute, KeyType
        from pkcs11.util.ec import encode_ec_public_key, encode_named_curve_parameters

        key_id = os.urandom(16)
        private = {
            Attribute.SENSITIVE: True,
            Attribute.EXTRACTABLE: False,
            Attribute.SIGN: True,
            Attribute.PRIVATE: True,
            Attribute.TOKEN: True,
        }
        public_template = {Attribute.VERIFY: True, Attribute.TOKEN: True}
        with self._lock:
            if key_type.startswith("rsa"):
                public, _ = self._session.generate_keypair(
                    KeyType.RSA, int(key_type[3:]), id=key_id, label=label, store=True,
                    public_template=public_template, private_template=private,
                )  # fmt: skip
                numbers = rsa.RSAPublicNumbers(
                    int.from_bytes(public[Attribute.PUBLIC_EXPONENT], "big"),
                    int.from_bytes(public[Attribute.MODULUS], "big"),
                )
                key: PublicKey = numbers.public_key()
            else:
                curve = _CURVES[key_type][0]
                params = self._session.create_domain_parameters(
                    KeyType.EC, {Attribute.EC_PARAMS: encode_named_curve_parameters(curve)}, local=True
                )
                public, _ = params.generate_keypair(
                    id=key_id,
                    label=label,
                    store=True,
                    public_template=public_template,
                    private_template=private,
                )
                loaded = serialization.load_der_public_key(encode_ec_public_key(public))
                assert isinstance(loaded, ec.EllipticCurvePublicKey)
                key = loaded
        return f"{PREFIX}token={quote(self.label)};id={key_id.hex()}", key

    def sign(self, reference: str, data: bytes, kind: str) -> bytes:
        """``data`` signed by the referenced key: RSA PKCS#1 v1.5 with SHA-256, or ECDSA over its
        SHA-256 digest (DER-encoded); the hash is made here for ECDSA so any token that knows
        plain CKM_ECDSA can do it."""
        from pkcs11 import Mechanism, ObjectClass
        from pkcs11.exceptions import NoSuchKey
        from pkcs11.util.ec import encode_ecdsa_signature

        key_id = _key_id(reference)
        with self._lock:
            try:
                private: Any = self._session.get_key(object_class=ObjectClass.PRIVATE_KEY, id=key_id)
            except NoSuchKey:
                raise Pkcs11Error(
                    f"the CA key {reference} is not in the token {self.label!r} "
                    "(wrong token, or the key was deleted)"
                ) from None
            if kind == "rsa":
                return bytes(private.sign(data, mechanism=Mechanism.SHA256_RSA_PKCS))
            raw = private.sign(hashlib.sha256(data).digest(), mechanism=Mechanism.ECDSA)
        return bytes(encode_ecdsa_signature(raw))


def _key_id(reference: str) -> bytes:
    fields = dict(part.split("=", 1) for part in reference.removeprefix(PREFIX).split(";") if "=" in part)
    try:
        return bytes.fromhex(unquote(fields["id"]))
    except (KeyError, ValueError):
        raise AuthorityError(f"malformed PKCS#11 key reference {reference!r}") from None


_tokens: dict[tuple[str, str], Token] = {}
_tokens_lock = threading.Lock()


def token_for(settings: Settings) -> Token:
    """The process's session on the configured token (opened once)."""
    if settings.pkcs11_module is None or not settings.pkcs11_token_label:
        raise Pkcs11Error(
            "the CA key is in a PKCS#11 token: set CSSCERT_PKCS11_MODULE and CSSCERT_PKCS11_TOKEN_LABEL"
        )
    ident = (str(settings.pkcs11_module), settings.pkcs11_token_label)
    with _tokens_lock:
        token = _tokens.get(ident)
        if token is None:
            token = _tokens[ident] = Token(
                settings.pkcs11_module, settings.pkcs11_token_label, _pin(settings)
            )
        return token


class Pkcs11Key:
    """A :class:`csscert.ca.keys.CAKey` whose private half stays in the token."""

    def __init__(self, token: Token, reference: str, public: PublicKey) -> None:
        self._token = token
        self._reference = reference
        self._public = public
        self._kind = "rsa" if isinstance(public, rsa.RSAPublicKey) else "ec"

    def public_key(self) -> PublicKey:
        return self._public

    def _sign_tbs(self, tbs: bytes) -> bytes:
        signature = self._token.sign(self._reference, tbs, self._kind)
        try:
            if isinstance(self._public, rsa.RSAPublicKey):
                self._public.verify(signature, tbs, padding.PKCS1v15(), hashes.SHA256())
            else:
                self._public.verify(signature, tbs, ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            raise AuthorityError(f"the token's key {self._reference} is not this CA's key") from None
        return signature

    def sign_certificate(self, builder: x509.CertificateBuilder) -> x509.Certificate:
        from asn1crypto import x509 as asn1_x509

        draft = builder.sign(_placeholder(self._kind), hashes.SHA256())
        tbs = asn1_x509.TbsCertificate.load(draft.tbs_certificate_bytes)
        signature = self._sign_tbs(draft.tbs_certificate_bytes)
        signed: Any = asn1_x509.Certificate(
            {"tbs_certificate": tbs, "signature_algorithm": tbs["signature"], "signature_value": signature}
        )
        return x509.load_der_x509_certificate(signed.dump())

    def sign_crl(self, builder: x509.CertificateRevocationListBuilder) -> x509.CertificateRevocationList:
        from asn1crypto import crl as asn1_crl

        draft = builder.sign(_placeholder(self._kind), hashes.SHA256())
        tbs = asn1_crl.TbsCertList.load(draft.tbs_certlist_bytes)
        signature = self._sign_tbs(draft.tbs_certlist_bytes)
        signed: Any = asn1_crl.CertificateList(
            {"tbs_cert_list": tbs, "signature_algorithm": tbs["signature"], "signature": signature}
        )
        return x509.load_der_x509_crl(signed.dump())

    def sign_csr(self, builder: x509.CertificateSigningRequestBuilder) -> x509.CertificateSigningRequest:
        """A CSR for this key (``ca intermediate`` with the key in the token). cryptography puts the
        signing key's public key into a CSR, so the placeholder's is replaced by ours before the
        request info is signed."""
        from asn1crypto import csr as asn1_csr
        from asn1crypto import keys as asn1_keys

        draft = builder.sign(_placeholder(self._kind), hashes.SHA256())
        info = asn1_csr.CertificationRequestInfo.load(draft.tbs_certrequest_bytes)
        spki = self._public.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        info["subject_pk_info"] = asn1_keys.PublicKeyInfo.load(spki)
        tbs = info.dump(force=True)
        # the placeholder's algorithm identifier: same algorithm as ours (RSA or ECDSA, SHA-256)
        algorithm = asn1_csr.CertificationRequest.load(draft.public_bytes(serialization.Encoding.DER))[
            "signature_algorithm"
        ]
        signed: Any = asn1_csr.CertificationRequest(
            {
                "certification_request_info": info,
                "signature_algorithm": algorithm,
                "signature": self._sign_tbs(tbs),
            }
        )
        csr = x509.load_der_x509_csr(signed.dump())
        if not csr.is_signature_valid:
            raise AuthorityError("the token's signature on the CSR does not verify")
        return csr
