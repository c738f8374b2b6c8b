"""csscert's Keystone subset held against the real Keystone: the same requests to both.

The real Keystone (``real_keystone.KEYSTONE_VERSION`` from PyPI, its own cached venv, SQLite,
Fernet) runs next to a fresh csscert server. The test mirrors csscert's domain, projects, users,
passwords, role grants and ``css`` endpoint into Keystone through Keystone's admin API, then sends
every request below to both and requires the same status, the same JSON structure (keys and
value types; list lengths included, order not), the same Keystone headers, and the same mirrored
facts (user, domain and project names, methods, catalog service types, audit chain relations).
Ids, tokens and timestamps differ by nature and are not compared.

Where the two differ on purpose, the difference is named in :data:`DELIBERATE` with its reason
(also in the README, "Keystone compatibility"), and the steps that show it assert the two
answers exactly, so the list can neither grow silently nor go stale.
"""

from __future__ import annotations

import concurrent.futures
import json
import re
import secrets
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from real_keystone import RealKeystone, keystone_venv
from support.server import CsscertServer, ServerFactory, free_port

pytestmark = [pytest.mark.keystone, pytest.mark.xdist_group("real-keystone")]

ROOT = Path(__file__).resolve().parents[2]

# The deliberate differences: name -> reason. Every name is shown by a step below and listed in
# README.md; test_every_deliberate_difference_is_in_the_readme keeps the two in step.
DELIBERATE = {
    "member-lists-projects": (
        "GET /v3/projects (also ?name=) answers an ordinary member with the projects it has a role "
        "on, where Keystone's default policy answers 403: Huawei IAM answers it, and the Huawei "
        "SDK looks its project up with ?name=<region>."
    ),
    "project-scope-by-name-alone": (
        "A project scope by name without a domain is accepted (Keystone: 400): Huawei IAM scopes "
        "by project name alone, and csscert's project names are unique (region names)."
    ),
    "revocation-reaches-every-descendant": (
        "Revoking a token refuses every token got from it at any depth. Keystone carries only "
        "[own, first of the chain], so a token rescoped from a rescoped token survives the "
        "revocation of its parent there; csscert carries the whole chain (and still shows "
        "Keystone's two ids)."
    ),
}

