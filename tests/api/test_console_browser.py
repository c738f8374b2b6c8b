"""The web console in a real browser: Debian's Chromium, headless, driven by Playwright.

One server and one browser for the module (every test gets a fresh browser context, i.e. a
fresh cookie jar). The server is this module's own: tests rotate its CA and disable users.
The screenshots of the project page go to docs/ when ``CSSCERT_SCREENSHOTS=docs`` is set (to
refresh the README's pictures), else to the test's temporary directory.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from support.accounts import new_account
from support.console import session_token
from support.server import CsscertServer, ServerFactory

playwright_api = pytest.importorskip("playwright.sync_api")
from axe_playwright_python.sync_playwright import Axe  # noqa: E402
from playwright.sync_api import Browser, BrowserContext, Page, expect  # noqa: E402

pytestmark = pytest.mark.xdist_group("console-browser")

CHROMIUM = "/usr/bin/chromium"
DOCS = Path(__file__).resolve().parents[2] / "docs"


@pytest.fixture(scope="module")
def console_server(make_server: ServerFactory) -> CsscertServer:
    server = make_server()
    server.cli("cert", "issue", "--name", "node-1", "--dns", "node-1.search.local", "--out",
               str(server.data_dir.parent / "certs"), "--days", "200")  # fmt: skip
    return server


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (.ci/run installs it)")
    with playwright_api.sync_playwright() as playwright:
        # --no-sandbox: CI runs as root, where Chromium refuses its sandbox.
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    made = browser.new_context(accept_downloads=True, viewport={"width": 1280, "height": 900})
    made.set_default_timeout(10_000)
    yield made
    made.close()


def sign_in(page: Page, server: CsscertServer, user: str = "", password: str = "") -> None:
    boot = server.bootstrap
    page.goto(f"{server.url}/console")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    page.get_by_label("Domain").fill(boot["domain_name"])
    page.get_by_label("User name").fill(user or boot["user_name"])
    page.get_by_label("Password").fill(password or boot["password"])
    page.get_by_role("button", name="Sign in").click()


def open_project(page: Page, server: CsscertServer) -> None:
    page.goto(f"{server.url}/console")
    page.get_by_role("link", name=server.bootstrap["project_name"]).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(server.bootstrap["project_name"])


def session_cookie(context: BrowserContext) -> str | None:
    return next((c["value"] for c in context.cookies() if c["name"] == "csscert_session"), None)


def test_a_wrong_password_shows_an_error_and_no_session(
    context: BrowserContext, console_server: CsscertServer
) -> None:
    page = context.new_page()
    sign_in(page, console_server, password="not-the-password")
    expect(page.get_by_role("alert")).to_contain_text("Sign-in failed")
    assert not session_cookie(context)
    page.goto(f"{console_server.url}/console")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()


def test_signed_in_the_page_shows_the_fingerprint_of_ca_show(
    context: BrowserContext, console_server: CsscertServer
) -> None:
    page = context.new_page()
    sign_in(page, console_server)
    expect(page.get_by_role("heading", name="Projects")).to_be_visible()
    open_project(page, console_server)
    shown = page.locator("code.fingerprint[data-state=active]").inner_text()
    assert shown.replace(":", "").lower() == console_server.cli_json("ca", "show")["fingerprint_sha256"]
    cookie = next(c for c in context.cookies() if c["name"] == "csscert_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/console"


def test_the_copy_button_copies_the_fingerprint(browser: Browser, console_server: CsscertServer) -> None:
    context = browser.new_context(permissions=["clipboard-read", "clipboard-write"])
    try:
        page = context.new_page()
        sign_in(page, console_server)
        open_project(page, console_server)
        active = page.locator("code.fingerprint[data-state=active]")
        page.locator("article.ca-active").get_by_role("button", name="Copy").click()
        expect(page.get_by_role("status").filter(has_text="copied")).to_be_visible()
        assert page.evaluate("navigator.clipboard.readText()") == active.inner_text()
    finally:
        context.close()


@pytest.mark.parametrize("fmt", ["pem", "der", "p7b", "json", "p12"])
def test_every_download_button_gives_the_bytes_of_the_api(
    context: BrowserContext, console_server: CsscertServer, fmt: str
) -> None:
    page = context.new_page()
    sign_in(page, console_server)
    open_project(page, console_server)
    params = {"format": fmt}
    if fmt == "p12":
        page.get_by_label("Truststore password").fill("s3cret-pass")
        params["password"] = "s3cret-pass"
    with page.expect_download() as info:
        page.locator(f"#download-{fmt}").click()
    got = Path(info.value.path()).read_bytes()
    api = httpx.get(
        console_server.download_url(), params=params, headers={"x-auth-token": console_server.token()}
    )
    assert api.status_code == 200
    assert got == api.content
    assert page.url.endswith(f"/console/projects/{console_server.project_id}")  # no password in any URL


def test_a_form_posted_without_its_csrf_token_is_refused(
    context: BrowserContext, console_server: CsscertServer
) -> None:
    page = context.new_page()
    sign_in(page, console_server)
    open_project(page, console_server)
    page.evaluate("document.querySelector('#download-pem').form.querySelector('[name=csrf]').remove()")
    page.locator("#download-pem").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Not allowed")
    expect(page.get_by_role("alert")).to_contain_text("CSRF")


def test_a_revoked_token_ends_the_session_on_the_next_click(
    context: BrowserContext, console_server: CsscertServer
) -> None:
    page = context.new_page()
    sign_in(page, console_server)
    open_project(page, console_server)
    token = session_token(console_server, session_cookie(context) or "")
    revoked = httpx.delete(
        f"{console_server.url}/v3/auth/tokens", headers={"x-auth-token": token, "x-subject-token": token}
    )
    assert revoked.status_code == 204
    page.get_by_role("link", name="Every node certificate of this project").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    expect(page.get_by_role("status")).to_contain_text("session has ended")
    assert not session_cookie(context)


def test_a_disabled_user_ends_the_session_on_the_next_click(
    context: BrowserContext, console_server: CsscertServer
) -> None:
    account = new_account(console_server, password=True, prefix="cons")
    page = context.new_page()
    sign_in(page, console_server, account.user, account.password or "")
    page.get_by_role("link", name=account.project_name).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(account.project_name)
    console_server.cli("user", "disable", account.user)
    page.get_by_role("link", name="Projects").first.click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    expect(page.get_by_role("status")).to_contain_text("session has ended")


def test_sign_out_ends_the_session_and_revokes_its_token(
    context: BrowserContext, console_server: CsscertServer
) -> None:
    page = context.new_page()
    sign_in(page, console_server)
    cookie = session_cookie(context) or ""
    token = session_token(console_server, cookie)
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("status")).to_contain_text("signed out")
    assert not session_cookie(context)
    # The token itself is revoked: neither the old cookie nor the token works any more.
    context.add_cookies(
        [{"name": "csscert_session", "value": cookie, "url": f"{console_server.url}/console"}]
    )
    page.goto(f"{console_server.url}/console")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    check = httpx.get(console_server.download_url(), headers={"x-auth-token": token})
    assert check.status_code == 401


def test_after_ca_rotate_the_page_and_the_timeline_show_both_cas(
    context: BrowserContext, console_server: CsscertServer
) -> None:
    before = console_server.cli_json("ca", "show")["fingerprint_sha256"]
    console_server.cli("ca", "rotate")
    after = console_server.cli_json("ca", "show")["fingerprint_sha256"]
    page = context.new_page()
    sign_in(page, console_server)
    open_project(page, console_server)
    shown = {
        el.inner_text().replace(":", "").lower(): el.get_attribute("data-state")
        for el in page.locator("code.fingerprint").all()
    }
    assert shown[after] == "active" and shown[before] == "trusted"
    timeline = page.locator("svg.timeline")
    labels = timeline.locator("text").all_text_contents()
    assert any(after[:8].upper() in label.replace(":", "") and "active" in label for label in labels)
    assert any(before[:8].upper() in label.replace(":", "") and "trusted" in label for label in labels)
    assert "node-1" in labels  # the node certificate the old CA signed, under it
    expect(page.get_by_text("(these block its retirement)")).to_be_visible()
    page.get_by_role("link", name="Every node certificate of this project").click()
    old_ca = ":".join(before[i : i + 2] for i in range(0, 8, 2)).upper()
    expect(page.get_by_role("row").filter(has_text="node-1").first).to_contain_text(f"{old_ca} (trusted)")


def test_screenshots_of_the_project_page_at_desktop_and_phone_width(
    browser: Browser, console_server: CsscertServer, tmp_path: Path
) -> None:
    if len(console_server.cli_json("ca", "list")) < 2:
        console_server.cli("ca", "rotate")  # show an overlap, whatever ran before
    where = DOCS if os.environ.get("CSSCERT_SCREENSHOTS") == "docs" else tmp_path
    for name, width, height in (("desktop", 1280, 900), ("phone", 390, 844)):
        context = browser.new_context(viewport={"width": width, "height": height}, device_scale_factor=1)
        try:
            page = context.new_page()
            sign_in(page, console_server)
            open_project(page, console_server)
            # Readable at this width: nothing wider than the viewport but the scrolling figure.
            overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            assert overflow <= 0, f"{name}: the page is {overflow}px wider than the screen"
            serious = [
                v["id"]
                for v in Axe().run(page).response["violations"]
                if v["impact"] in ("serious", "critical")
            ]
            assert not serious, f"{name}: {serious}"
            path = where / f"console-{name}.png"
            page.screenshot(path=str(path), full_page=True)
            assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        finally:
            context.close()


def test_an_issuer_revokes_a_node_certificate_and_its_crl_lists_it(
    context: BrowserContext, console_server: CsscertServer
) -> None:
    made = console_server.cli_json(
        "cert", "issue", "--name", "node-2", "--dns", "node-2.search.local",
        "--out", str(console_server.data_dir.parent / "certs2"),
    )  # fmt: skip
    serial = made["serial"]
    page = context.new_page()
    sign_in(page, console_server)
    page.goto(f"{console_server.url}/console/projects/{console_server.project_id}/certificates")
    row = page.get_by_role("row").filter(has_text=serial)
    row.get_by_label("Reason").select_option("keyCompromise")
    row.get_by_role("button", name="Revoke").click()
    expect(page.get_by_role("status")).to_contain_text("is revoked")
    expect(page.get_by_role("row").filter(has_text=serial).locator("td.status")).to_contain_text("revoked")
    page.goto(f"{console_server.url}/console/projects/{console_server.project_id}")
    link = page.locator("article.ca-active").get_by_role("link", name="CRL")
    crl = x509.load_der_x509_crl(httpx.get(f"{console_server.url}{link.get_attribute('href')}").content)
    entry = crl.get_revoked_certificate_by_serial_number(int(serial, 16))
    assert entry is not None


def test_the_audit_trail_is_shown_to_administrators(
    context: BrowserContext, console_server: CsscertServer
) -> None:
    page = context.new_page()
    sign_in(page, console_server)  # csscert-admin holds the administrator role
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Audit trail").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Audit trail")
    expect(page.get_by_role("rowheader", name="user.create").first).to_be_visible()


def test_axe_finds_no_serious_or_critical_violation(
    context: BrowserContext, console_server: CsscertServer
) -> None:
    page = context.new_page()
    axe = Axe()
    page.goto(f"{console_server.url}/console/login")
    pages = {"sign-in": axe.run(page)}
    sign_in(page, console_server)
    pages["projects"] = axe.run(page)
    open_project(page, console_server)
    page.locator("details summary").click()
    pages["project"] = axe.run(page)
    page.goto(f"{console_server.url}/console/projects/{console_server.project_id}/certificates")
    pages["certificates"] = axe.run(page)
    page.goto(f"{console_server.url}/console/audit")
    pages["audit"] = axe.run(page)
    problems = {
        name: [
            (v["id"], v["impact"], v["help"])
            for v in result.response["violations"]
            if v["impact"] in ("serious", "critical")
        ]
        for name, result in pages.items()
    }
    assert all(not found for found in problems.values()), json.dumps(problems, indent=1)


def test_the_keyboard_reaches_the_skip_link_first_and_focus_is_visible(
    context: BrowserContext, console_server: CsscertServer
) -> None:
    page = context.new_page()
    sign_in(page, console_server)
    open_project(page, console_server)
    page.keyboard.press("Tab")
    focused = page.evaluate("document.activeElement.textContent")
    assert focused == "Skip to the content"
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none"
