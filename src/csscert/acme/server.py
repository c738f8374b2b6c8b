"""The ACME v2 protocol (RFC 8555) for one csscert process: accounts, orders, authorizations,
challenges, finalization, certificates, revocation and key changes.

Every POST is authenticated the same way (:meth:`AcmeServer.authenticate`): a flattened JWS whose
``url`` is the request's, whose nonce is spent in the store (``badNonce`` otherwise, and the
answer carries a fresh one), signed by the account key named by ``kid`` (or by its own ``jwk``
for newAccount and revokeCert). Accounts exist only through External Account Binding: the EAB
key's user must be enabled and granted the project. Names are checked by :func:`check_identifiers`
at newOrder and again by the authority when it signs. Certificates are signed by
``Authority.sign_request(..., profile="node", origin="acme")``, so they are recorded and listed
like any other. All state is in the store (store/acme.py); this object holds only settings.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import json
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from josepy.b64 import b64decode, b64encode

from csscert.acme import jws as acme_jws
from csscert.acme.problems import PREFIX, AcmeProblem
from csscert.acme.validation import Failure, Target, networks, validate
from csscert.audit import AuditEntry
from csscert.ca import Authority
from csscert.ca.authority import PUBLIC_BASE_URL_META
from csscert.ca.names import AuthorityError, is_ip_address, validate_dns_name, validate_ip
from csscert.errors import Conflict, CsscertError, InvalidRequest, PolicyViolation, ResourceNotFound
from csscert.identity.roles import CERTIFICATE_ISSUER
from csscert.model import Project, User, new_id
from csscert.sealing import Sealer
from csscert.settings import Settings
from csscert.store import SqlStore
from csscert.store.acme import (
    AcmeAccount,
    AcmeAuthorization,
    AcmeChallenge,
    AcmeOrder,
    AcmeStore,
    EabKey,
    eab_context,
    new_token,
)

__all__ = ["AcmeResponse", "AcmeServer", "Context", "check_identifiers"]

MAX_IDENTIFIERS = 100
CHALLENGE_TYPES = ("http-01", "tls-alpn-01")
_ID = re.compile(r"[0-9a-f]{32}\Z")


def check_identifiers(authority: Authority, project_id: str, identifiers: Sequence[tuple[str, str]]) -> None:
    """Refuse identifiers the project may not have certified (``rejectedIdentifier``).

    The one place newOrder asks whether names are allowed: the names rules of ``cert issue``
    (ca/names.py; no wildcards, since neither challenge can prove one), then the project's issuance
    policy (``Authority.check_policy``, which ``sign_request`` enforces again at finalize).
    """
    for kind, value in identifiers:
        try:
            if kind == "dns":
                if is_ip_address(value):
                    raise AuthorityError(
                        f"{value!r} is an IP address: send it as an identifier of type ip (RFC 8738)"
                    )
                if value.startswith("*."):
                    raise AuthorityError(
                        f"{value!r} is a wildcard; http-01 and tls-alpn-01 cannot validate one"
                    )
                if validate_dns_name(value) != value:
                    raise AuthorityError(f"{value!r} must be written in lower case without a trailing dot")
            else:
                if str(validate_ip(value)) != value:
                    raise AuthorityError(f"{value!r} must be written in its canonical form")
        except AuthorityError as exc:
            raise AcmeProblem("rejectedIdentifier", str(exc)) from None
    dns = [value for kind, value in identifiers if kind == "dns"]
    ips = [value for kind, value in identifiers if kind == "ip"]
    try:
        authority.check_policy(project_id, dns, ips)
    except PolicyViolation as exc:
        raise AcmeProblem("rejectedIdentifier", str(exc)) from None


@dataclass
class AcmeResponse:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: list[tuple[str, str]] = field(default_factory=list)


def _json(status: int, payload: object, headers: Sequence[tuple[str, str]] = ()) -> AcmeResponse:
    return AcmeResponse(status, json.dumps(payload, separators=(",", ":")).encode(), headers=list(headers))


def _iso(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _problem_json(failure: Failure) -> str:
    return json.dumps({"type": PREFIX + failure.kind, "detail": failure.detail, "status": 400})


def _cert_name(identifiers: Sequence[tuple[str, str]]) -> str:
    """The certificate's name in ``cert list``: its first identifier, made a valid name."""
    name = re.sub(r"[^A-Za-z0-9._-]", "-", identifiers[0][1])[:64].strip("-.") or "acme"
    return name if name[0].isalnum() else f"n{name}"[:64]


