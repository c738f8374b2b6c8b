"""Requests signed by the official SDK signer (``huaweicloudsdkcore.signer.signer.Signer``).

Never csscert's own ``signing`` module: the server is checked against the SDK, not against itself.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit

from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.sdk_request import SdkRequest
from huaweicloudsdkcore.signer.signer import Signer


def sdk_request(
    method: str,
    url: str,
    headers: Mapping[str, str] | None = None,
    body: bytes = b"",
    query: Iterable[tuple[str, str]] = (),
) -> SdkRequest:
    """The SDK's request object for ``url`` (which carries no query; ``query`` pairs are separate)."""
    parts = urlsplit(url)
    return SdkRequest(
        method=method,
        schema=parts.scheme,
        host=parts.netloc,
        resource_path=parts.path,
        query_params=list(query),
        header_params=dict(headers or {}),
        body=body,
    )


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
    request = sdk_request(method, url, headers, body, query)
    Signer(BasicCredentials(access, secret)).sign(request)
    return str(request.url), dict(request.header_params)
