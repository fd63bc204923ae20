"""Reads for the public read path. Each builds plain data (dicts, lists, datetimes) with a fixed
number of queries, whatever the number of components and incidents, so it can be cached whole."""
from __future__ import annotations

import zoneinfo
from collections import defaultdict
from datetime import date, datetime, timedelta

from django.db.models import Prefetch, Q
from django.utils import timezone

from incidents.models import (
    ACTIVE_MAINTENANCE_STATUSES,
    CLOSED_INCIDENT_STATUSES,
    OPEN_INCIDENT_STATUSES,
    Component,
    ComponentStatus,
    ComponentStatusChange,
    Incident,
    IncidentComponent,
    IncidentKind,
    IncidentUpdate,
    MaintenanceStatus,
    Page,
)
from incidents.policy import page_rollup, worst_component_status
from statuspage.lib.markdown import plain_body

LIST_LIMIT = 50
UPTIME_DAYS = 90
# Statuspage's convention, written on the page: a partial outage counts for 30% of its duration.
PARTIAL_OUTAGE_WEIGHT = 0.3
HISTORY_MONTHS_PER_PAGE = 3


def page_routes() -> dict:
    """Host name -> page id, and the default page (one query)."""
    hosts: dict[str, str] = {}
    default = None
    first = None
    for page in Page.objects.order_by("pk").only("public_id", "url", "extra_hosts", "is_default"):
        first = first or page.public_id
        for host in page.host_names():
            hosts.setdefault(host, page.public_id)
        if page.is_default:
            default = page.public_id
    return {"hosts": hosts, "default": default or first}


def _component_dict(c: Component) -> dict:
    return {
        "id": c.public_id,
        "pk": c.pk,
        "name": c.name,
        "status": c.status,
        "created_at": c.created,
        "updated_at": c.updated,
        "position": c.position,
        "description": c.description or None,
        "showcase": c.showcase,
        "start_date": c.start_date,
        "group_id": None,
        "group": c.is_group,
        "only_show_if_degraded": c.only_show_if_degraded,
    }


def _update_dict(u: IncidentUpdate, incident_id: str) -> dict:
    return {
        "id": u.public_id,
        "status": u.status,
        "body": plain_body(u.body),
        "body_html": u.body_html,
        "incident_id": incident_id,
        "created_at": u.created,
        "updated_at": u.updated,
        "display_at": u.display_at,
        "affected_components": u.affected_components,
        "deliver_notifications": u.deliver_notifications,
    }


def _incident_dict(i: Incident, page: Page) -> dict:
    updates = [_update_dict(u, i.public_id) for u in i.updates.all()]  # prefetched, newest first
    return {
        "id": i.public_id,
        "pk": i.pk,
        "kind": i.kind,
        "name": i.name,
        "status": i.status,
        "created_at": i.created,
        "updated_at": i.updated,
        "monitoring_at": i.monitoring_at,
        "resolved_at": i.resolved_at,
        "impact": i.impact,
        "shortlink": f"{page.base_url}/incidents/{i.public_id}",
        "started_at": i.started_at,
        "incident_updates": updates,
        "component_ids": [link.component.public_id for link in i.affected.all()],
        "scheduled_for": i.scheduled_for,
        "scheduled_until": i.scheduled_until,
        "next_update_at": i.next_update_at,
    }


def _incident_queryset():
    return Incident.objects.prefetch_related(
        Prefetch("updates", queryset=IncidentUpdate.objects.order_by("-display_at", "-id")),
        Prefetch("affected", queryset=IncidentComponent.objects.select_related("component").order_by("component__position", "component__pk")),
    )