class Context:
    """One authenticated request: its JWS, the account (None for jwk-signed ones) and URLs."""

    def __init__(self, jws: acme_jws.Jws, account: AcmeAccount | None, base: str) -> None:
        self.jws = jws
        self.account = account
        self.base = base


class AcmeServer:
    def __init__(self, store: SqlStore, authority: Authority, sealer: Sealer, settings: Settings) -> None:
        self._sql = store
        self.store = AcmeStore(store)
        self._authority = authority
        self._sealer = sealer
        self._settings = settings
        self._target = Target(
            settings.acme_http_port,
            settings.acme_tls_port,
            networks(settings.acme_validation_networks),
            settings.acme_validation_timeout_seconds,
        )
        self._validations = asyncio.Semaphore(8)  # per worker: each holds a thread for seconds

    @staticmethod
    def now() -> dt.datetime:
        return dt.datetime.now(dt.UTC)

    async def _run(self, fn: Any, *args: Any) -> Any:
        """A store call off the event loop, bounded by the store's deadline."""
        return await self._sql.read(fn, *args, deadline=max(self._sql.read_deadline, 5.0))

    # -- nonces and the directory ----------------------------------------------------------

    async def new_nonce(self) -> str:
        expires = self.now() + dt.timedelta(seconds=self._settings.acme_nonce_lifetime_seconds)
        nonce: str = await self._run(self.store.new_nonce, expires)
        return nonce

    async def project_exists(self, project_id: str) -> bool:
        if not _ID.match(project_id):
            return False
        return await self._run(self._sql.project, project_id) is not None

    def directory(self, base: str) -> dict[str, Any]:
        return {
            "newNonce": f"{base}/new-nonce",
            "newAccount": f"{base}/new-account",
            "newOrder": f"{base}/new-order",
            "revokeCert": f"{base}/revoke-cert",
            "keyChange": f"{base}/key-change",
            "meta": {"externalAccountRequired": True},
        }

    # -- External Account Binding keys (the CLI's) --------------------------------------------

    def create_eab(self, user: User, project: Project) -> tuple[EabKey, str]:
        """A new EAB key for ``user`` in ``project``: the record and the HMAC key (base64url), which
        is shown once and stored only sealed under the master key (context ``eab:{kid}``)."""
        if not user.enabled or project.id not in user.project_ids:
            raise InvalidRequest(
                f"user {user.name} is disabled or not granted project {project.name}; "
                f"run 'csscert user grant {user.name} --project {project.name}' first"
            )
        if CERTIFICATE_ISSUER not in user.roles:
            raise InvalidRequest(
                f"user {user.name} does not hold the {CERTIFICATE_ISSUER} role; run 'csscert user grant "
                f"{user.name} --role {CERTIFICATE_ISSUER}' first"
            )
        kid = f"eab-{secrets.token_hex(12)}"
        secret = secrets.token_bytes(32)
        key = EabKey(
            kid, project.id, user.id, self._sealer.seal(secret, eab_context(kid)), self.now(), None, None
        )
        audit = AuditEntry("acme.eab.create", f"eab {kid} project {project.id}", f"user {user.name}")
        self.store.create_eab(key, audit=audit)
        return key, b64encode(secret).decode()

    def directory_url(self, project_id: str) -> str:
        """The directory clients are given: ``public_url``, else the address ``serve`` recorded (a
        CLI process does not know the server's), else this process's own."""
        base = self._settings.public_url or self._sql.get_meta(PUBLIC_BASE_URL_META)
        base = base or self._settings.public_base_url()
        return f"{base.rstrip('/')}/acme/{project_id}/directory"

    def revoke_eab(self, kid: str) -> None:
        """Revoke an EAB key; the account it bound (if any) is deactivated with it."""
        audit = AuditEntry("acme.eab.revoke", f"eab {kid}", "the account it bound is deactivated")
        if not self.store.revoke_eab(kid, self.now(), audit=audit):
            raise ResourceNotFound(f"no active EAB key {kid!r}; see 'csscert acme eab list'")

    # -- authentication ---------------------------------------------------------------------

    async def authenticate(self, body: bytes, url: str, base: str, *, jwk_allowed: bool) -> Context:
        jws = acme_jws.parse(body)
        if jws.url != url:
            raise AcmeProblem("unauthorized", "the JWS url is not the URL of this request", 401)
        if not await self._run(self.store.take_nonce, jws.nonce, self.now()):
            raise AcmeProblem("badNonce", "the nonce is unknown, expired or used; retry with the fresh one")
        if jws.kid is None:
            if not jwk_allowed:
                raise AcmeProblem("malformed", "this request must name its account with kid, not jwk")
            key = acme_jws.load_jwk(jws.protected.get("jwk"))
            acme_jws.verify_with(jws, key)
            return Context(jws, None, base)
        prefix = f"{base}/acct/"
        account_id = jws.kid[len(prefix) :] if jws.kid.startswith(prefix) else ""
        account = await self._run(self.store.account, account_id) if _ID.match(account_id) else None
        if account is None or account.project_id != base.rsplit("/", 1)[1]:
            raise AcmeProblem("accountDoesNotExist", "no account with that kid in this project", 400)
        if account.status != "valid":
            raise AcmeProblem("unauthorized", f"the account is {account.status}", 403)
        acme_jws.verify_with(jws, acme_jws.load_jwk(json.loads(account.jwk)))
        return Context(jws, account, base)

    # -- accounts ---------------------------------------------------------------------------

    def _account_json(self, account: AcmeAccount, base: str) -> dict[str, Any]:
        return {
            "status": account.status,
            "contact": list(account.contact),
            "orders": f"{base}/acct/{account.id}/orders",
            "createdAt": _iso(account.created_at),
        }

    async def new_account(self, ctx: Context, project_id: str) -> AcmeResponse:
        payload = ctx.jws.payload_json()
        key = acme_jws.load_jwk(ctx.jws.protected.get("jwk"))
        thumb = acme_jws.thumbprint(key)
        existing: AcmeAccount | None = await self._run(self.store.account_by_thumbprint, thumb)
        if existing is not None:
            if existing.project_id != project_id:
                raise AcmeProblem("unauthorized", "this key has an account in another project", 403)
            location = f"{ctx.base}/acct/{existing.id}"
            return _json(200, self._account_json(existing, ctx.base), [("location", location)])
        if payload.get("onlyReturnExisting"):
            raise AcmeProblem("accountDoesNotExist", "no account has this key")
        contact = _contact(payload.get("contact", []))
        binding = payload.get("externalAccountBinding")
        if binding is None:
            raise AcmeProblem(
                "externalAccountRequired",
                "this server requires External Account Binding: get a key with 'csscert acme eab create'",
            )
        kid, protected, inner = acme_jws.eab_kid(binding)
        eab = await self._run(self.store.eab, kid)
        if eab is None or eab.project_id != project_id or eab.revoked_at is not None:
            raise AcmeProblem("unauthorized", "the EAB kid is unknown, revoked or of another project", 403)
        if eab.account_id is not None:
            raise AcmeProblem("unauthorized", "the EAB key has been used by another account already", 403)
        hmac_key = self._sealer.open(eab.hmac_sealed, eab_context(kid))
        acme_jws.verify_eab(protected, inner, hmac_key, ctx.jws.url, key)
        await self._check_user(eab.user_id, project_id)
        account = AcmeAccount(
            new_id(),
            project_id,
            thumb,
            json.dumps(acme_jws.canonical(key)),
            "valid",
            contact,
            kid,
            self.now(),
        )
        audit = AuditEntry("acme.account.create", f"account {account.id} project {project_id}", f"EAB {kid}")
        if not await self._run(lambda: self.store.create_account(account, audit=audit)):
            raise AcmeProblem("unauthorized", "the EAB key was revoked or used meanwhile", 403)
        location = f"{ctx.base}/acct/{account.id}"
        return _json(201, self._account_json(account, ctx.base), [("location", location)])

    async def _check_user(self, who: AcmeAccount | str, project_id: str) -> None:
        """The EAB key's user (of ``who``, an account or a user id) must still be enabled, granted
        the project and hold the ``certificate-issuer`` role; its EAB key must not be revoked."""
        if isinstance(who, AcmeAccount):
            eab = await self._run(self.store.eab, who.eab_kid)
            if eab is None or eab.revoked_at is not None:
                raise AcmeProblem("unauthorized", "the account's EAB key was revoked", 403)
            user_id = eab.user_id
        else:
            user_id = who
        user = await self._run(self._sql.user, user_id)
        if user is None or not user.enabled or project_id not in user.project_ids:
            raise AcmeProblem(
                "unauthorized", "the EAB key's user is disabled or no longer granted this project", 403
            )
        if CERTIFICATE_ISSUER not in user.roles:
            raise AcmeProblem(
                "unauthorized", f"the EAB key's user does not hold the {CERTIFICATE_ISSUER} role", 403
            )

    async def account_update(self, ctx: Context, account_id: str) -> AcmeResponse:
        account = self._own_account(ctx, account_id)
        payload = ctx.jws.payload_json() if ctx.jws.payload else {}
        contact = _contact(payload["contact"]) if "contact" in payload else None
        status = payload.get("status")
        if status not in (None, "deactivated"):
            raise AcmeProblem("malformed", "an account may only be set to status deactivated")
        await self._run(lambda: self.store.update_account(account.id, contact=contact, status=status))
        updated = await self._run(self.store.account, account.id)
        return _json(
            200, self._account_json(updated, ctx.base), [("location", f"{ctx.base}/acct/{account.id}")]
        )

    async def account_orders(self, ctx: Context, account_id: str) -> AcmeResponse:
        account = self._own_account(ctx, account_id)
        ids = await self._run(self.store.orders_of, account.id, self.now())
        return _json(200, {"orders": [f"{ctx.base}/order/{i}" for i in ids]})

    @staticmethod
    def _own_account(ctx: Context, account_id: str) -> AcmeAccount:
        if ctx.account is None or ctx.account.id != account_id:
            raise AcmeProblem("unauthorized", "an account may only act on itself", 403)
        return ctx.account

    async def key_change(self, ctx: Context) -> AcmeResponse:
        account = ctx.account
        assert account is not None
        inner = acme_jws.parse_inner(ctx.jws.payload_json())
        if inner.url != ctx.jws.url:
            raise AcmeProblem("malformed", "the inner JWS url differs from the outer one")
        new_key = acme_jws.load_jwk(inner.protected.get("jwk"))
        acme_jws.verify_with(inner, new_key)
        body = inner.payload_json()
        old = acme_jws.load_jwk(body.get("oldKey"))
        if (
            body.get("account") != f"{ctx.base}/acct/{account.id}"
            or acme_jws.thumbprint(old) != account.thumbprint
        ):
            raise AcmeProblem("unauthorized", "the inner JWS names another account or old key", 403)
        thumb = acme_jws.thumbprint(new_key)
        other = await self._run(self.store.account_by_thumbprint, thumb)
        if other is not None:
            raise AcmeProblem(
                "malformed", "another account holds the new key", 409, location=f"{ctx.base}/acct/{other.id}"
            )
        audit = AuditEntry("acme.account.key-change", f"account {account.id}", f"thumbprint {thumb[:16]}")
        changed = await self._run(
            lambda: self.store.change_key(
                account.id, account.thumbprint, json.dumps(acme_jws.canonical(new_key)), thumb, audit=audit
            )
        )
        if not changed:
            raise AcmeProblem("unauthorized", "the account key changed meanwhile", 403)
        updated = await self._run(self.store.account, account.id)
        return _json(
            200, self._account_json(updated, ctx.base), [("location", f"{ctx.base}/acct/{account.id}")]
        )

    # -- orders -----------------------------------------------------------------------------

    async def new_order(self, ctx: Context, project_id: str) -> AcmeResponse:
        account = ctx.account
        assert account is not None
        payload = ctx.jws.payload_json()
        if "notBefore" in payload or "notAfter" in payload:
            raise AcmeProblem(
                "malformed", "notBefore and notAfter are not supported; the profile sets validity"
            )
        identifiers = _identifiers(payload.get("identifiers"))
        await self._check_user(account, project_id)
        await self._run(check_identifiers, self._authority, project_id, identifiers)
        now = self.now()
        expires = now + dt.timedelta(seconds=self._settings.acme_order_lifetime_seconds)
        order = AcmeOrder(
            new_id(), account.id, project_id, "pending", identifiers, expires, None, None, None, now
        )
        authorizations = []
        for kind, value in identifiers:
            authz_id = new_id()
            challenges = tuple(
                AcmeChallenge(new_id(), authz_id, c, new_token(), "pending", None, None)
                for c in CHALLENGE_TYPES
            )
            authorizations.append(
                AcmeAuthorization(authz_id, order.id, kind, value, "pending", expires, challenges)
            )
        await self._run(self.store.create_order, order, authorizations, now)
        stored = await self._run(self.store.order, order.id)
        return _json(201, self._order_json(stored, ctx.base), [("location", f"{ctx.base}/order/{order.id}")])

    def _order_json(self, order: AcmeOrder, base: str) -> dict[str, Any]:
        body: dict[str, Any] = {
            "status": order.status,
            "expires": _iso(order.expires),
            "identifiers": [{"type": k, "value": v} for k, v in order.identifiers],
            "authorizations": [f"{base}/authz/{a}" for a in order.authz_ids],
            "finalize": f"{base}/order/{order.id}/finalize",
        }
        if order.status == "valid":
            body["certificate"] = f"{base}/cert/{order.id}"
        if order.error:
            body["error"] = json.loads(order.error)
        return body

    async def _own_order(self, ctx: Context, order_id: str) -> AcmeOrder:
        order = await self._run(self.store.order, order_id) if _ID.match(order_id) else None
        if order is None or ctx.account is None or order.account_id != ctx.account.id:
            raise AcmeProblem("malformed", "no such order for this account", 404)
        if order.status in ("pending", "ready") and order.expires <= self.now():
            await self._run(self.store.expire, order.id, self.now())
            order = await self._run(self.store.order, order_id)
        assert isinstance(order, AcmeOrder)
        return order

    async def order(self, ctx: Context, order_id: str) -> AcmeResponse:
        order = await self._own_order(ctx, order_id)
        headers = [("retry-after", "1")] if order.status in ("pending", "processing") else []
        return _json(200, self._order_json(order, ctx.base), headers)

    async def finalize(self, ctx: Context, order_id: str) -> AcmeResponse:
        order = await self._own_order(ctx, order_id)
        if order.status != "ready":
            raise AcmeProblem("orderNotReady", f"the order is {order.status}, not ready", 403)
        csr_der = _csr_der(ctx.jws.payload_json().get("csr"))
        _check_csr_names(csr_der, order.identifiers)
        if not await self._run(self.store.start_finalize, order.id):
            raise AcmeProblem("orderNotReady", "the order is being finalized already", 403)
        try:
            node = await asyncio.to_thread(
                self._authority.sign_request,
                order.project_id,
                csr_der,
                profile="node",
                origin="acme",
                name=_cert_name(order.identifiers),
                empty_subject=x509.Name(
                    [x509.NameAttribute(x509.NameOID.COMMON_NAME, order.identifiers[0][1])]
                ),
            )
        except CsscertError as exc:
            message = str(exc)
            await self._run(
                lambda: self.store.finish_finalize(
                    order.id, serial=None, cert_pem=None, expires=None, error=message
                )
            )
            if isinstance(exc, AuthorityError | PolicyViolation):
                raise AcmeProblem("badCSR", str(exc)) from None
            raise
        except BaseException:
            await self._run(
                lambda: self.store.finish_finalize(
                    order.id, serial=None, cert_pem=None, expires=None, error="failed"
                )
            )
            raise
        record = node.record
        await self._run(
            lambda: self.store.finish_finalize(
                order.id,
                serial=record.serial,
                cert_pem=node.chain_pem.decode(),
                expires=record.not_after,
                error=None,
            )
        )
        done = await self._run(self.store.order, order.id)
        return _json(200, self._order_json(done, ctx.base), [("location", f"{ctx.base}/order/{order.id}")])

    async def certificate(self, ctx: Context, order_id: str) -> AcmeResponse:
        order = await self._own_order(ctx, order_id)
        if order.status != "valid" or not order.cert_pem:
            raise AcmeProblem("malformed", "the order has no certificate (yet)", 404)
        return AcmeResponse(200, order.cert_pem.encode(), "application/pem-certificate-chain")

    # -- authorizations and challenges -------------------------------------------------------

    async def _own_authz(self, ctx: Context, authz_id: str) -> AcmeAuthorization:
        found = await self._run(self.store.authorization, authz_id) if _ID.match(authz_id) else None
        if found is None or ctx.account is None or found[1].account_id != ctx.account.id:
            raise AcmeProblem("malformed", "no such authorization for this account", 404)
        authz, order = found
        if authz.status == "pending" and authz.expires <= self.now():
            await self._run(self.store.expire, order.id, self.now())
            authz = (await self._run(self.store.authorization, authz_id))[0]
        return authz  # type: ignore[no-any-return]

    def _challenge_json(self, ch: AcmeChallenge, base: str) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": ch.kind,
            "url": f"{base}/chall/{ch.id}",
            "token": ch.token,
            "status": ch.status,
        }
        if ch.validated is not None:
            body["validated"] = _iso(ch.validated)
        if ch.error:
            body["error"] = json.loads(ch.error)
        return body

    async def authorization(self, ctx: Context, authz_id: str) -> AcmeResponse:
        authz = await self._own_authz(ctx, authz_id)
        payload = ctx.jws.payload_json() if ctx.jws.payload else {}
        if payload.get("status") == "deactivated":
            raise AcmeProblem(
                "malformed", "deactivating authorizations is not supported; let the order expire"
            )
        body = {
            "identifier": {"type": authz.kind, "value": authz.value},
            "status": authz.status,
            "expires": _iso(authz.expires),
            "challenges": [self._challenge_json(c, ctx.base) for c in authz.challenges],
        }
        headers = [("retry-after", "1")] if authz.status == "pending" else []
        return _json(200, body, headers)

    async def challenge(self, ctx: Context, challenge_id: str) -> AcmeResponse:
        ch = await self._run(self.store.challenge, challenge_id) if _ID.match(challenge_id) else None
        if ch is None:
            raise AcmeProblem("malformed", "no such challenge", 404)
        authz = await self._own_authz(ctx, ch.authz_id)
        link = [("link", f'<{ctx.base}/authz/{authz.id}>;rel="up"')]
        if ctx.jws.payload and ch.status == "pending" and authz.status == "pending":
            ctx.jws.payload_json()  # "{}": respond to the challenge
            if await self._run(self.store.start_challenge, ch):
                assert ctx.account is not None
                expected = f"{ch.token}.{ctx.account.thumbprint}"
                async with self._validations:
                    failure = await validate(
                        ch.kind, authz.kind, authz.value, ch.token, expected, self._target
                    )
                error = None if failure is None else _problem_json(failure)
                await self._run(self.store.finish_challenge, ch, error, self.now())
            ch = await self._run(self.store.challenge, challenge_id)
        return _json(200, self._challenge_json(ch, ctx.base), link)

    # -- revocation --------------------------------------------------------------------------

    async def revoke(self, ctx: Context, project_id: str) -> AcmeResponse:
        """revokeCert (§7.6): signed by the account that ordered the certificate, or by the
        certificate's own key; the certificate must be the very one on record (its fingerprint),
        of this project. Revocation itself is ``Authority.revoke`` (status, audit, CRL)."""
        payload = ctx.jws.payload_json()
        der = _b64(payload.get("certificate"), "certificate")
        try:
            cert = x509.load_der_x509_certificate(der)
        except ValueError:
            raise AcmeProblem("malformed", "the certificate is not DER") from None
        reason = payload.get("reason", 0)
        if not isinstance(reason, int) or isinstance(reason, bool) or reason not in _REASONS:
            raise AcmeProblem("badRevocationReason", "reason must be one of 0-6, 9 or 10 (RFC 5280)")
        serial = format(cert.serial_number, "x")
        record = await self._run(self._authority.certificate_or_none, serial)
        fingerprint = cert.fingerprint(hashes.SHA256()).hex()
        if record is None or record.project_id != project_id or record.fingerprint_sha256 != fingerprint:
            raise AcmeProblem("unauthorized", "this project's CA did not issue that certificate", 403)
        if ctx.account is not None:
            order = await self._run(self.store.order_by_serial, serial)
            if order is None or ctx.account.id != order.account_id:
                raise AcmeProblem("unauthorized", "only the account that ordered it may revoke it", 403)
        elif _spki(acme_jws.load_jwk(ctx.jws.protected.get("jwk")).key) != _spki(cert.public_key()):
            raise AcmeProblem(
                "unauthorized", "sign with the account that ordered it or with the certificate's key", 403
            )
        try:
            await asyncio.to_thread(self._authority.revoke, serial, _REASONS[reason], project_id=project_id)
        except Conflict as exc:
            raise AcmeProblem("alreadyRevoked", str(exc)) from None
        except AuthorityError as exc:
            raise AcmeProblem("badRevocationReason", str(exc)) from None
        return AcmeResponse(200, b"")


