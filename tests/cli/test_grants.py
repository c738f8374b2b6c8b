"""`user grant` / `user revoke-grant`: a project for an existing user, taken away at once."""

from __future__ import annotations

import httpx
from support.server import CsscertServer


def _download(server: CsscertServer, token: str, project_id: str) -> int:
    return httpx.get(server.download_url(project_id), headers={"X-Auth-Token": token}).status_code


def test_grant_then_revoke_a_project_of_an_existing_user(server: CsscertServer) -> None:
    project = server.cli_json("project", "create", "granted")
    refused = server.cli("token", "issue", "--user", "csscert-admin", "--project", project["id"], check=False)
    assert refused.returncode == 1  # not granted yet
    granted = server.cli_json("user", "grant", "csscert-admin", "--project", project["name"])
    assert granted == {
        "user": "csscert-admin",
        "project_id": project["id"],
        "project": project["name"],
        "granted": True,
    }
    token = server.token(project=project["id"])
    assert _download(server, token, project["id"]) == 200
    again = server.cli("user", "grant", "csscert-admin", "--project", project["id"], check=False)
    assert again.returncode == 1 and "already has project" in again.stderr

    server.cli("user", "revoke-grant", "csscert-admin", "--project", project["id"])
    assert _download(server, token, project["id"]) == 403  # the token issued before is refused at once
    assert _download(server, server.token(), server.project_id) == 200  # the other project is untouched
    twice = server.cli("user", "revoke-grant", "csscert-admin", "--project", project["id"], check=False)
    assert twice.returncode == 1 and "does not have project" in twice.stderr


def test_the_last_project_of_a_user_cannot_be_revoked(server: CsscertServer) -> None:
    server.cli("user", "create", "lonely", "--project", server.project_id)
    result = server.cli("user", "revoke-grant", "lonely", "--project", server.project_id, check=False)
    assert result.returncode == 1 and "only project" in result.stderr and "user disable" in result.stderr
    assert [u["projects"] for u in server.cli_json("user", "list") if u["name"] == "lonely"] == [
        [server.project_id]
    ]