def page_snapshot(page_id: str) -> dict | None:
    """Everything the public page, the v2 API and the feeds show for one page (six queries)."""
    page = Page.objects.filter(public_id=page_id).first()
    if page is None:
        return None
    now = timezone.now()
    components = list(Component.objects.filter(page=page).order_by("position", "pk"))
    by_pk = {c.pk: _component_dict(c) for c in components}
    groups: dict[int, list[dict]] = defaultdict(list)
    for c in components:
        if c.group_id:
            by_pk[c.pk]["group_id"] = by_pk[c.group_id]["id"]
            groups[c.group_id].append(by_pk[c.pk])
    for c in components:
        if c.is_group:
            children = groups.get(c.pk, [])
            entry = by_pk[c.pk]
            entry["components"] = [child["id"] for child in children]
            entry["status"] = worst_component_status(child["status"] for child in children)
            if children:
                entry["updated_at"] = max([entry["updated_at"], *(child["updated_at"] for child in children)])
    ordered = [by_pk[c.pk] for c in components]

    recent_incidents = Incident.objects.filter(page=page, kind=IncidentKind.INCIDENT).order_by("-started_at", "-pk").values_list("pk", flat=True)[:LIST_LIMIT]
    recent_maintenances = Incident.objects.filter(page=page, kind=IncidentKind.MAINTENANCE).order_by("-scheduled_for", "-pk").values_list("pk", flat=True)[:LIST_LIMIT]
    recent_resolved = Incident.objects.filter(page=page, kind=IncidentKind.INCIDENT, status__in=CLOSED_INCIDENT_STATUSES).order_by("-started_at", "-pk").values_list("pk", flat=True)[:LIST_LIMIT]
    wanted = Q(page=page) & (
        Q(kind=IncidentKind.INCIDENT, status__in=OPEN_INCIDENT_STATUSES)
        | Q(kind=IncidentKind.MAINTENANCE, status__in=[MaintenanceStatus.SCHEDULED, *ACTIVE_MAINTENANCE_STATUSES])
        | Q(pk__in=recent_incidents)
        | Q(pk__in=recent_maintenances)
        # incidents/resolved.json lists 50 even when the newest 50 incidents are all open.
        | Q(pk__in=recent_resolved)
    )
    rows = [_incident_dict(i, page) for i in _incident_queryset().filter(wanted).order_by("-started_at", "-pk")]
    incidents = [r for r in rows if r["kind"] == IncidentKind.INCIDENT]
    maintenances = sorted((r for r in rows if r["kind"] == IncidentKind.MAINTENANCE), key=lambda r: (r["scheduled_for"], r["pk"]), reverse=True)

    leaves = [c for c in ordered if not c["group"]]
    indicator, description = page_rollup(
        leaf_components=[(c["status"], c["only_show_if_degraded"]) for c in leaves],
        unresolved_impacts=[i["impact"] for i in incidents if i["status"] in OPEN_INCIDENT_STATUSES],
        maintenance_active=any(m["status"] in ACTIVE_MAINTENANCE_STATUSES for m in maintenances),
    )
    updated_at = max(
        [page.updated, *(c["updated_at"] for c in ordered), *(r["updated_at"] for r in rows)],
    )
    tz = zoneinfo.ZoneInfo(page.time_zone)
    return {
        "page": {
            "id": page.public_id,
            "pk": page.pk,
            "name": page.name,
            "url": page.base_url,
            "time_zone": page.time_zone,
            "updated_at": updated_at,
            "description": page.description,
            "support_url": page.support_url,
            "logo_url": page.logo.url if page.logo else "",
            "brand_colour": page.brand_colour,
            "accent_colour": page.accent_colour,
        },
        "status": {"indicator": indicator, "description": description},
        "components": ordered,
        "incidents": incidents,
        "maintenances": maintenances,
        "uptime": uptime_by_day(components=leaves, tz=tz, now=now),
        "generated_at": now,
    }


def incident_by_id(page_id: str, incident_id: str) -> dict | None:
    """One incident or maintenance of a page, however old (three queries)."""
    incident = _incident_queryset().select_related("page").filter(page__public_id=page_id, public_id=incident_id).first()
    return None if incident is None else _incident_dict(incident, incident.page)


def history_months(page_id: str, *, offset: int = 0, today: date | None = None) -> dict | None:
    """Incidents and maintenances by month, newest month first, HISTORY_MONTHS_PER_PAGE at a time."""
    page = Page.objects.filter(public_id=page_id).first()
    if page is None:
        return None
    tz = zoneinfo.ZoneInfo(page.time_zone)
    today = today or timezone.now().astimezone(tz).date()
    first_of_this_month = today.replace(day=1)
    months = []
    year, month = first_of_this_month.year, first_of_this_month.month
    month -= offset * HISTORY_MONTHS_PER_PAGE
    while month <= 0:
        year, month = year - 1, month + 12
    for _ in range(HISTORY_MONTHS_PER_PAGE):
        months.append(date(year, month, 1))
        year, month = (year - 1, 12) if month == 1 else (year, month - 1)
    newest_end = _next_month(months[0])
    window_start = datetime(months[-1].year, months[-1].month, 1, tzinfo=tz)
    window_end = datetime(newest_end.year, newest_end.month, 1, tzinfo=tz)
    rows = [
        _incident_dict(i, page)
        for i in _incident_queryset().filter(page=page, started_at__gte=window_start, started_at__lt=window_end).order_by("-started_at", "-pk")
    ]
    by_month: dict[date, list[dict]] = {m: [] for m in months}
    for row in rows:
        local = row["started_at"].astimezone(tz)
        by_month[date(local.year, local.month, 1)].append(row)
    has_older = Incident.objects.filter(page=page, started_at__lt=window_start).exists()
    return {"months": [{"month": m, "incidents": by_month[m]} for m in months], "offset": offset, "has_older": has_older}


