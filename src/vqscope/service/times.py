"""Times in requests and commands: ISO 8601, epoch seconds, or a look-back like 90m, 24h, 7d."""

from __future__ import annotations

import re
from datetime import datetime, timezone

_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_time(text: str | None, now: float) -> float | None:
    """Epoch seconds of `text` (UTC where ISO 8601 gives no zone; a look-back counts back from
    `now`), None for no text; ValueError with one readable line for anything else."""
    if text is None or not text.strip():
        return None
    text = text.strip()
    m = _RELATIVE.match(text)
    if m:
        return now - float(m.group(1)) * _UNITS[m.group(2)]
    try:
        return float(text)
    except ValueError:
        pass
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{text!r} is not a time (ISO 8601, epoch seconds, or e.g. 24h)") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.timestamp()
