"""The CRLs one worker serves: one signed :class:`~csscert.ca.crl.CrlDocument` per CA, made on
first use and kept until it must change.

A CRL is derived from the store (:meth:`Authority.crl_document`), so nothing has to publish it:
every worker of every host makes its own, and they agree (docs/architecture.md, "What a
revocation promises"). An entry goes when

* the change log says the CA's revocation list changed (kind ``crl``, key = the CA's
  fingerprint): a revocation on any host reaches this worker like any other change;
* its period ends (``refresh_at``): it is re-signed, long before its ``nextUpdate``;
* a CA changes (kind ``ca``): a fingerprint remembered as unknown may exist now.

Building costs two indexed queries and one signature; it runs on a read thread, never on the
event loop, and concurrent misses for one CA share it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable

from csscert.ca.crl import CrlDocument
from csscert.cache import MISSING, NEGATIVE, BoundedCache, SingleFlight
from csscert.model import Change
from csscert.store import SqlStore

__all__ = ["CrlCache"]

_CRL_BYTES = 64 * 1024  # the cost charged per entry (a CRL of ~1,500 entries)
_BUILD_DEADLINE = 10.0  # seconds: a signature through an HSM may take a while


class CrlCache:
    """CRLs by CA fingerprint, bounded; ``build(fingerprint, now)`` makes one (None: no such CA)."""

    def __init__(
        self,
        store: SqlStore,
        build: Callable[[str, dt.datetime], CrlDocument | None],
        max_entries: int = 1024,
    ) -> None:
        self._store = store
        self._build = build
        self.documents: BoundedCache[str, CrlDocument] = BoundedCache(
            "crls", max_entries, max_entries * _CRL_BYTES
        )
        self._flight: SingleFlight[str, CrlDocument | None] = SingleFlight()
        self.generation = 0

    def cached(self, fingerprint: str, now: float) -> CrlDocument | None:
        """The CRL when this worker holds a current one (no coroutine: the warm path)."""
        found = self.documents.peek(fingerprint)
        if isinstance(found, CrlDocument) and found.refresh_at.timestamp() > now:
            return found
        return None

    async def get(self, fingerprint: str, now: float) -> CrlDocument | None:
        found = self.documents.get(fingerprint)
        if isinstance(found, CrlDocument) and found.refresh_at.timestamp() > now:
            return found
        if found is NEGATIVE:
            return None
        if found is not MISSING:
            self.documents.pop(fingerprint)  # its period is over: re-sign
        return await self._flight.load(fingerprint, lambda: self._load(fingerprint, now))

    async def _load(self, fingerprint: str, now: float) -> CrlDocument | None:
        generation = self.generation
        when = dt.datetime.fromtimestamp(now, dt.UTC)
        document = await self._store.read(self._build, fingerprint, when, deadline=_BUILD_DEADLINE)
        if generation == self.generation:
            size = len(document.der) if document is not None else 0
            self.documents.put(fingerprint, NEGATIVE if document is None else document, size)
        return document

    def apply(self, changes: Iterable[Change]) -> None:
        self.generation += 1
        for change in changes:
            if change.kind == "crl":
                self.documents.pop(change.key)
            elif change.kind == "ca":
                self.documents.drop_negatives()

    def clear(self) -> None:
        self.generation += 1
        self.documents.clear()
