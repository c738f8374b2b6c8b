"""The trust bundles one worker serves: one :class:`TrustBundle` per CA scope, loaded on first use.

A bundle is built from the scope's CAs with one indexed query, off the event loop, and kept until
the change log says the scope's CAs changed (kind ``ca``, key = scope). The download's
representations of a bundle (bytes, ETag, headers) hang on the bundle object and go with it.
"""

from __future__ import annotations

from collections.abc import Iterable

from csscert.ca.bundle import TrustBundle, has_trusted
from csscert.ca.names import scope_of
from csscert.cache import MISSING, NEGATIVE, BoundedCache, SingleFlight
from csscert.model import CertificateAuthority, Change
from csscert.settings import Settings
from csscert.store import SqlStore

__all__ = ["TrustCache"]

_BUNDLE_BYTES = 256 * 1024  # what one bundle may hold with its truststores and representations


class TrustCache:
    """Bundles by scope, bounded (project scope can mean one CA set per project)."""

    def __init__(self, store: SqlStore, settings: Settings, max_bundles: int = 4096) -> None:
        self._store = store
        self._ca_scope = settings.ca_scope
        self._warning_days = settings.ca_expiry_warning_days
        self.bundles: BoundedCache[str, TrustBundle] = BoundedCache(
            "bundles", max_bundles, max_bundles * _BUNDLE_BYTES
        )
        self._flight: SingleFlight[str, TrustBundle | None] = SingleFlight()
        self.generation = 0

    def scope(self, project_id: str) -> str:
        return scope_of(self._ca_scope, project_id)

    def cached(self, project_id: str) -> TrustBundle | None:
        found = self.bundles.get(scope_of(self._ca_scope, project_id))
        return found if isinstance(found, TrustBundle) else None

    async def bundle(self, project_id: str) -> TrustBundle | None:
        """The bundle of the project's scope, or None when the scope has no trusted CA (yet)."""
        scope = scope_of(self._ca_scope, project_id)
        found = self.bundles.get(scope)
        if isinstance(found, TrustBundle):
            return found
        if found is NEGATIVE:
            return None
        assert found is MISSING
        return await self._flight.load(scope, lambda: self._load(scope))

    def _build(self, scope: str) -> TrustBundle | None:
        """Query and build in the reading thread: parsing certificates and encoding the bundle's
        formats costs about a millisecond, which the event loop should not pay."""
        authorities: list[CertificateAuthority] = self._store.authorities(scope)
        return TrustBundle(scope, authorities, self._warning_days) if has_trusted(authorities) else None

    async def _load(self, scope: str) -> TrustBundle | None:
        generation = self.generation
        bundle = await self._store.read(self._build, scope)
        if generation == self.generation:
            self.bundles.put(scope, NEGATIVE if bundle is None else bundle, _BUNDLE_BYTES)
        return bundle

    def apply(self, changes: Iterable[Change]) -> None:
        self.generation += 1
        for change in changes:
            if change.kind == "ca":
                self.bundles.pop(change.key)
            elif change.kind == "project" and self._ca_scope == "project":
                self.bundles.pop(change.key)  # a new project may get its CA in a later write

    def clear(self) -> None:
        self.generation += 1
        self.bundles.clear()
