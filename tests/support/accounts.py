"""Accounts made with the real CLI: a project, a user granted it (with a password if asked), an AK/SK."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass

from support.server import CsscertServer


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
