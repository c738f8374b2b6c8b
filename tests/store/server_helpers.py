"""Real ``csscert serve`` processes on a shared database, for the acceptance tests of the read model.

Servers are the conftest's :class:`CsscertServer` (the real CLI, an ephemeral port), each with a
data directory of its own and the same ``CSSCERT_DATABASE_URL`` and ``CSSCERT_MASTER_KEY``, as
two hosts of one deployment would be. Requests go over HTTP with httpx; AK/SK signatures come
from the official SDK's signer (:func:`identity_helpers.sdk_sign`).
"""

from __future__ import annotations

import contextlib
import secrets
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
from support.server import CsscertServer
from support.signing import sdk_sign


@contextlib.contextmanager
def servers_on(
    database_url: str, tmp_path: Path, count: int = 2, **env: str
) -> Iterator[list[CsscertServer]]:
    """``count`` servers on one database, started one after the other (the first bootstraps)."""
    shared = {
        "CSSCERT_DATABASE_URL": database_url,
        "CSSCERT_MASTER_KEY": secrets.token_urlsafe(32),
        **env,
    }
    servers = [
        CsscertServer(data_dir=tmp_path / f"host-{i}" / "data", env=dict(shared)) for i in range(count)
    ]
    try:
        for server in servers:
            server.data_dir.parent.mkdir(parents=True, exist_ok=True)
            server.start()
        yield servers
    finally:
        for server in servers:
            server.stop()


def _http(client: httpx.Client | None) -> Any:
    """The client to use: a given one (kept-alive connections, for timing), else a new
    connection per request (what survives a server being killed and restarted)."""
    return client if client is not None else httpx


def login(
    server: CsscertServer,
    user: str,
    password: str,
    project_id: str | None = None,
    *,
    project_name: str | None = None,
    timeout: float = 10.0,
    client: httpx.Client | None = None,
) -> httpx.Response:
    """``POST /v3/auth/tokens`` with a password, scoped to a project by id or name."""
    scope: dict[str, Any] = {}
    if project_id is not None:
        scope = {"scope": {"project": {"id": project_id}}}
    elif project_name is not None:
        scope = {"scope": {"project": {"name": project_name, "domain": {"name": "csscert"}}}}
    body = {
        "auth": {
            "identity": {
                "methods": ["password"],
                "password": {"user": {"name": user, "domain": {"name": "csscert"}, "password": password}},
            },
            **scope,
        }
    }
    answer: httpx.Response = _http(client).post(
        f"{server.url}/v3/auth/tokens?nocatalog", json=body, timeout=timeout
    )
    return answer


def login_token(server: CsscertServer, user: str, password: str, project_id: str) -> str:
    answer = login(server, user, password, project_id)
    assert answer.status_code == 201, answer.text
    return answer.headers["x-subject-token"]


def download(
    server: CsscertServer,
    token: str,
    project_id: str,
    timeout: float = 10.0,
    client: httpx.Client | None = None,
) -> httpx.Response:
    """The CA bundle with a token (the project is explicit: only the first host has the
    bootstrap file the fixture's default project comes from)."""
    answer: httpx.Response = _http(client).get(
        server.download_url(project_id), headers={"X-Auth-Token": token}, timeout=timeout
    )
    return answer


def signed_download(
    server: CsscertServer,
    access: str,
    secret: str,
    project_id: str,
    timeout: float = 10.0,
    client: httpx.Client | None = None,
) -> httpx.Response:
    url, headers = sdk_sign(access, secret, "GET", server.download_url(project_id))
    answer: httpx.Response = _http(client).get(url, headers=headers, timeout=timeout)
    return answer


def revoke(server: CsscertServer, token: str) -> httpx.Response:
    """``DELETE /v3/auth/tokens``: the token revokes itself."""
    return httpx.delete(
        f"{server.url}/v3/auth/tokens", headers={"X-Auth-Token": token, "X-Subject-Token": token}, timeout=10
    )


def status_within(
    status: int, timeout: float, request: Callable[..., httpx.Response], *args: Any, **kwargs: Any
) -> float | None:
    """How long until ``request(*args, **kwargs)`` answers ``status``, or None after ``timeout``."""
    return seconds_until(lambda: request(*args, **kwargs).status_code == status, timeout)


def seconds_until(predicate: Callable[[], bool], timeout: float) -> float | None:
    """How long until ``predicate()`` holds (polled back to back), or None after ``timeout``."""
    started = time.monotonic()
    while True:
        if predicate():
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            return None
        time.sleep(0.002)
