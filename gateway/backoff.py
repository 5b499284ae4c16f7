"""Capped exponential backoff with jitter: the one formula the gateway's retry loops share.

Full jitter (a delay drawn from zero up to the capped exponential) keeps clients that failed
together from retrying together. A poller that wants most of its interval kept (the completion
tracker) asks for less jitter instead of writing its own formula.
"""

from __future__ import annotations

import random


def capped(attempt: int, *, initial: float, cap: float, multiplier: float = 2.0) -> float:
    """`initial * multiplier ** attempt`, at most `cap`; `attempt` counts from 0."""
    try:
        return float(min(cap, initial * multiplier ** max(attempt, 0)))
    except OverflowError:  # a float power past 1e308: long past any cap
        return float(cap)


def jittered(ceiling: float, jitter: float = 1.0) -> float:
    """A delay drawn uniformly from [(1 - jitter) * ceiling, ceiling]: `jitter=1` is full
    jitter, `jitter=0` none. `ceiling` is usually `capped(...)`."""
    return random.uniform((1.0 - jitter) * ceiling, ceiling)
