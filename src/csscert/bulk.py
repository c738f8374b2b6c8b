"""Bulk user files: JSON Lines, one user per line, parsed without touching the store.

    {"name": "alice", "projects": ["eu-de_logs", "0123456789abcdef0123456789abcdef"], "password": "…"}

``projects`` (names or ids) and ``password`` are optional; blank lines are skipped. Any problem
raises :class:`UserLinesError`, which names the line and what is wrong with it. Resolving
project names, hashing passwords and sealing new keys is the caller's job; the store then adds
everything in one transaction (``SqlStore.import_users``).
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

__all__ = ["MAX_NAME_LENGTH", "ImportedUser", "UserLinesError", "parse_user_lines"]

MAX_NAME_LENGTH = 64  # users.name
MAX_PROJECT_REF_LENGTH = 128  # projects.name (an id is 32)
MAX_PASSWORD_LENGTH = 1024
MAX_LINE_LENGTH = 64 * 1024
_KEYS = frozenset({"name", "projects", "password"})


class UserLinesError(ValueError):
    """A user file line is not a valid user; ``line`` is its 1-based number."""

    def __init__(self, line: int, problem: str) -> None:
        super().__init__(f"line {line}: {problem}")
        self.line = line
        self.problem = problem


@dataclass(frozen=True, slots=True)
class ImportedUser:
    """One parsed line: the user's name, project references (names or ids) and password."""

    line: int
    name: str
    projects: tuple[str, ...] = ()
    password: str | None = None


def _bad_text(value: str) -> str | None:
    """Why ``value`` cannot be stored as a name or password (None when it can)."""
    for char in value:
        category = unicodedata.category(char)
        if category == "Cs":
            return "contains an unpaired surrogate"
        if category == "Cc":
            return "contains a control character"
    return None


def _text(line: int, field: str, value: Any, limit: int) -> str:
    if not isinstance(value, str):
        raise UserLinesError(line, f'"{field}" must be a string, not {type(value).__name__}')
    if not value.strip():
        raise UserLinesError(line, f'"{field}" is empty')
    if len(value) > limit:
        raise UserLinesError(line, f'"{field}" is longer than {limit} characters')
    problem = _bad_text(value)
    if problem is not None:
        raise UserLinesError(line, f'"{field}" {problem}')
    return value


def _parse_line(number: int, raw: str) -> ImportedUser | None:
    if not raw.strip():
        return None
    if len(raw) > MAX_LINE_LENGTH:
        raise UserLinesError(number, f"longer than {MAX_LINE_LENGTH} characters")
    try:
        value = json.loads(raw)
    except RecursionError:
        raise UserLinesError(number, "not valid JSON (nested too deeply)") from None
    except ValueError as exc:  # JSONDecodeError, and oversized integers
        raise UserLinesError(number, f"not valid JSON ({exc})") from None
    if not isinstance(value, dict):
        raise UserLinesError(number, f"expected a JSON object, got {type(value).__name__}")
    unknown = sorted(set(value) - _KEYS)
    if unknown:
        raise UserLinesError(number, f"unknown field {unknown[0]!r} (allowed: name, projects, password)")
    if "name" not in value:
        raise UserLinesError(number, 'missing "name"')
    name = _text(number, "name", value["name"], MAX_NAME_LENGTH).strip()
    projects_value = value.get("projects", [])
    if projects_value is None:
        projects_value = []
    if not isinstance(projects_value, list):
        raise UserLinesError(number, f'"projects" must be a list, not {type(projects_value).__name__}')
    projects = tuple(
        dict.fromkeys(
            _text(number, "projects", ref, MAX_PROJECT_REF_LENGTH).strip() for ref in projects_value
        )
    )
    password = value.get("password")
    if password is not None:
        password = _text(number, "password", password, MAX_PASSWORD_LENGTH)
    return ImportedUser(number, name, projects, password)


def parse_user_lines(lines: Iterable[str]) -> list[ImportedUser]:
    """Every user of a JSON Lines file (``lines`` as read, newlines allowed), in file order.

    Raises :class:`UserLinesError` for the first line that is not a valid user, including a
    name that an earlier line already used."""
    users: list[ImportedUser] = []
    first_line: dict[str, int] = {}
    for number, raw in enumerate(lines, start=1):
        if not isinstance(raw, str):
            raise UserLinesError(number, f"expected text, got {type(raw).__name__}")
        user = _parse_line(number, raw)
        if user is None:
            continue
        earlier = first_line.setdefault(user.name, number)
        if earlier != number:
            raise UserLinesError(number, f"user {user.name!r} is already on line {earlier}")
        users.append(user)
    return users
