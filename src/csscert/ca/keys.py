"""Where a CA's private key lives, behind one small interface: :class:`CAKey`.

Every signature a CA makes (node certificates today; CRLs and anything else later) goes through
a :class:`CAKey`, so that the authority never needs to know whether the key was unsealed from the
database or lives in a token it can never read. :class:`SealedKey` is the default: the key is
kept sealed under the master key in the CA's row and opened only for the one signature.
"""

from __future__ import annotations

from typing import Protocol

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from csscert.ca.names import AuthorityError
from csscert.model import CertificateAuthority
from csscert.sealing import Sealer

__all__ = ["PKCS11_PREFIX", "CAKey", "PublicKey", "SealedKey", "seal_context"]

PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey

#: A CA's ``key_sealed`` starting with this is a reference to a key in a PKCS#11 token
#: (ca/pkcs11.py, :class:`csscert.ca.pkcs11.Pkcs11Key`), not a sealed secret.
PKCS11_PREFIX = "pkcs11:"


def seal_context(ca_id: str) -> str:
    """The associated data that binds a sealed CA key to its CA's row."""
    return f"ca:{ca_id}"


class CAKey(Protocol):
    """A CA's signing key: it signs what the authority has built and shows its public half."""

    def public_key(self) -> PublicKey: ...

    def sign_certificate(self, builder: x509.CertificateBuilder) -> x509.Certificate: ...

    def sign_crl(self, builder: x509.CertificateRevocationListBuilder) -> x509.CertificateRevocationList: ...


class SealedKey:
    """A CA key kept in the database, sealed under the master key; opened per use."""

    def __init__(self, ca: CertificateAuthority, sealer: Sealer) -> None:
        self._ca = ca
        self._sealer = sealer

    def _open(self) -> rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey:
        # The seal is authenticated (AES-GCM, bound to the CA's id): these are exactly the bytes of
        # the key csscert generated. OpenSSL's RSA key check would cost ~40 ms per signature.
        key = serialization.load_der_private_key(
            self._sealer.open(self._ca.key_sealed, seal_context(self._ca.id)),
            password=None,
            unsafe_skip_rsa_key_validation=True,
        )
        if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
            raise AuthorityError("the CA key has an unsupported type")
        return key

    def public_key(self) -> PublicKey:
        key = x509.load_pem_x509_certificate(self._ca.cert_pem).public_key()
        assert isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey)
        return key

    def sign_certificate(self, builder: x509.CertificateBuilder) -> x509.Certificate:
        return builder.sign(self._open(), hashes.SHA256())

    def sign_crl(self, builder: x509.CertificateRevocationListBuilder) -> x509.CertificateRevocationList:
        return builder.sign(self._open(), hashes.SHA256())
