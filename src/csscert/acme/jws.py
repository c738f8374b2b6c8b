"""Parsing and verifying the JWS of an ACME request (RFC 8555 §6.2) with josepy.

Signatures are checked by josepy (certbot's own JOSE library, ADR 0006), never here. This module
only enforces what RFC 8555 adds on top of RFC 7515: the flattened JSON serialization only, no
unprotected header, an asymmetric ``alg`` from a short list, exactly one of ``jwk`` and ``kid``,
and a ``nonce`` and ``url`` in the protected header. The External Account Binding's inner JWS
(§7.3.4) is a MAC under the EAB key, also checked by josepy.
"""

from __future__ import annotations

import binascii
import json
from dataclasses import dataclass
from typing import Any

from josepy.b64 import b64decode, b64encode
from josepy.errors import DeserializationError
from josepy.jwk import JWK, JWKRSA, JWKOct
from josepy.jws import JWS

from csscert.acme.problems import AcmeProblem

__all__ = ["SIGNING_ALGORITHMS", "Jws", "parse", "thumbprint", "verify_eab", "verify_with"]

# Asymmetric only: a MAC algorithm on the outer JWS would let anyone holding the public JWK "sign".
SIGNING_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"}
)
EAB_ALGORITHMS = frozenset({"HS256", "HS384", "HS512"})


@dataclass(frozen=True)
class Jws:
    """A parsed, not yet verified request JWS."""

    raw: dict[str, Any]
    protected: dict[str, Any]
    payload: bytes
    jws: JWS

    @property
    def nonce(self) -> str:
        return str(self.protected.get("nonce", ""))

    @property
    def url(self) -> str:
        return str(self.protected.get("url", ""))

    @property
    def kid(self) -> str | None:
        kid = self.protected.get("kid")
        return kid if isinstance(kid, str) else None

    @property
    def jwk(self) -> JWK | None:
        jwk = self.jws.signature.combined.jwk
        return jwk if isinstance(jwk, JWK) else None

    def payload_json(self) -> dict[str, Any]:
        """The payload as a JSON object (``{}`` is the caller's to refuse where one is required)."""
        try:
            value = json.loads(self.payload)
        except (UnicodeDecodeError, ValueError):
            raise AcmeProblem("malformed", "the JWS payload is not JSON") from None
        if not isinstance(value, dict):
            raise AcmeProblem("malformed", "the JWS payload must be a JSON object")
        return value


def _b64json(value: object, what: str) -> dict[str, Any]:
    if not isinstance(value, str):
        raise AcmeProblem("malformed", f"the JWS {what} must be a base64url string")
    try:
        decoded = json.loads(b64decode(value))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise AcmeProblem("malformed", f"the JWS {what} is not base64url-encoded JSON") from None
    if not isinstance(decoded, dict):
        raise AcmeProblem("malformed", f"the JWS {what} must be a JSON object")
    return decoded


def _load(raw: object, algorithms: frozenset[str], what: str) -> tuple[dict[str, Any], dict[str, Any], JWS]:
    if not isinstance(raw, dict) or set(raw) != {"protected", "payload", "signature"}:
        raise AcmeProblem(
            "malformed",
            f"the {what} must be a flattened JWS (protected, payload and signature, no unprotected header)",
        )
    protected = _b64json(raw["protected"], "protected header")
    alg = protected.get("alg")
    if alg not in algorithms:
        raise AcmeProblem(
            "badSignatureAlgorithm",
            f"the {what} uses alg {str(alg)[:16]!r}; use one of {', '.join(sorted(algorithms))}",
        )
    try:
        parsed = JWS.from_json(raw)
    except (DeserializationError, binascii.Error, ValueError, TypeError, KeyError):
        raise AcmeProblem("malformed", f"the {what} is not a valid JWS") from None
    return raw, protected, parsed


def parse(body: bytes) -> Jws:
    """The request body as a JWS, its protected header checked for RFC 8555's required fields."""
    if not body:
        raise AcmeProblem(
            "malformed", "the request has no body; ACME requests are JWS (application/jose+json)"
        )
    try:
        raw = json.loads(body)
    except (UnicodeDecodeError, ValueError):
        raise AcmeProblem("malformed", "the request body is not JSON") from None
    raw, protected, parsed = _load(raw, SIGNING_ALGORITHMS, "request")
    if ("jwk" in protected) == ("kid" in protected):
        raise AcmeProblem("malformed", "the JWS protected header must have exactly one of jwk and kid")
    for field in ("nonce", "url"):
        if not isinstance(protected.get(field), str) or not protected[field]:
            raise AcmeProblem(
                "badNonce" if field == "nonce" else "malformed",
                f"the JWS protected header has no {field}",
            )
    return Jws(raw, protected, parsed.payload, parsed)


