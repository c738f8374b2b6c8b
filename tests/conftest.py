"""Shared fixtures: the real ``csscert serve`` on an ephemeral port, and the real CLI beside it.

Nothing here imports the server in-process: the end-to-end areas (api, identity, ca, store, cli,
compat) drive it over HTTP and through the ``csscert`` command, exactly as users do. The helpers
behind these fixtures live in the ``support`` package; ``tests/unit`` needs none of them.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from support.accounts import Account, new_account
from support.server import CsscertServer, ServerFactory


@pytest.fixture(scope="session")
def make_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerFactory]:
    """Start extra servers: ``make_server(extra_args=["--ca-scope", "project"])``; stopped at the end."""
    started: list[CsscertServer] = []

    def factory(**kwargs: Any) -> CsscertServer:
        base = tmp_path_factory.mktemp("csscert")
        server = CsscertServer(data_dir=base / "data", **kwargs)
        server.start()
        started.append(server)
        return server

    yield factory
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def server(make_server: ServerFactory) -> CsscertServer:
    """The shared default server (region scope, SQLite). Tests must not break its state."""
    return make_server()


@pytest.fixture(scope="session")
def admin_token(server: CsscertServer) -> str:
    """A token of the shared server's bootstrap user, scoped to its bootstrap project."""
    return server.token()


@pytest.fixture(scope="module")
def http_client() -> Iterator[httpx.Client]:
    """One httpx client per test module (keep-alive connections, 10 s timeout)."""
    with httpx.Client(timeout=10) as client:
        yield client


@pytest.fixture(scope="module")
def account(server: CsscertServer, request: pytest.FixtureRequest) -> Account:
    """A project of its own on the shared server, a user granted it and an AK/SK; one per test module."""
    prefix = request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_")[:8].replace("_", "")
    return new_account(server, prefix=prefix)
