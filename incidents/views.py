"""The public pages: the status page, one incident, and the history.

Every page is rendered from plain data (the cached snapshot, or a selector for what the snapshot
does not hold) by a render_* function that takes that data and returns bytes. The views hand
those functions to incidents.serving.serve, which caches the bytes per content version; the
static export (incidents/export.py) calls the very same functions. Rendering never sees the
request: the bytes are shared by every reader, so they hold nothing user-specific.
"""
from __future__ import annotations

import math
import re
import zoneinfo
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone as dt_timezone
from html import escape

from django.http import Http404, HttpRequest, HttpResponse
from django.template.loader import render_to_string
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.views.decorators.http import require_safe

from incidents.models import (
    ACTIVE_MAINTENANCE_STATUSES,
    OPEN_INCIDENT_STATUSES,
    STATUS_LABELS,
    ComponentStatus,
    Impact,
    IncidentKind,
    MaintenanceStatus,
)
from incidents.selectors import PARTIAL_OUTAGE_WEIGHT, UPTIME_DAYS, history_months, incident_by_id
from incidents.serving import public_read, serve, snapshot_for

HTML_CONTENT_TYPE = "text/html; charset=utf-8"
# Resolved incidents stay on the front page this long, as "recently resolved".
RECENT_DAYS = 7
# ?page beyond this is refused: 400 pages of 3 months reach back a century.
MAX_HISTORY_PAGE = 400
_PUBLIC_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,12}$")
_HEX_COLOUR_RE = re.compile(r"^#[0-9a-fA-F]{6}$")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_MONTH_NAMES = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)
COMPONENT_STATUS_LABELS = dict(ComponentStatus.choices)
IMPACT_LABELS = dict(Impact.choices)

UPTIME_FORMULA = (
    "Uptime = 1 − (major outage time + {weight} × partial outage time) ÷ (observed time − maintenance time). "
    "Degraded performance counts as up; maintenance is excluded; "
    "days before a component existed show as no data."
).format(weight=f"{PARTIAL_OUTAGE_WEIGHT:g}")


# --- times ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LocalTime:
    """A moment shown in the page's time zone, inside <time datetime="UTC"> for localtime.js.

    str() returns the whole element as safe HTML (every part escaped by format_html), so a
    template writes {{ update.at }}.
    """

    iso: str
    text: str
    fmt: str

    def __str__(self) -> str:
        return format_html('<time datetime="{}" data-fmt="{}">{}</time>', self.iso, self.fmt, self.text)


