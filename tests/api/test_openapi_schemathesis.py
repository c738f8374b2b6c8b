"""schemathesis fuzzes the real server against our published OpenAPI document.

Every generated request, valid or not, must get a documented status with a body that matches
the documented schema and content type, and never a 5xx. (Driven through hypothesis directly:
schemathesis' lazy pytest fixture loader does not support pytest 9 yet.)
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.core.result import Ok
from schemathesis.specs.openapi import checks as oas_checks
from support.server import CsscertServer

Operation = schemathesis.APIOperation[Any, Any, Any, Any]

CHECKS = [
    schemathesis.checks.not_a_server_error,
    oas_checks.status_code_conformance,
    oas_checks.content_type_conformance,
    oas_checks.response_schema_conformance,
    oas_checks.response_headers_conformance,
]


@pytest.fixture(scope="module")
def operations(server: CsscertServer) -> dict[str, Operation]:
    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
    found: dict[str, Operation] = {}
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result
        operation = result.ok()
        found[operation.label] = operation
    return found


LABELS = [
    "GET /v1.0/{project_id}/cer/download",
    "HEAD /v1.0/{project_id}/cer/download",
    "GET /v3",
    "POST /v3/auth/tokens",
    "GET /v3/auth/tokens",
    "HEAD /v3/auth/tokens",
    "DELETE /v3/auth/tokens",
    "GET /v3/projects",
    "GET /v3/auth/projects",
    "GET /v3/auth/domains",
    "GET /v3/auth/catalog",
    "GET /v3/projects/{project_id}",
    "GET /v3/users/{user_id}/projects",
    "GET /healthz",
    "GET /readyz",
    "GET /metrics",
    "GET /v1.0/crl/{ca_fingerprint}.crl",
    "HEAD /v1.0/crl/{ca_fingerprint}.crl",
    "POST /v1.0/{project_id}/csscert/certificates",
    "GET /v1.0/{project_id}/csscert/certificates",
    "GET /v1.0/{project_id}/csscert/certificates/{serial}",
    "POST /v1.0/{project_id}/csscert/certificates/{serial}/revoke",
]
# ACME authenticates inside the request (a JWS), so one run each, without X-Auth-Token.
ACME_LABELS = [
    "GET /acme/{project_id}/directory",
    "HEAD /acme/{project_id}/directory",
    "GET /acme/{project_id}/new-nonce",
    "HEAD /acme/{project_id}/new-nonce",
    *(
        f"POST /acme/{{project_id}}/{resource}"
        for resource in (
            "new-account", "acct/{id}", "acct/{id}/orders", "new-order", "order/{id}",
            "order/{id}/finalize", "authz/{id}", "chall/{id}", "cert/{id}", "revoke-cert", "key-change",
        )
    ),
]  # fmt: skip


def test_every_operation_is_covered(operations: dict[str, Operation]) -> None:
    assert sorted(operations) == sorted(LABELS + ACME_LABELS)


CASES = [
    *(pytest.param(label, True, id=f"{label}-token") for label in LABELS),
    *(pytest.param(label, False, id=f"{label}-anonymous") for label in LABELS + ACME_LABELS),
]


@pytest.mark.parametrize(("label", "authenticated"), CASES)
def test_operation_behaves_as_documented(
    operations: dict[str, Operation], server: CsscertServer, admin_token: str, label: str, authenticated: bool
) -> None:
    operation = operations[label]
    headers = {"X-Auth-Token": admin_token} if authenticated else {}
    statuses: list[int] = []
    real_ca = server.cli_json("ca", "show")["fingerprint_sha256"] if "{ca_fingerprint}" in label else ""

    @given(case=operation.as_strategy(), real_project=st.booleans())
    @settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def check(case: schemathesis.Case[Any], real_project: bool) -> None:
        if real_project and case.path_parameters and "project_id" in case.path_parameters:
            case.path_parameters["project_id"] = server.project_id
        if real_project and case.path_parameters and "ca_fingerprint" in case.path_parameters:
            case.path_parameters["ca_fingerprint"] = real_ca
        response = case.call_and_validate(headers=headers, checks=CHECKS)
        statuses.append(response.status_code)

    check()
    if authenticated and label.endswith("/cer/download"):
        assert 200 in statuses or 304 in statuses, statuses  # the fuzzing reached the real answer too
    if not authenticated and label.endswith("/cer/download"):
        assert 200 not in statuses
    if label == "GET /v1.0/crl/{ca_fingerprint}.crl":
        assert 200 in statuses or 304 in statuses, statuses  # public: with or without a token
    if label == "GET /v1.0/{project_id}/csscert/certificates":
        assert (200 in statuses) == authenticated, statuses
    if label == "GET /acme/{project_id}/directory":
        assert 200 in statuses, statuses  # public, per project: the fuzzing reached the real answer
    if label.startswith("POST /acme/"):
        assert 400 in statuses, statuses  # the real project, and an envelope it could not accept
