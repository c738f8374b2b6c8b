"""Helpers for the identity tests: accounts made with the real CLI, requests signed by the SDK's signer.

The signer used here is ``huaweicloudsdkcore.signer.signer.Signer`` (the official one), never
csscert's own ``signing`` module, so the server is checked against the SDK and not against itself.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx
from conftest import CsscertServer
from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.sdk_request import SdkRequest
from huaweicloudsdkcore.signer.signer import Signer


@dataclass(frozen=True)
class Account:
    user: str
    user_id: str
    project_id: str
    project_name: str
    access: str
    secret: str
    password: str | None = None


def new_account(
    server: CsscertServer, *, project_id: str | None = None, password: bool = False, prefix: str = "id"
) -> Account:
    """A project of its own (unless given), a user granted it (with a password if asked), and an AK/SK."""
    tag = secrets.token_hex(4)
    if project_id is None:
        created = server.cli_json("project", "create", f"{prefix}{tag}")
        project_id, project_name = created["id"], created["name"]
    else:
        project_name = next(p["name"] for p in server.cli_json("project", "list") if p["id"] == project_id)
    name = f"{prefix}-user-{tag}"
    secret_password = secrets.token_urlsafe(18) if password else None
    args = ["user", "create", name, "--project", project_id, "--json"]
    if secret_password is not None:
        args.append("--password-stdin")
    made = server.cli(*args, input=(secret_password + "\n") if secret_password else None)
    user_id = json.loads(made.stdout)["id"]
    key = server.cli_json("credential", "create", "--user", name)
    return Account(name, user_id, project_id, project_name, key["access"], key["secret"], secret_password)


def sdk_sign(
    access: str,
    secret: str,
    method: str,
    url: str,
    headers: Mapping[str, str] | None = None,
    body: bytes = b"",
    query: Iterable[tuple[str, str]] = (),
) -> tuple[str, dict[str, str]]:
    """Sign like the SDK does and return (URL to request, headers to send).

    ``url`` carries no query; ``query`` pairs are encoded by the signer, as the SDK's clients do.
    """
    parts = urlsplit(url)
    request = SdkRequest(
        method=method,
        schema=parts.scheme,
        host=parts.netloc,
        resource_path=parts.path,
        query_params=list(query),
        header_params=dict(headers or {}),
        body=body,
    )
    Signer(BasicCredentials(access, secret)).sign(request)
    return request.url, dict(request.header_params)


def error_of(response: httpx.Response) -> tuple[int, str, str]:
    body = response.json()
    return response.status_code, body["error_code"], body["error_msg"]
