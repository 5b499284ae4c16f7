"""jq queries in a worker process, so a runaway one cannot stop the dev server.

The `jq` package holds the GIL while a query runs (measured: a 10 s query let the main thread
run once), so a thread does not help: `[repeat(1)]` would freeze the server for good. Queries
run in one worker process (started on first use) under a time limit and an address-space
limit; a query over its time is answered with a timeout and the worker is replaced.
"""

from __future__ import annotations

import atexit
import functools
import multiprocessing
import multiprocessing.pool
import resource
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import jq

TIME_LIMIT_SECONDS = 4.0  # as a script's (gateway/devserver/scripting.py)
MEMORY_LIMIT_BYTES = 1024 * 1024 * 1024

_WAITERS = ThreadPoolExecutor(max_workers=4, thread_name_prefix="devserver-jq")
_LOCK = threading.Lock()
_POOL: multiprocessing.pool.Pool | None = None


class JqFailure(Exception):
    """jq's own message, or the limit that stopped the query."""


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT_BYTES, MEMORY_LIMIT_BYTES))


@functools.lru_cache(maxsize=1000)  # as Conductor's queryCache: compile once per text
def _compiled(query: str) -> Any:
    return jq.compile(query)


def _run(query: str, data: Any) -> list[Any]:
    """In the worker: every value the query gives; ValueError carries jq's message."""
    results: list[Any] = _compiled(query).input_value(data).all()
    return results


def _pool() -> multiprocessing.pool.Pool:
    global _POOL
    with _LOCK:
        if _POOL is None:
            context = multiprocessing.get_context("spawn")
            _POOL = context.Pool(1, initializer=_limit_memory)
            # Ended before the interpreter tears its modules down: a pool left to its
            # finaliser at exit fails there ('NoneType' object has no attribute 'dumps').
            atexit.register(_reset)
        return _POOL


def _reset() -> None:
    global _POOL
    with _LOCK:
        pool, _POOL = _POOL, None
    if pool is not None:
        pool.terminate()


def _evaluate(query: str, data: Any) -> list[Any]:
    pending = _pool().apply_async(_run, (query, data))
    try:
        return pending.get(timeout=TIME_LIMIT_SECONDS)
    except multiprocessing.TimeoutError:
        _reset()
        shown = int(TIME_LIMIT_SECONDS)
        raise JqFailure(f"jq query not evaluated within {shown} seconds, interrupted.") from None
    except ValueError as exc:
        raise JqFailure(str(exc)) from None


def submit(query: str, data: Any) -> Future[list[Any]]:
    return _WAITERS.submit(_evaluate, query, data)
