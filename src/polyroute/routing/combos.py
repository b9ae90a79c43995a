"""Combos: one requested name standing for several models, and the order one request tries them in.

Pure: ``ComboOrder`` keeps only its round-robin counters and its random source; what it knows about
the members (requests in flight, latency, price) comes in through ``Signals``. This module imports
nothing from ``routing.config`` (which imports it), so it can also check combos changed at run time.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Protocol, TypeVar

T = TypeVar("T")


class Strategy(StrEnum):
    """How a combo orders its members for each request (see ``ComboOrder.order``)."""

    PRIORITY = "priority"
    ROUND_ROBIN = "round-robin"
    WEIGHTED = "weighted"
    RANDOM = "random"
    LEAST_BUSY = "least-busy"
    LEAST_LATENCY = "least-latency"
    CHEAPEST = "cheapest"
    HEDGED = "hedged"


class FallbackScope(StrEnum):
    """How far a failed request may look for another model to try."""

    SAME_MODEL = "same_model"
    """The configured fallbacks, then the same model on other providers (the default)."""
    CONFIGURED = "configured"
    """Only what the routing file names: the configured fallbacks, the combo's members."""
    ANY = "any"
    """After those, every other model of the same type."""


class Signals(Protocol):
    """What the ordering strategies know about a member, by its label (``provider/model``, alias or combo)."""

    def in_flight(self, label: str) -> int: ...

    def ewma_ttft_ms(self, label: str) -> float | None: ...

    def price_per_million(self, label: str) -> float | None: ...


class ComboSpec(Protocol):
    """The fields a combo is built from (``routing.config.ComboConfig`` has them)."""

    @property
    def strategy(self) -> Strategy: ...

    @property
    def models(self) -> Sequence[str]: ...

    @property
    def weights(self) -> Mapping[str, float] | None: ...

    @property
    def max_attempts(self) -> int | None: ...

    @property
    def hedge_delay_ms(self) -> float | None: ...

    @property
    def fallback_scope(self) -> FallbackScope | None: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class Combo:
    """A named, ordered group of models that one request name stands for."""

    name: str
    strategy: Strategy = Strategy.PRIORITY
    models: tuple[str, ...]
    """Members as written: aliases, ``provider/model`` names or other combos, in configured order."""
    weights: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))
    """Per member name, for ``weighted``; a member without one weighs 1.0. Every weight is > 0."""
    max_attempts: int | None = None
    hedge_delay_ms: float | None = None
    fallback_scope: FallbackScope | None = None

    @classmethod
    def from_config(cls, name: str, config: ComboSpec) -> Combo:
        """The combo a routing-file entry describes."""
        return cls(
            name=name,
            strategy=config.strategy,
            models=tuple(config.models),
            weights=MappingProxyType(dict(config.weights or {})),
            max_attempts=config.max_attempts,
            hedge_delay_ms=config.hedge_delay_ms,
            fallback_scope=config.fallback_scope,
        )


class ComboOrder:
    """Per-worker state (round-robin counters, a random source) deciding each request's member order."""

    __slots__ = ("_rng", "_turns")

    def __init__(self, rng: random.Random | None = None) -> None:
        self._rng = rng if rng is not None else random.Random()
        self._turns: dict[str, int] = {}

    def order(self, combo: Combo, members: Sequence[T], label: Callable[[T], str], signals: Signals) -> list[T]:
        """The order to try ``members`` in for one request.

        ``members`` are the combo's resolved members in configured order (fewer when some did not resolve);
        ``label`` names each the way ``combo.models`` and ``signals`` do.

        - ``priority``, ``hedged``: as configured.
        - ``round-robin``: rotated; the start moves one further on every call for the same combo name.
        - ``weighted``: weighted sampling without replacement: the first is picked with probability
          ``w / sum(w)``, the next likewise among the rest (a member without a weight weighs 1.0).
        - ``random``: shuffled.
        - ``least-busy``: fewest requests in flight first.
        - ``least-latency``: lowest EWMA time to first token first; members without data after every
          member with data (so when none has data, the configured order stands).
        - ``cheapest``: lowest price first; members with an unknown price last.

        The sorts are stable: ties keep the configured order.
        """
        match combo.strategy:
            case Strategy.ROUND_ROBIN:
                return self._rotated(combo.name, members)
            case Strategy.WEIGHTED:
                return self._weighted(combo.weights, members, label)
            case Strategy.RANDOM:
                shuffled = list(members)
                self._rng.shuffle(shuffled)
                return shuffled
            case Strategy.LEAST_BUSY:
                return sorted(members, key=lambda member: signals.in_flight(label(member)))
            case Strategy.LEAST_LATENCY:
                return sorted(members, key=lambda member: _known_first(signals.ewma_ttft_ms(label(member))))
            case Strategy.CHEAPEST:
                return sorted(members, key=lambda member: _known_first(signals.price_per_million(label(member))))
            case _:
                return list(members)

    def _rotated(self, name: str, members: Sequence[T]) -> list[T]:
        turn = self._turns.get(name, 0)
        self._turns[name] = turn + 1
        count = len(members)
        if count < 2:
            return list(members)
        start = turn % count
        return [members[(start + offset) % count] for offset in range(count)]

    def _weighted(self, weights: Mapping[str, float], members: Sequence[T], label: Callable[[T], str]) -> list[T]:
        if len(members) < 2:
            return list(members)
        # Exponential races: the smallest of independent Exp(w_i) draws is member i with probability
        # w_i / sum(w), and by memorylessness the rest follow likewise (sequential sampling without replacement).
        draw = self._rng.expovariate
        return sorted(members, key=lambda member: draw(weights.get(label(member), 1.0)))


def _known_first(value: float | None) -> float:
    return math.inf if value is None or math.isnan(value) else value


def find_cycle(graph: Mapping[str, Sequence[str]]) -> list[str] | None:
    """The first cycle met walking ``graph`` depth-first in insertion order, or None when it has none.

    The cycle comes back as a path that ends where it starts: ``{"a": ["b"], "b": ["a"]}`` gives
    ``["a", "b", "a"]``, a node naming itself ``["a", "a"]``. Names that are not keys have no edges.
    """
    finished: set[str] = set()
    for root in graph:
        if root in finished:
            continue
        path = [root]
        depth = {root: 0}
        pending = [iter(graph[root])]
        while pending:
            step = next(pending[-1], None)
            if step is None:
                pending.pop()
                node = path.pop()
                del depth[node]
                finished.add(node)
            elif step in depth:
                return [*path[depth[step] :], step]
            elif step in graph and step not in finished:
                depth[step] = len(path)
                path.append(step)
                pending.append(iter(graph[step]))
    return None
