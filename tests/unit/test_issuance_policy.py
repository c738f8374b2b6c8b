"""The issuance policy matcher (csscert.ca.policy): step-ca/Vault-style DNS patterns, CIDRs and
the longest validity, as pure functions; hypothesis for the pattern rules."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from csscert.ca.names import AuthorityError
from csscert.ca.policy import check, dns_allowed, ip_allowed, make_policy, normalise_dns_pattern
from csscert.errors import PolicyViolation

label = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True)


def _not_an_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return True
    return False


# DNS names (a dotted quad such as 0.0.0.0 is an IP address, which no DNS pattern may be)
names = st.lists(label, min_size=2, max_size=5).map(".".join).filter(_not_an_ip)


def test_an_exact_pattern_allows_exactly_that_name() -> None:
    assert dns_allowed("node-1.search.internal", ["node-1.search.internal"])
    assert not dns_allowed("node-2.search.internal", ["node-1.search.internal"])
    assert not dns_allowed("a.node-1.search.internal", ["node-1.search.internal"])


def test_a_wildcard_allows_one_label_and_no_more_and_not_the_bare_domain() -> None:
    patterns = ["*.search.internal"]
    assert dns_allowed("a.search.internal", patterns)
    assert not dns_allowed("a.b.search.internal", patterns)
    assert not dns_allowed("search.internal", patterns)
    assert not dns_allowed("a.search.internal.evil", patterns)
    assert not dns_allowed("asearch.internal", patterns)


def test_a_wildcard_name_needs_the_very_same_pattern() -> None:
    assert dns_allowed("*.search.internal", ["*.search.internal"])
    assert not dns_allowed("*.a.search.internal", ["*.search.internal"])
    assert not dns_allowed("*.search.internal", ["a.search.internal"])


@given(first=label, domain=names)
def test_any_one_label_under_a_wildcard_domain_matches(first: str, domain: str) -> None:
    assert dns_allowed(f"{first}.{domain}", [f"*.{domain}"])


@given(first=label, second=label, domain=names)
def test_two_labels_under_a_wildcard_domain_never_match(first: str, second: str, domain: str) -> None:
    assert not dns_allowed(f"{first}.{second}.{domain}", [f"*.{domain}"])


@given(name=names, other=names)
def test_an_exact_pattern_matches_only_itself(name: str, other: str) -> None:
    assert dns_allowed(name, [name])
    assert dns_allowed(other, [name]) == (other == name)


@given(name=names)
def test_patterns_are_normalised_like_names(name: str) -> None:
    assert normalise_dns_pattern(name.upper() + ".") == name
    assert normalise_dns_pattern("*." + name) == "*." + name


@pytest.mark.parametrize("bad", ["*", "*.com", "a.*.com", "**.a.com", "*a.b.com", "a b.com", "10.0.0.1"])
def test_malformed_patterns_are_refused_with_the_pattern_named(bad: str) -> None:
    with pytest.raises(AuthorityError, match="pattern"):
        normalise_dns_pattern(bad)


def test_ip_rules_are_networks_and_never_cross_families() -> None:
    assert ip_allowed("10.1.2.3", ["10.0.0.0/8"])
    assert not ip_allowed("11.0.0.1", ["10.0.0.0/8"])
    assert ip_allowed("fd00::1", ["fd00::/8"])
    assert not ip_allowed("::ffff:10.0.0.1", ["10.0.0.0/8"])
    policy = make_policy("p", [], ["192.168.1.7"], None)
    assert policy.allow_ip == ("192.168.1.7/32",)


@given(address=st.ip_addresses(v=4), prefix=st.integers(0, 32))
def test_an_address_is_allowed_exactly_when_its_network_contains_it(
    address: ipaddress.IPv4Address, prefix: int
) -> None:
    network = ipaddress.ip_network(f"10.20.30.40/{prefix}", strict=False)
    assert ip_allowed(str(address), [str(network)]) == (address in network)


def test_no_policy_allows_everything() -> None:
    check(None, ["anything.example"], ["203.0.113.9"], 36500)


def test_refusals_name_the_offending_name_address_or_days() -> None:
    policy = make_policy("p", ["*.search.internal"], ["10.0.0.0/8"], 30)
    check(policy, ["n1.search.internal"], ["10.0.0.1"], 30)
    with pytest.raises(PolicyViolation, match=r"'n1\.other\.internal'"):
        check(policy, ["n1.search.internal", "n1.other.internal"], [], None)
    with pytest.raises(PolicyViolation, match=r"192\.168\.0\.1"):
        check(policy, [], ["192.168.0.1"], None)
    with pytest.raises(PolicyViolation, match="31 days"):
        check(policy, [], [], 31)


def test_a_dns_only_policy_refuses_every_ip_and_a_days_only_policy_limits_days_only() -> None:
    dns_only = make_policy("p", ["*.search.internal"], [], None)
    with pytest.raises(PolicyViolation, match=r"10\.0\.0\.1"):
        check(dns_only, ["a.search.internal"], ["10.0.0.1"], None)
    days_only = make_policy("p", [], [], 10)
    check(days_only, ["anything.example"], ["203.0.113.9"], 10)
    with pytest.raises(PolicyViolation):
        check(days_only, [], [], 11)
