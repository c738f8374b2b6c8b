"""Writes identity state through the store: domains, projects, users, access keys, token keys, revocations.

Used by the CLI and by the API routes that change something (Keystone token revocation). Reads
for requests go through the read model (:mod:`csscert.identity.directory`), never through here.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable

from cryptography.fernet import Fernet

from csscert.audit import AuditEntry
from csscert.errors import InvalidRequest, ResourceNotFound
from csscert.identity.credentials import generate_access_key, generate_secret_key, hash_password, sk_context
from csscert.identity.directory import USER_REVOCATION_PREFIX, Directory
from csscert.identity.tokens import IssuedToken, TokenClaims, fernet_context
from csscert.model import AccessKey, Domain, FernetKey, Project, User, new_id
from csscert.sealing import Sealer
from csscert.settings import Settings
from csscert.store import NotFound, SqlStore

__all__ = ["Identity"]

_TOKEN_KEYS_KEPT = 3
_NEVER = dt.datetime(9999, 12, 31, tzinfo=dt.UTC)


def _user(user: User) -> str:
    return f"user {user.name} ({user.id})"


class Identity:
    """Writes identity state: users, grants, access keys, token keys, revocations."""

    def __init__(self, store: SqlStore, sealer: Sealer, settings: Settings) -> None:
        self._store = store
        self._sealer = sealer
        self._settings = settings

    def directory(self) -> Directory:
        return Directory(self._store.snapshot(), self._sealer, self._settings)

    def open_one_secret(self) -> None:
        """Open one sealed token key and one secret key, if there are any: a master key that
        is not the one that sealed them raises :class:`MasterKeyError` here, before anything
        new gets sealed under it."""
        keys = self._store.fernet_keys()
        if keys:
            self._sealer.open(keys[0].key_sealed, fernet_context(keys[0].id))
        access_keys = self._store.access_keys()
        if access_keys:
            self._sealer.open(access_keys[0].secret_sealed, sk_context(access_keys[0].access))

    # -- domains & projects -------------------------------------------------------------

    def default_domain(self) -> Domain:
        name = self._settings.domain_name
        return self._store.ensure_domain(new_id(), name, audit=AuditEntry("domain.create", f"domain {name}"))

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
        for project in self._store.projects():
            if ref in (project.id, project.name) or self.project_name(ref) == project.name:
                return project
        raise ResourceNotFound(f"no project {ref!r}")

    # -- users --------------------------------------------------------------------------

    def resolve_user(self, ref: str) -> User:
        domain = self.default_domain()
        for user in self._store.users():
            if user.id == ref or (user.domain_id == domain.id and user.name == ref):
                return user
        raise ResourceNotFound(f"no user {ref!r}")

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
        """Every token of ``user`` issued until now stops working (a Keystone revocation event)."""
        now = dt.datetime.now(dt.UTC)
        millis = math.ceil(now.timestamp() * 1000)
        # No expiry: a token's lifetime is set by whichever process minted it (the TTL setting
        # may differ between the server and a CLI), so the event must outlive any of them. Only
        # the newest event per user matters; it supersedes the older ones.
        prefix = f"{USER_REVOCATION_PREFIX}{user.id}@"
        audit = AuditEntry("token.revoke-user", _user(user), "every token issued until now")
        self._store.add_revocation(f"{prefix}{millis}", _NEVER, supersedes=prefix, audit=audit)

    def delete_user(self, user_ref: str) -> User:
        user = self.resolve_user(user_ref)
        self._store.delete_user(user.id, audit=AuditEntry("user.delete", _user(user)))
        return user

    def users(self) -> list[User]:
        return self._store.users()

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

    def credentials(self, user_ref: str | None = None) -> list[AccessKey]:
        keys = self._store.access_keys()
        if user_ref is None:
            return keys
        user = self.resolve_user(user_ref)
        return [key for key in keys if key.user_id == user.id]

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

    def issue_token(self, user_ref: str, project_ref: str | None) -> IssuedToken:
        user = self.resolve_user(user_ref)
        if not user.enabled:
            raise InvalidRequest("the user is disabled")
        directory = self.directory()
        project = None
        if project_ref is not None:
            project = directory.scope_project(user, None, self.resolve_project(project_ref).name)
        methods = ["token"] if user.password_hash is None else ["password"]
        return directory.mint_token(user, project, methods, dt.datetime.now(dt.UTC).timestamp())

    def revoke_token(self, token: str, directory: Directory | None = None) -> TokenClaims:
        claims = (directory or self.directory()).codec.parse(token)
        audit = AuditEntry("token.revoke", f"token {claims.audit_id} of user {claims.user_id}")
        expires = dt.datetime.fromtimestamp(claims.expires_at, dt.UTC)
        self._store.add_revocation(claims.audit_id, expires, audit=audit)
        return claims
