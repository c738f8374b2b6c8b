"""What operators see of requests: the JSON access log and the Prometheus metrics.

Both are on the hot path, so both are built to cost well under a microsecond per request there:

* :class:`AccessLog` formats one JSON line per request with an f-string (every value in it is
  either ours or checked to need no JSON escaping: request ids by :func:`request_id_of`,
  addresses by the server or :func:`client_address`, ids and access keys by the store), keeps
  the lines in a list and writes them to standard error in one system call every
  :data:`FLUSH_SECONDS` (or at 64 KiB).
* :class:`Metrics` counts in plain dictionaries and moves the counts into ``prometheus_client``
  every :data:`FLUSH_SECONDS` (and before each scrape). With ``PROMETHEUS_MULTIPROC_DIR`` set
  (``csscert serve`` sets it), prometheus_client keeps the values in memory-mapped files shared
  by all workers, so whichever worker answers ``/metrics`` reports the whole server.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import re
import time
from bisect import bisect_left
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from csscert.api import negotiation, wire
from csscert.api.request import Request
from csscert.cache import STATS

__all__ = [
    "FLUSH_SECONDS",
    "AccessLog",
    "Metrics",
    "Proxies",
    "client_address",
    "request_id_of",
]

log = logging.getLogger("csscert.api")

FLUSH_SECONDS = 1.0
_FLUSH_LINES = 256  # about 64 KiB

# Visible ASCII without '"' and '\': safe as a header value and inside a JSON string unescaped.
_REQUEST_ID = re.compile(r"[!#-\[\]-~]{1,128}")


def request_id_of(incoming: str | None, new: Callable[[], str]) -> str:
    """The request id: a proxy's ``X-Request-Id`` when it is short and printable, else a new one."""
    if incoming is not None and _REQUEST_ID.fullmatch(incoming):
        return incoming
    return new()


def client_address(peer: str) -> str:
    """The address part of the server's ``host:port`` (``[v6]:port`` too)."""
    host = peer.rpartition(":")[0] or peer
    return host[1:-1] if host.startswith("[") else host


class Proxies:
    """Addresses whose ``X-Forwarded-For`` is believed (``CSSCERT_TRUSTED_PROXIES``)."""

    def __init__(self, spec: str) -> None:
        self.networks = [
            ipaddress.ip_network(item.strip(), strict=False) for item in spec.split(",") if item.strip()
        ]

    def __bool__(self) -> bool:
        return bool(self.networks)

    def _trusted(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self.networks)

    def resolve(self, peer: str, headers: Mapping[str, str]) -> str:
        """The caller's address: the peer's, unless the peer is a trusted proxy; then the last
        address of ``X-Forwarded-For`` that is not itself a trusted proxy."""
        if not self._trusted(peer):
            return peer
        forwarded = headers.get("x-forwarded-for", "")
        for item in reversed(forwarded[:1024].split(",")):
            candidate = item.strip()
            try:
                candidate = str(ipaddress.ip_address(candidate))
            except ValueError:
                return peer  # a garbled chain: trust nothing past the proxy
            if not self._trusted(candidate):
                return candidate
        return peer


class AccessLog:
    """One JSON line per request, written in batches to standard error."""

    def __init__(self, fd: int = 2) -> None:
        self._fd = fd
        self._lines: list[str] = []
        self._second = -1
        self._stamp = ""

    def record(self, request: Request, status: int, size: int, micros: int) -> None:
        now = time.time()
        second = int(now)
        if second != self._second:
            self._second = second
            self._stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        line = (
            f'{{"time":"{self._stamp}.{int((now - second) * 1000):03d}Z","level":"INFO",'
            f'"logger":"csscert.access","request_id":"{request.request_id}",'
            f'"method":"{request.method}","route":"{request.route}","status":{status},'
            f'"us":{micros},"user":"{request.caller_user}","credential":"{request.caller_credential}",'
            f'"project":"{request.project_id}","bytes":{size},"client":"{request.client}"}}\n'
        )
        lines = self._lines
        lines.append(line)
        if len(lines) >= _FLUSH_LINES:
            self.flush()

    def flush(self) -> None:
        if not self._lines:
            return
        data = "".join(self._lines).encode()
        self._lines = []
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(self._fd, view) :]
        except OSError:
            pass  # a closed or broken log stream must not fail requests


