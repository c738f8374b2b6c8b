"""A memo bounded in entries and in bytes, with hit and miss counts that outlive it (for metrics).

Caches whose keys come from the request (a truststore password, a format) must not grow with
what callers send: :class:`BoundedCache` keeps at most ``max_entries`` values and ``max_bytes``
bytes of them, and starts afresh when either would be passed (the entries are cheap to rebuild;
an LRU's bookkeeping would cost every hit, and hits are the hot path). Its hits and misses are
added to :data:`STATS` under its name, which lives as long as the process, so the counts keep
going up across the caches of successive store revisions.
"""

from __future__ import annotations

from typing import Generic, TypeVar

__all__ = ["STATS", "BoundedCache", "stats_of"]

K = TypeVar("K")
V = TypeVar("V")

STATS: dict[str, list[int]] = {}  # cache name -> [hits, misses], for the process


def stats_of(name: str) -> list[int]:
    """The process-wide [hits, misses] counter pair of caches called ``name``."""
    return STATS.setdefault(name, [0, 0])


class BoundedCache(Generic[K, V]):
    __slots__ = ("_data", "_stats", "bytes", "max_bytes", "max_entries", "name")

    def __init__(self, name: str, max_entries: int, max_bytes: int) -> None:
        self.name = name
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.bytes = 0
        self._data: dict[K, tuple[V, int]] = {}
        self._stats = stats_of(name)

    def __len__(self) -> int:
        return len(self._data)

    def get(self, key: K) -> V | None:
        found = self._data.get(key)
        if found is None:
            self._stats[1] += 1
            return None
        self._stats[0] += 1
        return found[0]

    def put(self, key: K, value: V, size: int) -> None:
        """Keep ``value`` (``size`` bytes); one larger than the whole budget is not kept."""
        if size > self.max_bytes:
            return
        old = self._data.pop(key, None)
        if old is not None:
            self.bytes -= old[1]
        if len(self._data) >= self.max_entries or self.bytes + size > self.max_bytes:
            self._data.clear()
            self.bytes = 0
        self._data[key] = (value, size)
        self.bytes += size
