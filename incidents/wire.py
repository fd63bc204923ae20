"""The Statuspage v2 wire format: snapshot data -> the exact keys, order and value shapes.

Timestamps follow Rails' TimeWithZone#as_json: three millisecond digits, in the page's time
zone, 'Z' for UTC. Nullable fields stay present. Lists are capped at 50 by the snapshot.
"""
from __future__ import annotations

import json
import zoneinfo
from datetime import date, datetime, timedelta

from incidents.models import ACTIVE_MAINTENANCE_STATUSES, CLOSED_INCIDENT_STATUSES, OPEN_INCIDENT_STATUSES, MaintenanceStatus
from incidents.selectors import LIST_LIMIT

JSON_CONTENT_TYPE = "application/json; charset=utf-8"
_UTC_NAMES = {"UTC", "Etc/UTC", "Etc/GMT", "GMT", "Etc/Universal", "Universal", "Zulu", "Etc/Zulu"}


def timestamp(value: datetime | None, tz_name: str) -> str | None:
    if value is None:
        return None
    tz = zoneinfo.ZoneInfo(tz_name)
    local = value.astimezone(tz)
    text = local.isoformat(timespec="milliseconds")
    if text.endswith("+00:00") and (tz_name in _UTC_NAMES or local.utcoffset() == timedelta(0)):
        text = text[:-6] + "Z"
    return text


def _date(value: date | None) -> str | None:
    return value.isoformat() if value else None


def page_json(snap: dict) -> dict:
    p = snap["page"]
    return {"id": p["id"], "name": p["name"], "url": p["url"], "time_zone": p["time_zone"], "updated_at": timestamp(p["updated_at"], p["time_zone"])}


def component_json(c: dict, snap: dict) -> dict:
    tz = snap["page"]["time_zone"]
    out = {
        "id": c["id"],
        "name": c["name"],
        "status": c["status"],
        "created_at": timestamp(c["created_at"], tz),
        "updated_at": timestamp(c["updated_at"], tz),
        "position": c["position"],
        "description": c["description"],
        "showcase": c["showcase"],
        "start_date": _date(c["start_date"]),
        "group_id": c["group_id"],
        "page_id": snap["page"]["id"],
        "group": c["group"],
        "only_show_if_degraded": c["only_show_if_degraded"],
    }
    if c["group"]:
        out["components"] = list(c["components"])
    return out


def _affected_json(entries: list[dict] | None) -> list[dict] | None:
    # Rebuilt key by key: PostgreSQL's jsonb stores object keys in its own order.
    if entries is None:
        return None
    return [{"code": a["code"], "name": a["name"], "old_status": a["old_status"], "new_status": a["new_status"]} for a in entries]


def update_json(u: dict, tz: str) -> dict:
    return {
        "id": u["id"],
        "status": u["status"],
        "body": u["body"],
        "incident_id": u["incident_id"],
        "created_at": timestamp(u["created_at"], tz),
        "updated_at": timestamp(u["updated_at"], tz),
        "display_at": timestamp(u["display_at"], tz),
        "affected_components": _affected_json(u["affected_components"]),
        "deliver_notifications": u["deliver_notifications"],
        "custom_tweet": None,
        "tweet_id": None,
    }


def incident_json(i: dict, snap: dict) -> dict:
    tz = snap["page"]["time_zone"]
    components = {c["id"]: c for c in snap["components"]}
    out = {
        "id": i["id"],
        "name": i["name"],
        "status": i["status"],
        "created_at": timestamp(i["created_at"], tz),
        "updated_at": timestamp(i["updated_at"], tz),
        "monitoring_at": timestamp(i["monitoring_at"], tz),
        "resolved_at": timestamp(i["resolved_at"], tz),
        "impact": i["impact"],
        "shortlink": i["shortlink"],
        "started_at": timestamp(i["started_at"], tz),
        "page_id": snap["page"]["id"],
        "incident_updates": [update_json(u, tz) for u in i["incident_updates"]],
        "components": [component_json(components[cid], snap) for cid in i["component_ids"] if cid in components],
    }
    if i["kind"] == "maintenance":
        out["scheduled_for"] = timestamp(i["scheduled_for"], tz)
        out["scheduled_until"] = timestamp(i["scheduled_until"], tz)
    else:
        out["reminder_intervals"] = None
    return out


def _status_json(snap: dict) -> dict:
    return {"indicator": snap["status"]["indicator"], "description": snap["status"]["description"]}


# Only the two full lists are capped at 50 (spec 0.7); the filtered ones and summary.json list
# every unresolved incident and every upcoming or active maintenance, which the snapshot holds.


def _incidents(snap: dict, statuses=None) -> list[dict]:
    rows = [i for i in snap["incidents"] if statuses is None or i["status"] in statuses]
    if statuses is None:
        rows = rows[:LIST_LIMIT]
    return [incident_json(i, snap) for i in rows]


def _maintenances(snap: dict, statuses=None, *, ascending: bool = False) -> list[dict]:
    rows = [m for m in snap["maintenances"] if statuses is None or m["status"] in statuses]
    if ascending:
        rows = sorted(rows, key=lambda m: (m["scheduled_for"], m["pk"]))
    if statuses is None:
        rows = rows[:LIST_LIMIT]
    return [incident_json(m, snap) for m in rows]


UPCOMING_OR_ACTIVE = (MaintenanceStatus.SCHEDULED, *ACTIVE_MAINTENANCE_STATUSES)

ENDPOINTS = {
    "summary": lambda s: {
        "page": page_json(s),
        "components": [component_json(c, s) for c in s["components"]],
        "incidents": _incidents(s, OPEN_INCIDENT_STATUSES),
        "scheduled_maintenances": _maintenances(s, UPCOMING_OR_ACTIVE, ascending=True),
        "status": _status_json(s),
    },
    "status": lambda s: {"page": page_json(s), "status": _status_json(s)},
    "components": lambda s: {"page": page_json(s), "components": [component_json(c, s) for c in s["components"]]},
    "incidents": lambda s: {"page": page_json(s), "incidents": _incidents(s)},
    "incidents/unresolved": lambda s: {"page": page_json(s), "incidents": _incidents(s, OPEN_INCIDENT_STATUSES)},
    "incidents/resolved": lambda s: {"page": page_json(s), "incidents": _incidents(s, CLOSED_INCIDENT_STATUSES)},
    "scheduled-maintenances": lambda s: {"page": page_json(s), "scheduled_maintenances": _maintenances(s)},
    "scheduled-maintenances/upcoming": lambda s: {
        "page": page_json(s), "scheduled_maintenances": _maintenances(s, (MaintenanceStatus.SCHEDULED,), ascending=True)
    },
    "scheduled-maintenances/active": lambda s: {
        "page": page_json(s), "scheduled_maintenances": _maintenances(s, ACTIVE_MAINTENANCE_STATUSES, ascending=True)
    },
}


def render_endpoint(name: str, snap: dict) -> bytes:
    # Compact, like Statuspage; ensure_ascii=False keeps names readable and the bytes smaller.
    return json.dumps(ENDPOINTS[name](snap), ensure_ascii=False, separators=(",", ":")).encode("utf-8")
