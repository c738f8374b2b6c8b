"""The request-time read model of identity: bounded caches filled by point lookups, evicted by the change log.

Nothing here loads the whole store. A request asks for exactly what it needs (the access key,
the token's verdict, the user, the project); a hit is one dictionary lookup, a miss one indexed
query run off the event loop (``SqlStore.read``: a worker thread with a deadline), and concurrent
misses for the same key share that one query. Every write in any process records what it changed
in the store's change log; :meth:`Directory.apply` evicts exactly those entries (the service's
change feed calls it before the next request is answered). See docs/architecture.md.

Token verdicts are the one derived cache: a token's accepted caller (or its refusal) is
remembered until something it depends on changes. An accepted verdict holds the very ``User``
object it was checked against, and is only used while that object is still the cached one, so a
change to the user (disabled, password, grants, deleted) voids it; a revocation of one of its
audit ids evicts it through an index; a domain or token-key change voids them all.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from csscert.cache import MISSING, NEGATIVE, BoundedCache, SingleFlight, text_size
from csscert.errors import AccessDenied, AuthenticationFailed, InvalidRequest, ResourceNotFound
from csscert.identity.credentials import sk_context
from csscert.identity.tokens import IAM_PREFIX, IssuedToken, TokenClaims, TokenCodec, fernet_context
from csscert.model import AccessKey, Change, Domain, FernetKey, Project, User
from csscert.sealing import Sealer
from csscert.settings import Settings
from csscert.store import SqlStore

__all__ = ["CacheLimits", "Directory", "Principal", "mint_token", "token_codec"]

_UNAUTHORIZED = "The request you have made requires authentication."
_REVOKED = IAM_PREFIX + "the token has been revoked"
_MAX_KEY = 256  # longer lookup keys (names, access keys) are answered but never cached
_REFUSAL_MAX_TOKEN = 1024  # longer refused tokens are not remembered

R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller."""

    user: User
    domain: Domain
    method: str  # "token" or "aksk"
    project_id: str | None  # the token's project scope; None for AK/SK (any granted project)
    claims: TokenClaims | None = None
    credential: str = ""  # what identifies the credential in logs and limits: audit id or access key


@dataclass(frozen=True, slots=True)
class CacheLimits:
    """Bounds of every cache of one worker, in entries and bytes (negative entries included)."""

    users: int = 100_000
    access_keys: int = 100_000
    projects: int = 20_000
    domains: int = 1_000
    verdicts: int = 50_000
    refusals: int = 4_096
    max_bytes: int = 32 * 1024 * 1024  # per cache


def token_codec(keys: Sequence[FernetKey], sealer: Sealer) -> TokenCodec:
    """The codec of the current token keys: the primary key mints, all of them validate."""
    primary_first = sorted(keys, key=lambda k: (not k.primary, -k.created_at.timestamp()))
    return TokenCodec([sealer.open(k.key_sealed, fernet_context(k.id)) for k in primary_first])


def _user_size(user: User) -> int:
    return text_size(user.id, user.name, user.domain_id, user.password_hash) + 80 * len(user.project_ids)