def verify_with(jws: Jws, key: JWK) -> None:
    """Check the signature under ``key`` (the account's key, or the request's own ``jwk``)."""
    try:
        ok = jws.jws.verify(key)
    except Exception:
        ok = False
    if not ok:
        raise AcmeProblem("unauthorized", "the JWS signature does not verify", 403)


def load_jwk(value: object) -> JWK:
    """A public JWK from its JSON form (RSA of 2048 bits or more, or EC P-256/384/521)."""
    try:
        key = JWK.from_json(value)  # type: ignore[arg-type]
    except (DeserializationError, ValueError, TypeError, KeyError):
        raise AcmeProblem("badPublicKey", "the JWK is not a valid public key") from None
    if isinstance(key, JWKOct):
        raise AcmeProblem("badPublicKey", "the account key must be an RSA or EC public key")
    if not isinstance(key, JWK):
        raise AcmeProblem("badPublicKey", "the JWK is not a valid public key")
    public = key.public_key()
    if isinstance(public, JWKRSA) and public.key.key_size < 2048:
        raise AcmeProblem("badPublicKey", "RSA account keys must have at least 2048 bits")
    return public


def thumbprint(key: JWK) -> str:
    """RFC 7638 SHA-256 thumbprint, base64url without padding (the key-authorization suffix)."""
    return b64encode(key.thumbprint()).decode()


def canonical(key: JWK) -> dict[str, Any]:
    """The public JWK as a JSON object (what is stored and compared)."""
    value = key.public_key().to_json()
    assert isinstance(value, dict)
    return value


def eab_kid(value: object) -> tuple[str, dict[str, Any], JWS]:
    """The inner JWS of an External Account Binding, parsed: (kid, protected header, jws)."""
    _, protected, parsed = _load(value, EAB_ALGORITHMS, "externalAccountBinding")
    kid = protected.get("kid")
    if not isinstance(kid, str) or not kid or len(kid) > 64:
        raise AcmeProblem("malformed", "the externalAccountBinding has no kid")
    if "nonce" in protected:
        raise AcmeProblem("malformed", "the externalAccountBinding must not carry a nonce")
    return kid, protected, parsed


def verify_eab(
    protected: dict[str, Any], parsed: JWS, hmac_key: bytes, outer_url: str, account_key: JWK
) -> None:
    """The EAB MAC under ``hmac_key``, its url equal to the outer one, and its payload the account key."""
    if protected.get("url") != outer_url:
        raise AcmeProblem("malformed", "the externalAccountBinding url differs from the request's")
    try:
        ok = parsed.verify(JWKOct(key=hmac_key))
    except Exception:
        ok = False
    if not ok:
        raise AcmeProblem("unauthorized", "the externalAccountBinding MAC does not verify with that key", 403)
    try:
        bound = JWK.from_json(json.loads(parsed.payload))
        assert isinstance(bound, JWK)
    except (DeserializationError, ValueError, TypeError, KeyError):
        raise AcmeProblem("malformed", "the externalAccountBinding payload is not a JWK") from None
    if bound.public_key().thumbprint() != account_key.thumbprint():
        raise AcmeProblem(
            "unauthorized", "the externalAccountBinding binds another key than the account's", 403
        )


def parse_inner(value: object) -> Jws:
    """The inner JWS of a keyChange (§7.3.5): signed by the new key (``jwk``), a ``url``, no nonce."""
    raw, protected, parsed = _load(value, SIGNING_ALGORITHMS, "inner JWS")
    if "jwk" not in protected or "kid" in protected or "nonce" in protected:
        raise AcmeProblem("malformed", "the inner JWS must carry jwk, and neither kid nor nonce")
    if not isinstance(protected.get("url"), str):
        raise AcmeProblem("malformed", "the inner JWS has no url")
    return Jws(raw, protected, parsed.payload, parsed)
