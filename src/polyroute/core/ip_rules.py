"""The gateway-wide IP filter's rules: allow and block lists of networks (CIDR), and the verdict for an address.

Block is checked first: an address in both lists is blocked. A non-empty allow list admits only the
addresses in it. IPv4-mapped IPv6 addresses (``::ffff:192.0.2.1``) are judged as the IPv4 address they carry.
Matching costs one set lookup per distinct prefix length in a list, whatever the number of entries.
"""

from __future__ import annotations

import ipaddress
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from polyroute.types import JSONObject

MAX_ENTRIES: Final = 1024
"""The most networks each list may hold."""

_Address = ipaddress.IPv4Address | ipaddress.IPv6Address
_Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class Verdict(StrEnum):
    """What the rules say about an address; the refusals' values are the error codes sent to the client."""

    ALLOWED = "allowed"
    BLOCKED = "ip_blocked"
    NOT_ALLOWED = "ip_not_allowed"


class InvalidIpRulesError(ValueError):
    """A list or an entry is not acceptable; ``param`` names it (``allow``, ``block[3]``)."""

    def __init__(self, message: str, *, param: str) -> None:
        super().__init__(message)
        self.param = param


@dataclass(frozen=True, slots=True)
class _NetworkSet:
    """Networks of one IP version as ``{shift: {network address >> shift}}``: membership in O(prefix lengths)."""

    by_shift: tuple[tuple[int, frozenset[int]], ...]

    @classmethod
    def of(cls, networks: Iterable[_Network], *, bits: int) -> _NetworkSet:
        grouped: defaultdict[int, set[int]] = defaultdict(set)
        for network in networks:
            shift = bits - network.prefixlen
            grouped[shift].add(int(network.network_address) >> shift)
        return cls(tuple((shift, frozenset(values)) for shift, values in sorted(grouped.items())))

    def __contains__(self, value: int) -> bool:
        return any((value >> shift) in values for shift, values in self.by_shift)

    def __bool__(self) -> bool:
        return bool(self.by_shift)


def parse_address(address: str | None) -> _Address | None:
    """``address`` as an IP address (an IPv4-mapped IPv6 one as its IPv4 address), or None if it is not one."""
    if not address:
        return None
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def _parse_list(name: str, entries: object) -> tuple[_Network, ...]:
    if entries is None:
        return ()
    if not isinstance(entries, list):
        raise InvalidIpRulesError(f"{name} must be a list of networks in CIDR notation", param=name)
    if len(entries) > MAX_ENTRIES:
        raise InvalidIpRulesError(f"{name} has {len(entries)} entries; at most {MAX_ENTRIES} are allowed", param=name)
    networks: dict[_Network, None] = {}
    for index, entry in enumerate(entries):
        param = f"{name}[{index}]"
        if not isinstance(entry, str):
            raise InvalidIpRulesError(f"{param} must be a string such as '10.0.0.0/8', not {entry!r}", param=param)
        try:
            network = ipaddress.ip_network(entry.strip(), strict=False)
        except ValueError:
            message = f"{param} is not an IP network: {entry!r} (expected CIDR such as 10.0.0.0/8 or 2001:db8::/32)"
            raise InvalidIpRulesError(message, param=param) from None
        networks[network] = None
    return tuple(networks)


def _split(networks: Sequence[_Network]) -> tuple[_NetworkSet, _NetworkSet]:
    v4 = [n for n in networks if isinstance(n, ipaddress.IPv4Network)]
    v6 = [n for n in networks if isinstance(n, ipaddress.IPv6Network)]
    return _NetworkSet.of(v4, bits=32), _NetworkSet.of(v6, bits=128)


@dataclass(frozen=True, slots=True, init=False)
class IpRules:
    """Parsed allow and block lists, ready to judge addresses."""

    allow: tuple[_Network, ...]
    block: tuple[_Network, ...]
    _allow: tuple[_NetworkSet, _NetworkSet]
    _block: tuple[_NetworkSet, _NetworkSet]

    def __init__(self, allow: Sequence[_Network] = (), block: Sequence[_Network] = ()) -> None:
        object.__setattr__(self, "allow", tuple(allow))
        object.__setattr__(self, "block", tuple(block))
        object.__setattr__(self, "_allow", _split(allow))
        object.__setattr__(self, "_block", _split(block))

    @classmethod
    def parse(cls, value: object) -> IpRules:
        """Rules from ``{"allow": [CIDR...], "block": [CIDR...]}`` (a missing list is empty; duplicates are dropped).

        Raises:
            InvalidIpRulesError: not an object, an unknown field, a list too long, or an entry that is not a network.
        """
        if not isinstance(value, dict):
            raise InvalidIpRulesError("expected an object with the lists 'allow' and 'block'", param="body")
        for name in value:
            if name not in ("allow", "block"):
                raise InvalidIpRulesError(f"unknown field {name!r}; expected 'allow' and 'block'", param=str(name))
        return cls(_parse_list("allow", value.get("allow")), _parse_list("block", value.get("block")))

    @property
    def is_empty(self) -> bool:
        """Whether both lists are empty (every address is allowed)."""
        return not self.allow and not self.block

    def verdict(self, address: str | None) -> Verdict:
        """What the rules say about a client at ``address`` (None or unparseable: in no network)."""
        ip = parse_address(address)
        if ip is not None and self.block and int(ip) in self._block[ip.version == 6]:
            return Verdict.BLOCKED
        if self.allow and (ip is None or int(ip) not in self._allow[ip.version == 6]):
            return Verdict.NOT_ALLOWED
        return Verdict.ALLOWED

    def blocking_entry(self, address: str | None) -> int | None:
        """The index of the first block entry that covers ``address``, if any."""
        ip = parse_address(address)
        if ip is None:
            return None
        return next((i for i, network in enumerate(self.block) if ip in network), None)

    def to_json(self) -> JSONObject:
        """The rules as stored and shown: networks in normalised CIDR text."""
        return {"allow": [str(n) for n in self.allow], "block": [str(n) for n in self.block]}
