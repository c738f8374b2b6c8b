"""Who may call: domains, users, access keys, tokens, and the checks on every request.

Two halves:

* :class:`Identity` changes identity state through the store (users, keys, token keys,
  revocations). Used by the CLI and by the Keystone routes that write.
* :class:`Directory` is the read model the hot path uses. It is built from one store
  snapshot and never touches the database; when the store's revision changes a new one is
  built, which is how a revocation takes effect on the next request.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import json
import math
import secrets
import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from csscert import signing
from csscert.errors import AccessDenied, AuthenticationFailed, InvalidRequest, ResourceNotFound
from csscert.model import AccessKey, Domain, FernetKey, Project, User, new_id
from csscert.sealing import Sealer
from csscert.settings import Settings
from csscert.store import NotFound, SqlStore, StoreSnapshot

__all__ = [
    "Directory",
    "Identity",
    "IssuedToken",
    "Principal",
    "TokenClaims",
    "generate_access_key",
    "generate_secret_key",
]

_AK_ALPHABET = string.ascii_uppercase + string.digits
_SK_ALPHABET = string.ascii_letters + string.digits
_TOKEN_KEYS_KEPT = 3
_TOKEN_CACHE_LIMIT = 50_000
_TOKEN_MAX_LENGTH = 4096
_TOKEN_REJECT_LIMIT = 4096
_TOKEN_REJECT_MAX_LENGTH = 1024
_NEVER = dt.datetime(9999, 12, 31, tzinfo=dt.UTC)
_USER_REVOCATION = "user:"  # revocation rows "user:<user id>@<epoch ms>": tokens issued before are void
_IAM = "Incorrect IAM authentication information: "
_BAD_SIGNATURE = _IAM + "the access key is unknown or disabled, or the signature does not match"
_DUMMY_SECRET = secrets.token_bytes(40)

_password_hasher = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1)


def generate_access_key() -> str:
    return "".join(secrets.choice(_AK_ALPHABET) for _ in range(20))


def generate_secret_key() -> str:
    return "".join(secrets.choice(_SK_ALPHABET) for _ in range(40))


def hash_password(password: str) -> str:
    if len(password) < 8:
        raise InvalidRequest("password must be at least 8 characters")
    return _password_hasher.hash(password)


def _sk_context(access: str) -> str:
    return f"ak:{access}"


def _fernet_context(key_id: str) -> str:
    return f"fernet:{key_id}"


@dataclass(frozen=True, slots=True)
class TokenClaims:
    user_id: str
    domain_id: str
    project_id: str | None
    methods: tuple[str, ...]
    audit_id: str
    issued_at: float  # epoch seconds, millisecond precision (user revocations compare against it)
    expires_at: int

    def to_json(self) -> bytes:
        return json.dumps(
            [self.user_id, self.domain_id, self.project_id, list(self.methods), self.audit_id,
             self.issued_at, self.expires_at],
            separators=(",", ":"),
        ).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> TokenClaims:
        try:
            user_id, domain_id, project_id, methods, audit_id, issued_at, expires_at = json.loads(raw)
            if project_id is not None and not isinstance(project_id, str):
                raise TypeError("project id")
            return cls(
                str(user_id), str(domain_id), project_id, tuple(str(m) for m in methods), str(audit_id),
                float(issued_at), int(expires_at),
            )
        except (ValueError, TypeError) as exc:
            raise AuthenticationFailed(_IAM + "the token is invalid") from exc


@dataclass(frozen=True, slots=True)
class IssuedToken:
    token: str
    claims: TokenClaims


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller."""

    user: User
    domain: Domain
    method: str  # "token" or "aksk"
    project_id: str | None  # the token's project scope; None for AK/SK (any granted project)
    claims: TokenClaims | None = None


