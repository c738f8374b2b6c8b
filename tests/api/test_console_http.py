"""The web console over plain HTTP (httpx): headers, cookies, CSRF, limits, logs, several hosts.

What a browser cannot show directly: the exact response headers, a forged or replayed cookie,
a POST no page would send, and what reaches the access log. The browser tests are in
test_console_browser.py.
"""

from __future__ import annotations

import re
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.accounts import new_account
from support.console import csrf_of, session_token, sign_in
from support.server import CsscertServer, ServerFactory

pytestmark = pytest.mark.xdist_group("console-http")


@pytest.fixture(scope="module")
def host(make_server: ServerFactory) -> CsscertServer:
    # A low per-user login limit, so the shared-limit test needs few attempts.
    return make_server(env={"CSSCERT_RATE_LIMIT_LOGIN_USER": "4/300"})


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10, follow_redirects=False) as made:
        yield made


def signed_in(client: httpx.Client, host: CsscertServer) -> str:
    answer = sign_in(client, host)
    assert answer.status_code == 303 and answer.headers["location"] == "/console"
    cookie = client.cookies.get("csscert_session")
    assert cookie
    return cookie


def project_page(client: httpx.Client, host: CsscertServer) -> httpx.Response:
    page = client.get(f"{host.url}/console/projects/{host.project_id}")
    assert page.status_code == 200
    return page


def test_pages_carry_a_strict_csp_no_framing_no_referrer_and_no_store(
    client: httpx.Client, host: CsscertServer
) -> None:
    login = client.get(f"{host.url}/console/login")
    signed_in(client, host)
    answers = [login, project_page(client, host), client.get(f"{host.url}/console/nothing-here")]
    for answer in answers:
        csp = answer.headers["content-security-policy"]
        assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
        assert answer.headers["x-frame-options"] == "DENY"
        assert answer.headers["referrer-policy"] == "no-referrer"
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["cache-control"] == "no-store"
    assert answers[2].status_code == 404 and answers[2].headers["content-type"].startswith("text/html")


def test_pages_hold_no_inline_script_or_style(client: httpx.Client, host: CsscertServer) -> None:
    signed_in(client, host)
    html = project_page(client, host).text
    assert not re.search(r"<script(?![^>]*\bsrc=)", html)
    assert "<style" not in html and " style=" not in html and "javascript:" not in html
    assert re.search(r'<script src="/console/static/console\.js\?v=[0-9a-f]{16}" defer>', html)


def test_static_files_are_versioned_and_cached_for_a_year(client: httpx.Client, host: CsscertServer) -> None:
    for name, kind in (("console.css", "text/css"), ("console.js", "text/javascript")):
        answer = client.get(f"{host.url}/console/static/{name}")
        assert answer.status_code == 200 and answer.headers["content-type"].startswith(kind)
        assert answer.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert client.get(f"{host.url}/console/static/../../master.key").status_code == 404


def test_a_wrong_password_sets_no_session_cookie(client: httpx.Client, host: CsscertServer) -> None:
    answer = sign_in(client, host, password="wrong-password")
    assert answer.status_code == 401
    assert "Sign-in failed" in answer.text
    sessions = [c for c in answer.headers.get_list("set-cookie") if c.startswith("csscert_session=")]
    assert all(c.startswith("csscert_session=;") and "Max-Age=0" in c for c in sessions)
    assert not client.cookies.get("csscert_session")


def test_the_session_cookie_is_http_only_same_site_strict_and_scoped_to_the_console(
    client: httpx.Client, host: CsscertServer
) -> None:
    answer = sign_in(client, host)
    cookie = next(c for c in answer.headers.get_list("set-cookie") if c.startswith("csscert_session="))
    attributes = {part.strip().split("=")[0] for part in cookie.split(";")[1:]}
    assert {"Path", "HttpOnly", "SameSite", "Max-Age"} <= attributes
    assert "Path=/console" in cookie and "SameSite=Strict" in cookie
    assert "Secure" not in attributes  # plain HTTP here; under TLS it is set (the last test)
    token = session_token(host, client.cookies["csscert_session"])
    assert token not in cookie


def test_sign_in_without_the_forms_csrf_token_or_cookie_is_refused(
    client: httpx.Client, host: CsscertServer
) -> None:
    boot = host.bootstrap
    data = {"domain": boot["domain_name"], "user": boot["user_name"], "password": boot["password"]}
    assert client.post(f"{host.url}/console/login", data=data).status_code == 403  # no login cookie
    form = client.get(f"{host.url}/console/login")
    assert client.post(f"{host.url}/console/login", data=data).status_code == 403  # cookie, no token
    with httpx.Client() as other:  # a token from another visitor's form
        other.get(f"{host.url}/console/login")
        stolen = csrf_of(other.get(f"{host.url}/console/login").text)
    assert client.post(f"{host.url}/console/login", data={**data, "csrf": stolen}).status_code == 403
    assert (
        client.post(f"{host.url}/console/login", data={**data, "csrf": csrf_of(form.text)}).status_code == 303
    )


