"""Bounded in-memory caches and single-flight loading, the building blocks of the read model.

Every cache that holds something a caller can name (a token, an access key, a user name) is
bounded twice: in entries and in (estimated) bytes, so a flood of unique keys evicts instead of
growing the process. Negative answers ("no such key") are cached like positive ones, in the same
bounds. Eviction is first-in first-out: a hit costs one dictionary lookup and nothing else (an
LRU would reorder on every hit, on the hot path), and an entry that is still hot after being
evicted costs one indexed query to bring back.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

__all__ = ["MISSING", "NEGATIVE", "BoundedCache", "Sentinel", "SingleFlight", "text_size"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Sentinel:
    """A named marker value (``MISSING``: not in the cache; ``NEGATIVE``: known not to exist)."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


MISSING = Sentinel("MISSING")
NEGATIVE = Sentinel("NEGATIVE")
_ENTRY_OVERHEAD = 200  # bytes a dict slot, the key object and bookkeeping cost, roughly


class BoundedCache(Generic[K, V]):
    """A dict bounded in entries and bytes; the oldest entries go first when either bound is hit.

    ``size`` of an entry is what the caller says it costs (plus a fixed overhead), so the byte
    bound holds whatever the values are. ``hits``/``misses`` feed the metrics.
    """

    __slots__ = (
        "_bytes", "_data", "_negatives", "_sizes", "hits", "max_bytes", "max_entries", "misses", "name",
    )  # fmt: skip

    def __init__(self, name: str, max_entries: int, max_bytes: int) -> None:
        self.name = name
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._data: dict[K, V | Sentinel] = {}
        self._sizes: dict[K, int] = {}
        # The keys holding NEGATIVE, so dropping them costs what there is to drop, not a scan of
        # the whole cache (a user change drops them: at 100 k cached names a scan took 1-5 ms).
        self._negatives: set[K] = set()
        self._bytes = 0
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._data)

    @property
    def bytes(self) -> int:
        return self._bytes

    def get(self, key: K) -> V | Sentinel:
        """The value, ``NEGATIVE``, or ``MISSING``."""
        value = self._data.get(key, MISSING)
        if value is MISSING:
            self.misses += 1
        else:
            self.hits += 1
        return value

    def peek(self, key: K) -> V | Sentinel:
        """Like :meth:`get` without counting (for internal consistency checks)."""
        return self._data.get(key, MISSING)

    def put(self, key: K, value: V | Sentinel, size: int = 0) -> None:
        cost = size + _ENTRY_OVERHEAD
        if cost > self.max_bytes:
            return  # would not fit even alone: not cached
        self.pop(key)
        self._data[key] = value
        if value is NEGATIVE:
            self._negatives.add(key)
        self._sizes[key] = cost
        self._bytes += cost
        while len(self._data) > self.max_entries or self._bytes > self.max_bytes:
            oldest = next(iter(self._data))
            self.pop(oldest)

    def pop(self, key: K) -> V | Sentinel:
        value = self._data.pop(key, MISSING)
        if value is not MISSING:
            self._bytes -= self._sizes.pop(key)
            if value is NEGATIVE:
                self._negatives.discard(key)
        return value

    def clear(self) -> None:
        self._data.clear()
        self._sizes.clear()
        self._negatives.clear()
        self._bytes = 0

    def drop_negatives(self) -> None:
        """Forget every ``NEGATIVE`` entry (something may have been created under those keys)."""
        for key in list(self._negatives):
            self.pop(key)


def text_size(*parts: str | bytes | None) -> int:
    """A rough byte cost of some strings, for :meth:`BoundedCache.put`."""
    return sum(sys.getsizeof(p) for p in parts if p is not None)


class SingleFlight(Generic[K, V]):
    """Concurrent loads of the same key share one load: the first caller starts it, the others
    await the same future. Failures are shared too (and not remembered)."""

    __slots__ = ("_inflight",)

    def __init__(self) -> None:
        self._inflight: dict[K, asyncio.Future[V]] = {}

    async def load(self, key: K, loader: Callable[[], Awaitable[V]]) -> V:
        pending = self._inflight.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[V] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            value = await loader()
        except BaseException as exc:
            if not future.done():
                future.set_exception(exc)
                future.exception()  # retrieved: no "never retrieved" warning when nobody else waits
            raise
        else:
            future.set_result(value)
            return value
        finally:
            del self._inflight[key]
