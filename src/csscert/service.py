"""The composition root: settings + master key + store + authority + identity, and the hot-path view.

:meth:`Service.view` is what every request calls. It costs one read of the store's change
signal (a memory-mapped word, no system call); only when another process (or this one)
changed something is a new :class:`View` read from the database, once, and then shared by
every request until the next change. A background poll of the database revision backs the
signal up (for example when the database is shared between hosts that do not share the data
directory).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from csscert.ca import Authority, TrustBundle, group_by_scope, has_trusted, scope_of
from csscert.caches import BoundedCache
from csscert.errors import ConfigurationError, ResourceNotFound
from csscert.files import private_directory, write_replacing
from csscert.identity import Directory, Identity
from csscert.limits import Limits
from csscert.model import CAState, CertificateAuthority, Project
from csscert.sealing import MASTER_KEY_FILE, MasterKeyError, Sealer, load_master_key
from csscert.settings import Settings
from csscert.store import Conflict, SqlStore, StoreSnapshot, migrate, open_store

__all__ = ["BOOTSTRAP_FILE", "FirstStart", "Service", "View"]

log = logging.getLogger("csscert")

BOOTSTRAP_FILE = "bootstrap-credentials.json"
BOOTSTRAP_USER = "csscert-admin"
_REPRESENTATIONS_KEPT = 4096  # per view
_REPRESENTATION_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class FirstStart:
    """What a newcomer needs after the very first start (printed by ``csscert serve``)."""

    region: str
    project: Project
    user_name: str
    domain_name: str
    access_key: str
    credentials_file: Path


class View:
    """Identity and trust bundles of one store revision; read-only, shared by all requests.

    Everything derived from store data hangs on the View it was derived from, and dies with it
    (docs/architecture.md, "Cache lifetimes"): the directory's token verdicts, the trust bundles
    and the API's representations of them (``representations``, filled by ``api/download.py``).
    """

    def __init__(self, snapshot: StoreSnapshot, sealer: Sealer, settings: Settings) -> None:
        self.revision = snapshot.revision
        self.directory = Directory(snapshot, sealer, settings)
        self.truststore_default_password = settings.truststore_default_password.get_secret_value()
        # Filled by api/download.py: (scope, format, password hash) -> its representation.
        self.representations: BoundedCache[tuple[str, str, bytes], object] = BoundedCache(
            "representations", _REPRESENTATIONS_KEPT, _REPRESENTATION_BYTES
        )
        self._ca_scope = settings.ca_scope
        self._warning_days = settings.ca_expiry_warning_days
        self._by_scope: dict[str, list[CertificateAuthority]] = group_by_scope(snapshot.authorities)
        self._bundles: dict[str, TrustBundle] = {}

    def bundle(self, project_id: str) -> TrustBundle | None:
        scope = scope_of(self._ca_scope, project_id)
        bundle = self._bundles.get(scope)
        if bundle is None:
            authorities = self._by_scope.get(scope)
            if not authorities or not has_trusted(authorities):
                return None
            bundle = self._bundles[scope] = TrustBundle(scope, authorities, self._warning_days)
        return bundle


class Service:
    """Owns the long-lived parts; one per process."""

    def __init__(self, settings: Settings, *, create: bool = False) -> None:
        self.settings = settings
        if create:
            private_directory(settings.data_dir)
        master = settings.master_key.get_secret_value() if settings.master_key else None
        self.sealer = Sealer(load_master_key(master, settings.data_dir, create=create))
        self.store: SqlStore = open_store(settings)
        self._signal = self.store.change_signal
        self.authority = Authority(self.store, self.sealer, settings)
        self.identity = Identity(self.store, self.sealer, settings)
        self.limits = Limits(
            enabled=settings.rate_limits == "on",
            credential=settings.rate_limit_credential,
            login_user=settings.rate_limit_login_user,
            login_address=settings.rate_limit_login_address,
            workers=settings.workers,
        )
        self.observer: Any = None  # the API app (its access log and metrics), when serving
        self._view: View | None = None
        self._hint: bytes | None = None
        self._db_revision_seen = -1
        self._stale = True
        self._lock = threading.Lock()
        self._watcher: threading.Thread | None = None
        self._stop = threading.Event()

    # -- start-up -----------------------------------------------------------------------

    def initialize(self, *, bootstrap: bool = False) -> FirstStart | None:
        """Migrate, then create whatever a working deployment needs and does not have yet.

        With ``bootstrap`` (``csscert serve``), a data directory that was never served gets
        the region's project, a first user and access key; the answer says what was made.
        """
        migrate(self.store)
        self._check_master_key()
        self._reconcile_settings()
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

    # -- hot path -----------------------------------------------------------------------

    def view(self) -> View:
        signal = self._signal
        hint = signal.current() if signal is not None else None
        view = self._view
        if view is None or self._stale or hint != self._hint:
            with self._lock:
                view = self._view
                if view is None or self._stale or hint != self._hint:
                    self._stale = False
                    try:
                        view = View(self.store.snapshot(), self.sealer, self.settings)
                    except BaseException:
                        # Fail closed: never keep serving the old view (it may predate a
                        # revocation); the next request tries again.
                        self._stale = True
                        raise
                    self._view = view
                    self._hint = hint
                    self._db_revision_seen = view.revision
        return view

    def start_watching(self) -> None:
        """Poll the database revision in the background (never on the request path)."""
        if self._watcher is not None:
            return
        self._watcher = threading.Thread(target=self._watch, name="csscert-revision", daemon=True)
        self._watcher.start()

    def _watch(self) -> None:
        while not self._stop.wait(self.settings.revision_poll_seconds):
            try:
                revision = self.store.revision()
            except Exception:  # a database hiccup must not kill the watcher
                log.exception("revision poll failed")
                continue
            if revision != self._db_revision_seen:
                self._stale = True
            if self._signal is not None and self._signal.refresh():
                self._stale = True

    def close(self) -> None:
        self._stop.set()
        self.store.close()

    # -- for operators (health, readiness, metrics) -------------------------------------

    def readiness(self) -> dict[str, bool]:
        """The store answers, a CA is present, and the view can be brought to the store's
        revision. Blocking (database reads): call it off the event loop."""
        try:
            revision = self.store.revision()
            has_ca = any(ca.state is not CAState.RETIRED for ca in self.store.authorities())
        except Exception:
            log.exception("readiness: the store does not answer")
            return {"store": False, "ca": False, "changes": False}
        try:
            view = self.view()
            if view.revision < revision:  # a change this process has not noticed yet
                self._stale = True
                view = self.view()
            current = view.revision >= revision
        except Exception:
            log.exception("readiness: the view cannot be built")
            current = False
        return {"store": True, "ca": has_ca, "changes": current}

    def trusted_authorities(self) -> list[CertificateAuthority]:
        """Every CA in some trust bundle (a database read: off the event loop)."""
        return [ca for ca in self.store.authorities() if ca.state is not CAState.RETIRED]

    def cache_sizes(self) -> dict[str, int]:
        """Entries of the process's caches (for metrics); a plain read of the current view."""
        sizes = dict(self.limits.sizes())
        view = self._view
        if view is not None:
            sizes["representations"] = len(view.representations)
            sizes["token_verdicts"] = len(getattr(view.directory, "_verdicts", ()))
        return sizes

    def now(self) -> float:
        return time.time()  # what datetime.now(UTC).timestamp() gives, without building a datetime
