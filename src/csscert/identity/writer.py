"""Writes identity state through the store: domains, projects, users, access keys, token keys, revocations.

Used by the CLI and by the API routes that change something (Keystone token revocation). Reads
for requests go through the read model (:mod:`csscert.identity.directory`), never through here.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from cryptography.fernet import Fernet

from csscert.audit import AuditEntry
from csscert.bulk import ImportedUser
from csscert.errors import AccessDenied, Conflict, InvalidRequest, ResourceNotFound
from csscert.identity.credentials import generate_access_key, generate_secret_key, hash_password, sk_context
from csscert.identity.directory import mint_token, token_codec
from csscert.identity.roles import validate_role
from csscert.identity.tokens import IssuedToken, TokenClaims, TokenCodec, fernet_context
from csscert.model import (
    AccessKey,
    Domain,
    FernetKey,
    ImportedAccessKey,
    ImportedUserRecord,
    Project,
    User,
    new_id,
)
from csscert.sealing import Sealer
from csscert.settings import Settings
from csscert.store import LastGrant, NotFound, SqlStore
from csscert.store.issuance import IssuanceStore

__all__ = ["Identity", "NewCredential"]


@dataclass(frozen=True, slots=True)
class NewCredential:
    """An access key made for an imported user, with its secret (shown once, never stored)."""

    name: str
    access_key: str
    secret_key: str = field(repr=False)


def _hash_passwords(passwords: Sequence[str | None]) -> list[str | None]:
    """argon2 hashes (None stays None), on every core when there are many."""
    todo = [p for p in passwords if p is not None]
    if len(todo) < 16:
        hashed = iter([hash_password(p) for p in todo])
    else:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor() as pool:
            hashed = iter(list(pool.map(hash_password, todo, chunksize=64)))
    return [None if p is None else next(hashed) for p in passwords]


_TOKEN_KEYS_KEPT = 3


def _user(user: User) -> str:
    return f"user {user.name} ({user.id})"


class Identity:
    """Writes identity state: users, grants, access keys, token keys, revocations."""

    def __init__(self, store: SqlStore, sealer: Sealer, settings: Settings) -> None:
        self._store = store
        self._sealer = sealer
        self._settings = settings

    def open_one_secret(self) -> None:
        """Open one sealed token key and one secret key, if there are any: a master key that
        is not the one that sealed them raises :class:`MasterKeyError` here, before anything
        new gets sealed under it."""
        keys = self._store.fernet_keys()
        if keys:
            self._sealer.open(keys[0].key_sealed, fernet_context(keys[0].id))
        sample = self._store.any_access_key()
        if sample is not None:
            self._sealer.open(sample.secret_sealed, sk_context(sample.access))

    # -- domains & projects -------------------------------------------------------------

    def default_domain(self) -> Domain:
        name = self._settings.domain_name
        return self._store.ensure_domain(new_id(), name, audit=AuditEntry("domain.create", f"domain {name}"))

    def _default_domain_id(self) -> str:
        found = self._store.domain_by_name(self._settings.domain_name)
        return found.id if found is not None else self.default_domain().id

    def project_name(self, name: str) -> str:
        """Project names follow the cloud: the region name, or ``<region>_<suffix>``."""
        region = self._settings.region
        name = name.strip()
        if not name or len(name) > 64 or any(c.isspace() or c in "/\\" for c in name):
            raise InvalidRequest("project name must be 1 to 64 characters without spaces or slashes")
        return name if name == region or name.startswith(region + "_") else f"{region}_{name}"

    def create_project(self, name: str) -> Project:
        domain = self.default_domain()
        project_id, full_name = new_id(), self.project_name(name)
        audit = AuditEntry("project.create", f"project {full_name} ({project_id})")
        return self._store.create_project(project_id, full_name, domain.id, audit=audit)

    def resolve_project(self, ref: str) -> Project:
        """A project by id, by name, or by the short name (``dev`` for ``<region>_dev``)."""
        found = self._store.project(ref) or self._store.project_by_name(ref)
        if found is None:
            try:
                found = self._store.project_by_name(self.project_name(ref))
            except InvalidRequest:
                found = None
        if found is None:
            raise ResourceNotFound(f"no project {ref!r}")
        return found

    # -- users --------------------------------------------------------------------------

    def resolve_user(self, ref: str) -> User:
        """A user of the default domain by name, or any user by id."""
        found = self._store.user_by_name(self._default_domain_id(), ref) or self._store.user(ref)
        if found is None:
            raise ResourceNotFound(f"no user {ref!r}")
        return found

    def create_user(self, name: str, projects: Iterable[str], password: str | None) -> User:
        if not name.strip() or len(name) > 64:
            raise InvalidRequest("user name must be 1 to 64 characters")
        project_ids = [self.resolve_project(ref).id for ref in projects]
        if not project_ids:
            raise InvalidRequest("grant the user at least one project (--project)")
        password_hash = hash_password(password) if password is not None else None
        domain_id = self.default_domain().id
        user_id, name = new_id(), name.strip()
        audit = AuditEntry(
            "user.create",
            f"user {name} ({user_id})",
            f"projects {', '.join(project_ids)}; password {'set' if password_hash else 'none'}",
        )
        return self._store.create_user(user_id, name, domain_id, password_hash, project_ids, audit=audit)

    def grant(self, user_ref: str, project_ref: str) -> tuple[User, Project]:
        """Let a user take tokens for (and sign requests in) one more project."""
        user = self.resolve_user(user_ref)
        project = self.resolve_project(project_ref)
        try:
            self._store.grant(
                user.id, project.id, audit=AuditEntry("user.grant", _user(user), f"project {project.name}")
            )
        except Conflict as exc:
            raise Conflict(f"user {user.name} already has project {project.name}") from exc
        return user, project

    def grant_role(self, user_ref: str, role: str) -> User:
        """Give a user a role (:mod:`csscert.identity.roles`); its next request has it."""
        role = validate_role(role)
        user = self.resolve_user(user_ref)
        try:
            IssuanceStore(self._store).grant_role(
                user.id, role, audit=AuditEntry("user.grant-role", _user(user), f"role {role}")
            )
        except Conflict as exc:
            raise Conflict(f"user {user.name} already has role {role}") from exc
        except NotFound as exc:
            raise ResourceNotFound(f"no user {user_ref!r}") from exc
        return user

    def revoke_role(self, user_ref: str, role: str) -> User:
        """Take a role from a user; its next request (any worker, any host) goes without it."""
        role = validate_role(role)
        user = self.resolve_user(user_ref)
        try:
            IssuanceStore(self._store).revoke_role(
                user.id, role, audit=AuditEntry("user.revoke-role", _user(user), f"role {role}")
            )
        except NotFound as exc:
            raise ResourceNotFound(f"user {user.name} does not have role {role}") from exc
        return user

    def revoke_grant(self, user_ref: str, project_ref: str) -> tuple[User, Project]:
        """Take a project from a user: its tokens for that project and its AK/SK requests there
        are refused from the next request on (the read model checks grants on every request).

        A user keeps at least one project, as ``user create`` demands: a user with none could
        still log in but never use anything, which looks like a bug; ``user disable`` or
        ``user delete`` say what is meant.
        """
        user = self.resolve_user(user_ref)
        project = self.resolve_project(project_ref)
        try:
            self._store.revoke_grant(
                user.id,
                project.id,
                audit=AuditEntry("user.revoke-grant", _user(user), f"project {project.name}"),
            )
        except NotFound as exc:
            raise ResourceNotFound(f"user {user.name} does not have project {project.name}") from exc
        except LastGrant as exc:
            raise LastGrant(
                f"{project.name} is the only project of {user.name}; grant another first, or use "
                f"'csscert user disable {user.name}' or 'user delete' to take all access away"
            ) from exc
        return user, project

    def set_password(self, user_ref: str, password: str) -> None:
        """A new password; like Keystone, tokens issued before stop working."""
        user = self.resolve_user(user_ref)
        audit = AuditEntry("user.set-password", _user(user))
        self._store.set_user_password(user.id, hash_password(password), audit=audit)
        self.revoke_user_tokens(user)

    def set_user_enabled(self, user_ref: str, enabled: bool) -> User:
        """Disabling a user voids its tokens for good: enabling it again does not revive them."""
        user = self.resolve_user(user_ref)
        if not enabled:
            self.revoke_user_tokens(user)
        audit = AuditEntry("user.enable" if enabled else "user.disable", _user(user))
        self._store.set_user_enabled(user.id, enabled, audit=audit)
        return user

    def revoke_user_tokens(self, user: User) -> None:
        """Every token of ``user`` issued until now stops working (Keystone's revocation event for
        a user): the user's "tokens valid after" moves to now. It never expires, and only moves
        forward, whatever token lifetime the process that minted a token had."""
        millis = math.ceil(dt.datetime.now(dt.UTC).timestamp() * 1000)
        audit = AuditEntry("token.revoke-user", _user(user), "every token issued until now")
        self._store.set_tokens_valid_after(user.id, millis, audit=audit)

    def delete_user(self, user_ref: str) -> User:
        user = self.resolve_user(user_ref)
        self._store.delete_user(user.id, audit=AuditEntry("user.delete", _user(user)))
        return user

    def users_page(self, after: str | None, limit: int) -> list[User]:
        """Users of the default domain in name order, ``limit`` at a time after the name ``after``."""
        return self._store.users_page(after, limit, domain_id=self._default_domain_id())

    def import_users(
        self,
        users: Sequence[ImportedUser],
        *,
        with_keys: bool,
        deliver: Callable[[list[NewCredential]], None],
    ) -> int:
        """Create every user of ``users`` (with one new AK/SK each when ``with_keys``), all or nothing.

        Project references are resolved once each; passwords are hashed on every core (argon2 is
        slow on purpose: ~20 ms each). ``deliver`` gets the new credentials *before* the store
        commits (it writes them somewhere); if it raises, nothing is imported, and if the import
        then fails, the caller must discard what it delivered (the CLI deletes the file).
        """
        domain_id = self._default_domain_id()
        projects: dict[str, str] = {}
        records: list[ImportedUserRecord] = []
        credentials: list[NewCredential] = []
        for user in users:
            if user.password is not None and len(user.password) < 8:
                raise InvalidRequest(f"line {user.line}: password must be at least 8 characters")
        hashes = _hash_passwords([u.password for u in users])
        for user, password_hash in zip(users, hashes, strict=True):
            if not user.projects:
                raise InvalidRequest(f'line {user.line}: grant the user at least one project ("projects")')
            project_ids = []
            for ref in user.projects:
                if ref not in projects:
                    try:
                        projects[ref] = self.resolve_project(ref).id
                    except ResourceNotFound as exc:
                        raise ResourceNotFound(f"line {user.line}: {exc}") from exc
                project_ids.append(projects[ref])
            keys: tuple[ImportedAccessKey, ...] = ()
            if with_keys:
                access, secret = generate_access_key(), generate_secret_key()
                keys = (
                    ImportedAccessKey(
                        access, self._sealer.seal(secret.encode(), sk_context(access)), "import"
                    ),
                )
                credentials.append(NewCredential(user.name, access, secret))
            records.append(
                ImportedUserRecord(
                    new_id(), user.name, domain_id, password_hash, tuple(dict.fromkeys(project_ids)), keys
                )
            )
        deliver(credentials)
        audit = AuditEntry("user.import", f"{len(records)} user(s)", "with access keys" if with_keys else "")
        return self._store.import_users(records, audit=audit)

    # -- access keys --------------------------------------------------------------------

    def create_credential(self, user_ref: str, description: str = "") -> tuple[AccessKey, str]:
        """A new AK/SK pair. The SK is returned once and only kept sealed."""
        user = self.resolve_user(user_ref)
        secret = generate_secret_key()
        access = generate_access_key()
        audit = AuditEntry("credential.create", f"access key {access} of {_user(user)}", description[:200])
        key = self._store.create_access_key(
            access, user.id, self._sealer.seal(secret.encode(), sk_context(access)), description, audit=audit
        )
        return key, secret

    def credentials_page(self, after: str | None, limit: int) -> list[AccessKey]:
        """Access keys in key order, ``limit`` at a time after the key ``after`` (never all at once)."""
        return self._store.access_keys_page(after, limit)

    def user_names(self, user_ids: Iterable[str]) -> dict[str, str]:
        """The names of the users with these ids (one lookup each; ids of deleted users are left out)."""
        found = {uid: self._store.user(uid) for uid in set(user_ids)}
        return {uid: user.name for uid, user in found.items() if user is not None}

    def credentials(self, user_ref: str) -> list[AccessKey]:
        return self._store.access_keys_of(self.resolve_user(user_ref).id)

    def set_credential_enabled(self, access: str, enabled: bool) -> None:
        try:
            action = "credential.enable" if enabled else "credential.disable"
            self._store.set_access_key_enabled(
                access, enabled, audit=AuditEntry(action, f"access key {access}")
            )
        except NotFound as exc:
            raise ResourceNotFound(f"no access key {access!r}") from exc

    def delete_credential(self, access: str) -> None:
        try:
            self._store.delete_access_key(
                access, audit=AuditEntry("credential.delete", f"access key {access}")
            )
        except NotFound as exc:
            raise ResourceNotFound(f"no access key {access!r}") from exc

    # -- tokens -------------------------------------------------------------------------

    def ensure_token_keys(self) -> bool:
        if self._store.fernet_keys():
            return False
        self.rotate_token_keys()
        return True

    def rotate_token_keys(self, keep: int = _TOKEN_KEYS_KEPT) -> FernetKey:
        """New primary token key; older keys still validate until ``keep`` is exceeded."""
        key_id = new_id()
        key = FernetKey(
            key_id,
            self._sealer.seal(Fernet.generate_key(), fernet_context(key_id)),
            True,
            dt.datetime.now(dt.UTC),
        )
        audit = AuditEntry("token.rotate-keys", f"token key {key_id}", f"keeping {max(1, keep)} key(s)")
        self._store.add_fernet_key(key, keep=max(1, keep), audit=audit)
        return key

    def _codec(self) -> TokenCodec:
        return token_codec(self._store.fernet_keys(), self._sealer)

    def issue_token(self, user_ref: str, project_ref: str | None) -> IssuedToken:
        """A token for ``user_ref`` (scoped to ``project_ref``): a handful of indexed reads, the
        token keys opened, nothing else (never the whole directory)."""
        user = self.resolve_user(user_ref)
        if not user.enabled:
            raise InvalidRequest("the user is disabled")
        project = None
        if project_ref is not None:
            project = self.resolve_project(project_ref)
            if project.id not in user.project_ids or not project.enabled:
                raise AccessDenied("the user has no access to the requested project")
        methods = ["token"] if user.password_hash is None else ["password"]
        now = dt.datetime.now(dt.UTC).timestamp()
        return mint_token(self._codec(), self._settings.token_ttl_seconds, user, project, methods, now)

    def revoke_token(self, token: str) -> TokenClaims:
        """Revoke a token this service minted (its signature is checked first)."""
        claims = self._codec().parse(token)
        self.revoke_claims(claims)
        return claims

    def revoke_claims(self, claims: TokenClaims) -> None:
        """Revoke the token with these (already verified) claims, until it would have expired."""
        expires = dt.datetime.fromtimestamp(claims.expires_at, dt.UTC)
        audit = AuditEntry("token.revoke", f"token {claims.audit_id} of user {claims.user_id}")
        self._store.add_revocation(claims.audit_id, expires, user_id=claims.user_id, audit=audit)