class Directory:
    """Identity as one worker sees it: caches, the token codec, and the lookups requests need."""

    def __init__(
        self, store: SqlStore, sealer: Sealer, settings: Settings, limits: CacheLimits | None = None
    ) -> None:
        limits = limits or CacheLimits()
        self.settings = settings
        self._store = store
        self._sealer = sealer
        self.codec = token_codec(store.fernet_keys(), sealer)
        b = limits.max_bytes
        self.users: BoundedCache[str, User] = BoundedCache("users", limits.users, b)
        self.user_ids: BoundedCache[tuple[str, str], str] = BoundedCache("user_names", limits.users, b)
        self.access_keys: BoundedCache[str, tuple[AccessKey, bytes]] = BoundedCache(
            "access_keys", limits.access_keys, b
        )
        self.projects: BoundedCache[str, Project] = BoundedCache("projects", limits.projects, b)
        self.project_ids: BoundedCache[str, str] = BoundedCache("project_names", limits.projects, b)
        self.domains: BoundedCache[str, Domain] = BoundedCache("domains", limits.domains, b)
        self.domain_ids: BoundedCache[str, str] = BoundedCache("domain_names", limits.domains, b)
        self.verdicts: BoundedCache[str, Principal] = BoundedCache("token_verdicts", limits.verdicts, b)
        self.refusals: BoundedCache[str, str] = BoundedCache("token_refusals", limits.refusals, b)
        # audit id -> the tokens whose verdicts name it (a chain's first id is shared by all its tokens)
        self._by_audit: dict[str, set[str]] = {}
        self._indexed = 0  # (audit id, token) pairs in the index, counting evicted verdicts
        self._reindex_at = 2 * limits.verdicts
        self._flight: SingleFlight[tuple[str, Any], Any] = SingleFlight()
        self.generation = 0  # bumped by every applied change: loads begun before do not cache

    def caches(self) -> list[BoundedCache[Any, Any]]:
        return [
            self.users, self.user_ids, self.access_keys, self.projects, self.project_ids,
            self.domains, self.domain_ids, self.verdicts, self.refusals,
        ]  # fmt: skip

    # -- loading ------------------------------------------------------------------------

    async def _load(
        self, flight: tuple[str, Any], fetch: Callable[[], R | None], keep: Callable[[R | None], None]
    ) -> R | None:
        """One query off the loop, shared by concurrent callers (``flight`` names the load).
        ``keep`` files the answer in the caches, unless a change was applied meanwhile: the
        answer may then predate it, so it answers only its own callers."""

        async def run() -> R | None:
            generation = self.generation
            value = await self._store.read(fetch)
            if generation == self.generation:
                keep(value)
            return value

        result: R | None = await self._flight.load(flight, run)
        return result

    @staticmethod
    def _keep(cache: BoundedCache[Any, R], key: Any, value: R | None, size: int) -> None:
        """``value`` (or "none" for None) under ``key``, unless the key is too long to keep."""
        if not isinstance(key, str) or len(key) <= _MAX_KEY:
            cache.put(key, NEGATIVE if value is None else value, 64 if value is None else size)

    def _keep_user(self, user: User | None, user_id: str | None = None) -> None:
        if user is not None:
            self._keep(self.users, user.id, user, _user_size(user))
        elif user_id is not None:
            self._keep(self.users, user_id, None, 0)

    async def user(self, user_id: str) -> User | None:
        found = self.users.get(user_id)
        if found is MISSING:
            return await self._load(
                ("user", user_id), lambda: self._store.user(user_id), lambda u: self._keep_user(u, user_id)
            )
        return found if isinstance(found, User) else None

    async def user_by_name(self, domain_id: str, name: str) -> User | None:
        key = (domain_id, name)
        user_id = self.user_ids.get(key)
        if user_id is MISSING:

            def keep(user: User | None) -> None:
                self._keep_user(user)
                if user is not None or len(name) <= _MAX_KEY:
                    size = text_size(domain_id, name, user.id if user else None)
                    self.user_ids.put(key, NEGATIVE if user is None else user.id, size)

            return await self._load(
                ("user name", key), lambda: self._store.user_by_name(domain_id, name), keep
            )
        return None if user_id is NEGATIVE else await self.user(str(user_id))

    async def domain(self, domain_id: str) -> Domain | None:
        found = self.domains.get(domain_id)
        if found is MISSING:

            def keep(domain: Domain | None) -> None:
                self._keep(
                    self.domains, domain_id, domain, text_size(domain_id, domain.name if domain else None)
                )

            return await self._load(("domain", domain_id), lambda: self._store.domain(domain_id), keep)
        return found if isinstance(found, Domain) else None

    async def domain_by_name(self, name: str) -> Domain | None:
        domain_id = self.domain_ids.get(name)
        if domain_id is MISSING:

            def keep(domain: Domain | None) -> None:
                if domain is not None:
                    self._keep(self.domains, domain.id, domain, text_size(domain.id, domain.name))
                self._keep(self.domain_ids, name, None if domain is None else domain.id, text_size(name))

            return await self._load(("domain name", name), lambda: self._store.domain_by_name(name), keep)
        return None if domain_id is NEGATIVE else await self.domain(str(domain_id))

    def _keep_project(self, project: Project | None, project_id: str | None = None) -> None:
        if project is not None:
            self._keep(
                self.projects, project.id, project, text_size(project.id, project.name, project.domain_id)
            )
        elif project_id is not None:
            self._keep(self.projects, project_id, None, 0)

    async def project(self, project_id: str) -> Project | None:
        found = self.projects.get(project_id)
        if found is MISSING:
            return await self._load(
                ("project", project_id),
                lambda: self._store.project(project_id),
                lambda p: self._keep_project(p, project_id),
            )
        return found if isinstance(found, Project) else None

    async def project_by_name(self, name: str) -> Project | None:
        project_id = self.project_ids.get(name)
        if project_id is MISSING:

            def keep(project: Project | None) -> None:
                self._keep_project(project)
                self._keep(self.project_ids, name, None if project is None else project.id, text_size(name))

            return await self._load(("project name", name), lambda: self._store.project_by_name(name), keep)
        return None if project_id is NEGATIVE else await self.project(str(project_id))

    async def access_key(self, access: str) -> tuple[AccessKey, bytes] | None:
        """The access key and its opened secret, or None. The secret is opened in the loading
        thread, once per load, never on the event loop."""
        found = self.access_keys.get(access)
        if found is MISSING:
            return await self._load(
                ("access key", access),
                lambda: self._fetch_access_key(access),
                lambda entry: self._keep(self.access_keys, access, entry, 400),
            )
        return found if isinstance(found, tuple) else None

    def _fetch_access_key(self, access: str) -> tuple[AccessKey, bytes] | None:
        key = self._store.access_key(access)
        if key is None:
            return None
        return key, self._sealer.open(key.secret_sealed, sk_context(key.access))

    async def is_revoked(self, claims: TokenClaims) -> bool:
        """Whether the token or any token of its chain was revoked (one query over
        ``claims.audit_ids``: a rescoped token dies with every token it came from)."""
        revoked = await self._store.read(self._store.revoked, claims.audit_ids)
        return bool(revoked)

    # -- token verdicts -----------------------------------------------------------------

    def verdict(self, token: str) -> Principal | str | None:
        """The remembered verdict: the accepted caller, the refusal message, or None (unknown or
        void: the user changed since the verdict was made)."""
        principal = self.verdicts.get(token)
        if principal is not MISSING:
            assert isinstance(principal, Principal)
            if self.users.peek(principal.user.id) is principal.user:
                return principal
            self.verdicts.pop(token)
            return None
        refusal = self.refusals.peek(token)
        return refusal if isinstance(refusal, str) else None

    def remember_accepted(self, token: str, principal: Principal, generation: int) -> None:
        if generation != self.generation or principal.claims is None:
            return  # a change was applied while it was checked: check again next time
        self.verdicts.put(token, principal, len(token) + 600)
        for audit_id in principal.claims.audit_ids:
            self._by_audit.setdefault(audit_id, set()).add(token)
        self._indexed += len(principal.claims.audit_ids)
        if self._indexed > self._reindex_at:  # forget index entries of evicted verdicts
            self._reindex()

    def _reindex(self) -> None:
        index: dict[str, set[str]] = {}
        for audit_id, tokens in self._by_audit.items():
            live = {t for t in tokens if isinstance(self.verdicts.peek(t), Principal)}
            if live:
                index[audit_id] = live
        self._by_audit = index
        self._indexed = sum(len(tokens) for tokens in index.values())
        # Amortised: the next rebuild waits until the index has at least doubled again.
        self._reindex_at = max(2 * self.verdicts.max_entries, 2 * self._indexed)

    def remember_refusal(self, token: str, refusal: AuthenticationFailed) -> None:
        """Refusals are final (a bad token stays bad, a revoked one stays revoked, a user once
        disabled voids its earlier tokens for good), so they need no eviction."""
        if len(token) <= _REFUSAL_MAX_TOKEN:
            self.refusals.put(token, str(refusal), len(token) + 100)

    # -- the change log -----------------------------------------------------------------

    def apply(self, changes: Iterable[Change]) -> bool:
        """Evict what ``changes`` touched. True when the token keys changed (the caller reloads
        them with :meth:`reload_codec`, off the event loop)."""
        self.generation += 1
        keys_changed = False
        names_may_exist: set[BoundedCache[Any, Any]] = set()  # negatives dropped once per batch
        for change in changes:
            kind, key = change.kind, change.key
            if kind == "user":
                user = self.users.pop(key)
                if isinstance(user, User):
                    self.user_ids.pop((user.domain_id, user.name))
                names_may_exist.add(self.user_ids)
            elif kind == "access_key":
                self.access_keys.pop(key)
            elif kind == "revocation":
                for token in self._by_audit.pop(key, ()):
                    self.verdicts.pop(token)
                    # A revocation is never undone, so the token is refused from memory from now
                    # on: a host that heard of it says 401 even while the database is away.
                    self.refusals.put(token, _REVOKED, len(token) + 100)
            elif kind == "project":
                project = self.projects.pop(key)
                if isinstance(project, Project):
                    self.project_ids.pop(project.name)
                names_may_exist.add(self.project_ids)
            elif kind == "domain":
                domain = self.domains.pop(key)
                if isinstance(domain, Domain):
                    self.domain_ids.pop(domain.name)
                names_may_exist.add(self.domain_ids)
                self._drop_verdicts()
            elif kind == "fernet_key":
                keys_changed = True
                self._drop_verdicts()
        for cache in names_may_exist:
            cache.drop_negatives()
        return keys_changed

    def reload_codec(self, keys: Sequence[FernetKey]) -> None:
        self.codec = token_codec(keys, self._sealer)
        self.generation += 1
        self._drop_verdicts()
        self.refusals.clear()  # a token refused as "invalid" may be valid under a new key set

    def clear(self) -> None:
        """Forget everything (the change log no longer reaches back far enough)."""
        self.generation += 1
        for cache in self.caches():
            cache.clear()
        self._by_audit.clear()
        self._indexed = 0

    def _drop_verdicts(self) -> None:
        self.verdicts.clear()
        self._by_audit.clear()
        self._indexed = 0

    # -- authorisation ------------------------------------------------------------------

    async def authorize_project(
        self, principal: Principal, project_id: str, header_project: str | None
    ) -> Project:
        """The project a principal may act on, or the error the wire contract wants."""
        cached = self.projects.get(project_id)
        if isinstance(cached, Project):
            project: Project | None = cached
        else:
            project = None if cached is NEGATIVE else await self.project(project_id)
        return self.authorize(principal, project_id, project, header_project)

    def authorize(
        self, principal: Principal, project_id: str, project: Project | None, header_project: str | None
    ) -> Project:
        """The checks of :meth:`authorize_project` once the project is known (or known absent)."""
        if header_project is not None and header_project != project_id:
            raise InvalidRequest("X-Project-Id does not match the project id in the path")
        if project is None:
            raise ResourceNotFound(f"project {project_id} does not exist")
        if principal.project_id is not None and principal.project_id != project_id:
            raise AccessDenied("the token is scoped to another project")
        if principal.project_id is None and principal.method == "token":
            raise AccessDenied("the token is not scoped to a project")
        if project_id not in principal.user.project_ids or not project.enabled:
            raise AccessDenied("the user has no access to this project")
        return project

    async def find_domain(self, domain_id: str | None, domain_name: str | None) -> Domain:
        domain = await self.domain(domain_id) if domain_id else await self.domain_by_name(domain_name or "")
        if domain is None or not domain.enabled:
            raise AuthenticationFailed(_UNAUTHORIZED)
        return domain

    async def scope_project(self, user: User, project_id: str | None, project_name: str | None) -> Project:
        project = (
            await self.project(project_id) if project_id else await self.project_by_name(project_name or "")
        )
        if project is None or project.id not in user.project_ids or not project.enabled:
            raise AccessDenied("the user has no access to the requested project")
        return project

    async def projects_of(self, user: User) -> list[Project]:
        found = [await self.project(pid) for pid in sorted(user.project_ids)]
        return sorted((p for p in found if p is not None), key=lambda p: p.name)

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
        return mint_token(
            self.codec, self.settings.token_ttl_seconds, user, project, methods, now, parent=parent
        )


def mint_token(
    codec: TokenCodec,
    ttl_seconds: int,
    user: User,
    project: Project | None,
    methods: Iterable[str],
    now: float,
    *,
    parent: TokenClaims | None = None,
) -> IssuedToken:
    """A new token of ``user`` (scoped to ``project`` if given), valid ``ttl_seconds`` at most; a
    child of ``parent`` (a rescope) expires with it and carries its audit chain."""
    issued = math.floor(now * 1000) / 1000
    expires = int(issued) + ttl_seconds
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
    return IssuedToken(codec.mint(claims), claims)
