"""How times are written in texts people read: in a named zone, with its abbreviation."""
from __future__ import annotations

import zoneinfo
from datetime import datetime, tzinfo


def local_text(value: datetime | None, zone: str | tzinfo) -> str:
    """"2026-03-07 14:05 CET"; empty for no time. `zone` is an IANA name or a tzinfo."""
    if value is None:
        return ""
    local = value.astimezone(zoneinfo.ZoneInfo(zone) if isinstance(zone, str) else zone)
    return f"{local:%Y-%m-%d %H:%M} {local.tzname()}"
