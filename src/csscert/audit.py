"""The audit trail's vocabulary: what changed (:class:`AuditEntry`) and who changed it, from where
(:class:`Actor`, carried in a context variable).

Every change to the store, by the CLI or the API, is recorded in the same write transaction as
the change (``SqlStore._write(audit=...)``), so a change and its record commit together or not at
all, and the store offers no way to alter or delete a record. The writers (``Identity``,
``Authority``) say *what* changed; the edges say *who*: the CLI sets the actor once per command
(:func:`cli_actor`), the API dispatcher once per request that may write (:func:`api_actor`).

No secret ever goes into an entry: targets name records by name, id, access key or fingerprint;
a token appears only by its audit id (which Keystone itself shows in ``audit_ids``).
"""

from __future__ import annotations

import getpass
import os
import socket
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass

__all__ = ["ACTOR", "Actor", "AuditEntry", "api_actor", "cli_actor", "current_actor"]


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One change: ``action`` (``user.create``, ``ca.rotate``...), its ``target``, and details."""

    action: str
    target: str
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Actor:
    """Who makes changes (``cli:alice``, ``user:<id> (name)``, ``system``) and from where."""

    who: str
    origin: str


class _RequestActor:
    """The caller of one API request, read when a change is written (the handler learns who the
    caller is after the dispatcher set this up)."""

    __slots__ = ("_who", "origin")

    def __init__(self, who: Callable[[], str], origin: str) -> None:
        self._who = who
        self.origin = origin

    @property
    def who(self) -> str:
        return self._who()


_SYSTEM = Actor("system", f"process {os.getpid()}")
ACTOR: ContextVar[Actor | _RequestActor] = ContextVar("csscert_actor", default=_SYSTEM)


def current_actor() -> Actor:
    actor = ACTOR.get()
    return actor if isinstance(actor, Actor) else Actor(actor.who, actor.origin)


def cli_actor() -> Actor:
    """The person running a CLI command: the login name, the host and the process."""
    try:
        name = getpass.getuser()
    except (KeyError, OSError):
        name = f"uid {os.getuid()}"
    return Actor(f"cli:{name}", f"cli on {socket.gethostname()} pid {os.getpid()}")


def api_actor(user: Callable[[], str], client: str, request_id: str) -> _RequestActor:
    """The caller of an API request: ``user`` is read at write time (after authentication)."""
    return _RequestActor(lambda: f"user:{user() or 'anonymous'}", f"api {client} request {request_id}")
