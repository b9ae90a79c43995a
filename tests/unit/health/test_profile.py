"""ResilienceProfile: defaults, JSON round trip, partial updates and validation naming the field."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from polyroute.health import ResilienceProfile

DEFAULTS = {
    "cooldown_base_s": 1.0,
    "cooldown_max_s": 60.0,
    "broken_credential_s": 600.0,
    "failure_threshold": 5,
    "failure_rate": 0.5,
    "min_requests": 20,
    "window_s": 60.0,
    "open_s": 30.0,
    "max_open_s": 300.0,
    "probe_timeout_s": 30.0,
}


def test_profile_defaults_are_the_documented_ones() -> None:
    assert ResilienceProfile().to_json() == DEFAULTS


def test_profile_round_trips_through_json_text() -> None:
    profile = ResilienceProfile(open_s=5, max_open_s=50.5, failure_threshold=3, failure_rate=1)
    assert ResilienceProfile.from_json(json.loads(json.dumps(profile.to_json()))) == profile


@given(
    base=st.floats(0.001, 100),
    extra=st.floats(0, 1000),
    threshold=st.integers(1, 1000),
    rate=st.floats(0.001, 1),
)
def test_profile_round_trip_property(base: float, extra: float, threshold: int, rate: float) -> None:
    profile = ResilienceProfile(
        cooldown_base_s=base, cooldown_max_s=base + extra, failure_threshold=threshold, failure_rate=rate
    )
    assert ResilienceProfile.from_json(json.loads(json.dumps(profile.to_json()))) == profile


def test_profile_from_json_keeps_omitted_fields_of_the_base() -> None:
    base = ResilienceProfile(open_s=10)
    updated = ResilienceProfile.from_json({"failure_threshold": 2}, base=base)
    assert (updated.open_s, updated.failure_threshold) == (10.0, 2)
    assert ResilienceProfile.from_json({}) == ResilienceProfile()


def test_profile_integers_become_floats_for_seconds() -> None:
    profile = ResilienceProfile.from_json({"open_s": 7})
    assert isinstance(profile.open_s, float)
    assert profile.to_json()["open_s"] == 7.0


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"open_s": "30"}, "open_s"),
        ({"open_s": True}, "open_s"),
        ({"open_s": None}, "open_s"),
        ({"open_s": 0}, "open_s"),
        ({"open_s": -1}, "open_s"),
        ({"window_s": float("inf")}, "window_s"),
        ({"probe_timeout_s": float("nan")}, "probe_timeout_s"),
        ({"failure_threshold": 2.5}, "failure_threshold"),
        ({"failure_threshold": 0}, "failure_threshold"),
        ({"failure_threshold": True}, "failure_threshold"),
        ({"min_requests": "20"}, "min_requests"),
        ({"failure_rate": 0}, "failure_rate"),
        ({"failure_rate": 1.5}, "failure_rate"),
        ({"broken_credential_s": -5}, "broken_credential_s"),
        ({"cooldown_base_s": 10, "cooldown_max_s": 5}, "cooldown_max_s"),
        ({"open_s": 400}, "max_open_s"),
        ({"colldown_s": 1}, "colldown_s"),
    ],
)
def test_profile_from_json_rejects_and_names_the_field(data: dict[str, object], field: str) -> None:
    with pytest.raises(ValueError, match=f"^{field}: "):
        ResilienceProfile.from_json(data)


@pytest.mark.parametrize("data", [[], "x", None, 3])
def test_profile_from_json_rejects_non_objects(data: object) -> None:
    with pytest.raises(ValueError, match="JSON object"):
        ResilienceProfile.from_json(data)


def test_profile_constructor_validates_too() -> None:
    with pytest.raises(ValueError, match="^failure_rate: "):
        ResilienceProfile(failure_rate=2)


def test_broken_credential_s_may_be_zero() -> None:
    assert ResilienceProfile.from_json({"broken_credential_s": 0}).broken_credential_s == 0.0