class _TokenCodec:
    """Fernet tokens (as Keystone issues them): authenticated encryption, rotating keys."""

    def __init__(self, keys: list[bytes]) -> None:
        self._fernet = MultiFernet([Fernet(key) for key in keys]) if keys else None

    def mint(self, claims: TokenClaims) -> str:
        if self._fernet is None:
            raise RuntimeError("no token keys; start the service once to create them")
        return self._fernet.encrypt_at_time(claims.to_json(), int(claims.issued_at)).decode()

    def parse(self, token: str) -> TokenClaims:
        """Decrypt and authenticate a token; any change to any character makes it invalid.

        Fernet alone is not enough for that: its base64 decoder skips characters outside the
        alphabet and ignores the unused low bits of the last character, so some one-character
        edits decode to the same bytes. Only the canonical encoding is accepted.
        """
        if self._fernet is None or len(token) > _TOKEN_MAX_LENGTH:
            raise AuthenticationFailed(_IAM + "the token is invalid")
        try:
            encoded = token.encode("ascii")
            if base64.urlsafe_b64encode(base64.urlsafe_b64decode(encoded)) != encoded:
                raise InvalidToken
            raw = self._fernet.decrypt(encoded)
        except (InvalidToken, UnicodeEncodeError, ValueError, binascii.Error) as exc:
            raise AuthenticationFailed(_IAM + "the token is invalid") from exc
        return TokenClaims.from_json(raw)


