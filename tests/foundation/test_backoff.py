"""gateway.backoff: the one capped exponential backoff, and the retry policy built on it."""

from __future__ import annotations

from gateway.backoff import capped, jittered
from gateway.plan import RetryPolicy


def test_capped_doubles_from_initial_and_stops_at_the_cap() -> None:
    ceilings = [capped(n, initial=0.5, cap=3.0) for n in range(5)]
    assert ceilings == [0.5, 1.0, 2.0, 3.0, 3.0]
    assert capped(3, initial=1.0, cap=100.0, multiplier=3.0) == 27.0


def test_capped_of_a_very_late_attempt_is_the_cap_not_an_overflow() -> None:
    assert capped(5_000, initial=0.1, cap=30.0) == 30.0


def test_jitter_stays_inside_its_share_of_the_ceiling() -> None:
    full = [jittered(8.0) for _ in range(500)]
    assert all(0.0 <= d <= 8.0 for d in full) and min(full) < 4.0 < max(full)
    quarter = [jittered(8.0, jitter=0.25) for _ in range(500)]
    assert all(6.0 <= d <= 8.0 for d in quarter)
    assert jittered(8.0, jitter=0.0) == 8.0


def test_retry_policy_delay_is_full_jitter_under_its_1_based_backoff() -> None:
    policy = RetryPolicy(initial_backoff=0.5, max_backoff=4.0, multiplier=2.0)
    assert [policy.backoff(n) for n in (1, 2, 3, 4, 5)] == [0.5, 1.0, 2.0, 4.0, 4.0]
    assert all(0.0 <= policy.delay(3) <= 2.0 for _ in range(200))
