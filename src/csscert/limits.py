"""Throttling, the way the cloud's gateway does it: token buckets per credential, user and address.

Three limits, each ``N/S`` (at most N events in S seconds, all N at once allowed as a burst):

* **per credential** (a token's audit id, an access key): every authenticated request to the
  download and the Keystone routes. Refused with 429 ``APIGW.0308`` (CSS shape) or Keystone's 429.
* **per user** on password logins: each attempt takes a token *before* the password is
  checked, and a successful login gives the user a full bucket again. After N failures in a row
  the user is locked out until a token comes back (S/N seconds): the lock-out is answered without
  running argon2, so it costs the attacker a round trip and the server nothing.
* **per source address** on password logins: every attempt that would run argon2. It is looser
  than the per-user limit, so one account under attack does not lock its neighbours behind the
  same NAT out; it bounds the argon2 CPU one address can make the server spend across users.

State is per worker process and bounded in entries (each table evicts first the buckets that
have refilled, which carry no state, then the oldest). Limits are for the whole server: with N
workers each enforces 1/N of every burst and rate (rounded up), since connections are spread
over the workers. Keys are short by construction (ids, access keys, addresses, user names cut
to 64 characters), so nothing a caller sends can make a table large in bytes either.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from csscert.errors import Throttled

__all__ = ["RATE_SPEC", "Limits", "LoginAttempt", "TokenBuckets", "parse_rate"]

RATE_SPEC = re.compile(r"^\s*(\d{1,9})\s*/\s*(\d{1,9}(?:\.\d{1,6})?)\s*s?\s*$")
_ENTRIES = 50_000  # per table: ~100 bytes each


def parse_rate(spec: str) -> tuple[int, float]:
    """``"10/300"`` -> (10, 300.0): at most 10 events in 300 seconds."""
    match = RATE_SPEC.match(spec)
    if match is None or int(match[1]) < 1 or float(match[2]) <= 0:
        raise ValueError(f"a rate limit is 'N/SECONDS' with N >= 1, e.g. '10/300', not {spec!r}")
    return int(match[1]), float(match[2])


class TokenBuckets:
    """Token buckets keyed by short strings; bounded in entries."""

    __slots__ = ("_buckets", "capacity", "max_entries", "rate")

    def __init__(self, count: int, seconds: float, max_entries: int = _ENTRIES) -> None:
        self.capacity = float(count)
        self.rate = count / seconds  # tokens per second
        self.max_entries = max_entries
        self._buckets: dict[str, list[float]] = {}  # key -> [tokens, time of last update]

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, key: str, now: float) -> float:
        """Take one token: 0.0 when there was one, else the seconds until there is one."""
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self.max_entries:
                self._evict(now)
            self._buckets[key] = [self.capacity - 1.0, now]
            return 0.0
        tokens = bucket[0] + (now - bucket[1]) * self.rate
        if tokens > self.capacity:
            tokens = self.capacity
        bucket[1] = now
        if tokens >= 1.0:
            bucket[0] = tokens - 1.0
            return 0.0
        bucket[0] = tokens
        return (1.0 - tokens) / self.rate

    def reset(self, key: str) -> None:
        """A full bucket again (a successful login)."""
        self._buckets.pop(key, None)

    def _evict(self, now: float) -> None:
        """Drop the buckets that have refilled (they hold no state); if that frees less than a
        quarter, drop the oldest until three quarters are left. Amortised O(1) per insert."""
        full = [
            key
            for key, (tokens, at) in self._buckets.items()
            if tokens + (now - at) * self.rate >= self.capacity
        ]
        for key in full:
            del self._buckets[key]
        excess = len(self._buckets) - (self.max_entries * 3) // 4
        if excess > 0:
            for key in list(self._buckets)[:excess]:
                del self._buckets[key]


def _per_worker(spec: str, workers: int) -> tuple[int, float]:
    count, seconds = parse_rate(spec)
    return max(1, math.ceil(count / workers)), seconds


def _retry_after(wait: float) -> int:
    return max(1, math.ceil(wait))


@dataclass(frozen=True, slots=True)
class LoginAttempt:
    """What :meth:`Limits.begin_login` admitted: hand it back to ``login_succeeded``."""

    user_key: str


class Limits:
    """The service's limits; ``enabled=False`` (``CSSCERT_RATE_LIMITS=off``) admits everything."""

    def __init__(
        self,
        *,
        enabled: bool,
        credential: str,
        login_user: str,
        login_address: str,
        workers: int = 1,
    ) -> None:
        self.enabled = enabled
        self.credential = TokenBuckets(*_per_worker(credential, workers))
        self.login_user = TokenBuckets(*_per_worker(login_user, workers))
        self.login_address = TokenBuckets(*_per_worker(login_address, workers))

    def sizes(self) -> dict[str, int]:
        return {
            "limits_credential": len(self.credential),
            "limits_login_user": len(self.login_user),
            "limits_login_address": len(self.login_address),
        }

    def check_credential(self, credential: str, now: float) -> None:
        """One request by ``credential``; raises :class:`Throttled` past the limit."""
        if not self.enabled:
            return
        wait = self.credential.take(credential, now)
        if wait:
            raise Throttled(
                "too many requests with this credential; slow down and retry later",
                _retry_after(wait),
                "credential",
            )

    def begin_login(self, user_key: str, address: str, now: float) -> LoginAttempt:
        """Admit one password check (before argon2 runs), or raise :class:`Throttled`.

        ``user_key`` names the user as the caller did (an id, or domain and name): the same
        whether the user exists or not, so a lock-out tells nothing about which users exist.
        """
        attempt = LoginAttempt(user_key[:160])
        if not self.enabled:
            return attempt
        wait = self.login_user.take(attempt.user_key, now)
        if wait:
            raise Throttled(
                "too many failed logins for this user; it is locked out for a while, retry later",
                _retry_after(wait),
                "login_user",
            )
        wait = self.login_address.take(address, now)
        if wait:
            raise Throttled(
                "too many logins from this address; retry later", _retry_after(wait), "login_address"
            )
        return attempt

    def login_succeeded(self, attempt: LoginAttempt) -> None:
        if self.enabled:
            self.login_user.reset(attempt.user_key)
