"""Durations the way people write them: 15m, 4h, 7d, 1h30m, 90s, 250ms."""

import functools
import re
from datetime import timedelta

_UNITS = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1, "ms": 0.001}
_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|[wdhms])")


def parse_duration(text: str) -> timedelta:
    """Parse '15m', '4h', '1h30m', '7d'; raise ValueError with a readable message."""
    compact = (text or "").strip().lower().replace(" ", "")
    if not compact or _PART.sub("", compact):
        raise ValueError(f"{text!r} is not a duration; write it like 15m, 4h, 1h30m or 7d")
    seconds = sum(float(n) * _UNITS[u] for n, u in _PART.findall(compact))
    return timedelta(seconds=seconds)


def format_duration(value: timedelta | float | int | None) -> str:
    """Format as the largest units that fit: 1h30m, 7d, 45s, 9ms; '—' for None."""
    if value is None:
        return "—"
    seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
    if seconds >= 60:  # the common case (ages, targets): whole seconds, memoised
        return _whole_seconds(int(round(seconds)))
    if seconds < 0:
        return "-" + format_duration(-seconds)
    if seconds < 0.9995:  # a small restore test takes milliseconds: "0.0s" would hide it
        if seconds == 0:
            return "0s"
        return f"{seconds * 1000:.0f}ms" if seconds >= 0.0005 else "<1ms"
    return f"{seconds:.1f}s" if seconds < 10 and seconds != int(seconds) else f"{int(seconds)}s"


@functools.lru_cache(maxsize=4096)
def _whole_seconds(remaining: int) -> str:
    """The two largest units of a duration of a minute or more (the dashboard formats
    ~10,000 a render at 500 sources, most of them repeats)."""
    parts = []
    for unit in ("d", "h", "m", "s"):
        count, remaining = divmod(remaining, _UNITS[unit])
        if count:
            parts.append(f"{count}{unit}")
        if len(parts) == 2:
            break
    return "".join(parts)