def _spki(key: Any) -> bytes:
    public = key.public_key() if hasattr(key, "public_key") else key
    return bytes(
        public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )


_REASONS: dict[int, x509.ReasonFlags] = {
    0: x509.ReasonFlags.unspecified,
    1: x509.ReasonFlags.key_compromise,
    2: x509.ReasonFlags.ca_compromise,
    3: x509.ReasonFlags.affiliation_changed,
    4: x509.ReasonFlags.superseded,
    5: x509.ReasonFlags.cessation_of_operation,
    6: x509.ReasonFlags.certificate_hold,
    9: x509.ReasonFlags.privilege_withdrawn,
    10: x509.ReasonFlags.aa_compromise,
}


def _contact(value: object) -> tuple[str, ...]:
    if not isinstance(value, list) or len(value) > 10:
        raise AcmeProblem("invalidContact", "contact must be a list of at most 10 mailto: URLs")
    for item in value:
        if not isinstance(item, str) or not item.startswith("mailto:") or len(item) > 255 or "," in item:
            raise AcmeProblem("unsupportedContact", "contact entries must be single mailto: URLs")
    return tuple(value)


def _identifiers(value: object) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, list) or not value:
        raise AcmeProblem("malformed", "identifiers must be a non-empty list")
    if len(value) > MAX_IDENTIFIERS:
        raise AcmeProblem("rejectedIdentifier", f"at most {MAX_IDENTIFIERS} identifiers per order")
    out: list[tuple[str, str]] = []
    for item in value:
        if not isinstance(item, dict) or not isinstance(item.get("value"), str) or len(item["value"]) > 255:
            raise AcmeProblem("malformed", "each identifier needs a type and a value")
        kind = item.get("type")
        if kind not in ("dns", "ip"):
            raise AcmeProblem("unsupportedIdentifier", f"identifier type {str(kind)[:16]!r}; use dns or ip")
        out.append((kind, item["value"]))
    return tuple(dict.fromkeys(out))


