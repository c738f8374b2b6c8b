"""The ACME part of the OpenAPI document (``/acme/{project_id}/...``, RFC 8555), for gen_openapi.py.

The document describes what ACME clients exchange with csscert at the HTTP level: the flattened
JWS every POST carries, the directory, the nonce, and the problem document every refusal is. It
does not try to describe what a JWS payload means (RFC 8555 does); it lets schemathesis fuzz the
envelope, so every malformed, unsigned or replayed request must come back as a documented
problem and never as a 5xx.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ACME_RESPONSES", "ACME_SCHEMAS", "acme_paths"]

_PROBLEM_TYPE = {"type": "string", "pattern": "^urn:ietf:params:acme:error:[A-Za-z]+$"}

ACME_SCHEMAS: dict[str, Any] = {
    "AcmeProblem": {
        "type": "object",
        "required": ["type", "detail", "status"],
        "properties": {
            "type": _PROBLEM_TYPE,
            "detail": {"type": "string"},
            "status": {"type": "integer", "minimum": 400, "maximum": 599},
            "subproblems": {"type": "array", "items": {"type": "object"}},
        },
    },
    "AcmeJws": {
        "type": "object",
        "description": "A flattened JWS (RFC 7515 §7.2.2) as RFC 8555 §6.2 requires; base64url fields.",
        "required": ["protected", "payload", "signature"],
        "properties": {
            "protected": {"type": "string"},
            "payload": {"type": "string", "description": "Empty for POST-as-GET."},
            "signature": {"type": "string"},
        },
    },
    "AcmeDirectory": {
        "type": "object",
        "required": ["newNonce", "newAccount", "newOrder", "revokeCert", "keyChange", "meta"],
        "properties": {
            "newNonce": {"type": "string"},
            "newAccount": {"type": "string"},
            "newOrder": {"type": "string"},
            "revokeCert": {"type": "string"},
            "keyChange": {"type": "string"},
            "meta": {
                "type": "object",
                "required": ["externalAccountRequired"],
                "properties": {"externalAccountRequired": {"type": "boolean", "enum": [True]}},
            },
        },
    },
}

_STRING = {"schema": {"type": "string"}}
_REQUEST_ID = {"X-Request-Id": _STRING}
# Every answer to a nonce or JWS request: a fresh nonce (errors too, so badNonce is retried at
# once; absent only while the store is down), the directory link and no caching.
_NONCED = {
    **_REQUEST_ID,
    "Replay-Nonce": {"schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]+$"}},
    "Link": _STRING,
    "Cache-Control": {"schema": {"type": "string", "enum": ["no-store"]}},
}


def _problem(description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "description": description,
        "headers": headers if headers is not None else _REQUEST_ID,
        "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/AcmeProblem"}}},
    }


_PROBLEMS = {
    "400": "malformed, badNonce, badCSR, badPublicKey, externalAccountRequired, ...",
    "401": "badSignatureAlgorithm or an account key that does not verify.",
    "403": "unauthorized (not this account's resource, no EAB, outside policy), orderNotReady.",
    "404": "No such project, account, order, authorization, challenge or certificate.",
    "405": "Method not allowed (ACME resources are POST, or POST-as-GET).",
    "409": "The account or key is in a conflicting state.",
    "413": "The request body is too large.",
    "415": "Not application/jose+json.",
    "429": "rateLimited, with Retry-After.",
    "500": "serverInternal, no detail.",
    "503": "serverInternal: the store is unavailable, with Retry-After.",
}


def _problem_responses() -> dict[str, Any]:
    """Components: each problem twice, with the nonce headers (JWS requests) and without (reads)."""
    found: dict[str, Any] = {}
    for status, description in _PROBLEMS.items():
        for prefix, headers in (("AcmeProblem", _NONCED), ("AcmeReadProblem", _REQUEST_ID)):
            if status in ("429", "503"):
                headers = {**headers, "Retry-After": _STRING}
            found[f"{prefix}{status}"] = _problem(description, headers)
    return found


ACME_RESPONSES = _problem_responses()


def _problems(prefix: str) -> dict[str, Any]:
    return {status: {"$ref": f"#/components/responses/{prefix}{status}"} for status in _PROBLEMS}


def _json(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "description": description,
        "headers": {**_NONCED, "Location": _STRING},
        "content": {"application/json": {"schema": schema or {"type": "object"}}},
    }


def _post(operation_id: str, summary: str, responses: dict[str, Any], *, with_id: bool) -> dict[str, Any]:
    parameters = [_path("project_id")]
    if with_id:
        parameters.append(_path("id"))
    return {
        "post": {
            "operationId": operation_id,
            "summary": summary,
            "security": [],
            "parameters": parameters,
            "requestBody": {
                "required": True,
                "content": {"application/jose+json": {"schema": {"$ref": "#/components/schemas/AcmeJws"}}},
            },
            "responses": {**responses, **_problems("AcmeProblem")},
        }
    }


def _path(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}


def _read(operation_id: str, summary: str, responses: dict[str, Any]) -> dict[str, Any]:
    return {
        "operationId": operation_id,
        "summary": summary,
        "security": [],
        "parameters": [_path("project_id")],
        "responses": {**responses, **_problems("AcmeReadProblem")},
    }


def acme_paths() -> dict[str, Any]:
    """The ACME server's paths: one directory per project, every RFC 8555 resource under it."""
    directory = {
        "200": {
            "description": "The project's ACME directory (External Account Binding required).",
            "headers": _REQUEST_ID,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/AcmeDirectory"}}},
        }
    }
    nonce_ok = {"description": "A fresh nonce in Replay-Nonce.", "headers": _NONCED}
    base = "/acme/{project_id}"
    certificate = {
        "200": {
            "description": "The certificate and its chain, PEM.",
            "headers": _NONCED,
            "content": {"application/pem-certificate-chain": {"schema": {"type": "string"}}},
        }
    }
    return {
        f"{base}/directory": {
            "get": _read("AcmeDirectory", "The ACME directory of a project (RFC 8555 §7.1.1).", directory),
            "head": _read("AcmeDirectoryHead", "The directory's headers.", directory),
        },
        f"{base}/new-nonce": {
            "get": _read("AcmeNewNonceGet", "A nonce (RFC 8555 §7.2).", {"204": nonce_ok}),
            "head": _read("AcmeNewNonce", "A nonce (RFC 8555 §7.2).", {"200": nonce_ok}),
        },
        f"{base}/new-account": _post(
            "AcmeNewAccount",
            "Create an account, bound to a csscert user by External Account Binding (§7.3, §7.3.4).",
            {"200": _json("The account of this key exists."), "201": _json("Account created.")},
            with_id=False,
        ),
        f"{base}/acct/{{id}}": _post(
            "AcmeAccount",
            "Read, update or deactivate the account (§7.3.2, §7.3.6).",
            {"200": _json("The account.")},
            with_id=True,
        ),
        f"{base}/acct/{{id}}/orders": _post(
            "AcmeAccountOrders",
            "The account's orders (§7.1.2.1).",
            {"200": _json("Order URLs.")},
            with_id=True,
        ),
        f"{base}/new-order": _post(
            "AcmeNewOrder",
            "Order a certificate for DNS names and IP addresses (§7.4).",
            {"201": _json("The order, pending.")},
            with_id=False,
        ),
        f"{base}/order/{{id}}": _post(
            "AcmeOrder",
            "The order (POST-as-GET; Retry-After while processing).",
            {"200": _json("The order.")},
            with_id=True,
        ),
        f"{base}/order/{{id}}/finalize": _post(
            "AcmeFinalize",
            "Finalize with a CSR: checked against profile and policy, then signed (§7.4).",
            {"200": _json("The order, valid.")},
            with_id=True,
        ),
        f"{base}/authz/{{id}}": _post(
            "AcmeAuthorization",
            "The authorization (POST-as-GET) or its deactivation (§7.5).",
            {"200": _json("The authorization.")},
            with_id=True,
        ),
        f"{base}/chall/{{id}}": _post(
            "AcmeChallenge",
            "Respond to a challenge (http-01, tls-alpn-01), or read it (§7.5.1).",
            {"200": _json("The challenge.")},
            with_id=True,
        ),
        f"{base}/cert/{{id}}": _post(
            "AcmeCertificate", "Download the certificate with its chain (§7.4.2).", certificate, with_id=True
        ),
        f"{base}/revoke-cert": _post(
            "AcmeRevokeCert",
            "Revoke, signed by the ordering account or the certificate's key (§7.6).",
            {"200": {"description": "Revoked (in the CRL).", "headers": _NONCED}},
            with_id=False,
        ),
        f"{base}/key-change": _post(
            "AcmeKeyChange",
            "Roll the account key over (§7.3.5).",
            {"200": _json("The account, under its new key.")},
            with_id=False,
        ),
    }
