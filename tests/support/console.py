"""Helpers for the web console's tests: sign in over HTTP, open a session cookie with the master key."""

from __future__ import annotations

import re

import httpx

from csscert.api.console.session import SESSION_COOKIE, SessionCodec
from csscert.sealing import Sealer, load_master_key
from support.server import CsscertServer

CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def csrf_of(html: str) -> str:
    found = CSRF.search(html)
    assert found is not None, "the page has no CSRF field"
    return found[1]


def sign_in(
    client: httpx.Client, server: CsscertServer, user: str = "", password: str = ""
) -> httpx.Response:
    """Sign in as the bootstrap user (or ``user``) the way a browser does; the answer of the POST."""
    form = client.get(f"{server.url}/console/login")
    boot = server.bootstrap
    data = {
        "csrf": csrf_of(form.text),
        "domain": boot["domain_name"],
        "user": user or boot["user_name"],
        "password": password or boot["password"],
    }
    return client.post(f"{server.url}/console/login", data=data)


def session_token(server: CsscertServer, cookie: str) -> str:
    """The Keystone token sealed in a session cookie (tests hold the master key, as a host does)."""
    codec = SessionCodec.from_sealer(Sealer(load_master_key(None, server.data_dir, create=False)))
    token = codec.open(cookie, 0.0)
    assert token is not None, f"{SESSION_COOKIE} does not open"
    return token
