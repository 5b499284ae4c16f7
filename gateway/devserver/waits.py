"""When a WAIT task ends: `duration` and `until` as Conductor reads them (mapper/WaitTaskMapper,
core/utils/DateTimeUtils).

`duration`: days, hours, minutes, seconds in that order, each optional, case-insensitive, with
optional spaces: "30s", "2 minutes", "1h 30m", "1 day", "10m20s". The dev server also takes
"<n>ms" (not Conductor's: handy for tests). `until`: "yyyy-MM-dd HH:mm", "yyyy-MM-dd HH:mm z"
("2026-12-24 12:00 GMT+00:00") or "yyyy-MM-dd", local time without a zone, as the real
server's JVM zone would be.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_DURATION = re.compile(
    r"\s*(?:(\d+)\s*(?:days?|d))?"
    r"\s*(?:(\d+)\s*(?:hours?|hrs?|h))?"
    r"\s*(?:(\d+)\s*(?:minutes?|mins?|m))?"
    r"\s*(?:(\d+)\s*(?:seconds?|secs?|s))?\s*",
    re.IGNORECASE,
)
_MILLIS = re.compile(r"\s*(\d+)\s*ms\s*", re.IGNORECASE)
_UNTIL = re.compile(r"(\d{4})-(\d{2})-(\d{2})(?: (\d{2}):(\d{2})(?: (\S+))?)?")
_OFFSET = re.compile(r"(?:GMT|UTC)([+-])(\d{1,2}):?(\d{2})?")


class WaitError(ValueError):
    """A WAIT input Conductor refuses; the task ends FAILED_WITH_TERMINAL_ERROR."""


def duration_ms(text: str) -> int:
    millis = _MILLIS.fullmatch(text)
    if millis is not None:
        return int(millis.group(1))
    match = _DURATION.fullmatch(text)
    if match is None:
        raise WaitError(f"Not valid duration: {text}")
    days, hours, minutes, seconds = (int(g) if g else 0 for g in match.groups())
    return ((days * 24 + hours) * 60 + minutes) * 60_000 + seconds * 1000


def until_ms(text: str) -> int:
    match = _UNTIL.fullmatch(text.strip())
    zone = _zone(match.group(6)) if match and match.group(6) else None
    if match is None or (match.group(6) and zone is None):
        raise WaitError(f"Invalid/Unsupported Wait Until format.  Provided: {text}")
    year, month, day, hour, minute = (int(g) if g else 0 for g in match.groups()[:5])
    try:
        moment = datetime(year, month, day, hour, minute, tzinfo=zone)
    except ValueError:
        raise WaitError(f"Invalid/Unsupported Wait Until format.  Provided: {text}") from None
    if zone is None:
        moment = moment.astimezone()  # the local zone, as the JVM's default zone
    return int(moment.timestamp() * 1000)


def _zone(name: str) -> timezone | ZoneInfo | None:
    offset = _OFFSET.fullmatch(name)
    if offset is not None:
        sign = -1 if offset.group(1) == "-" else 1
        delta = timedelta(hours=int(offset.group(2)), minutes=int(offset.group(3) or 0))
        return timezone(sign * delta)
    if name.upper() in ("GMT", "UTC", "Z"):
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def wait_until(input_data: dict[str, Any], now_ms: int) -> int | None:
    """The epoch ms at which the WAIT ends, or None for a WAIT that only a signal or an
    update ends. WaitError for what Conductor refuses."""
    duration = str(input_data.get("duration") or "").strip()
    until = str(input_data.get("until") or "").strip()
    if duration and until:
        raise WaitError("Both 'duration' and 'until' specified. Please provide only one input")
    if duration:
        return now_ms + duration_ms(duration)
    if until:
        return max(now_ms, until_ms(until))  # a past time ends it at once
    return None