def test_posts_without_the_sessions_csrf_token_are_refused(client: httpx.Client, host: CsscertServer) -> None:
    signed_in(client, host)
    url = f"{host.url}/console/projects/{host.project_id}/download"
    assert client.post(url, data={"format": "pem"}).status_code == 403
    assert client.post(url, data={"format": "pem", "csrf": "A" * 43}).status_code == 403
    with httpx.Client() as other:  # another session's token does not fit this session
        signed_in(other, host)
        foreign = csrf_of(other.get(f"{host.url}/console/projects/{host.project_id}").text)
    assert client.post(url, data={"format": "pem", "csrf": foreign}).status_code == 403
    assert client.post(f"{host.url}/console/logout", data={}).status_code == 403
    assert client.get(f"{host.url}/console").status_code == 200  # still signed in
    own = csrf_of(project_page(client, host).text)
    assert client.post(url, data={"format": "pem", "csrf": own}).status_code == 200


def test_a_tampered_or_foreign_cookie_is_a_visitor_who_is_not_signed_in(
    client: httpx.Client, host: CsscertServer
) -> None:
    cookie = signed_in(client, host)
    flipped = cookie[:20] + ("A" if cookie[20] != "A" else "B") + cookie[21:]
    for value in (flipped, "garbage", host.token()):  # a bare token is not a session either
        client.cookies.clear()
        client.cookies.set("csscert_session", value, path="/console")
        answer = client.get(f"{host.url}/console")
        assert answer.status_code == 303 and answer.headers["location"].startswith("/console/login")
        assert any(c.startswith("csscert_session=;") for c in answer.headers.get_list("set-cookie"))


def test_another_host_sharing_the_database_and_master_key_accepts_the_session(
    client: httpx.Client, host: CsscertServer
) -> None:
    signed_in(client, host)
    second = CsscertServer(data_dir=host.data_dir)
    second.start()
    try:
        assert client.get(f"{second.url}/console/projects/{host.project_id}").status_code == 200
    finally:
        second.stop()


def test_another_users_project_is_refused(client: httpx.Client, host: CsscertServer) -> None:
    other = new_account(host, prefix="consoleb")
    signed_in(client, host)
    assert client.get(f"{host.url}/console/projects/{other.project_id}").status_code == 403
    assert client.get(f"{host.url}/console/projects/not-a-project").status_code == 404
    listing = client.get(f"{host.url}/console").text
    assert other.project_name not in listing and host.bootstrap["project_name"] in listing


def test_console_logins_share_the_keystone_login_limit(client: httpx.Client, host: CsscertServer) -> None:
    account = new_account(host, password=True, prefix="consolel")
    for _ in range(4):
        assert sign_in(client, host, account.user, "wrong").status_code == 401
    locked = sign_in(client, host, account.user, account.password or "")
    assert locked.status_code == 429 and "retry-after" in locked.headers
    body = {
        "auth": {
            "identity": {
                "methods": ["password"],
                "password": {
                    "user": {
                        "name": account.user,
                        "domain": {"name": host.bootstrap["domain_name"]},
                        "password": account.password,
                    }
                },
            }
        }
    }
    assert httpx.post(f"{host.url}/v3/auth/tokens", json=body).status_code == 429


def test_no_password_token_or_cookie_reaches_the_log(client: httpx.Client, host: CsscertServer) -> None:
    cookie = signed_in(client, host)
    token = session_token(host, cookie)
    own = csrf_of(project_page(client, host).text)
    url = f"{host.url}/console/projects/{host.project_id}/download"
    answer = client.post(url, data={"format": "p12", "password": "truststore-pw-123", "csrf": own})
    assert answer.status_code == 200
    rid = answer.headers["x-request-id"]
    deadline = time.monotonic() + 10
    while rid not in host.log_file.read_text() and time.monotonic() < deadline:
        time.sleep(0.2)
    log = host.log_file.read_text()
    assert rid in log
    for secret in (host.bootstrap["password"], "truststore-pw-123", token, cookie, own):
        assert secret not in log


def test_methods_outside_a_pages_own_are_refused_with_allow(
    client: httpx.Client, host: CsscertServer
) -> None:
    answer = client.get(f"{host.url}/console/logout")
    assert answer.status_code == 405 and answer.headers["allow"] == "POST"
    answer = client.put(f"{host.url}/console/login")
    assert answer.status_code == 405


def test_the_audit_trail_is_refused_to_users_without_the_administrator_role(
    client: httpx.Client, host: CsscertServer
) -> None:
    account = new_account(host, password=True, prefix="consolea")
    sign_in(client, host, account.user, account.password or "")
    assert client.get(f"{host.url}/console/audit").status_code == 403
    assert "Audit trail" not in client.get(f"{host.url}/console").text


