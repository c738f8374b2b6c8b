"""Writes identity state through the store: domains, projects, users, access keys, token keys, revocations.

Used by the CLI and by the API routes that change something (Keystone token revocation). Reads
for requests go through the read model (:mod:`csscert.identity.directory`), never through here.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable

from cryptography.fernet import Fernet

from csscert.errors import Conflict, InvalidRequest, ResourceNotFound
from csscert.identity.credentials import generate_access_key, generate_secret_key, hash_password, sk_context
from csscert.identity.directory import USER_REVOCATION_PREFIX, Directory
from csscert.identity.tokens import IssuedToken, TokenClaims, fernet_context
from csscert.model import AccessKey, Domain, FernetKey, Project, User, new_id
from csscert.sealing import Sealer
from csscert.settings import Settings
from csscert.store import LastGrant, NotFound, SqlStore

__all__ = ["Identity"]

_TOKEN_KEYS_KEPT = 3
_NEVER = dt.datetime(9999, 12, 31, tzinfo=dt.UTC)


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
        return self._store.ensure_domain(new_id(), self._settings.domain_name)

    def project_name(self, name: str) -> str:
        """Project names follow the cloud: the region name, or ``<region>_<suffix>``."""
        region = self._settings.region
        name = name.strip()
        if not name or len(name) > 64 or any(c.isspace() or c in "/\\" for c in name):
            raise InvalidRequest("project name must be 1 to 64 characters without spaces or slashes")
        return name if name == region or name.startswith(region + "_") else f"{region}_{name}"

    def create_project(self, name: str) -> Project:
        domain = self.default_domain()
        return self._store.create_project(new_id(), self.project_name(name), domain.id)

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
        return self._store.create_user(new_id(), name.strip(), domain_id, password_hash, project_ids)

    def grant(self, user_ref: str, project_ref: str) -> tuple[User, Project]:
        """Let a user take tokens for (and sign requests in) one more project."""
        user = self.resolve_user(user_ref)
        project = self.resolve_project(project_ref)
        try:
            self._store.grant(user.id, project.id)
        except Conflict as exc:
            raise Conflict(f"user {user.name} already has project {project.name}") from exc
        return user, project

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
            self._store.revoke_grant(user.id, project.id)
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
        self._store.set_user_password(user.id, hash_password(password))
        self.revoke_user_tokens(user)

    def set_user_enabled(self, user_ref: str, enabled: bool) -> User:
        """Disabling a user voids its tokens for good: enabling it again does not revive them."""
        user = self.resolve_user(user_ref)
        if not enabled:
            self.revoke_user_tokens(user)
        self._store.set_user_enabled(user.id, enabled)
        return user

    def revoke_user_tokens(self, user: User) -> None:
        """Every token of ``user`` issued until now stops working (a Keystone revocation event)."""
        now = dt.datetime.now(dt.UTC)
        millis = math.ceil(now.timestamp() * 1000)
        # No expiry: a token's lifetime is set by whichever process minted it (the TTL setting
        # may differ between the server and a CLI), so the event must outlive any of them. Only
        # the newest event per user matters; it supersedes the older ones.
        prefix = f"{USER_REVOCATION_PREFIX}{user.id}@"
        self._store.add_revocation(f"{prefix}{millis}", _NEVER, supersedes=prefix)

    def delete_user(self, user_ref: str) -> User:
        user = self.resolve_user(user_ref)
        self._store.delete_user(user.id)
        return user

    def users(self) -> list[User]:
        return self._store.users()

    # -- access keys --------------------------------------------------------------------

    def create_credential(self, user_ref: str, description: str = "") -> tuple[AccessKey, str]:
        """A new AK/SK pair. The SK is returned once and only kept sealed."""
        user = self.resolve_user(user_ref)
        secret = generate_secret_key()
        access = generate_access_key()
        key = self._store.create_access_key(
            access, user.id, self._sealer.seal(secret.encode(), sk_context(access)), description
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
            self._store.set_access_key_enabled(access, enabled)
        except NotFound as exc:
            raise ResourceNotFound(f"no access key {access!r}") from exc

    def delete_credential(self, access: str) -> None:
        try:
            self._store.delete_access_key(access)
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
        self._store.add_fernet_key(key, keep=max(1, keep))
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
        self._store.add_revocation(claims.audit_id, dt.datetime.fromtimestamp(claims.expires_at, dt.UTC))
        return claims
