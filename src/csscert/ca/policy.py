"""A project's issuance policy: which DNS names and IP addresses its certificates may carry, and
for how long. Pure functions, no store.

Patterns follow step-ca's and Vault's roles: ``node-1.search.internal`` allows exactly that name;
``*.search.internal`` allows any name with exactly ONE more label (``a.search.internal``, not
``a.b.search.internal`` and not ``search.internal`` itself). A certificate that asks for a
wildcard name (``*.search.internal``) needs that very pattern: a pattern never grants more than
it spells. IP rules are networks in CIDR notation (a bare address is a /32 or /128). Once a
policy has any name rule, every DNS name and IP address of a request must match one (a policy
that lists only DNS patterns refuses every IP address, as step-ca's allow lists do); a policy
with only ``max_days`` limits validity alone. No policy at all allows what the CLI always has.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

from csscert.ca.names import AuthorityError, validate_dns_name
from csscert.errors import PolicyViolation
from csscert.model import IssuancePolicy

__all__ = [
    "MAX_RULES",
    "check",
    "dns_allowed",
    "ip_allowed",
    "make_policy",
    "normalise_dns_pattern",
    "normalise_network",
]

MAX_RULES = 256  # per kind: a policy is read on every issuance

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def normalise_dns_pattern(pattern: str) -> str:
    """``pattern`` in the form :func:`dns_allowed` compares: lower case, no trailing dot; a
    wildcard only as the whole first label, with at least two labels after it."""
    candidate = pattern.strip().lower().rstrip(".")
    labels = candidate.split(".")
    if "*" in candidate and (labels[0] != "*" or "*" in ".".join(labels[1:]) or len(labels) < 3):
        raise AuthorityError(
            f"DNS pattern {pattern!r}: a wildcard may only be the whole first label of a name with "
            "at least two more labels, e.g. '*.search.internal'"
        )
    try:
        return validate_dns_name(candidate)
    except AuthorityError:
        raise AuthorityError(f"DNS pattern {pattern!r} is not a DNS name or '*.' + a DNS name") from None


def normalise_network(cidr: str) -> str:
    """``cidr`` as a network (``10.0.0.0/8``; a bare address becomes /32 or /128)."""
    try:
        return str(ipaddress.ip_network(cidr.strip(), strict=False))
    except ValueError:
        raise AuthorityError(f"{cidr!r} is not an IP network in CIDR notation (e.g. 10.0.0.0/8)") from None


def make_policy(
    project_id: str, allow_dns: Iterable[str], allow_ip: Iterable[str], max_days: int | None
) -> IssuancePolicy:
    """A checked policy: patterns and networks normalised and de-duplicated, in the given order."""
    dns = tuple(dict.fromkeys(normalise_dns_pattern(p) for p in allow_dns))
    ips = tuple(dict.fromkeys(normalise_network(n) for n in allow_ip))
    if len(dns) > MAX_RULES or len(ips) > MAX_RULES:
        raise AuthorityError(f"a policy holds at most {MAX_RULES} DNS patterns and {MAX_RULES} networks")
    if max_days is not None and max_days < 1:
        raise AuthorityError("--max-days must be at least 1")
    return IssuancePolicy(project_id, dns, ips, max_days)


def dns_allowed(name: str, patterns: Sequence[str]) -> bool:
    """Whether the (normalised) DNS ``name`` matches one of the (normalised) ``patterns``."""
    for pattern in patterns:
        if name == pattern:
            return True
        if pattern.startswith("*.") and not name.startswith("*."):
            head, dot, rest = name.partition(".")
            if dot and head and rest == pattern[2:]:
                return True
    return False


def ip_allowed(address: str, networks: Sequence[str]) -> bool:
    ip = ipaddress.ip_address(address)
    for network in networks:
        net: Network = ipaddress.ip_network(network)
        if ip.version == net.version and ip in net:
            return True
    return False


def check(
    policy: IssuancePolicy | None,
    dns_names: Sequence[str],
    ip_addresses: Sequence[str],
    validity_days: int | None = None,
) -> None:
    """Raise :class:`PolicyViolation` naming the first name, address or validity ``policy``
    does not allow. ``None`` (no policy) allows everything."""
    if policy is None:
        return
    if policy.allow_dns or policy.allow_ip:
        for name in dns_names:
            if not dns_allowed(name, policy.allow_dns):
                allowed = ", ".join(policy.allow_dns) or "no DNS names"
                raise PolicyViolation(
                    f"DNS name {name!r} is not allowed by the project's issuance policy (allowed: {allowed})"
                )
        for address in ip_addresses:
            if not ip_allowed(address, policy.allow_ip):
                allowed = ", ".join(policy.allow_ip) or "no IP addresses"
                raise PolicyViolation(
                    f"IP address {address} is not allowed by the project's issuance policy "
                    f"(allowed: {allowed})"
                )
    if validity_days is not None and policy.max_days is not None and validity_days > policy.max_days:
        raise PolicyViolation(
            f"validity of {validity_days} days is more than the project's issuance policy allows "
            f"({policy.max_days} days)"
        )