class Directory:
    """Read-only identity state of one store revision, with the per-request checks."""

    def __init__(self, snapshot: StoreSnapshot, sealer: Sealer, settings: Settings) -> None:
        self.revision = snapshot.revision
        self._settings = settings
        self.domains = {d.id: d for d in snapshot.domains}
        self.domains_by_name = {d.name: d for d in snapshot.domains}
        self.projects = {p.id: p for p in snapshot.projects}
        self.projects_by_name = {p.name: p for p in snapshot.projects}
        self.users = {u.id: u for u in snapshot.users}
        self.users_by_name = {(u.domain_id, u.name): u for u in snapshot.users}
        self._secrets: dict[str, tuple[AccessKey, bytes]] = {
            key.access: (key, sealer.open(key.secret_sealed, _sk_context(key.access)))
            for key in snapshot.access_keys
        }
        self._revoked = frozenset(r.audit_id for r in snapshot.revocations)
        self._user_revoked_before: dict[str, float] = {}
        for revocation in snapshot.revocations:
            if revocation.audit_id.startswith(_USER_REVOCATION):
                user_id, _, millis = revocation.audit_id[len(_USER_REVOCATION) :].partition("@")
                if millis.isdigit():
                    before = max(int(millis) / 1000, self._user_revoked_before.get(user_id, 0.0))
                    self._user_revoked_before[user_id] = before
        primary_first = sorted(snapshot.fernet_keys, key=lambda k: (not k.primary, -k.created_at.timestamp()))
        self._codec = _TokenCodec([sealer.open(k.key_sealed, _fernet_context(k.id)) for k in primary_first])
        self._principals: dict[str, Principal] = {}  # accepted tokens (see _verify_token)
        self._token_rejects: dict[str, str] = {}  # refused tokens, with the reason

    # -- authentication -----------------------------------------------------------------

    def authenticate(
        self,
        method: str,
        path: str,
        query_string: str,
        headers: Mapping[str, str],
        body: bytes,
        now: float,
    ) -> Principal:
        """Check the request's credentials. ``headers`` has lower-case names; path is decoded."""
        token = headers.get("x-auth-token")
        if token:
            return self.authenticate_token(token, now)
        authorization = headers.get("authorization")
        if authorization:
            return self._authenticate_signature(authorization, method, path, query_string, headers, body, now)
        raise AuthenticationFailed(_IAM + "the request carries neither X-Auth-Token nor an AK/SK signature")

    def parse_token(self, token: str) -> TokenClaims:
        """The claims of a token this service minted (signature checked), valid or not."""
        return self._codec.parse(token)

    def authenticate_token(self, token: str, now: float) -> Principal:
        principal = self._principals.get(token)
        if principal is None:
            principal = self._verify_token(token, now)
        assert principal.claims is not None
        if now >= principal.claims.expires_at:
            raise AuthenticationFailed(_IAM + "the token has expired")
        return principal

    def _verify_token(self, token: str, now: float) -> Principal:
        """Everything about a token that cannot change while this Directory lives.

        Its keys, revocations, users and domains are one store revision, so the verdict is
        computed once and remembered, refusals included (the 401 path must not be the slow
        path); only expiry depends on the clock and is checked on every request.
        """
        rejected = self._token_rejects.get(token)
        if rejected is not None:
            raise AuthenticationFailed(rejected)
        try:
            claims = self._codec.parse(token)
        except AuthenticationFailed as exc:
            self._remember_refusal(token, exc)
            raise
        if now >= claims.expires_at:  # time-bound, so not remembered
            raise AuthenticationFailed(_IAM + "the token has expired")
        try:
            principal = self._token_principal(claims)
        except AuthenticationFailed as exc:
            self._remember_refusal(token, exc)
            raise
        if len(self._principals) >= _TOKEN_CACHE_LIMIT:
            self._principals.clear()
        self._principals[token] = principal
        return principal

    def _remember_refusal(self, token: str, refusal: AuthenticationFailed) -> None:
        if len(token) <= _TOKEN_REJECT_MAX_LENGTH:  # bounded in entries and in size
            if len(self._token_rejects) >= _TOKEN_REJECT_LIMIT:
                self._token_rejects.clear()
            self._token_rejects[token] = str(refusal)

    def _token_principal(self, claims: TokenClaims) -> Principal:
        revoked_before = self._user_revoked_before.get(claims.user_id, 0.0)
        if claims.audit_id in self._revoked or claims.issued_at < revoked_before:
            raise AuthenticationFailed(_IAM + "the token has been revoked")
        user = self.users.get(claims.user_id)
        if user is None or not user.enabled or user.domain_id != claims.domain_id:
            raise AuthenticationFailed(_IAM + "the token's user is disabled or deleted")
        domain = self.domains[user.domain_id]
        if not domain.enabled:
            raise AuthenticationFailed(_IAM + "the token's domain is disabled")
        return Principal(user, domain, "token", claims.project_id, claims)

    def _authenticate_signature(
        self,
        authorization: str,
        method: str,
        path: str,
        query_string: str,
        headers: Mapping[str, str],
        body: bytes,
        now: float,
    ) -> Principal:
        try:
            parsed = signing.parse_authorization(authorization)
            sdk_date = headers.get("x-sdk-date")
            if not sdk_date:
                raise signing.SignatureFormatError("the X-Sdk-Date header is missing")
            signed_at = signing.parse_sdk_date(sdk_date).timestamp()
        except signing.SignatureFormatError as exc:
            raise AuthenticationFailed(_IAM + str(exc)) from exc
        if "x-sdk-date" not in parsed.signed_headers or "host" not in parsed.signed_headers:
            raise AuthenticationFailed(_IAM + "SignedHeaders must include host and x-sdk-date")
        skew = self._settings.sdk_date_skew_seconds
        if abs(now - signed_at) > skew:
            window = f"{skew // 60} minutes" if skew % 60 == 0 else f"{skew} seconds"
            raise AuthenticationFailed(
                _IAM + f"X-Sdk-Date {sdk_date} is more than {window} away from the server's time"
            )
        if headers.get("x-security-token"):
            raise AuthenticationFailed(
                _IAM + "temporary security credentials (X-Security-Token) are not supported by this service"
            )
        values: dict[str, str] = {}
        for name in parsed.signed_headers:
            value = headers.get(name)
            if value is None:
                raise AuthenticationFailed(_IAM + f"signed header {name!r} is not in the request")
            values[name] = value
        # The SDK signs X-Sdk-Content-Sha256 whenever it sets it; an unsigned one is ignored, and a
        # declared digest must be the body's (only UNSIGNED-PAYLOAD leaves the body unsigned).
        declared = values.get(signing.CONTENT_HASH_HEADER)
        if (
            body
            and declared is not None
            and declared != signing.UNSIGNED_PAYLOAD
            and declared != hashlib.sha256(body).hexdigest()
        ):
            raise AuthenticationFailed(_IAM + "X-Sdk-Content-Sha256 does not match the request body")
        entry = self._secrets.get(parsed.access)
        secret = entry[1] if entry is not None else _DUMMY_SECRET  # same work either way
        expected = signing.request_signature(
            secret,
            sdk_date,
            method,
            path,
            query_string,
            values,
            parsed.signed_headers,
            signing.payload_hash(body, declared),
            decoded_path=True,
        )
        matches = signing.signatures_equal(expected, parsed.signature)
        if entry is None or not matches or not entry[0].enabled:
            raise AuthenticationFailed(_BAD_SIGNATURE)
        user = self.users.get(entry[0].user_id)
        if user is None or not user.enabled:
            raise AuthenticationFailed(_BAD_SIGNATURE)
        domain = self.domains[user.domain_id]
        if not domain.enabled:
            raise AuthenticationFailed(_BAD_SIGNATURE)
        return Principal(user, domain, "aksk", None)

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

    # -- logins (Keystone password method) ----------------------------------------------

    def find_domain(self, domain_id: str | None, domain_name: str | None) -> Domain:
        by_id, by_name = self.domains, self.domains_by_name
        domain = by_id.get(domain_id) if domain_id else by_name.get(domain_name or "")
        if domain is None or not domain.enabled:
            raise AuthenticationFailed("The request you have made requires authentication.")
        return domain

    def password_login(
        self, user_id: str | None, user_name: str | None, domain: Domain | None, password: str
    ) -> User:
        """Verify a password. Slow on purpose (argon2): call it off the event loop."""
        user: User | None = None
        if user_id:
            user = self.users.get(user_id)
        elif user_name and domain is not None:
            user = self.users_by_name.get((domain.id, user_name))
        stored = user.password_hash if user is not None else None
        try:
            if stored is None:
                _password_hasher.verify(_DUMMY_HASH, password)  # same cost for unknown users
                raise VerifyMismatchError
            _password_hasher.verify(stored, password)
        except (VerificationError, InvalidHashError) as exc:
            raise AuthenticationFailed("The request you have made requires authentication.") from exc
        assert user is not None
        if not user.enabled or not self.domains[user.domain_id].enabled:
            raise AuthenticationFailed("The request you have made requires authentication.")
        return user

    def scope_project(self, user: User, project_id: str | None, project_name: str | None) -> Project:
        by_id, by_name = self.projects, self.projects_by_name
        project = by_id.get(project_id) if project_id else by_name.get(project_name or "")
        if project is None or project.id not in user.project_ids or not project.enabled:
            raise AccessDenied("the user has no access to the requested project")
        return project

    def mint_token(
        self,
        user: User,
        project: Project | None,
        methods: Iterable[str],
        now: float,
        *,
        expires_at: int | None = None,
    ) -> IssuedToken:
        """A new token; ``expires_at`` caps its life (a token got with a token lives no longer)."""
        issued = math.floor(now * 1000) / 1000
        expires = int(issued) + self._settings.token_ttl_seconds
        if expires_at is not None:
            expires = min(expires, expires_at)
        claims = TokenClaims(
            user_id=user.id,
            domain_id=user.domain_id,
            project_id=project.id if project is not None else None,
            methods=tuple(methods),
            audit_id=secrets.token_urlsafe(16),
            issued_at=issued,
            expires_at=expires,
        )
        return IssuedToken(self._codec.mint(claims), claims)

    def projects_of(self, user: User) -> list[Project]:
        return sorted(
            (self.projects[pid] for pid in user.project_ids if pid in self.projects), key=lambda p: p.name
        )


_DUMMY_HASH = _password_hasher.hash(secrets.token_urlsafe(16))


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
            self._sealer.open(keys[0].key_sealed, _fernet_context(keys[0].id))
        access_keys = self._store.access_keys()
        if access_keys:
            self._sealer.open(access_keys[0].secret_sealed, _sk_context(access_keys[0].access))

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

    def grant(self, user_ref: str, project_ref: str) -> None:
        self._store.grant(self.resolve_user(user_ref).id, self.resolve_project(project_ref).id)

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
        prefix = f"{_USER_REVOCATION}{user.id}@"
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
            access, user.id, self._sealer.seal(secret.encode(), _sk_context(access)), description
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
            self._sealer.seal(Fernet.generate_key(), _fernet_context(key_id)),
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
        claims = (directory or self.directory()).parse_token(token)
        self._store.add_revocation(
            claims.audit_id, dt.datetime.fromtimestamp(claims.expires_at, dt.UTC)
        )
        return claims


