"""``Telemetry``: in-flight counts, TTFT EWMA and p95, success rate over time buckets, the label bound."""

from __future__ import annotations

import pytest

from polyroute.routing.telemetry import BUCKET_S, BUCKETS, MAX_LABELS, P95_EVERY, Telemetry

LABEL = "openai/gpt-4o"


class FakeClock:
    """Monotonic seconds that move only when a test says so."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def telemetry(clock: FakeClock) -> Telemetry:
    return Telemetry(alpha=0.5, samples=100, clock=clock)


def test_in_flight_counts_started_minus_finished(telemetry: Telemetry) -> None:
    for _ in range(3):
        telemetry.started(LABEL)
    telemetry.started("anthropic/claude")
    telemetry.finished(LABEL, ttft_ms=None, ok=True)
    assert telemetry.in_flight(LABEL) == 2
    assert telemetry.in_flight("anthropic/claude") == 1


def test_in_flight_never_goes_negative(telemetry: Telemetry) -> None:
    telemetry.finished(LABEL, ttft_ms=None, ok=True)
    telemetry.finished(LABEL, ttft_ms=None, ok=False)
    assert telemetry.in_flight(LABEL) == 0
    telemetry.started(LABEL)
    assert telemetry.in_flight(LABEL) == 1


def test_unknown_label_reads_are_empty_and_track_nothing(telemetry: Telemetry) -> None:
    assert telemetry.in_flight("nobody/none") == 0
    assert telemetry.ewma_ttft_ms("nobody/none") is None
    assert telemetry.p95_ttft_ms("nobody/none") is None
    assert telemetry.success_rate("nobody/none") is None
    assert telemetry._labels == {}


def test_ewma_starts_at_the_first_ttft_then_moves_by_alpha(telemetry: Telemetry) -> None:
    telemetry.finished(LABEL, ttft_ms=100.0, ok=True)
    assert telemetry.ewma_ttft_ms(LABEL) == 100.0
    telemetry.finished(LABEL, ttft_ms=200.0, ok=True)
    assert telemetry.ewma_ttft_ms(LABEL) == 150.0  # 100 + 0.5 * (200 - 100)
    telemetry.finished(LABEL, ttft_ms=50.0, ok=True)
    assert telemetry.ewma_ttft_ms(LABEL) == 100.0  # 150 + 0.5 * (50 - 150)


def test_ewma_with_default_alpha(clock: FakeClock) -> None:
    telemetry = Telemetry(clock=clock)
    for ttft in (100.0, 200.0, 200.0):
        telemetry.finished(LABEL, ttft_ms=ttft, ok=True)
    # 100 → 100 + 0.2 * 100 = 120 → 120 + 0.2 * 80 = 136
    assert telemetry.ewma_ttft_ms(LABEL) == pytest.approx(136.0)


def test_failed_requests_and_missing_ttfts_do_not_feed_ttft(telemetry: Telemetry) -> None:
    telemetry.finished(LABEL, ttft_ms=5000.0, ok=False)
    telemetry.finished(LABEL, ttft_ms=None, ok=True)
    assert telemetry.ewma_ttft_ms(LABEL) is None
    assert telemetry.p95_ttft_ms(LABEL) is None
    telemetry.finished(LABEL, ttft_ms=80.0, ok=True)
    assert telemetry.ewma_ttft_ms(LABEL) == 80.0
    assert telemetry.p95_ttft_ms(LABEL) == 80.0


def test_p95_is_nearest_rank_over_the_ring(telemetry: Telemetry) -> None:
    for ttft in range(100, 0, -1):  # 100 samples, 1..100 ms, in reverse order
        telemetry.finished(LABEL, ttft_ms=float(ttft), ok=True)
    assert telemetry.p95_ttft_ms(LABEL) == 95.0


def test_p95_covers_only_the_last_samples(clock: FakeClock) -> None:
    telemetry = Telemetry(samples=20, clock=clock)
    for _ in range(20):
        telemetry.finished(LABEL, ttft_ms=1000.0, ok=True)
    assert telemetry.p95_ttft_ms(LABEL) == 1000.0
    for ttft in range(1, 21):  # overwrites the whole ring with 1..20
        telemetry.finished(LABEL, ttft_ms=float(ttft), ok=True)
    assert telemetry.p95_ttft_ms(LABEL) == 19.0  # ceil(0.95 * 20) = 19th smallest
    assert sorted(telemetry._labels[LABEL].ttfts) == [float(n) for n in range(1, 21)]


def test_p95_is_cached_until_enough_new_samples(telemetry: Telemetry) -> None:
    telemetry.finished(LABEL, ttft_ms=10.0, ok=True)
    assert telemetry.p95_ttft_ms(LABEL) == 10.0
    for _ in range(P95_EVERY - 1):
        telemetry.finished(LABEL, ttft_ms=500.0, ok=True)
        assert telemetry.p95_ttft_ms(LABEL) == 10.0  # stale on purpose: fewer than 16 new samples
    telemetry.finished(LABEL, ttft_ms=500.0, ok=True)
    assert telemetry.p95_ttft_ms(LABEL) == 500.0  # the 16th new sample triggers a recomputation
    for _ in range(P95_EVERY - 1):
        telemetry.finished(LABEL, ttft_ms=1.0, ok=True)
    assert telemetry.p95_ttft_ms(LABEL) == 500.0


def test_p95_cache_counts_samples_not_reads(telemetry: Telemetry) -> None:
    telemetry.finished(LABEL, ttft_ms=10.0, ok=True)
    assert telemetry.p95_ttft_ms(LABEL) == 10.0
    for _ in range(3 * P95_EVERY):
        telemetry.finished(LABEL, ttft_ms=700.0, ok=True)
    # Many samples arrived unread: the first read afterwards recomputes over all of them.
    assert telemetry.p95_ttft_ms(LABEL) == 700.0


def test_success_rate_needs_five_requests(telemetry: Telemetry) -> None:
    for _ in range(4):
        telemetry.finished(LABEL, ttft_ms=None, ok=True)
    assert telemetry.success_rate(LABEL) is None
    telemetry.finished(LABEL, ttft_ms=None, ok=False)
    assert telemetry.success_rate(LABEL) == 0.8


def test_success_rate_spans_buckets_and_forgets_old_ones(telemetry: Telemetry, clock: FakeClock) -> None:
    for _ in range(5):
        telemetry.finished(LABEL, ttft_ms=None, ok=False)
    clock.now += 100.0
    for _ in range(5):
        telemetry.finished(LABEL, ttft_ms=None, ok=True)
    assert telemetry.success_rate(LABEL) == 0.5
    clock.now += BUCKETS * BUCKET_S - 100.0  # the failures' bucket is now 30 buckets old
    assert telemetry.success_rate(LABEL) == 1.0
    clock.now += 100.0
    assert telemetry.success_rate(LABEL) is None


def test_success_rate_window_edge_is_the_bucket_boundary(clock: FakeClock) -> None:
    clock.now = 0.0
    telemetry = Telemetry(clock=clock)
    for _ in range(5):
        telemetry.finished(LABEL, ttft_ms=None, ok=True)
    clock.now = BUCKETS * BUCKET_S - 0.001  # still in the 30th bucket counting the first
    assert telemetry.success_rate(LABEL) == 1.0
    clock.now = BUCKETS * BUCKET_S
    assert telemetry.success_rate(LABEL) is None


def test_success_rate_slot_reuse_resets_old_counts(telemetry: Telemetry, clock: FakeClock) -> None:
    for _ in range(5):
        telemetry.finished(LABEL, ttft_ms=None, ok=False)
    clock.now += BUCKETS * BUCKET_S  # same slot of the ring, a new bucket
    for _ in range(5):
        telemetry.finished(LABEL, ttft_ms=None, ok=True)
    assert telemetry.success_rate(LABEL) == 1.0


def test_labels_beyond_the_bound_are_not_tracked(clock: FakeClock) -> None:
    telemetry = Telemetry(clock=clock, max_labels=2)
    for label in ("a/1", "b/2", "c/3"):
        telemetry.started(label)
        telemetry.finished(label, ttft_ms=10.0, ok=True)
        telemetry.started(label)
    assert [telemetry.in_flight(label) for label in ("a/1", "b/2", "c/3")] == [1, 1, 0]
    assert telemetry.ewma_ttft_ms("c/3") is None
    assert sorted(telemetry._labels) == ["a/1", "b/2"]


def test_default_label_bound_is_ten_thousand(clock: FakeClock) -> None:
    telemetry = Telemetry(clock=clock)
    for n in range(MAX_LABELS + 50):
        telemetry.started(f"p/m{n}")
    assert len(telemetry._labels) == MAX_LABELS == 10_000
    assert telemetry.in_flight(f"p/m{MAX_LABELS}") == 0


@pytest.mark.parametrize("kwargs", [{"alpha": 0.0}, {"alpha": 1.5}, {"samples": 0}, {"max_labels": -1}])
def test_out_of_range_settings_raise_value_error(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        Telemetry(**kwargs)  # type: ignore[arg-type]
