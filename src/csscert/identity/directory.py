"""The request-time read model of identity: who exists, what they may use, and which tokens are void.

A :class:`Directory` is built from one store snapshot and never touches the database; it also
remembers each token's verdict (accepted caller or refusal) for as long as it lives, which is
exactly one store revision. When the revision changes the service builds a new one, so a
revocation takes effect on the next request. (See docs/architecture.md, "Cache lifetimes".)
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Iterable
from dataclasses import dataclass

from csscert.errors import AccessDenied, AuthenticationFailed, InvalidRequest, ResourceNotFound
from csscert.identity.credentials import sk_context
from csscert.identity.tokens import IssuedToken, TokenClaims, TokenCodec, fernet_context
from csscert.model import AccessKey, Domain, Project, User
from csscert.sealing import Sealer
from csscert.settings import Settings
from csscert.store import StoreSnapshot

__all__ = ["USER_REVOCATION_PREFIX", "Directory", "Principal"]

USER_REVOCATION_PREFIX = "user:"  # rows "user:<user id>@<epoch ms>": tokens issued before are void
_VERDICTS_KEPT = 50_000
_REFUSALS_KEPT = 4096
_REFUSAL_MAX_TOKEN = 1024
_UNAUTHORIZED = "The request you have made requires authentication."


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller."""

    user: User
    domain: Domain
    method: str  # "token" or "aksk"
    project_id: str | None  # the token's project scope; None for AK/SK (any granted project)
    claims: TokenClaims | None = None


class Directory:
    """Read-only identity state of one store revision, with the lookups authentication needs."""

    def __init__(self, snapshot: StoreSnapshot, sealer: Sealer, settings: Settings) -> None:
        self.revision = snapshot.revision
        self.settings = settings
        self.domains = {d.id: d for d in snapshot.domains}
        self.domains_by_name = {d.name: d for d in snapshot.domains}
        self.projects = {p.id: p for p in snapshot.projects}
        self.projects_by_name = {p.name: p for p in snapshot.projects}
        self.users = {u.id: u for u in snapshot.users}
        self.users_by_name = {(u.domain_id, u.name): u for u in snapshot.users}
        self._secrets: dict[str, tuple[AccessKey, bytes]] = {
            key.access: (key, sealer.open(key.secret_sealed, sk_context(key.access)))
            for key in snapshot.access_keys
        }
        self._revoked = frozenset(r.audit_id for r in snapshot.revocations)
        self._user_revoked_before: dict[str, float] = {}
        for revocation in snapshot.revocations:
            if revocation.audit_id.startswith(USER_REVOCATION_PREFIX):
                user_id, _, millis = revocation.audit_id[len(USER_REVOCATION_PREFIX) :].partition("@")
                if millis.isdigit():
                    before = max(int(millis) / 1000, self._user_revoked_before.get(user_id, 0.0))
                    self._user_revoked_before[user_id] = before
        primary_first = sorted(snapshot.fernet_keys, key=lambda k: (not k.primary, -k.created_at.timestamp()))
        self.codec = TokenCodec([sealer.open(k.key_sealed, fernet_context(k.id)) for k in primary_first])
        self._verdicts: dict[str, Principal] = {}  # accepted tokens
        self._refusals: dict[str, str] = {}  # refused tokens, with the reason

    # -- lookups ------------------------------------------------------------------------

    def access_key(self, access: str) -> tuple[AccessKey, bytes] | None:
        """The access key and its opened secret, or None."""
        return self._secrets.get(access)

    def is_revoked(self, claims: TokenClaims) -> bool:
        """Whether the token or any token of its chain was revoked, or its user's tokens were.

        The question asked of revocations is "is any of these audit ids revoked" over the
        whole chain (``claims.audit_ids``): a rescoped token dies with every token it came from.
        """
        before = self._user_revoked_before.get(claims.user_id, 0.0)
        return claims.issued_at < before or not self._revoked.isdisjoint(claims.audit_ids)

    # -- token verdicts (one per token per revision) ------------------------------------

    def verdict(self, token: str) -> Principal | str | None:
        """The remembered verdict: the accepted caller, the refusal message, or None (unknown)."""
        principal = self._verdicts.get(token)
        if principal is not None:
            return principal
        return self._refusals.get(token)

    def remember_accepted(self, token: str, principal: Principal) -> None:
        if len(self._verdicts) >= _VERDICTS_KEPT:
            self._verdicts.clear()
        self._verdicts[token] = principal

    def remember_refusal(self, token: str, refusal: AuthenticationFailed) -> None:
        if len(token) <= _REFUSAL_MAX_TOKEN:  # bounded in entries and in size
            if len(self._refusals) >= _REFUSALS_KEPT:
                self._refusals.clear()
            self._refusals[token] = str(refusal)

    # -- authorisation ------------------------------------------------------------------

    def authorize_project(self, principal: Principal, project_id: str, header_project: str | None) -> Project:
        """The project a principal may act on, or the error the wire contract wants."""
        if header_project is not None and header_project != project_id:
            raise InvalidRequest("X-Project-Id does not match the project id in the path")
        project = self.projects.get(project_id)
        if project is None:
            raise ResourceNotFound(f"project {project_id} does not exist")
        if principal.project_id is not None and principal.project_id != project_id:
            raise AccessDenied("the token is scoped to another project")
        if principal.project_id is None and principal.method == "token":
            raise AccessDenied("the token is not scoped to a project")
        if project_id not in principal.user.project_ids or not project.enabled:
            raise AccessDenied("the user has no access to this project")
        return project

    def find_domain(self, domain_id: str | None, domain_name: str | None) -> Domain:
        domain = self.domains.get(domain_id) if domain_id else self.domains_by_name.get(domain_name or "")
        if domain is None or not domain.enabled:
            raise AuthenticationFailed(_UNAUTHORIZED)
        return domain

    def scope_project(self, user: User, project_id: str | None, project_name: str | None) -> Project:
        project = (
            self.projects.get(project_id) if project_id else self.projects_by_name.get(project_name or "")
        )
        if project is None or project.id not in user.project_ids or not project.enabled:
            raise AccessDenied("the user has no access to the requested project")
        return project

    def projects_of(self, user: User) -> list[Project]:
        return sorted(
            (self.projects[pid] for pid in user.project_ids if pid in self.projects), key=lambda p: p.name
        )

    # -- minting ------------------------------------------------------------------------

    def mint_token(
        self,
        user: User,
        project: Project | None,
        methods: Iterable[str],
        now: float,
        *,
        parent: TokenClaims | None = None,
    ) -> IssuedToken:
        """A new token. A token got with a token (``parent``) lives no longer than its parent
        and joins its audit chain, so revoking the parent revokes it too."""
        issued = math.floor(now * 1000) / 1000
        expires = int(issued) + self.settings.token_ttl_seconds
        own_audit_id = secrets.token_urlsafe(16)
        audit_ids: tuple[str, ...] = (own_audit_id,)
        if parent is not None:
            expires = min(expires, parent.expires_at)
            audit_ids = parent.chain_for_child(own_audit_id)
        claims = TokenClaims(
            user_id=user.id,
            domain_id=user.domain_id,
            project_id=project.id if project is not None else None,
            methods=tuple(methods),
            audit_ids=audit_ids,
            issued_at=issued,
            expires_at=expires,
        )
        return IssuedToken(self.codec.mint(claims), claims)