def _b64(value: object, what: str) -> bytes:
    if not isinstance(value, str) or len(value) > 16384:
        raise AcmeProblem("malformed", f"{what} must be a base64url string")
    try:
        return b64decode(value)
    except ValueError:
        raise AcmeProblem("malformed", f"{what} is not base64url") from None


def _csr_der(value: object) -> bytes:
    return _b64(value, "csr")


def _check_csr_names(csr_der: bytes, identifiers: Sequence[tuple[str, str]]) -> None:
    """The CSR must ask for exactly the order's identifiers (a CN, if any, among them)."""
    try:
        csr = x509.load_der_x509_csr(csr_der)
    except ValueError:
        raise AcmeProblem("badCSR", "the CSR is not DER PKCS#10") from None
    try:
        sans = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        sans = x509.SubjectAlternativeName([])
    asked = {("dns", str(n).lower()) for n in sans.get_values_for_type(x509.DNSName)}
    asked |= {("ip", str(ip)) for ip in sans.get_values_for_type(x509.IPAddress)}
    for attribute in csr.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME):
        cn = str(attribute.value).lower()
        try:
            asked.add(("ip", str(ipaddress.ip_address(cn))))
        except ValueError:
            asked.add(("dns", cn))
    if asked != set(identifiers):
        raise AcmeProblem("badCSR", "the CSR's names differ from the order's identifiers")
