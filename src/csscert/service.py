"""The composition root: settings + master key + store + authority + identity, and the read side.

Requests read through :attr:`Service.directory` (identity) and :attr:`Service.trust` (CA
bundles): bounded caches filled by point lookups, kept current by :attr:`Service.feed`, which
applies the store's change log (docs/architecture.md, "The read model"). Before a request is
answered, :meth:`Service.current` makes sure every change this worker heard of is applied; that
costs a memory read of the change signal when nothing changed.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import fcntl
import json
import logging
import os
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from csscert.ca import Authority
from csscert.ca.crls import CrlCache
from csscert.ca.trust import TrustCache
from csscert.custody.masterkey import open_sealer, settle, write_guard
from csscert.errors import ConfigurationError, ResourceNotFound
from csscert.feed import ChangeFeed
from csscert.files import write_replacing
from csscert.identity import Directory, Identity
from csscert.identity.roles import ROLES
from csscert.limits import Limits
from csscert.model import CertificateAuthority, Project
from csscert.sealing import MASTER_KEY_FILE, MasterKeyError, Sealer, load_master_key
from csscert.settings import Settings
from csscert.store import Conflict, SqlStore, exclusive, migrate, open_store

if TYPE_CHECKING:
    from csscert.acme.server import AcmeServer
    from csscert.store.console import ConsoleReads

__all__ = [
    "BOOTSTRAP_FILE",
    "FirstStart",
    "NotInitialized",
    "Service",
    "no_data_message",
    "prepare_data_dir",
]

log = logging.getLogger("csscert")

BOOTSTRAP_FILE = "bootstrap-credentials.json"
BOOTSTRAP_USER = "csscert-admin"


@dataclass(frozen=True)
class FirstStart:
    """What a newcomer needs after the very first start (printed by ``csscert serve``)."""

    region: str
    project: Project
    user_name: str
    domain_name: str
    access_key: str
    credentials_file: Path


class NotInitialized(ConfigurationError):
    """The data directory or database was never initialised (``csscert init`` or ``serve``)."""


def no_data_message(settings: Settings) -> str:
    where = settings.data_dir.resolve()
    if settings.uses_embedded_database:
        what = f"no csscert data in {where}"
    else:
        what = f"the database {_safe_url(settings.sqlalchemy_url)} holds no csscert data"
    return (
        f"{what}: run 'csscert init' (or 'csscert serve') to create it, "
        "or point at existing data with --data-dir or CSSCERT_DATA_DIR"
    )


def _safe_url(url: str) -> str:
    """A database URL without its password, for messages."""
    from sqlalchemy import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # an unparsable URL fails later with its own message
        return "(unparsable URL)"


def prepare_data_dir(settings: Settings, *, create: bool) -> None:
    """Check the data directory before anything touches it; only ``create`` may make it.

    Each failure is one :class:`ConfigurationError` that names the absolute path, the cause
    and the fix (never ``[Errno 17]`` or SQLite's "unable to open database file").
    """
    if not settings.uses_embedded_database:
        from sqlalchemy import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            make_url(settings.sqlalchemy_url)
        except ArgumentError as exc:
            raise ConfigurationError(
                f"database error: {exc}; CSSCERT_DATABASE_URL must be a SQLAlchemy URL such as "
                "postgresql+psycopg://user:password@host/db"
            ) from exc
    where = settings.data_dir.resolve()
    if where.exists() and not where.is_dir():
        raise ConfigurationError(
            f"the data directory {where} is a file, not a directory: move the file away, "
            "or point --data-dir or CSSCERT_DATA_DIR at a directory"
        )
    needed = settings.uses_embedded_database or settings.master_key is None
    if not where.exists():
        if not create:
            if needed:
                raise NotInitialized(no_data_message(settings))
            return
        try:
            where.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigurationError(
                f"cannot create the data directory {where}: {exc.strerror or exc}; create it yourself "
                "or point --data-dir or CSSCERT_DATA_DIR at a writable directory"
            ) from exc
    if create and not os.access(where, os.W_OK | os.X_OK):
        raise ConfigurationError(
            f"cannot write to the data directory {where} (permission denied): give the user running "
            "csscert write access to it, or point --data-dir or CSSCERT_DATA_DIR at another directory"
        )


@contextmanager
def _init_lock(settings: Settings, store: SqlStore) -> Iterator[None]:
    """One first start at a time: two ``init``s (or an ``init`` and a ``serve``) started together,
    on this host or on several hosts of one database, would otherwise both bootstrap a project,
    user and access key (the database lock; the data directory's own lock keeps local files
    such as the bootstrap credentials consistent)."""
    where = settings.data_dir
    with exclusive(store):
        if not where.is_dir():
            yield
            return
        with open(where / ".init.lock", "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


class Service:
    """Owns the long-lived parts; one per process."""

    def __init__(self, settings: Settings, *, create: bool = False) -> None:
        self.settings = settings
        master = settings.master_key.get_secret_value() if settings.master_key else None
        if master:
            load_master_key(master, settings.data_dir, create=False)  # a malformed key says so first
        prepare_data_dir(settings, create=create)
        self.sealer: Sealer = open_sealer(settings, create=create)
        if not create and settings.uses_embedded_database and not (settings.data_dir / "csscert.db").exists():
            raise NotInitialized(no_data_message(settings))  # SQLite would create an empty one
        self.store: SqlStore = open_store(settings, create=create)
        self.authority = Authority(self.store, self.sealer, settings)
        self.identity = Identity(self.store, self.sealer, settings)
        self.truststore_default_password = settings.truststore_default_password.get_secret_value()
        # Truststores built at once, off the event loop (api/download.py): a bound per worker.
        self.truststore_builders = asyncio.Semaphore(settings.truststore_builders)
        # Certificate requests signed at once over the API, off the event loop (api/issuance.py).
        self.signers = asyncio.Semaphore(settings.signing_workers)
        self.limits = Limits(
            enabled=settings.rate_limits == "on",
            credential=settings.rate_limit_credential,
            login_user=settings.rate_limit_login_user,
            login_address=settings.rate_limit_login_address,
            workers=settings.workers,
        )
        self.observer: Any = None  # the API app (its access log and metrics), when serving

    # -- start-up -----------------------------------------------------------------------

    def initialize(
        self, *, create: bool = True, bootstrap: bool = False, schema_only: bool = False
    ) -> FirstStart | None:
        """Migrate, then (with ``create``: ``serve``, ``init``) create whatever a working
        deployment needs and does not have yet: the domain, token keys, the first CA(s).

        With ``bootstrap``, data that was never served gets the region's project, a first user
        and access key; the answer says what was made. Without ``create``, a database nobody
        initialised is refused instead of silently set up (it would get a CA of its own), except
        with ``schema_only`` (``db upgrade``: an explicit request to build the schema there).
        """
        if not create and not schema_only and self.store.schema_revision() is None:
            raise NotInitialized(no_data_message(self.settings))
        migrate(self.store)
        settle(self.settings, self.store, self.sealer)  # an interrupted master-key rotation, first
        self.store.write_guard = write_guard(self.sealer)
        self._check_master_key()
        self._reconcile_settings()
        if not create:
            return None
        with _init_lock(self.settings, self.store):
            self.identity.default_domain()
            self.identity.ensure_token_keys()
            first: FirstStart | None = None
            if bootstrap and self.store.get_meta("bootstrapped") is None:
                first = self._bootstrap()
                self.store.set_meta("bootstrapped", dt.datetime.now(dt.UTC).isoformat())
            self.authority.ensure_all()
        return first

    def _check_master_key(self) -> None:
        """Refuse to work with a master key that does not open what the store already holds.

        Otherwise a process started with the wrong key would seal new secrets under it and
        leave a database the server cannot read (every request would then fail).
        """
        try:
            self.identity.open_one_secret()
        except MasterKeyError as exc:
            raise MasterKeyError(
                f"{exc}: the master key (CSSCERT_MASTER_KEY or {self.settings.data_dir / MASTER_KEY_FILE}) "
                "is not the one that sealed the secrets in this database"
            ) from exc

    def _reconcile_settings(self) -> None:
        """Region, domain and CA scope belong to the data, not to one process's flags.

        The first start records them; later processes adopt the recorded values unless told
        otherwise explicitly. The CA scope may change (each project then gets its own CA);
        the region and domain may not, since project names are built from them.
        """
        updates: dict[str, str] = {}
        for name in ("region", "domain_name", "ca_scope"):
            stored = self.store.get_meta(name)
            current = str(getattr(self.settings, name))
            if stored is None:
                self.store.set_meta(name, current)
            elif stored != current:
                if name not in self.settings.model_fields_set:
                    updates[name] = stored
                elif name == "ca_scope":
                    log.warning("CA scope changes from %s to %s", stored, current)
                    self.store.set_meta(name, current)
                else:
                    raise ConfigurationError(
                        f"this data belongs to {name} {stored!r}, not {current!r}; "
                        f"drop the setting or point --data-dir/CSSCERT_DATABASE_URL at other data"
                    )
        if updates:
            self.settings = self.settings.model_copy(update=updates)
            self.authority = Authority(self.store, self.sealer, self.settings)
            self.identity = Identity(self.store, self.sealer, self.settings)

    def _bootstrap(self) -> FirstStart:
        try:
            project = self.identity.resolve_project(self.settings.region)
        except ResourceNotFound:
            project = self.identity.create_project(self.settings.region)
        password = secrets.token_urlsafe(18)
        try:
            self.identity.create_user(BOOTSTRAP_USER, [project.id], password)
        except Conflict:  # an earlier first start stopped half-way: take the user over
            self.identity.set_password(BOOTSTRAP_USER, password)
        held = self.identity.resolve_user(BOOTSTRAP_USER).roles
        for role in ROLES:  # the bootstrap user may issue and administer
            if role not in held:
                self.identity.grant_role(BOOTSTRAP_USER, role)
        key, secret = self.identity.create_credential(BOOTSTRAP_USER, "bootstrap")
        path = self.settings.data_dir / BOOTSTRAP_FILE
        payload = {
            "region": self.settings.region,
            "domain_name": self.settings.domain_name,
            "project_id": project.id,
            "project_name": project.name,
            "user_name": BOOTSTRAP_USER,
            "password": password,
            "access_key": key.access,
            "secret_key": secret,
        }
        write_replacing(path, (json.dumps(payload, indent=2) + "\n").encode(), 0o600)
        self.authority.ensure_all()
        return FirstStart(
            self.settings.region, project, BOOTSTRAP_USER, self.settings.domain_name, key.access, path
        )

    def create_project(self, name: str) -> Project:
        """A project, and in ``project`` CA scope its own CA (re-done by any later start if we crash)."""
        project = self.identity.create_project(name)
        self.authority.ensure(self.authority.scope_for(project.id))
        return project

    # -- the read side ------------------------------------------------------------------
    #
    # Built on first use, after the schema exists (a CLI command that only writes never builds it).

    @cached_property
    def directory(self) -> Directory:
        return Directory(self.store, self.sealer, self.settings)

    @cached_property
    def trust(self) -> TrustCache:
        return TrustCache(self.store, self.settings)

    @cached_property
    def acme(self) -> AcmeServer:
        """The ACME server (built on the first ACME request; josepy is not imported before)."""
        from csscert.acme.server import AcmeServer

        return AcmeServer(self.store, self.authority, self.sealer, self.settings)

    @cached_property
    def console_reads(self) -> ConsoleReads:
        """The web console's paged queries (built on its first page, never by the download)."""
        from csscert.store.console import ConsoleReads

        return ConsoleReads(self.store)

    @cached_property
    def crls(self) -> CrlCache:
        return CrlCache(self.store, self.authority.crl_document)

    @cached_property
    def feed(self) -> ChangeFeed:
        feed = ChangeFeed(
            self.store,
            self.directory,
            self.trust,
            self.store.change_signal,
            self.settings.revision_poll_seconds,
            sealer=self.sealer,
        )
        feed.also.append(self.crls)
        return feed

    async def current(self) -> None:
        """Apply every change heard of before answering; a memory read when nothing changed.
        Raises ``StoreUnavailable`` (503) when the worker is behind and cannot catch up."""
        feed = self.feed
        if feed.behind():
            await feed.catch_up()

    def start_watching(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """Start the feed's background sources (revision poll; NOTIFY listener on PostgreSQL)."""
        self.feed.start(loop)

    def close(self) -> None:
        if "feed" in self.__dict__:
            self.feed.stop()
        self.store.close()

    # -- for operators (health, readiness, metrics) -------------------------------------

    def readiness(self) -> dict[str, bool]:
        """The store answers, a CA is present, and this worker's change feed is current (it has
        not heard of a change it could not apply). Blocking (database reads): call it off the
        event loop."""
        try:
            has_ca = self.store.has_trusted_ca()
        except Exception:
            log.exception("readiness: the store does not answer")
            return {"store": False, "ca": False, "changes": False}
        return {"store": True, "ca": has_ca, "changes": not self.feed.stale}

    def trusted_authorities(self, limit: int = 1000) -> list[CertificateAuthority]:
        """The CAs in some trust bundle, soonest to expire first, at most ``limit`` (a database
        read: off the event loop)."""
        return self.store.trusted_authorities(limit)

    def cache_sizes(self) -> dict[str, int]:
        """Entries of the process's caches (for metrics); plain reads, no lookups."""
        sizes = dict(self.limits.sizes())
        if "directory" in self.__dict__:
            for cache in self.directory.caches():
                sizes[cache.name] = len(cache)
        if "trust" in self.__dict__:
            sizes["bundles"] = len(self.trust.bundles)
            sizes["representations"] = self.trust.representations()
        if "crls" in self.__dict__:
            sizes["crls"] = len(self.crls.documents)
        return sizes

    def feed_state(self) -> dict[str, int] | None:
        """The change feed's applied revision and listener state (for metrics), or None before
        the feed exists; plain reads."""
        if "feed" not in self.__dict__:
            return None
        connected = self.feed.listener_connected
        listener = -1 if connected is None else int(connected)
        return {"applied": self.feed.applied, "listener": listener}

    def now(self) -> float:
        return time.time()  # what datetime.now(UTC).timestamp() gives, without building a datetime