def _next_month(d: date) -> date:
    return date(d.year + 1, 1, 1) if d.month == 12 else date(d.year, d.month + 1, 1)


def uptime_by_day(*, components: list[dict], tz, now: datetime, days: int = UPTIME_DAYS) -> dict:
    """Per showcased component, 90 days of uptime from the status log (one query).

    A day's uptime is 1 - (major outage + 0.3 x partial outage) / (observed time - maintenance).
    Degraded performance counts as up; maintenance is left out of both sides; a day before the
    component existed (or its start date) has no data.
    """
    showcased = [c for c in components if c["showcase"]]
    if not showcased:
        return {}
    today = now.astimezone(tz).date()
    first_day = today - timedelta(days=days - 1)
    window_start = datetime(first_day.year, first_day.month, first_day.day, tzinfo=tz)
    changes: dict[int, list[tuple[datetime, str, str]]] = defaultdict(list)
    for component_id, created, old, new in (
        ComponentStatusChange.objects.filter(component__in=[c["pk"] for c in showcased], created__gte=window_start)
        .order_by("created", "pk")
        .values_list("component_id", "created", "old_status", "new_status")
    ):
        changes[component_id].append((created, old, new))

    result = {}
    for c in showcased:
        log = changes.get(c["pk"], [])
        # The status at the window's start is the old status of the first change inside it.
        status = (log[0][1] or log[0][2]) if log else c["status"]
        start = c["created_at"]
        if c["start_date"]:
            # The start date is where the history starts (the field's contract), earlier than the
            # row for imported components, or later for one set up before it went live.
            sd = c["start_date"]
            start = datetime(sd.year, sd.month, sd.day, tzinfo=tz)
        # Segments (from, to, status) covering [max(start, window), now].
        segments = []
        cursor = max(start, window_start)
        for created, _old, new in log:
            if created > cursor:
                segments.append((cursor, created, status))
                cursor = created
            status = new
        if now > cursor:
            segments.append((cursor, now, status))
        day_list = []
        total_weighted = total_counted = 0.0
        seg_index = 0
        for offset in range(days):
            day = first_day + timedelta(days=offset)
            d0 = datetime(day.year, day.month, day.day, tzinfo=tz)
            d1 = d0 + timedelta(days=1)
            seconds = defaultdict(float)
            while seg_index < len(segments) and segments[seg_index][1] <= d0:
                seg_index += 1
            i = seg_index
            while i < len(segments) and segments[i][0] < d1:
                s0, s1, st = segments[i]
                overlap = (min(s1, d1) - max(s0, d0)).total_seconds()
                if overlap > 0:
                    seconds[st] += overlap
                i += 1
            observed = sum(seconds.values())
            counted = observed - seconds[ComponentStatus.UNDER_MAINTENANCE]
            down = seconds[ComponentStatus.MAJOR_OUTAGE] + PARTIAL_OUTAGE_WEIGHT * seconds[ComponentStatus.PARTIAL_OUTAGE]
            if observed <= 0:
                day_list.append({"date": day, "uptime": None, "worst": None, "seconds": {}})
                continue
            worst = worst_component_status([s for s, v in seconds.items() if v > 0])
            uptime = None if counted <= 0 else max(0.0, 1 - down / counted)
            if counted > 0:
                total_weighted += down
                total_counted += counted
            day_list.append({"date": day, "uptime": uptime, "worst": worst, "seconds": {k: round(v) for k, v in seconds.items() if v}})
        overall = None if total_counted <= 0 else max(0.0, 1 - total_weighted / total_counted)
        result[c["id"]] = {"days": day_list, "uptime": overall}
    return result


def components_drifted(incident: Incident) -> list[Component]:
    """Components a closed incident affected that are still not operational although no open
    incident or running maintenance holds them: the drift staff must see."""
    if incident.is_open or incident.is_maintenance:
        return []
    components = [
        link.component
        for link in incident.affected.select_related("component", "component__group")
        if link.component.status != ComponentStatus.OPERATIONAL
    ]
    if not components:
        return []
    held = set(
        IncidentComponent.objects.filter(
            component__in=components, incident__status__in=[*OPEN_INCIDENT_STATUSES, *ACTIVE_MAINTENANCE_STATUSES]
        ).exclude(incident=incident).values_list("component_id", flat=True)
    )
    return [c for c in components if c.pk not in held]