def test_revoking_needs_the_issuer_role_and_the_csrf_token(client: httpx.Client, host: CsscertServer) -> None:
    made = host.cli_json(
        "cert", "issue", "--name", "node-r", "--dns", "node-r.local", "--out", str(host.data_dir.parent / "r")
    )  # fmt: skip
    url = f"{host.url}/console/projects/{host.project_id}/certificates/{made['serial']}/revoke"
    account = new_account(host, password=True, prefix="consoler", project_id=host.project_id)
    with httpx.Client(timeout=10) as member:  # granted the project, without the role
        sign_in(member, host, account.user, account.password or "")
        listing = member.get(f"{host.url}/console/projects/{host.project_id}/certificates")
        assert made["serial"] in listing.text and "Revoke" not in listing.text
        refused = member.post(url, data={"csrf": csrf_of(listing.text), "reason": "keyCompromise"})
        assert refused.status_code == 403 and "certificate-issuer" in refused.text
    signed_in(client, host)
    assert client.post(url, data={"reason": "keyCompromise"}).status_code == 403  # no CSRF token
    own = csrf_of(client.get(f"{host.url}/console/projects/{host.project_id}/certificates").text)
    assert client.post(url, data={"reason": "nonsense", "csrf": own}).status_code == 400
    done = client.post(url, data={"reason": "keyCompromise", "csrf": own})
    assert done.status_code == 303
    listed = next(c for c in host.cli_json("cert", "list", "--all") if c["serial"] == made["serial"])
    assert listed["status"] == "revoked" and listed["revocation_reason"] == "keyCompromise"
    assert client.post(url, data={"reason": "keyCompromise", "csrf": own}).status_code == 400  # final


@given(
    tail=st.text(st.characters(min_codepoint=33, max_codepoint=0x2FF, exclude_characters="?#%"), max_size=60),
    method=st.sampled_from(["GET", "HEAD", "POST", "PUT", "DELETE"]),
    cookie=st.text(st.characters(min_codepoint=33, max_codepoint=126, exclude_characters=";,"), max_size=200),
    body=st.binary(max_size=300),
)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_no_console_path_cookie_or_form_yields_a_server_error(
    host: CsscertServer, tail: str, method: str, cookie: str, body: bytes
) -> None:
    headers = {"cookie": f"csscert_session={cookie}; csscert_login={cookie}"}
    if method == "POST":
        headers["content-type"] = "application/x-www-form-urlencoded"
    answer = httpx.request(
        method, f"{host.url}/console/{quote(tail)}", headers=headers, content=body, timeout=10
    )
    assert answer.status_code < 500, answer.text[:500]
    assert answer.headers["x-request-id"]
    if answer.status_code >= 400 and method != "HEAD":
        assert answer.headers["content-type"].startswith("text/html")
        assert answer.headers["content-security-policy"].startswith("default-src 'none'")


def test_a_ca_inside_its_expiry_warning_window_is_flagged(
    client: httpx.Client, make_server: ServerFactory
) -> None:
    # A 10-year CA is inside a 5,000-day warning window from its first day.
    warned = make_server(env={"CSSCERT_CA_EXPIRY_WARNING_DAYS": "5000"})
    signed_in(client, warned)
    html = client.get(f"{warned.url}/console/projects/{warned.project_id}").text
    assert re.search(r'class="warning"[^>]*>Warning: the active CA \([0-9a-f]{16}\) expires at', html)
    assert re.search(r"Warning: expires in 36[0-9]{2} day\(s\): rotate the CA", html)


def test_serving_downloads_never_imports_the_console() -> None:
    code = (
        "import sys, csscert.api.app, csscert.api.routes as r; "
        "assert r.resolve('/v1.0/' + 'a' * 32 + '/cer/download').name == 'download'; "
        "assert r.resolve('/console/login').name == 'console'; "
        "print('jinja2' in sys.modules, 'csscert.api.console.pages' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_under_tls_the_session_cookie_is_secure() -> None:
    from csscert.testing import start_server

    endpoint = start_server(tls=True)
    try:
        with httpx.Client(verify=ssl.create_default_context(cafile=str(endpoint.ca_file)), timeout=10) as tls:
            form = tls.get(f"{endpoint.endpoint}/console/login")
            data = {
                "csrf": csrf_of(form.text),
                "domain": endpoint.domain_name,
                "user": endpoint.user_name,
                "password": endpoint.password,
            }
            answer = tls.post(f"{endpoint.endpoint}/console/login", data=data)
        assert answer.status_code == 303
        cookies = answer.headers.get_list("set-cookie")
        session = next(c for c in cookies if c.startswith("csscert_session=") and "Max-Age=0" not in c)
        assert session.endswith("; Secure") and "HttpOnly" in session and "SameSite=Strict" in session
        assert all("Secure" in c for c in form.headers.get_list("set-cookie"))
    finally:
        endpoint.stop()
