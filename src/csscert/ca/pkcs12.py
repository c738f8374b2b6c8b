"""A deterministic PKCS#12 (RFC 7292) Java truststore writer: the same CAs and password give the same bytes.

``cryptography`` can write Java truststores, but with random salts, so every process would serve
different bytes (and ETags) for the same CAs. A truststore holds only public certificates, so it
needs no encryption, only the password-keyed integrity MAC that Java and OpenSSL check; that much
of PKCS#12 is small enough to write here, with a salt derived from the content (see
docs/adr/0002). The certificate bags carry the Oracle "trusted key usage" attribute, which is what
makes Java list them as ``trustedCertEntry``.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence

__all__ = ["TRUSTSTORE_MAC_ITERATIONS", "java_truststore", "pkcs12_kdf"]

_OID_DATA = "1.2.840.113549.1.7.1"
_OID_CERT_BAG = "1.2.840.113549.1.12.10.1.3"
_OID_X509_CERT = "1.2.840.113549.1.9.22.1"
_OID_FRIENDLY_NAME = "1.2.840.113549.1.9.20"
_OID_JAVA_TRUSTED_USAGE = "2.16.840.1.113894.746875.1.1"
_OID_ANY_EKU = "2.5.29.37.0"
_OID_SHA256 = "2.16.840.1.101.3.4.2.1"
TRUSTSTORE_MAC_ITERATIONS = 10000


def _der(tag: int, content: bytes) -> bytes:
    length = len(content)
    if length < 0x80:
        return bytes((tag, length)) + content
    size = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes((tag, 0x80 | len(size))) + size + content


def _seq(*items: bytes) -> bytes:
    return _der(0x30, b"".join(items))


def _set(*items: bytes) -> bytes:
    return _der(0x31, b"".join(sorted(items)))  # DER orders SET OF by encoding


def _explicit0(content: bytes) -> bytes:
    return _der(0xA0, content)


def _octets(data: bytes) -> bytes:
    return _der(0x04, data)


def _integer(value: int) -> bytes:
    return _der(0x02, value.to_bytes(value.bit_length() // 8 + 1, "big"))


def _oid(dotted: str) -> bytes:
    first, second, *rest = (int(part) for part in dotted.split("."))
    body = bytearray()
    for arc in (first * 40 + second, *rest):
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        body.extend(reversed(chunk))
    return _der(0x06, bytes(body))


def _bmp_password(password: str) -> bytes:
    return password.encode("utf-16-be") + b"\x00\x00"


def pkcs12_kdf(password: str, salt: bytes, key_id: int, iterations: int, length: int) -> bytes:
    """RFC 7292 appendix B.2 key derivation with SHA-256 (u = 32, v = 64 bytes)."""
    u, v = 32, 64

    def stretch(data: bytes) -> bytes:  # copies of data filling a whole number of v-byte blocks
        needed = v * -(-len(data) // v)
        return (data * (needed // len(data) + 1))[:needed] if data else b""

    d_block = bytes([key_id]) * v
    i_block = bytearray(stretch(salt) + stretch(_bmp_password(password)))
    out = b""
    while len(out) < length:
        a = hashlib.sha256(d_block + bytes(i_block)).digest()
        for _ in range(iterations - 1):
            a = hashlib.sha256(a).digest()
        out += a
        b = int.from_bytes((a * (v // u + 1))[:v], "big")
        for start in range(0, len(i_block), v):
            block = int.from_bytes(i_block[start : start + v], "big")
            i_block[start : start + v] = ((block + b + 1) % (1 << (v * 8))).to_bytes(v, "big")
    return out[:length]


def java_truststore(entries: Sequence[tuple[str, bytes]], password: str) -> bytes:
    """A PKCS#12 truststore of ``(alias, certificate DER)`` entries, the same bytes every time."""
    bags = []
    for alias, der in entries:
        cert_bag = _seq(_oid(_OID_X509_CERT), _explicit0(_octets(der)))
        attributes = _set(
            _seq(_oid(_OID_JAVA_TRUSTED_USAGE), _set(_oid(_OID_ANY_EKU))),
            _seq(_oid(_OID_FRIENDLY_NAME), _set(_der(0x1E, alias.encode("utf-16-be")))),
        )
        bags.append(_seq(_oid(_OID_CERT_BAG), _explicit0(cert_bag), attributes))
    safe_contents = _seq(*bags)
    auth_safe = _seq(_seq(_oid(_OID_DATA), _explicit0(_octets(safe_contents))))
    # The salt only has to differ between truststores; the content is public anyway.
    salt = hashlib.sha256(b"csscert truststore mac salt\x00" + auth_safe).digest()[:16]
    mac_key = pkcs12_kdf(password, salt, 3, TRUSTSTORE_MAC_ITERATIONS, 32)
    mac = hmac.new(mac_key, auth_safe, hashlib.sha256).digest()
    mac_data = _seq(
        _seq(_seq(_oid(_OID_SHA256), b"\x05\x00"), _octets(mac)),
        _octets(salt),
        _integer(TRUSTSTORE_MAC_ITERATIONS),
    )
    return _seq(_integer(3), _seq(_oid(_OID_DATA), _explicit0(_octets(auth_safe))), mac_data)