REQUEST_ID = re.compile(r"req-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
REGION = "local-1"
DOMAIN = "csscert"


# -- the two servers ----------------------------------------------------------------------------


@dataclass
class Side:
    """One server with the ids it gave to the mirrored names."""

    name: str
    url: str
    domain_id: str
    users: dict[str, str]  # name -> id
    projects: dict[str, str]  # name -> id
    http: httpx.Client

    def login(self, auth: dict[str, Any], query: str = "") -> httpx.Response:
        return self.http.post(f"{self.url}/v3/auth/tokens{query}", json={"auth": auth})

    def token(self, auth: dict[str, Any]) -> str:
        response = self.login(auth)
        assert response.status_code == 201, (self.name, response.text)
        return str(response.headers["x-subject-token"])

    def get(self, path: str, token: str | None = None, **headers: str) -> httpx.Response:
        if token is not None:
            headers["X-Auth-Token"] = token
        return self.http.get(self.url + path, headers=headers)

    def tokens_api(self, method: str, caller: str | None, subject: str | None) -> httpx.Response:
        headers = {}
        if caller is not None:
            headers["X-Auth-Token"] = caller
        if subject is not None:
            headers["X-Subject-Token"] = subject
        return self.http.request(method, f"{self.url}/v3/auth/tokens", headers=headers)


@dataclass
class Pair:
    keystone: Side
    csscert: Side
    passwords: dict[str, str]
    keystone_server: RealKeystone

    @property
    def sides(self) -> tuple[Side, Side]:
        return self.keystone, self.csscert


USERS = {"alice": [REGION, f"{REGION}_two"], "bob": [f"{REGION}_three"]}


def _mirror_csscert(server: CsscertServer, passwords: dict[str, str]) -> Side:
    domain_id = ""
    for suffix in ("two", "three"):
        domain_id = server.cli_json("project", "create", suffix)["domain_id"]
    projects = {p["name"]: p["id"] for p in server.cli_json("project", "list")}
    users = {}
    for user, granted in USERS.items():
        args = ["user", "create", user, "--json", "--password-stdin"]
        for project in granted:
            args += ["--project", projects[project]]
        users[user] = json.loads(server.cli(*args, input=passwords[user] + "\n").stdout)["id"]
    return Side("csscert", server.url, domain_id, users, projects, httpx.Client(timeout=30))


def _mirror_keystone(keystone: RealKeystone, passwords: dict[str, str]) -> Side:
    with keystone.admin() as admin:
        domain = keystone.create(admin, "/v3/domains", "domain", {"name": DOMAIN})
        projects = {
            name: keystone.create(
                admin, "/v3/projects", "project", {"name": name, "domain_id": domain["id"]}
            )["id"]
            for name in (REGION, f"{REGION}_two", f"{REGION}_three")
        }
        role = keystone.create(admin, "/v3/roles", "role", {"name": "css_user"})
        users = {}
        for user, granted in USERS.items():
            body = {"name": user, "domain_id": domain["id"], "password": passwords[user]}
            users[user] = keystone.create(admin, "/v3/users", "user", body)["id"]
            for project in granted:
                path = f"/v3/projects/{projects[project]}/users/{users[user]}/roles/{role['id']}"
                assert admin.put(path).status_code == 204
        service = keystone.create(admin, "/v3/services", "service", {"type": "css", "name": "css"})
        endpoint = {
            "service_id": service["id"],
            "interface": "public",
            "region_id": REGION,
            "url": f"{keystone.url}/v1.0/$(project_id)s",
        }
        keystone.create(admin, "/v3/endpoints", "endpoint", endpoint)
    return Side("keystone", keystone.url, domain["id"], users, projects, httpx.Client(timeout=30))


@pytest.fixture(scope="module")
def pair(make_server: ServerFactory, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    passwords = {user: secrets.token_urlsafe(16) for user in USERS}
    keystone = RealKeystone(tmp_path_factory.mktemp("keystone"), keystone_venv(), free_port(), REGION)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        keystone_started = pool.submit(keystone.start)  # ~10 s of keystone-manage; csscert meanwhile
        csscert = _mirror_csscert(make_server(), passwords)
        keystone_started.result()
    try:
        yield Pair(_mirror_keystone(keystone, passwords), csscert, passwords, keystone)
    finally:
        keystone.stop()
        csscert.http.close()


# -- comparing answers ------------------------------------------------------------------------


def structure(value: Any) -> Any:
    """Keys and value types, recursively. A list of objects keeps its length (not its order); a
    list of strings is compared by element type only: its length is a value (the methods a
    server offers), and the ones that matter (audit ids, methods) are compared as facts."""
    if isinstance(value, dict):
        return {key: structure(item) for key, item in sorted(value.items())}
    if isinstance(value, list):
        items = sorted((structure(item) for item in value), key=lambda s: json.dumps(s, sort_keys=True))
        if all(isinstance(item, str) for item in value):
            return ["list of", sorted(set(items))]
        return ["list", items]
    if value is None:
        return "null"
    return type(value).__name__


def shape(response: httpx.Response) -> dict[str, Any]:
    """What must be the same on both sides: status, Keystone's headers, body structure."""
    headers = response.headers
    body: Any = None
    if response.content:
        assert headers["content-type"].split(";")[0] == "application/json", response.text
        body = structure(response.json())
    return {
        "status": response.status_code,
        "x-openstack-request-id": bool(REQUEST_ID.fullmatch(headers.get("x-openstack-request-id", ""))),
        "vary": headers.get("vary"),
        "x-subject-token": "x-subject-token" in headers,
        "www-authenticate": "www-authenticate" in headers,
        "body": body,
    }


def same(step: str, keystone: httpx.Response, csscert: httpx.Response) -> None:
    ours, theirs = shape(csscert), shape(keystone)
    assert ours == theirs, (
        f"{step}: csscert and Keystone differ\n"
        f"Keystone {keystone.status_code}: {keystone.text[:600]}\n"
        f"csscert  {csscert.status_code}: {csscert.text[:600]}"
    )
    # Either side, the request id is Keystone's, and csscert's X-Request-Id is the same id.
    assert csscert.headers["x-request-id"] == csscert.headers["x-openstack-request-id"]


def both(
    pair: Pair, step: str, call: Callable[[Side], httpx.Response]
) -> tuple[httpx.Response, httpx.Response]:
    keystone, csscert = call(pair.keystone), call(pair.csscert)
    same(step, keystone, csscert)
    return keystone, csscert


def differ(
    pair: Pair, name: str, call: Callable[[Side], httpx.Response], keystone_status: int, csscert_status: int
) -> tuple[httpx.Response, httpx.Response]:
    """A step that shows a deliberate difference: exactly the statuses named, nothing else."""
    assert name in DELIBERATE
    keystone, csscert = call(pair.keystone), call(pair.csscert)
    assert (keystone.status_code, csscert.status_code) == (keystone_status, csscert_status), (
        name,
        keystone.text[:300],
        csscert.text[:300],
    )
    return keystone, csscert


def token_facts(response: httpx.Response) -> dict[str, Any]:
    """The mirrored facts a token body states (names, not ids)."""
    token = response.json()["token"]
    return {
        "user": (token["user"]["name"], token["user"]["domain"]["name"]),
        "project": (token["project"]["name"], token["project"]["domain"]["name"])
        if "project" in token
        else None,
        "methods": sorted(token["methods"]),
        "roles": sorted(role["name"] for role in token.get("roles", [])),
        "audit_ids": len(token["audit_ids"]),
        "catalog": sorted(entry["type"] for entry in token["catalog"]) if "catalog" in token else None,
    }


def same_facts(keystone: httpx.Response, csscert: httpx.Response) -> None:
    assert token_facts(csscert) == token_facts(keystone)


def project_names(response: httpx.Response) -> list[str]:
    return sorted(project["name"] for project in response.json()["projects"])


# -- request bodies, in each side's own ids ---------------------------------------------------


def password(
    pair: Pair, user: str, how: str = "name+domain name", secret: str | None = None
) -> Callable[[Side], dict[str, Any]]:
    def body(side: Side) -> dict[str, Any]:
        who: dict[str, Any]
        if how == "id":
            who = {"id": side.users.get(user, "0" * 32)}
        elif how == "name+domain id":
            who = {"name": user, "domain": {"id": side.domain_id}}
        elif how == "name only":
            who = {"name": user}
        else:
            who = {"name": user, "domain": {"name": DOMAIN}}
        given = pair.passwords.get(user, "no-such-user-pw") if secret is None else secret
        return {"methods": ["password"], "password": {"user": {**who, "password": given}}}

    return body


def project_scope(name: str, how: str = "id") -> Callable[[Side], dict[str, Any]]:
    def scope(side: Side) -> dict[str, Any]:
        if how == "id":
            return {"project": {"id": side.projects.get(name, "0" * 32)}}
        if how == "name alone":
            return {"project": {"name": name}}
        return {"project": {"name": name, "domain": {"name": DOMAIN}}}

    return scope


def auth(
    identity: Callable[[Side], dict[str, Any]], scope: Callable[[Side], dict[str, Any]] | None = None
) -> Callable[[Side], dict[str, Any]]:
    def body(side: Side) -> dict[str, Any]:
        made = {"identity": identity(side)}
        if scope is not None:
            made["scope"] = scope(side)
        return made

    return body


def by_token(token: Callable[[Side], str]) -> Callable[[Side], dict[str, Any]]:
    return lambda side: {"methods": ["token"], "token": {"id": token(side)}}


Body = Callable[[Side], dict[str, Any]]
Value = Callable[[Side], str]
Call = Callable[[Side], httpx.Response]


def logs_in(body: Body, query: str = "") -> Call:
    return lambda side: side.login(body(side), query)


def asks_tokens_api(method: str, caller: Value | None, subject: Value | None) -> Call:
    return lambda side: side.tokens_api(
        method, caller(side) if caller else None, subject(side) if subject else None
    )


def gets(path: Value, token: Value | None) -> Call:
    return lambda side: side.get(path(side), token(side) if token else None)


class Tokens:
    """A token per side, made by the same request to each."""

    def __init__(self, pair: Pair, body: Callable[[Side], dict[str, Any]]) -> None:
        self.values = {side.name: side.token(body(side)) for side in pair.sides}

    def __call__(self, side: Side) -> str:
        return self.values[side.name]


# -- the tests ----------------------------------------------------------------------------------


def test_password_logins_answer_alike(pair: Pair) -> None:
    home = project_scope(REGION)
    for label, body, query in [
        ("by user id, unscoped", auth(password(pair, "alice", "id")), ""),
        (
            "by name and domain name, project by name",
            auth(password(pair, "alice"), project_scope(REGION, "name")),
            "",
        ),
        ("by name and domain id, project by id", auth(password(pair, "alice", "name+domain id"), home), ""),
        ("nocatalog", auth(password(pair, "alice"), home), "?nocatalog"),
        ("another granted project", auth(password(pair, "alice"), project_scope(f"{REGION}_two")), ""),
    ]:
        keystone, csscert = both(pair, label, logs_in(body, query))
        assert keystone.status_code == 201, (label, keystone.text)
        same_facts(keystone, csscert)


def test_failed_logins_answer_alike(pair: Pair) -> None:
    home = project_scope(REGION)
    for label, body, status in [
        ("wrong password", auth(password(pair, "alice", secret="not-the-password")), 401),
        ("wrong password by id", auth(password(pair, "alice", "id", secret="not-the-password")), 401),
        ("unknown user", auth(password(pair, "nobody")), 401),
        ("unknown user id", auth(password(pair, "nobody", "id")), 401),
        (
            "unknown domain",
            auth(
                lambda s: {
                    "methods": ["password"],
                    "password": {
                        "user": {
                            "name": "alice",
                            "domain": {"name": "nope"},
                            "password": pair.passwords["alice"],
                        }
                    },
                }
            ),
            401,
        ),
        (
            "domain scope, no role on it",
            auth(password(pair, "alice"), lambda s: {"domain": {"name": DOMAIN}}),
            401,
        ),
        ("domain scope by id", auth(password(pair, "alice"), lambda s: {"domain": {"id": s.domain_id}}), 401),
        ("system scope", auth(password(pair, "alice"), lambda s: {"system": {"all": True}}), 401),
        ("project not granted", auth(password(pair, "bob"), home), 401),
        ("unknown project", auth(password(pair, "alice"), project_scope("nowhere")), 401),
        ("user name without domain", auth(password(pair, "alice", "name only")), 400),
        ("unsupported method", lambda s: {"identity": {"methods": ["totp"], "totp": {}}}, 401),
        ("a method without its object", lambda s: {"identity": {"methods": ["password"]}}, 400),
        ("no methods", lambda s: {"identity": {}}, 400),
    ]:
        keystone, _ = both(pair, label, logs_in(body))
        assert keystone.status_code == status, (label, keystone.text)
    both(
        pair,
        "not JSON",
        lambda side: side.http.post(
            f"{side.url}/v3/auth/tokens", content=b"{", headers={"Content-Type": "application/json"}
        ),
    )
    both(pair, "no auth key", lambda side: side.http.post(f"{side.url}/v3/auth/tokens", json={}))
    differ(
        pair,
        "project-scope-by-name-alone",
        lambda side: side.login(auth(password(pair, "alice"), project_scope(REGION, "name alone"))(side)),
        400,
        201,
    )


def test_rescoping_and_validation_answer_alike(pair: Pair) -> None:
    unscoped = Tokens(pair, auth(password(pair, "alice")))
    caller = Tokens(pair, auth(password(pair, "alice"), project_scope(REGION)))
    rescope = auth(by_token(unscoped), project_scope(REGION, "name"))
    keystone, csscert = both(pair, "rescope unscoped -> project", lambda side: side.login(rescope(side)))
    same_facts(keystone, csscert)
    project = {
        side.name: r.headers["x-subject-token"]
        for side, r in zip(pair.sides, (keystone, csscert), strict=True)
    }
    for side, response in zip(pair.sides, (keystone, csscert), strict=True):
        own_unscoped = side.tokens_api("GET", unscoped(side), unscoped(side)).json()["token"]
        rescoped = response.json()["token"]
        # [own, parent's] on both, and a token got with a token never outlives its parent.
        assert rescoped["audit_ids"][1] == own_unscoped["audit_ids"][0], side.name
        assert rescoped["expires_at"] <= own_unscoped["expires_at"], side.name
    from_project = by_token(lambda side: project[side.name])
    for label, body in [
        ("rescope project -> another project", auth(from_project, project_scope(f"{REGION}_two"))),
        ("rescope project -> unscoped", auth(from_project)),
        (
            "token and password together",
            lambda s: {
                "identity": {
                    **password(pair, "alice")(s),
                    "methods": ["password", "token"],
                    "token": {"id": project[s.name]},
                }
            },
        ),
    ]:
        keystone, csscert = both(pair, label, logs_in(body))
        assert keystone.status_code == 201, (label, keystone.text)
        same_facts(keystone, csscert)
    for label, body, status in [
        ("rescope to a project not granted", auth(by_token(unscoped), project_scope(f"{REGION}_three")), 401),
        ("login with a garbage token", auth(by_token(lambda s: "garbage")), 404),
        (
            "rescope with a garbage token",
            auth(by_token(lambda s: "gAAAAAB" + "x" * 170), project_scope(REGION)),
            404,
        ),
    ]:
        keystone, _ = both(pair, label, logs_in(body))
        assert keystone.status_code == status, (label, keystone.text)
    bob = Tokens(pair, auth(password(pair, "bob"), project_scope(f"{REGION}_three")))
    exchanges: list[tuple[str, str, Value | None, Value | None, int]] = [
        ("validate", "GET", caller, unscoped, 200),
        ("validate a project token", "GET", caller, lambda s: project[s.name], 200),
        ("check", "HEAD", caller, unscoped, 200),
        ("validate without X-Auth-Token", "GET", None, unscoped, 401),
        ("validate without X-Subject-Token", "GET", caller, None, 403),
        ("validate another user's token", "GET", bob, unscoped, 403),
        ("revoke another user's token", "DELETE", bob, unscoped, 403),
        ("validate a garbage token", "GET", caller, lambda s: "garbage", 404),
        ("validate with a garbage X-Auth-Token", "GET", lambda s: "garbage", unscoped, 401),
    ]
    for label, method, who, subject, status in exchanges:
        keystone, csscert = both(
            pair,
            label,
            asks_tokens_api(method, who, subject),
        )
        assert keystone.status_code == status, (label, keystone.text)
        if status == 200 and method == "GET":
            same_facts(keystone, csscert)
    keystone, csscert = both(
        pair,
        "validate with nocatalog",
        lambda side: side.http.get(
            f"{side.url}/v3/auth/tokens?nocatalog",
            headers={"X-Auth-Token": caller(side), "X-Subject-Token": project[side.name]},
        ),
    )
    assert "catalog" not in keystone.json()["token"] and "catalog" not in csscert.json()["token"]


def test_revocation_sequences_answer_alike(pair: Pair) -> None:
    """U (password) -> P (rescoped) -> P2 (rescoped from P); Q is a sibling of P; A is unrelated."""
    alice = password(pair, "alice")
    caller = Tokens(pair, auth(alice, project_scope(REGION)))
    root = Tokens(pair, auth(alice))
    child = Tokens(pair, auth(by_token(root), project_scope(REGION)))
    grandchild = Tokens(pair, auth(by_token(child), project_scope(f"{REGION}_two")))
    sibling = Tokens(pair, auth(by_token(root), project_scope(f"{REGION}_two")))

    def status_of(token: Tokens) -> Callable[[Side], httpx.Response]:
        return lambda side: side.tokens_api("GET", caller(side), token(side))

    keystone, _ = both(
        pair, "revoke the middle token", lambda side: side.tokens_api("DELETE", caller(side), child(side))
    )
    assert keystone.status_code == 204
    for label, token, status in [("root", root, 200), ("middle", child, 404), ("sibling", sibling, 200)]:
        keystone, _ = both(pair, f"after revoking the middle: {label}", status_of(token))
        assert keystone.status_code == status, label
    differ(pair, "revocation-reaches-every-descendant", status_of(grandchild), 200, 404)
    # The revoked token authenticates nothing, and cannot be rescoped.
    both(
        pair, "revoked token as X-Auth-Token", lambda side: side.tokens_api("GET", child(side), caller(side))
    )
    both(
        pair,
        "login with the revoked token",
        lambda side: side.login(auth(by_token(child), project_scope(REGION))(side)),
    )

    keystone, _ = both(
        pair, "revoke the root", lambda side: side.tokens_api("DELETE", caller(side), root(side))
    )
    assert keystone.status_code == 204
    for label, token in [("root", root), ("sibling", sibling), ("grandchild", grandchild)]:
        keystone, _ = both(pair, f"after revoking the root: {label}", status_of(token))
        assert keystone.status_code == 404, label
    keystone, _ = both(pair, "unrelated token still valid", status_of(caller))
    assert keystone.status_code == 200
    keystone, _ = both(
        pair, "login with the revoked root", lambda side: side.login(auth(by_token(root))(side))
    )
    assert keystone.status_code == 404
    keystone, _ = both(
        pair,
        "revoke an already revoked token",
        lambda side: side.tokens_api("DELETE", caller(side), root(side)),
    )
    assert keystone.status_code == 404


def test_project_listings_answer_alike(pair: Pair) -> None:
    alice = password(pair, "alice")
    unscoped = Tokens(pair, auth(alice))
    scoped = Tokens(pair, auth(alice, project_scope(REGION)))

    def own(side: Side) -> str:
        return side.users["alice"]

    for label, path, token, status in [
        ("auth/projects, unscoped", lambda s: "/v3/auth/projects", unscoped, 200),
        ("auth/projects, scoped", lambda s: "/v3/auth/projects", scoped, 200),
        ("own user projects, unscoped", lambda s: f"/v3/users/{own(s)}/projects", unscoped, 200),
        ("own user projects, scoped", lambda s: f"/v3/users/{own(s)}/projects", scoped, 200),
        ("another user's projects", lambda s: f"/v3/users/{s.users['bob']}/projects", scoped, 403),
        ("an unknown user's projects", lambda s: f"/v3/users/{'0' * 32}/projects", scoped, 403),
        ("user projects without a token", lambda s: f"/v3/users/{own(s)}/projects", None, 401),
        ("auth/domains, unscoped", lambda s: "/v3/auth/domains", unscoped, 200),
        ("auth/domains, scoped", lambda s: "/v3/auth/domains", scoped, 200),
        ("the token's project", lambda s: f"/v3/projects/{s.projects[REGION]}", scoped, 200),
        ("another granted project", lambda s: f"/v3/projects/{s.projects[REGION + '_two']}", scoped, 403),
        ("a project, unscoped", lambda s: f"/v3/projects/{s.projects[REGION]}", unscoped, 403),
        ("projects without a token", lambda s: "/v3/projects", None, 401),
    ]:
        keystone, csscert = both(pair, label, gets(path, token))
        assert keystone.status_code == status, (label, keystone.text)
        if "projects" in keystone.json():
            assert project_names(csscert) == project_names(keystone) == sorted(USERS["alice"]), label
    keystone, csscert = both(
        pair, "auth/domains lists no domain", lambda side: side.get("/v3/auth/domains", scoped(side))
    )
    assert keystone.json()["domains"] == csscert.json()["domains"] == []
    _, csscert = differ(
        pair, "member-lists-projects", lambda side: side.get("/v3/projects", scoped(side)), 403, 200
    )
    assert project_names(csscert) == sorted(USERS["alice"])
    _, csscert = differ(
        pair,
        "member-lists-projects",
        lambda side: side.get(f"/v3/projects?name={REGION}", scoped(side)),
        403,
        200,
    )
    assert project_names(csscert) == [REGION]


def test_catalog_answers_alike(pair: Pair) -> None:
    alice = password(pair, "alice")
    scoped = Tokens(pair, auth(alice, project_scope(REGION)))
    unscoped = Tokens(pair, auth(alice))
    keystone, csscert = both(
        pair, "auth/catalog, scoped", lambda side: side.get("/v3/auth/catalog", scoped(side))
    )
    assert keystone.status_code == 200
    for side, response in zip(pair.sides, (keystone, csscert), strict=True):
        css = next(entry for entry in response.json()["catalog"] if entry["type"] == "css")
        (endpoint,) = css["endpoints"]
        assert (endpoint["interface"], endpoint["region_id"]) == ("public", REGION)
        assert endpoint["url"] == f"{side.url}/v1.0/{side.projects[REGION]}", side.name
    both(pair, "auth/catalog, unscoped", lambda side: side.get("/v3/auth/catalog", unscoped(side)))
    both(pair, "version document", lambda side: side.get("/v3"))


def test_every_deliberate_difference_is_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Keystone compatibility") :]
    for name in DELIBERATE:
        assert f"`{name}`" in section, name


# -- the openstack CLI ----------------------------------------------------------------------------


def _openstack(pair: Pair, side: Side, *args: str, project: str = REGION) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(pair.keystone_server.root),
        "OS_AUTH_URL": f"{side.url}/v3",
        "OS_IDENTITY_API_VERSION": "3",
        "OS_USERNAME": "alice",
        "OS_PASSWORD": pair.passwords["alice"],
        "OS_USER_DOMAIN_NAME": DOMAIN,
        "OS_PROJECT_NAME": project,
        "OS_PROJECT_DOMAIN_NAME": DOMAIN,
        "OS_REGION_NAME": REGION,
    }
    command = [str(pair.keystone_server.venv / "bin" / "openstack"), *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)


def _on_both(pair: Pair, *args: str) -> tuple[Any, Any]:
    """Run one openstack command against both (in parallel: each costs ~1.5 s of imports)."""
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        runs = list(pool.map(lambda side: _openstack(pair, side, *args, "-f", "json"), pair.sides))
    for side, run in zip(pair.sides, runs, strict=True):
        assert run.returncode == 0, (side.name, args, run.stdout, run.stderr)
    keystone, csscert = (json.loads(run.stdout) for run in runs)
    return keystone, csscert


def test_openstack_cli_works_against_both(pair: Pair) -> None:
    started = time.monotonic()
    keystone, csscert = _on_both(pair, "token", "issue")
    assert sorted(keystone) == sorted(csscert) == ["expires", "id", "project_id", "user_id"]
    assert csscert["user_id"] == pair.csscert.users["alice"]
    assert csscert["project_id"] == pair.csscert.projects[REGION]

    for args in (("project", "list"), ("project", "list", "--my-projects")):
        keystone, csscert = _on_both(pair, *args)
        assert (
            sorted(p["Name"] for p in csscert)
            == sorted(p["Name"] for p in keystone)
            == sorted(USERS["alice"])
        )
        assert [sorted(p) for p in csscert] == [sorted(p) for p in keystone]

    keystone, csscert = _on_both(pair, "catalog", "list")
    assert (
        sorted(entry["Type"] for entry in csscert)
        == sorted(entry["Type"] for entry in keystone)
        == ["css", "identity"]
    )
    assert [sorted(entry) for entry in csscert] == [sorted(entry) for entry in keystone]

    # token revoke: a token issued by the CLI, revoked by the CLI, refused afterwards.
    issued = dict(zip(("keystone", "csscert"), _on_both(pair, "token", "issue"), strict=True))
    for side in pair.sides:
        token = issued[side.name]["id"]
        revoked = _openstack(pair, side, "token", "revoke", token)
        assert revoked.returncode == 0, (side.name, revoked.stderr)
    caller = Tokens(pair, auth(password(pair, "alice"), project_scope(REGION)))
    keystone_after, _ = both(
        pair,
        "validate a token revoked by the CLI",
        lambda side: side.tokens_api("GET", caller(side), issued[side.name]["id"]),
    )
    assert keystone_after.status_code == 404
    assert time.monotonic() - started < 120
