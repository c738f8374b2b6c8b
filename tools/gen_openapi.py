"""Writes src/csscert/api/openapi.json, the contract schemathesis fuzzes the real server against.

Kept as Python so the repeated error responses are written once; run it after changing routes:
``python tools/gen_openapi.py``. ``--out PATH`` writes the document elsewhere (``scripts/check``
writes it to a temporary file and compares it with the committed one).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from openapi_acme import ACME_RESPONSES, ACME_SCHEMAS, acme_paths

OUT = Path(__file__).resolve().parent.parent / "src" / "csscert" / "api" / "openapi.json"

CSS_ERROR = {
    "type": "object",
    "required": ["error_code", "error_msg", "errCode", "externalMessage", "request_id"],
    "properties": {
        "error_code": {"type": "string", "pattern": r"^(CSS|APIGW)\.\d{4}$"},
        "error_msg": {"type": "string"},
        "errCode": {"type": "string"},
        "externalMessage": {"type": "string"},
        "request_id": {"type": "string", "pattern": "^[0-9a-f]{32}$"},
    },
}
KEYSTONE_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "title", "message"],
            "properties": {
                "code": {"type": "integer"},
                "title": {"type": "string"},
                "message": {"type": "string"},
            },
        }
    },
}
REQUEST_ID = {
    "X-Request-Id": {"schema": {"type": "string"}, "description": "Request id, also in error bodies."}
}
KS_HEADERS = {
    "X-Request-Id": {"schema": {"type": "string", "pattern": "^req-[0-9a-f-]{36}$"}},
    "x-openstack-request-id": {
        "schema": {"type": "string", "pattern": "^req-[0-9a-f-]{36}$"},
        "description": "Keystone's request id, req-<uuid>: the same value as X-Request-Id.",
    },
    "Vary": {"schema": {"type": "string", "enum": ["X-Auth-Token"]}},
}


def css_err(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "headers": REQUEST_ID,
        "content": {"application/json;charset=UTF-8": {"schema": {"$ref": "#/components/schemas/CssError"}}},
    }


def ks_err(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "headers": KS_HEADERS,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/KeystoneError"}}},
    }


CSS_ERRORS = {
    "400": css_err("Invalid request (CSS.0001)."),
    "401": css_err("Missing or wrong credentials (APIGW.0301)."),
    "403": css_err("The project is not the caller's (CSS.0015)."),
    "404": css_err("Project not found (CSS.0016)."),
    "405": css_err("Method not allowed."),
    "406": css_err("No acceptable representation."),
    "408": css_err("The request body did not arrive in time; the connection is closed."),
    "429": {
        **css_err("Too many requests with this credential (APIGW.0308); see Retry-After."),
        "headers": {**REQUEST_ID, "Retry-After": {"schema": {"type": "string"}, "description": "Seconds."}},
    },
    "500": css_err("Internal failure (CSS.9999), no detail."),
}
KS_ERRORS = {
    "400": ks_err("Bad request."),
    "401": ks_err("Authentication required or failed."),
    "403": ks_err("Forbidden."),
    "404": ks_err("Not found."),
    "405": ks_err("Method not allowed."),
    "408": ks_err("The request body did not arrive in time; the connection is closed."),
    "413": ks_err("Request body too large."),
    "429": {
        **ks_err("Too many requests (per credential; logins per user and address); see Retry-After."),
        "headers": {**REQUEST_ID, "Retry-After": {"schema": {"type": "string"}, "description": "Seconds."}},
    },
    "500": ks_err("Internal failure, no detail."),
}
SECURITY: list[dict[str, list[str]]] = [{"token": []}, {"aksk": []}]

readiness = {
    "type": "object",
    "required": ["status", "checks"],
    "properties": {
        "status": {"type": "string", "enum": ["ok", "unavailable"]},
        "checks": {
            "type": "object",
            "required": ["store", "ca", "changes"],
            "properties": {
                "store": {"type": "boolean"},
                "ca": {"type": "boolean"},
                "changes": {"type": "boolean"},
            },
        },
    },
}

download_ok = {
    "description": "The trust bundle (PEM by default; see `format`).",
    "headers": {
        **REQUEST_ID,
        "ETag": {"schema": {"type": "string"}},
        "Last-Modified": {"schema": {"type": "string"}},
        "Content-Disposition": {"schema": {"type": "string"}},
    },
    "content": {
        "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
        "application/pkix-cert": {"schema": {"type": "string", "format": "binary"}},
        "application/pkcs7-mime; smime-type=certs-only": {"schema": {"type": "string", "format": "binary"}},
        "application/x-pkcs12": {"schema": {"type": "string", "format": "binary"}},
        "application/json": {"schema": {"$ref": "#/components/schemas/BundleMetadata"}},
    },
}
download_params = [
    {
        "name": "project_id",
        "in": "path",
        "required": True,
        "description": "32 lower-case hex characters.",
        "schema": {"type": "string"},
    },
    {
        "name": "format",
        "in": "query",
        "required": False,
        "schema": {"type": "string", "enum": ["pem", "der", "p7b", "jks", "p12", "json"]},
    },
    {
        "name": "password",
        "in": "query",
        "required": False,
        "description": (
            "Truststore password for format=jks|p12 (default `changeit`); printable ASCII, as Java requires."
        ),
        "schema": {"type": "string", "minLength": 1, "maxLength": 128, "pattern": "^[ -~]+$"},
    },
]
download_responses = {
    "200": download_ok,
    "304": {"description": "Not modified.", "headers": REQUEST_ID},
    **CSS_ERRORS,
}

token_body = {
    "type": "object",
    "required": ["token"],
    "properties": {
        "token": {
            "type": "object",
            "required": ["methods", "user", "expires_at", "issued_at", "audit_ids"],
            "properties": {
                "methods": {"type": "array", "items": {"type": "string"}},
                "expires_at": {"type": "string"},
                "issued_at": {"type": "string"},
                "audit_ids": {
                    "description": "[own] or, for a token got with a token, [own, first of the chain].",
                    "type": "array",
                    "items": {"type": "string"},
                    "minItems": 1,
                    "maxItems": 2,
                },
                "user": {"type": "object"},
                "project": {"type": "object"},
                "catalog": {"type": "array"},
            },
        }
    },
}
auth_request = {
    "type": "object",
    "required": ["auth"],
    "properties": {
        "auth": {
            "type": "object",
            "required": ["identity"],
            "properties": {
                "identity": {
                    "type": "object",
                    "required": ["methods"],
                    "properties": {
                        "methods": {
                            "type": "array",
                            "items": {"type": "string", "enum": ["password", "token"]},
                        },
                        "password": {"type": "object"},
                        "token": {"type": "object"},
                    },
                },
                "scope": {"type": "object"},
            },
        }
    },
}
project_schema = {
    "type": "object",
    "required": ["id", "name", "domain_id", "enabled", "is_domain", "parent_id", "tags", "options", "links"],
    "properties": {
        "id": {"type": "string", "pattern": "^[0-9a-f]{32}$"},
        "name": {"type": "string"},
        "domain_id": {"type": "string"},
        "description": {"type": "string"},
        "enabled": {"type": "boolean"},
        "is_domain": {"type": "boolean"},
        "parent_id": {"type": "string"},
        "tags": {"type": "array", "items": {"type": "string"}},
        "options": {"type": "object"},
        "links": {"type": "object"},
    },
}
projects_body = {
    "type": "object",
    "required": ["projects", "links"],
    "properties": {
        "projects": {
            "type": "array",
            "items": {
                "type": "object",
                "$ref": "#/components/schemas/Project",
            },
        },
        "links": {"type": "object"},
    },
}


NULLABLE_STRING = {"type": "string", "nullable": True}
certificate_schema = {
    "type": "object",
    "required": [
        "serial", "name", "project_id", "subject", "profile", "sans", "key_type", "fingerprint_sha256",
        "not_before", "not_after", "status", "origin", "revoked_at", "revocation_reason",
    ],
    "properties": {
        "serial": {"type": "string", "pattern": "^[0-9a-f]+$", "description": "Lower-case hex."},
        "name": {"type": "string"},
        "project_id": {"type": "string", "pattern": "^[0-9a-f]{32}$"},
        "subject": {"type": "string", "description": "RFC 4514."},
        "profile": {"type": "string", "enum": ["node", "client", "admin"]},
        "sans": {"type": "array", "items": {"type": "string"}, "description": "DNS names, then IPs."},
        "key_type": NULLABLE_STRING,
        "fingerprint_sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
        "not_before": {"type": "string"},
        "not_after": {"type": "string"},
        "status": {"type": "string", "enum": ["valid", "expired", "superseded", "revoked"]},
        "origin": {"type": "string", "description": "cli, csr, api, acme or serve: how it was asked for."},
        "revoked_at": NULLABLE_STRING,
        "revocation_reason": {**NULLABLE_STRING, "description": "RFC 5280 reason name."},
        "certificate": {**NULLABLE_STRING, "description": "PEM (absent in listings; null on old records)."},
    },
}  # fmt: skip
signed_schema = {
    "allOf": [
        {"$ref": "#/components/schemas/Certificate"},
        {
            "type": "object",
            "required": ["certificate", "chain", "ca_bundle"],
            "properties": {
                "chain": {"type": "string", "description": "PEM: the certificate, then its CA."},
                "ca_bundle": {"type": "string", "description": "PEM: every CA the project's clients trust."},
                "requested_days": {"type": "integer", "description": "Set when cut to the CA's expiry."},
            },
        },
    ]
}
sign_request = {
    "type": "object",
    "required": ["csr"],
    "additionalProperties": False,
    "properties": {
        "csr": {
            "type": "string",
            "description": "PEM certificate signing request (its signature is checked).",
        },
        "profile": {"type": "string", "enum": ["node", "client", "admin"], "default": "node"},
        "name": {"type": "string", "description": "Certificate name (default: the CSR's CN)."},
        "validity_days": {"type": "integer", "minimum": 1, "maximum": 36500},
    },
}
REASON_NAMES = [
    "unspecified", "keyCompromise", "cACompromise", "affiliationChanged", "superseded",
    "cessationOfOperation", "privilegeWithdrawn", "aACompromise",
]  # fmt: skip
revoke_request = {
    "type": "object",
    "required": ["reason"],
    "additionalProperties": False,
    "properties": {"reason": {"type": "string", "enum": REASON_NAMES, "description": "RFC 5280 5.3.1."}},
}
certificate_list = {
    "type": "object",
    "required": ["certificates", "next_marker"],
    "properties": {
        "certificates": {"type": "array", "items": {"$ref": "#/components/schemas/Certificate"}},
        "next_marker": {
            **NULLABLE_STRING,
            "description": "Pass as `marker` for the next page; null at the end.",
        },
    },
}
project_param = download_params[0]
serial_param = {
    "name": "serial",
    "in": "path",
    "required": True,
    "description": "Lower-case hex (colons and case are tolerated).",
    "schema": {"type": "string"},
}


def query(name: str, schema: dict[str, Any], description: str = "") -> dict[str, Any]:
    found: dict[str, Any] = {"name": name, "in": "query", "required": False, "schema": schema}
    if description:
        found["description"] = description
    return found


list_params = [
    project_param,
    query("status", {"type": "string", "enum": ["valid", "expired", "superseded", "revoked"]}),
    query("name", {"type": "string"}),
    query("limit", {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}),
    query("marker", {"type": "string"}, "The serial after which the page starts."),
]
NO_STORE = {**REQUEST_ID, "Cache-Control": {"schema": {"type": "string", "enum": ["no-store"]}}}


def json_ok(
    description: str, schema: dict[str, Any], headers: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {
        "description": description,
        "headers": headers or NO_STORE,
        "content": {"application/json": {"schema": schema}},
    }


ISSUER = " Needs the project and the role `certificate-issuer` (403 otherwise)."
crl_responses = {
    "200": {
        "description": "The CA's current CRL, DER (re-signed after each revocation and each half validity).",
        "headers": {
            **REQUEST_ID,
            "ETag": {"schema": {"type": "string"}},
            "Last-Modified": {"schema": {"type": "string"}, "description": "The CRL's thisUpdate."},
            "Cache-Control": {
                "schema": {"type": "string", "pattern": "^public, max-age=[0-9]+$"},
                "description": "Until this server re-signs the CRL; never past its nextUpdate.",
            },
        },
        "content": {"application/pkix-crl": {"schema": {"type": "string", "format": "binary"}}},
    },
    "304": {"description": "Not modified.", "headers": REQUEST_ID},
    "404": css_err("No CA with that fingerprint (CSS.0016)."),
    "405": css_err("Method not allowed."),
    "500": css_err("Internal failure (CSS.9999), no detail."),
}


def ks_ok(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "description": description,
        "headers": KS_HEADERS,
        "content": {"application/json": {"schema": schema}},
    }


def ks_read(operation_id: str, description: str, schema: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "get": {
            "operationId": operation_id,
            "security": SECURITY,
            **extra,
            "responses": {"200": ks_ok(description, schema), **KS_ERRORS},
        }
    }


def path_id(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}


subject_header = {"name": "X-Subject-Token", "in": "header", "required": True, "schema": {"type": "string"}}

document = {
    "openapi": "3.0.3",
    "info": {
        "title": "csscert",
        "version": "0.1.0",
        "description": (
            "CSS 'Downloading a Security Certificate' and the Keystone v3 subset its clients need; "
            "csscert's issuance API (sign, list, revoke), the public CRLs and the ACME server (RFC 8555)."
        ),
    },
    "components": {
        "securitySchemes": {
            "token": {"type": "apiKey", "in": "header", "name": "X-Auth-Token"},
            "aksk": {
                "type": "apiKey",
                "in": "header",
                "name": "Authorization",
                "description": (
                    "SDK-HMAC-SHA256 Access=..., SignedHeaders=..., Signature=... with X-Sdk-Date."
                ),
            },
        },
        "schemas": {
            "CssError": CSS_ERROR,
            "KeystoneError": KEYSTONE_ERROR,
            "Certificate": certificate_schema,
            "BundleMetadata": {
                "type": "object",
                "required": ["scope", "certificates"],
                "properties": {"scope": {"type": "string"}, "certificates": {"type": "array"}},
            },
            **ACME_SCHEMAS,
        },
        "responses": ACME_RESPONSES,
    },
    "paths": {
        "/v1.0/{project_id}/cer/download": {
            "parameters": download_params,
            "get": {
                "operationId": "DownloadCert",
                "summary": "Download the security certificate (CloudSearchService.cer).",
                "security": SECURITY,
                "responses": download_responses,
            },
            "head": {
                "operationId": "DownloadCertHead",
                "summary": "Headers of the download, no body.",
                "security": SECURITY,
                "responses": download_responses,
            },
        },
        "/v1.0/crl/{ca_fingerprint}.crl": {
            "parameters": [
                {
                    "name": "ca_fingerprint",
                    "in": "path",
                    "required": True,
                    "description": "The CA's SHA-256 fingerprint, 64 lower-case hex (csscert ca list).",
                    "schema": {"type": "string"},
                }
            ],
            "get": {
                "operationId": "GetCrl",
                "summary": "A CA's revocation list: the CRL distribution point of its certificates.",
                "security": [],
                "responses": crl_responses,
            },
            "head": {
                "operationId": "GetCrlHead",
                "summary": "Headers of the CRL, no body.",
                "security": [],
                "responses": crl_responses,
            },
        },
        "/v1.0/{project_id}/csscert/certificates": {
            "post": {
                "operationId": "SignCertificate",
                "summary": "Sign a CSR under a profile and the project's issuance policy." + ISSUER,
                "security": SECURITY,
                "parameters": [project_param],
                "requestBody": {"required": True, "content": {"application/json": {"schema": sign_request}}},
                "responses": {
                    "201": json_ok(
                        "Signed: the certificate, its chain and the CA bundle.",
                        signed_schema,
                        {**NO_STORE, "Location": {"schema": {"type": "string"}}},
                    ),
                    **CSS_ERRORS,
                },
            },
            "get": {
                "operationId": "ListCertificates",
                "summary": "One page of the project's certificates, in issue order." + ISSUER,
                "security": SECURITY,
                "parameters": list_params,
                "responses": {"200": json_ok("A page.", certificate_list), **CSS_ERRORS},
            },
        },
        "/v1.0/{project_id}/csscert/certificates/{serial}": {
            "get": {
                "operationId": "ShowCertificate",
                "summary": "One certificate of the project, with its PEM." + ISSUER,
                "security": SECURITY,
                "parameters": [project_param, serial_param],
                "responses": {
                    "200": json_ok("The certificate.", {"$ref": "#/components/schemas/Certificate"}),
                    **CSS_ERRORS,
                },
            },
        },
        "/v1.0/{project_id}/csscert/certificates/{serial}/revoke": {
            "post": {
                "operationId": "RevokeCertificate",
                "summary": "Revoke a certificate (final); its CA's CRL lists it from the next fetch on."
                + ISSUER,
                "security": SECURITY,
                "parameters": [project_param, serial_param],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": revoke_request}},
                },
                "responses": {
                    "200": json_ok("Revoked.", {"$ref": "#/components/schemas/Certificate"}),
                    **CSS_ERRORS,
                },
            },
        },
        "/v3": {
            "get": {
                "operationId": "KeystoneVersion",
                "security": [],
                "responses": {
                    "200": {
                        "description": "Version document.",
                        "content": {
                            "application/json": {"schema": {"type": "object", "required": ["version"]}}
                        },
                    }
                },
            }
        },
        "/v3/auth/tokens": {
            "post": {
                "operationId": "KeystoneCreateToken",
                "security": [],
                "requestBody": {"required": True, "content": {"application/json": {"schema": auth_request}}},
                "responses": {
                    "201": {
                        "description": "Token issued; the token is in X-Subject-Token.",
                        "headers": {"X-Subject-Token": {"schema": {"type": "string"}}},
                        "content": {"application/json": {"schema": token_body}},
                    },
                    **KS_ERRORS,
                },
            },
            "get": {
                "operationId": "KeystoneValidateToken",
                "security": [{"token": []}],
                "parameters": [subject_header],
                "responses": {
                    "200": {"description": "Valid.", "content": {"application/json": {"schema": token_body}}},
                    **KS_ERRORS,
                },
            },
            "head": {
                "operationId": "KeystoneCheckToken",
                "security": [{"token": []}],
                "parameters": [subject_header],
                "responses": {"200": {"description": "Valid."}, **KS_ERRORS},
            },
            "delete": {
                "operationId": "KeystoneRevokeToken",
                "security": [{"token": []}],
                "parameters": [subject_header],
                "responses": {"204": {"description": "Revoked."}, **KS_ERRORS},
            },
        },
        "/v3/projects": {
            "get": {
                "operationId": "KeystoneListProjects",
                "security": SECURITY,
                "parameters": [
                    {"name": "name", "in": "query", "required": False, "schema": {"type": "string"}},
                    {"name": "domain_id", "in": "query", "required": False, "schema": {"type": "string"}},
                ],
                "responses": {
                    "200": ks_ok(
                        "The projects the caller's user has a role on (answered for a member on "
                        "purpose, as Huawei IAM does; Keystone's default policy says 403).",
                        projects_body,
                    ),
                    **KS_ERRORS,
                },
            }
        },
        "/v3/projects/{project_id}": ks_read(
            "KeystoneShowProject",
            "The project the caller's token is scoped to (any other: 403).",
            {"type": "object", "required": ["project"], "properties": {"project": project_schema}},
            parameters=[path_id("project_id")],
        ),
        "/v3/users/{user_id}/projects": ks_read(
            "KeystoneListUserProjects",
            "The caller's own projects (another user's: 403).",
            projects_body,
            parameters=[path_id("user_id")],
        ),
        "/v3/auth/projects": ks_read("KeystoneListAuthProjects", "The caller's projects.", projects_body),
        "/v3/auth/domains": ks_read(
            "KeystoneListAuthDomains",
            "Domains the caller has a role on: none (csscert grants roles on projects only).",
            {
                "type": "object",
                "required": ["domains", "links"],
                "properties": {"domains": {"type": "array"}},
            },
        ),
        "/v3/auth/catalog": ks_read(
            "KeystoneAuthCatalog",
            "The catalog of a project-scoped token (other callers: 403).",
            {
                "type": "object",
                "required": ["catalog", "links"],
                "properties": {"catalog": {"type": "array"}},
            },
        ),
        "/healthz": {
            "get": {
                "operationId": "Health",
                "summary": "Alive: the process answers (nothing else is checked).",
                "security": [],
                "responses": {
                    "200": {
                        "description": "Up.",
                        "headers": REQUEST_ID,
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    }
                },
            }
        },
        "/readyz": {
            "get": {
                "operationId": "Ready",
                "summary": "Ready: the store answers, a CA is present, the view is at the store's revision.",
                "security": [],
                "responses": {
                    "200": {
                        "description": "Ready.",
                        "headers": REQUEST_ID,
                        "content": {"application/json": {"schema": readiness}},
                    },
                    "503": {
                        "description": "Not ready; `checks` says what failed.",
                        "headers": REQUEST_ID,
                        "content": {"application/json": {"schema": readiness}},
                    },
                },
            }
        },
        "/metrics": {
            "get": {
                "operationId": "Metrics",
                "summary": (
                    "Prometheus metrics of the whole server. By default only from the loopback interface "
                    "(CSSCERT_METRICS=loopback|on|off; CSSCERT_METRICS_TOKEN admits a bearer token)."
                ),
                "security": [],
                "responses": {
                    "200": {
                        "description": "The Prometheus text exposition format.",
                        "headers": REQUEST_ID,
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    },
                    "403": css_err("Not from the loopback interface, and no metrics token (CSS.0015)."),
                    "404": css_err("Metrics are off (APIGW.0101)."),
                },
            }
        },
    },
}


document["paths"].update(acme_paths())  # type: ignore[attr-defined]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Write the OpenAPI document of csscert.")
    parser.add_argument(
        "--out", type=Path, default=OUT, metavar="PATH", help="where to write it (default: %(default)s)"
    )
    out: Path = parser.parse_args(argv).out
    out.write_text(json.dumps(document, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