_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    """Counters kept in dictionaries on the hot path, moved into prometheus_client in batches."""

    def __init__(self, live: Callable[[], Iterable[Any]] | None = None) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self._registry = CollectorRegistry(auto_describe=True)
        multiprocess = "PROMETHEUS_MULTIPROC_DIR" in os.environ
        reg = None if multiprocess else self._registry
        self._requests = Counter(
            "csscert_requests", "Requests answered, by route and status.", ["route", "status"], registry=reg
        )
        self._latency = Histogram(
            "csscert_request_duration_seconds",
            "Time from the request's arrival to its response, by route.",
            ["route"],
            buckets=_BUCKETS,
            registry=reg,
        )
        self._auth_failures = Counter(
            "csscert_authentication_failures", "Refused credentials, by reason.", ["reason"], registry=reg
        )
        self._throttled = Counter(
            "csscert_throttled_requests",
            "Requests refused by a rate limit, by limit.",
            ["limit"],
            registry=reg,
        )
        self._db_errors = Counter(
            "csscert_database_errors", "Errors the database driver raised.", registry=reg
        )
        self._cache_hits = Counter(
            "csscert_cache_hits", "Cache lookups that hit, by cache.", ["cache"], registry=reg
        )
        self._cache_misses = Counter(
            "csscert_cache_misses", "Cache lookups that missed, by cache.", ["cache"], registry=reg
        )
        self._cache_entries = Gauge(
            "csscert_cache_entries",
            "Entries in each cache (summed over live workers).",
            ["cache"],
            registry=reg,
            multiprocess_mode="livesum",
        )
        # The change feed, per worker; the lowest over live workers is what a caller can rely on.
        self._applied_revision = Gauge(
            "csscert_changes_applied_revision",
            "The newest store revision applied to the caches (lowest over live workers).",
            registry=reg,
            multiprocess_mode="livemin",
        )
        self._listener_up = Gauge(
            "csscert_changes_listener_up",
            "1 while the PostgreSQL NOTIFY listener is connected, 0 while it reconnects, -1 on SQLite "
            "(lowest over live workers).",
            registry=reg,
            multiprocess_mode="livemin",
        )
        # Known label values start at 0, so a rate over them is defined before the first event.
        for limit in ("credential", "login_user", "login_address"):
            self._throttled.labels(limit)
        for reason in ("missing", "token", "token_expired", "token_revoked", "signature", "password"):
            self._auth_failures.labels(reason)
        self._multiprocess = multiprocess
        self._live = live
        # hot-path tallies: (route, status) -> [count per latency bucket..., +Inf count, sum of seconds]
        self.tallies: dict[tuple[str, int], list[float]] = {}
        self.auth_failures: dict[str, int] = {}
        self.throttled: dict[str, int] = {}
        self._flushed: dict[Any, float] = {}

    # -- hot path -----------------------------------------------------------------------

    def observe(self, route: str, status: int, seconds: float) -> None:
        tally = self.tallies.get((route, status))
        if tally is None:
            tally = self.tallies[(route, status)] = [0.0] * (len(_BUCKETS) + 2)
        tally[bisect_left(_BUCKETS, seconds)] += 1  # one bucket per request, as Histogram keeps them
        tally[-1] += seconds

    def count(self, table: dict[str, int], key: str) -> None:
        table[key] = table.get(key, 0) + 1

    # -- batches ------------------------------------------------------------------------

    def _delta(self, key: Any, total: float) -> float:
        delta = total - self._flushed.get(key, 0.0)
        self._flushed[key] = total
        return delta

    def flush(
        self, db_errors: int, cache_entries: Mapping[str, int], feed: Mapping[str, int] | None = None
    ) -> None:
        """Move what the hot path counted since the last flush into prometheus_client."""
        latency: dict[str, list[float]] = {}
        for (route, status), tally in list(self.tallies.items()):
            delta = self._delta(("r", route, status), sum(tally[:-1]))
            if delta:
                self._requests.labels(route, str(status)).inc(delta)
            merged = latency.setdefault(route, [0.0] * len(tally))
            for index, value in enumerate(tally):
                merged[index] += value
        for route, buckets in latency.items():
            child = self._latency.labels(route)
            # prometheus_client has no "observe many": add each bucket's new count to the bucket
            # it falls in (the child's per-bucket values, as Histogram.observe does one at a time).
            for index, count in enumerate(buckets[:-1]):
                delta = self._delta(("l", route, index), count)
                if delta:
                    child._buckets[index].inc(delta)
            delta = self._delta(("ls", route), buckets[-1])
            if delta:
                child._sum.inc(delta)
        for reason, total in list(self.auth_failures.items()):
            delta = self._delta(("a", reason), total)
            if delta:
                self._auth_failures.labels(reason).inc(delta)
        for limit, total in list(self.throttled.items()):
            delta = self._delta(("t", limit), total)
            if delta:
                self._throttled.labels(limit).inc(delta)
        delta = self._delta("db", db_errors)
        if delta:
            self._db_errors.inc(delta)
        for name, (hits, misses) in list(STATS.items()):
            delta = self._delta(("ch", name), hits)
            if delta:
                self._cache_hits.labels(name).inc(delta)
            delta = self._delta(("cm", name), misses)
            if delta:
                self._cache_misses.labels(name).inc(delta)
        entries = {**wire.cache_sizes(), **negotiation.cache_sizes(), **cache_entries}
        for name, size in entries.items():
            self._cache_entries.labels(name).set(size)
        if feed is not None:
            self._applied_revision.set(feed["applied"])
            self._listener_up.set(feed["listener"])

    def exposition(self) -> tuple[bytes, str]:
        """The whole server's metrics in the Prometheus text format (and its content type)."""
        from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

        registry = CollectorRegistry()
        if self._multiprocess:
            from prometheus_client.multiprocess import MultiProcessCollector

            MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        else:
            registry.register(_Live(self._registry.collect))
        if self._live is not None:
            registry.register(_Live(self._live))
        return generate_latest(registry), CONTENT_TYPE_LATEST

    def worker_exit(self) -> None:
        if self._multiprocess:
            from prometheus_client import multiprocess

            multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]


class _Live:
    """Metrics computed at scrape time (for example seconds until each CA expires)."""

    def __init__(self, families: Callable[[], Iterable[Any]]) -> None:
        self._families = families

    def collect(self) -> Iterable[Any]:
        return self._families()

    def describe(self) -> list[Any]:
        return []
