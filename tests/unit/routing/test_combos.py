"""Combo member ordering per strategy, and cycle finding over combo graphs."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from types import MappingProxyType

import pytest
from hypothesis import given
from hypothesis import strategies as st

from polyroute.routing.combos import Combo, ComboOrder, FallbackScope, Strategy, find_cycle
from polyroute.routing.config import ComboConfig

MODELS = ("a/one", "b/two", "c/three", "d/four")


@dataclass
class FakeSignals:
    busy: dict[str, int] = field(default_factory=dict)
    ttft_ms: dict[str, float] = field(default_factory=dict)
    prices: dict[str, float] = field(default_factory=dict)
    asked: list[str] = field(default_factory=list)

    def in_flight(self, label: str) -> int:
        self.asked.append(label)
        return self.busy.get(label, 0)

    def ewma_ttft_ms(self, label: str) -> float | None:
        self.asked.append(label)
        return self.ttft_ms.get(label)

    def price_per_million(self, label: str) -> float | None:
        self.asked.append(label)
        return self.prices.get(label)


@dataclass(frozen=True)
class Member:
    """A resolved member, as a caller would pass it: something with a name inside."""

    name: str


def combo(strategy: Strategy, models: Sequence[str] = MODELS, weights: Mapping[str, float] | None = None) -> Combo:
    return Combo(name=f"{strategy}-combo", strategy=strategy, models=tuple(models), weights=weights or {})


def names(strategy: Strategy, signals: FakeSignals | None = None, *, order: ComboOrder | None = None) -> list[str]:
    """The order of ``MODELS`` (labelled by themselves) under ``strategy``."""
    chosen = combo(strategy)
    return (order or ComboOrder(random.Random(0))).order(chosen, chosen.models, str, signals or FakeSignals())


# Combo


def test_combo_from_config_copies_every_field() -> None:
    config = ComboConfig(
        strategy=Strategy.HEDGED,
        models=["x/1", "y/2"],
        weights={"x/1": 2.0},
        max_attempts=3,
        hedge_delay_ms=150.0,
        fallback_scope=FallbackScope.ANY,
    )

    built = Combo.from_config("duo", config)

    assert built == Combo(
        name="duo",
        strategy=Strategy.HEDGED,
        models=("x/1", "y/2"),
        weights={"x/1": 2.0},
        max_attempts=3,
        hedge_delay_ms=150.0,
        fallback_scope=FallbackScope.ANY,
    )
    assert isinstance(built.weights, MappingProxyType)


def test_combo_from_config_without_weights_has_empty_weights() -> None:
    built = Combo.from_config("solo", ComboConfig(models=["x/1"]))

    assert dict(built.weights) == {}
    assert (built.strategy, built.max_attempts, built.hedge_delay_ms, built.fallback_scope) == (
        Strategy.PRIORITY,
        None,
        None,
        None,
    )


# Strategies that keep or rotate the configured order


@pytest.mark.parametrize("strategy", [Strategy.PRIORITY, Strategy.HEDGED], ids=str)
def test_order_priority_and_hedged_keep_configured_order(strategy: Strategy) -> None:
    order = ComboOrder()
    for _ in range(3):
        assert names(strategy, order=order) == list(MODELS)


def test_order_returns_a_new_list_each_time() -> None:
    chosen = combo(Strategy.PRIORITY)
    members = list(chosen.models)

    result = ComboOrder().order(chosen, members, str, FakeSignals())

    assert result == members
    assert result is not members


def test_order_round_robin_rotates_start_on_every_call() -> None:
    order = ComboOrder()

    starts = [names(Strategy.ROUND_ROBIN, order=order) for _ in range(5)]

    assert starts == [
        ["a/one", "b/two", "c/three", "d/four"],
        ["b/two", "c/three", "d/four", "a/one"],
        ["c/three", "d/four", "a/one", "b/two"],
        ["d/four", "a/one", "b/two", "c/three"],
        ["a/one", "b/two", "c/three", "d/four"],
    ]


def test_order_round_robin_counts_per_combo() -> None:
    order = ComboOrder()
    first = Combo(name="first", strategy=Strategy.ROUND_ROBIN, models=("x", "y", "z"))
    second = Combo(name="second", strategy=Strategy.ROUND_ROBIN, models=("p", "q"))
    signals = FakeSignals()

    assert order.order(first, first.models, str, signals) == ["x", "y", "z"]
    assert order.order(first, first.models, str, signals) == ["y", "z", "x"]
    assert order.order(second, second.models, str, signals) == ["p", "q"]
    assert order.order(first, first.models, str, signals) == ["z", "x", "y"]
    assert order.order(second, second.models, str, signals) == ["q", "p"]


def test_order_round_robin_spreads_evenly_when_a_member_did_not_resolve() -> None:
    order = ComboOrder()
    chosen = combo(Strategy.ROUND_ROBIN, models=("x", "y", "z"))

    firsts = Counter(order.order(chosen, ("x", "z"), str, FakeSignals())[0] for _ in range(10))

    assert firsts == {"x": 5, "z": 5}


@pytest.mark.parametrize("strategy", list(Strategy), ids=str)
def test_order_handles_no_members_and_one_member(strategy: Strategy) -> None:
    chosen = combo(strategy, models=("only",))
    order = ComboOrder(random.Random(1))

    assert order.order(chosen, (), str, FakeSignals()) == []
    assert order.order(chosen, (Member("only"),), lambda m: m.name, FakeSignals()) == [Member("only")]


# Random strategies


def test_order_random_is_a_permutation_and_varies() -> None:
    order = ComboOrder(random.Random(7))

    seen = {tuple(names(Strategy.RANDOM, order=order)) for _ in range(200)}

    assert all(sorted(result) == sorted(MODELS) for result in seen)
    assert len(seen) > 12  # of the 24 permutations


def test_order_random_does_not_touch_the_callers_sequence() -> None:
    chosen = combo(Strategy.RANDOM)
    members = list(MODELS)

    ComboOrder(random.Random(3)).order(chosen, members, str, FakeSignals())

    assert members == list(MODELS)


def test_order_weighted_first_pick_follows_weights() -> None:
    order = ComboOrder(random.Random(20240601))
    chosen = combo(Strategy.WEIGHTED, models=("heavy", "light"), weights={"heavy": 3.0, "light": 1.0})

    firsts = Counter(order.order(chosen, chosen.models, str, FakeSignals())[0] for _ in range(4000))

    assert firsts["heavy"] / 4000 == pytest.approx(0.75, abs=0.05)


def test_order_weighted_missing_weight_counts_as_one() -> None:
    order = ComboOrder(random.Random(99))
    chosen = combo(Strategy.WEIGHTED, models=("weighed", "default"), weights={"weighed": 4.0})

    firsts = Counter(order.order(chosen, chosen.models, str, FakeSignals())[0] for _ in range(4000))

    assert firsts["weighed"] / 4000 == pytest.approx(0.8, abs=0.05)


def test_order_weighted_later_positions_sample_among_the_rest() -> None:
    """With weights 6:3:1, the second place goes to ``b`` with P = 0.6*3/4 + 0.1*3/9 ≈ 0.483."""
    order = ComboOrder(random.Random(5))
    chosen = combo(Strategy.WEIGHTED, models=("a", "b", "c"), weights={"a": 6.0, "b": 3.0, "c": 1.0})

    results = [order.order(chosen, chosen.models, str, FakeSignals()) for _ in range(6000)]

    assert all(sorted(result) == ["a", "b", "c"] for result in results)
    seconds = Counter(result[1] for result in results)
    assert seconds["b"] / 6000 == pytest.approx(0.6 * 3 / 4 + 0.1 * 3 / 9, abs=0.04)
    assert Counter(result[2] for result in results)["c"] / 6000 == pytest.approx(0.6 * 3 / 4 + 0.3 * 6 / 7, abs=0.04)


def test_order_weighted_uses_the_label_of_each_member() -> None:
    order = ComboOrder(random.Random(11))
    chosen = combo(Strategy.WEIGHTED, models=("big", "small"), weights={"big": 1000.0, "small": 0.001})
    members = (Member("small"), Member("big"))

    firsts = Counter(order.order(chosen, members, lambda m: m.name, FakeSignals())[0].name for _ in range(200))

    assert firsts["big"] >= 199


def test_order_same_seed_gives_same_orders() -> None:
    chosen = combo(Strategy.WEIGHTED, weights={"a/one": 2.0})
    first, second = ComboOrder(random.Random(42)), ComboOrder(random.Random(42))

    assert [first.order(chosen, MODELS, str, FakeSignals()) for _ in range(20)] == [
        second.order(chosen, MODELS, str, FakeSignals()) for _ in range(20)
    ]


# Signal-driven strategies


def test_order_least_busy_sorts_by_in_flight_and_keeps_ties_stable() -> None:
    signals = FakeSignals(busy={"a/one": 3, "b/two": 1, "c/three": 3, "d/four": 1})

    assert names(Strategy.LEAST_BUSY, signals) == ["b/two", "d/four", "a/one", "c/three"]


def test_order_least_busy_all_idle_keeps_configured_order() -> None:
    assert names(Strategy.LEAST_BUSY) == list(MODELS)


def test_order_least_latency_puts_unknown_after_known() -> None:
    signals = FakeSignals(ttft_ms={"b/two": 900.0, "d/four": 120.0})

    assert names(Strategy.LEAST_LATENCY, signals) == ["d/four", "b/two", "a/one", "c/three"]


def test_order_least_latency_ties_keep_configured_order() -> None:
    signals = FakeSignals(ttft_ms={"a/one": 50.0, "b/two": 10.0, "c/three": 50.0, "d/four": 10.0})

    assert names(Strategy.LEAST_LATENCY, signals) == ["b/two", "d/four", "a/one", "c/three"]


def test_order_least_latency_without_any_data_keeps_configured_order() -> None:
    assert names(Strategy.LEAST_LATENCY) == list(MODELS)


def test_order_least_latency_treats_nan_as_unknown() -> None:
    signals = FakeSignals(ttft_ms={"a/one": float("nan"), "c/three": 5.0})

    assert names(Strategy.LEAST_LATENCY, signals) == ["c/three", "a/one", "b/two", "d/four"]


def test_order_cheapest_sorts_by_price_with_unknown_last() -> None:
    signals = FakeSignals(prices={"a/one": 15.0, "b/two": 0.0, "d/four": 15.0})

    assert names(Strategy.CHEAPEST, signals) == ["b/two", "a/one", "d/four", "c/three"]


def test_order_cheapest_asks_each_member_once() -> None:
    signals = FakeSignals(prices={"a/one": 2.0})

    names(Strategy.CHEAPEST, signals)

    assert sorted(signals.asked) == sorted(MODELS)


def test_order_signals_are_asked_by_label() -> None:
    chosen = combo(Strategy.LEAST_BUSY, models=("x/fast", "y/slow"))
    members = (Member("y/slow"), Member("x/fast"))
    signals = FakeSignals(busy={"y/slow": 2})

    result = ComboOrder().order(chosen, members, lambda m: m.name, signals)

    assert result == [Member("x/fast"), Member("y/slow")]
    assert sorted(signals.asked) == ["x/fast", "y/slow"]


# find_cycle


@pytest.mark.parametrize(
    ("graph", "expected"),
    [
        ({}, None),
        ({"a": []}, None),
        ({"a": ["b"], "b": ["c"], "c": []}, None),
        ({"a": ["b", "c"], "b": ["d"], "c": ["d"], "d": []}, None),
        ({"a": ["x/model", "alias"]}, None),
        ({"a": ["a"]}, ["a", "a"]),
        ({"a": ["b"], "b": ["a"]}, ["a", "b", "a"]),
        ({"b": ["a"], "a": ["b"]}, ["b", "a", "b"]),
        ({"start": ["x"], "x": ["y"], "y": ["z"], "z": ["x"]}, ["x", "y", "z", "x"]),
        ({"a": ["b", "c"], "b": [], "c": ["d"], "d": ["c"]}, ["c", "d", "c"]),
        ({"a": [], "b": ["c"], "c": ["b"], "d": ["d"]}, ["b", "c", "b"]),
    ],
    ids=[
        "empty",
        "single",
        "chain",
        "diamond",
        "edges-leave-graph",
        "self-loop",
        "pair",
        "pair-other-order",
        "reached-from-outside",
        "after-a-dead-end",
        "first-of-two",
    ],
)
def test_find_cycle_known_graphs(graph: dict[str, list[str]], expected: list[str] | None) -> None:
    assert find_cycle(graph) == expected


def test_find_cycle_long_chain_does_not_recurse() -> None:
    graph = {f"n{i}": [f"n{i + 1}"] for i in range(5000)}
    assert find_cycle(graph) is None

    graph["n5000"] = ["n0"]
    cycle = find_cycle(graph)

    assert cycle is not None
    assert len(cycle) == 5002
    assert cycle[0] == cycle[-1] == "n0"


def _has_cycle(graph: Mapping[str, Sequence[str]]) -> bool:
    """Reference: recursive three-colour DFS."""
    state: dict[str, int] = {}

    def visit(node: str) -> bool:
        state[node] = 1
        for nxt in graph.get(node, ()):
            if state.get(nxt) == 1 or (state.get(nxt) is None and visit(nxt)):
                return True
        state[node] = 2
        return False

    return any(state.get(node) is None and visit(node) for node in graph)


NODES = st.sampled_from(["a", "b", "c", "d", "e", "f", "x/outside"])
GRAPHS = st.dictionaries(NODES.filter(lambda n: "/" not in n), st.lists(NODES, max_size=4), max_size=6)


@given(GRAPHS)
def test_find_cycle_agrees_with_reference_and_returns_real_cycles(graph: dict[str, list[str]]) -> None:
    cycle = find_cycle(graph)

    assert (cycle is None) == (not _has_cycle(graph))
    if cycle is not None:
        assert len(cycle) >= 2
        assert cycle[0] == cycle[-1]
        assert len(set(cycle[:-1])) == len(cycle) - 1
        assert all(after in graph[before] for before, after in pairwise(cycle))


@given(GRAPHS)
def test_find_cycle_is_deterministic(graph: dict[str, list[str]]) -> None:
    assert find_cycle(graph) == find_cycle(dict(graph))