def utc_iso(value: datetime) -> str:
    return value.astimezone(dt_timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def local_time(value: datetime | None, tz: zoneinfo.ZoneInfo, fmt: str = "full") -> LocalTime | None:
    """fmt: "full" (Oct 21, 2025, 17:39 UTC), "short" (Oct 21, 17:39 UTC) or "date" (Oct 21, 2025)."""
    if value is None:
        return None
    local = value.astimezone(tz)
    day = f"{_MONTHS[local.month - 1]} {local.day}"
    if fmt == "date":
        text = f"{day}, {local.year}"
    elif fmt == "short":
        text = f"{day}, {local:%H:%M} {local.tzname()}"
    else:
        text = f"{day}, {local.year}, {local:%H:%M} {local.tzname()}"
    return LocalTime(iso=utc_iso(value), text=text, fmt=fmt)


def _day_text(day: date) -> str:
    return f"{_MONTHS[day.month - 1]} {day.day}, {day.year}"


def page_zone(snap: dict) -> zoneinfo.ZoneInfo:
    return zoneinfo.ZoneInfo(snap["page"]["time_zone"])


# --- shared pieces --------------------------------------------------------------------------------


def status_label(status: str) -> str:
    return STATUS_LABELS.get(status, status.replace("_", " ").capitalize())


def labelled_updates(updates: list[dict]) -> list[tuple[str, dict]]:
    """(label, update) newest first; the label is "Update" when the status did not change.

    `updates` is newest first, so the update before each one in time is the next in the list.
    """
    out = []
    for index, update in enumerate(updates):
        earlier = updates[index + 1] if index + 1 < len(updates) else None
        label = "Update" if earlier is not None and earlier["status"] == update["status"] else status_label(update["status"])
        out.append((label, update))
    return out


def incident_path(incident_id: str) -> str:
    return f"/incidents/{incident_id}"


def _colour(value: str, default: str) -> str:
    # Colours go into a <style> block, where HTML escaping does not help: accept #rrggbb only.
    return value if value and _HEX_COLOUR_RE.match(value) else default


def page_context(snap: dict) -> dict:
    p = snap["page"]
    return {
        "name": p["name"],
        "description": p["description"],
        "url": p["url"],
        "logo_url": p["logo_url"],
        "support_url": p["support_url"],
        "brand_colour": _colour(p["brand_colour"], "#1f2d3d"),
        "accent_colour": _colour(p["accent_colour"], "#3498db"),
        "time_zone": p["time_zone"],
    }


def _component_names(snap: dict) -> dict[str, str]:
    by_id = {c["id"]: c for c in snap["components"]}
    names = {}
    for c in snap["components"]:
        group = by_id.get(c["group_id"]) if c["group_id"] else None
        names[c["id"]] = f"{group['name']} - {c['name']}" if group else c["name"]
    return names


def incident_context(
    incident: dict, snap: dict, tz: zoneinfo.ZoneInfo, *, time_fmt: str = "full", names: dict[str, str] | None = None
) -> dict:
    """Everything a template shows about one incident or maintenance (names: _component_names(snap))."""
    names = names if names is not None else _component_names(snap)
    is_maintenance = incident["kind"] == IncidentKind.MAINTENANCE
    is_open = (
        incident["status"] != MaintenanceStatus.COMPLETED if is_maintenance else incident["status"] in OPEN_INCIDENT_STATUSES
    )
    return {
        "id": incident["id"],
        "url": incident_path(incident["id"]),
        "name": incident["name"],
        "is_maintenance": is_maintenance,
        "is_open": is_open,
        "kind_label": "Scheduled maintenance" if is_maintenance else "Incident",
        "status": incident["status"],
        "status_label": status_label(incident["status"]),
        "impact": incident["impact"],
        "impact_label": IMPACT_LABELS.get(incident["impact"], incident["impact"]),
        "started_at": local_time(incident["started_at"], tz, time_fmt),
        "resolved_at": local_time(incident["resolved_at"], tz, time_fmt),
        "scheduled_for": local_time(incident["scheduled_for"], tz, time_fmt),
        "scheduled_until": local_time(incident["scheduled_until"], tz, time_fmt),
        "next_update_at": local_time(incident["next_update_at"], tz, time_fmt) if is_open and not is_maintenance else None,
        "components": [names[cid] for cid in incident["component_ids"] if cid in names],
        "updates": [
            {"label": label, "at": local_time(u["display_at"], tz, time_fmt), "body_html": u["body_html"], "status": u["status"]}
            for label, u in labelled_updates(incident["incident_updates"])
        ],
    }


# --- uptime bars ------------------------------------------------------------------------------------


def _percent(value: float) -> str:
    # Rounded down, so only a perfect record reads 100.00 %.
    return f"{math.floor(value * 10000 + 1e-6) / 100:.2f}%"


def _duration(seconds: float) -> str:
    minutes = max(1, round(seconds / 60))
    hours, minutes = divmod(minutes, 60)
    if hours and minutes:
        return f"{hours} h {minutes} min"
    return f"{hours} h" if hours else f"{minutes} min"


_TROUBLE = (
    ComponentStatus.MAJOR_OUTAGE,
    ComponentStatus.PARTIAL_OUTAGE,
    ComponentStatus.DEGRADED_PERFORMANCE,
    ComponentStatus.UNDER_MAINTENANCE,
)


def _bar_title(day: dict) -> str:
    when = _day_text(day["date"])
    if day["worst"] is None:
        return f"{when}: no data"
    if day["uptime"] is None:
        return f"{when}: under maintenance all day (not counted)"
    parts = [f"{when}: {_percent(day['uptime'])} uptime"]
    seconds = day["seconds"]
    parts += [f"{COMPONENT_STATUS_LABELS[s]} {_duration(seconds[s])}" for s in _TROUBLE if seconds.get(s)]
    return " · ".join(parts)


def uptime_bars(uptime: dict) -> SafeString:
    """90 <i> bars, one per day.

    Built here rather than in a template loop, and with html.escape rather than format_html:
    a page of 500 showcased components has 45,000 bars, and either of those would make them
    most of the render time. Every interpolated value is escaped.
    """
    return SafeString("".join(
        f'<i class="bar s-{escape(day["worst"] or "nodata")}" title="{escape(_bar_title(day))}"></i>' for day in uptime["days"]
    ))


def _uptime_context(uptime: dict | None) -> dict | None:
    if uptime is None:
        return None
    return {
        "bars": uptime_bars(uptime),
        "percent": _percent(uptime["uptime"]) if uptime["uptime"] is not None else None,
        "days": len(uptime["days"]),
    }


# --- the status page --------------------------------------------------------------------------------


def _visible(c: dict) -> bool:
    return not (c["only_show_if_degraded"] and c["status"] == ComponentStatus.OPERATIONAL)


def _component_context(c: dict, snap: dict, children: list[dict] | None = None) -> dict:
    return {
        "id": c["id"],
        "name": c["name"],
        "description": c["description"],
        "status": c["status"],
        "status_label": COMPONENT_STATUS_LABELS.get(c["status"], c["status"]),
        "is_group": c["group"],
        "children": children or [],
        "uptime": _uptime_context(snap["uptime"].get(c["id"])),
    }


def component_tree(snap: dict) -> list[dict]:
    """Top-level components and groups in order, each group with its visible children."""
    by_id = {c["id"]: c for c in snap["components"]}
    tree = []
    for c in snap["components"]:
        if c["group_id"] or not _visible(c):
            continue
        if c["group"]:
            children = [_component_context(by_id[cid], snap) for cid in c["components"] if cid in by_id and _visible(by_id[cid])]
            if children:
                tree.append(_component_context(c, snap, children))
        else:
            tree.append(_component_context(c, snap))
    return tree


def status_page_context(snap: dict) -> dict:
    tz = page_zone(snap)
    now = snap["generated_at"]
    names = _component_names(snap)
    active = [
        incident_context(i, snap, tz, time_fmt="short", names=names) for i in snap["incidents"] if i["status"] in OPEN_INCIDENT_STATUSES
    ]
    recent = [
        incident_context(i, snap, tz, time_fmt="short", names=names)
        for i in snap["incidents"]
        if i["status"] not in OPEN_INCIDENT_STATUSES and i["resolved_at"] and i["resolved_at"] >= now - timedelta(days=RECENT_DAYS)
    ]
    in_progress = [m for m in snap["maintenances"] if m["status"] in ACTIVE_MAINTENANCE_STATUSES]
    upcoming = [m for m in snap["maintenances"] if m["status"] == MaintenanceStatus.SCHEDULED]
    # Soonest first: the next window is the one readers need to plan for.
    in_progress.sort(key=lambda m: (m["scheduled_for"], m["pk"]))
    upcoming.sort(key=lambda m: (m["scheduled_for"], m["pk"]))
    components = component_tree(snap)
    return {
        "page": page_context(snap),
        "status": snap["status"],
        "components": components,
        "has_uptime": any(c["uptime"] or any(child["uptime"] for child in c["children"]) for c in components),
        "uptime_days": UPTIME_DAYS,
        "uptime_formula": UPTIME_FORMULA,
        "active_incidents": active,
        "recent_incidents": recent,
        "recent_days": RECENT_DAYS,
        "maintenances_in_progress": [incident_context(m, snap, tz, time_fmt="short", names=names) for m in in_progress],
        "maintenances_upcoming": [incident_context(m, snap, tz, time_fmt="short", names=names) for m in upcoming],
        "generated_at": local_time(now, tz, "full"),
    }


def render_status_page(snap: dict) -> bytes:
    return render_to_string("incidents/status_page.html", status_page_context(snap)).encode()


def render_incident_page(snap: dict, incident: dict) -> bytes:
    context = {"page": page_context(snap), "incident": incident_context(incident, snap, page_zone(snap))}
    return render_to_string("incidents/incident.html", context).encode()


def _history_path(offset: int) -> str:
    return "/history" if offset == 0 else f"/history?page={offset}"


def render_history_page(snap: dict, history: dict) -> bytes:
    tz = page_zone(snap)
    names = _component_names(snap)
    offset = history["offset"]
    context = {
        "page": page_context(snap),
        "months": [
            {
                "label": f"{_MONTH_NAMES[m['month'].month - 1]} {m['month'].year}",
                "slug": f"{m['month']:%Y-%m}",
                "incidents": [incident_context(i, snap, tz, names=names) for i in m["incidents"]],
            }
            for m in history["months"]
        ],
        "newer_url": _history_path(offset - 1) if offset > 0 else None,
        "older_url": _history_path(offset + 1) if history["has_older"] else None,
    }
    return render_to_string("incidents/history.html", context).encode()


def find_incident(snap: dict, incident_id: str) -> dict | None:
    for row in (*snap["incidents"], *snap["maintenances"]):
        if row["id"] == incident_id:
            return row
    return None


# --- views --------------------------------------------------------------------------------------------


@public_read
@require_safe
def status_page(request: HttpRequest) -> HttpResponse:
    def build(page_id: str, version: str) -> tuple[bytes, str] | None:
        snap = snapshot_for(page_id, version=version)
        return None if snap is None else (render_status_page(snap), HTML_CONTENT_TYPE)

    return serve(request, ("html", "page"), build)


@public_read
@require_safe
def incident_detail(request: HttpRequest, incident_id: str) -> HttpResponse:
    if not _PUBLIC_ID_RE.match(incident_id):
        raise Http404("No such incident.")

    def build(page_id: str, version: str) -> tuple[bytes, str] | None:
        snap = snapshot_for(page_id, version=version)
        if snap is None:
            return None
        # Old incidents have left the snapshot; they are read one at a time.
        incident = find_incident(snap, incident_id) or incident_by_id(page_id, incident_id)
        return None if incident is None else (render_incident_page(snap, incident), HTML_CONTENT_TYPE)

    return serve(request, ("html", "incident", incident_id), build)


def _history_offset(raw: str | None) -> int:
    if raw is None or raw == "":
        return 0
    if not raw.isascii() or not raw.isdigit() or int(raw) > MAX_HISTORY_PAGE:
        raise Http404("No such history page.")
    return int(raw)


@public_read
@require_safe
def history(request: HttpRequest) -> HttpResponse:
    offset = _history_offset(request.GET.get("page"))

    def build(page_id: str, version: str) -> tuple[bytes, str] | None:
        snap = snapshot_for(page_id, version=version)
        months = history_months(page_id, offset=offset) if snap is not None else None
        return None if months is None else (render_history_page(snap, months), HTML_CONTENT_TYPE)

    return serve(request, ("html", "history", offset), build)
