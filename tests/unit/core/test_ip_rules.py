"""IP rules: validation naming the bad entry, normalisation, and verdicts (checked against ``ipaddress``)."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from polyroute.core.ip_rules import MAX_ENTRIES, InvalidIpRulesError, IpRules, Verdict


def rules(allow: list[str] | None = None, block: list[str] | None = None) -> IpRules:
    return IpRules.parse({"allow": allow or [], "block": block or []})


# Validation


@pytest.mark.parametrize(
    ("body", "param", "fragment"),
    [
        ([], "body", "expected an object"),
        ({"allow": "10.0.0.0/8"}, "allow", "must be a list"),
        ({"block": ["10.0.0.0/8", "10.0.0.300/8"]}, "block[1]", "'10.0.0.300/8'"),
        ({"allow": ["example.com"]}, "allow[0]", "'example.com'"),
        ({"allow": ["10.0.0.0/33"]}, "allow[0]", "not an IP network"),
        ({"block": [7]}, "block[0]", "must be a string"),
        ({"allow": [], "deny": []}, "deny", "unknown field 'deny'"),
        ({"allow": ["10.0.0.1"] * (MAX_ENTRIES + 1)}, "allow", f"at most {MAX_ENTRIES}"),
    ],
    ids=["not-object", "not-list", "bad-octet", "hostname", "bad-prefix", "not-string", "unknown-field", "too-many"],
)
def test_parse_refuses_and_names_the_bad_entry(body: Any, param: str, fragment: str) -> None:
    with pytest.raises(InvalidIpRulesError) as caught:
        IpRules.parse(body)
    assert caught.value.param == param
    assert fragment in str(caught.value)


def test_parse_accepts_the_maximum_number_of_entries() -> None:
    many = [f"10.{i // 256}.{i % 256}.0/24" for i in range(MAX_ENTRIES)]
    assert len(rules(allow=many, block=many).allow) == MAX_ENTRIES


def test_parse_normalises_and_drops_duplicates() -> None:
    parsed = IpRules.parse({"allow": ["10.1.2.3/8", " 192.0.2.7 ", "10.0.0.0/8", "2001:DB8::1/32"]})
    assert parsed.to_json() == {"allow": ["10.0.0.0/8", "192.0.2.7/32", "2001:db8::/32"], "block": []}


def test_parse_missing_lists_are_empty() -> None:
    assert IpRules.parse({}).is_empty
    assert IpRules.parse({"allow": None, "block": None}).is_empty


# Verdicts


def test_verdict_empty_rules_allow_everything() -> None:
    empty = rules()
    assert empty.is_empty
    assert empty.verdict("203.0.113.9") is Verdict.ALLOWED
    assert empty.verdict(None) is Verdict.ALLOWED


def test_verdict_block_list() -> None:
    blocking = rules(block=["203.0.113.0/24", "2001:db8:bad::/48"])
    assert blocking.verdict("203.0.113.200") is Verdict.BLOCKED
    assert blocking.verdict("203.0.114.1") is Verdict.ALLOWED
    assert blocking.verdict("2001:db8:bad::1") is Verdict.BLOCKED
    assert blocking.verdict("2001:db8:600d::1") is Verdict.ALLOWED
    assert blocking.verdict(None) is Verdict.ALLOWED


def test_verdict_allow_list_admits_only_its_networks() -> None:
    allowing = rules(allow=["10.0.0.0/8", "192.0.2.7"])
    assert allowing.verdict("10.200.3.4") is Verdict.ALLOWED
    assert allowing.verdict("192.0.2.7") is Verdict.ALLOWED
    assert allowing.verdict("192.0.2.8") is Verdict.NOT_ALLOWED
    assert allowing.verdict("::1") is Verdict.NOT_ALLOWED
    assert allowing.verdict(None) is Verdict.NOT_ALLOWED
    assert allowing.verdict("not-an-address") is Verdict.NOT_ALLOWED


def test_verdict_block_wins_over_allow() -> None:
    both = rules(allow=["10.0.0.0/8"], block=["10.6.6.0/24"])
    assert both.verdict("10.6.6.6") is Verdict.BLOCKED
    assert both.verdict("10.6.7.6") is Verdict.ALLOWED


def test_verdict_ipv4_mapped_ipv6_is_judged_as_ipv4() -> None:
    assert rules(block=["192.0.2.0/24"]).verdict("::ffff:192.0.2.1") is Verdict.BLOCKED
    assert rules(allow=["192.0.2.0/24"]).verdict("::ffff:192.0.2.1") is Verdict.ALLOWED


def test_verdict_whole_address_space() -> None:
    assert rules(block=["0.0.0.0/0"]).verdict("198.51.100.1") is Verdict.BLOCKED
    assert rules(block=["0.0.0.0/0"]).verdict("2001:db8::1") is Verdict.ALLOWED
    assert rules(block=["::/0"]).verdict("2001:db8::1") is Verdict.BLOCKED


def test_blocking_entry_names_the_first_covering_entry() -> None:
    blocking = rules(block=["198.51.100.0/24", "10.0.0.0/8", "10.1.0.0/16"])
    assert blocking.blocking_entry("10.1.2.3") == 1
    assert blocking.blocking_entry("192.0.2.1") is None
    assert blocking.blocking_entry(None) is None


_networks = st.builds(
    lambda address, prefix: ipaddress.ip_network(f"{ipaddress.IPv4Address(address)}/{prefix}", strict=False),
    st.integers(0, 2**32 - 1),
    st.integers(0, 32),
)


@given(
    allow=st.lists(_networks, max_size=8),
    block=st.lists(_networks, max_size=8),
    address=st.integers(0, 2**32 - 1),
)
def test_verdict_matches_a_plain_scan_with_ipaddress(
    allow: list[ipaddress.IPv4Network], block: list[ipaddress.IPv4Network], address: int
) -> None:
    ip = ipaddress.IPv4Address(address)
    if any(ip in network for network in block):
        expected = Verdict.BLOCKED
    elif allow and not any(ip in network for network in allow):
        expected = Verdict.NOT_ALLOWED
    else:
        expected = Verdict.ALLOWED
    assert rules([str(n) for n in allow], [str(n) for n in block]).verdict(str(ip)) is expected
