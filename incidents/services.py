"""Writes for pages, components, incidents and maintenance.

Every function is keyword-only and atomic, validates before it saves, and starts anything that
leaves the process (cache invalidation, static export) from transaction.on_commit.
"""
from __future__ import annotations

import logging

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from incidents import cache

logger = logging.getLogger("incidents.services")
from incidents.models import (
    ACTIVE_MAINTENANCE_STATUSES,
    CLOSED_INCIDENT_STATUSES,
    OPEN_INCIDENT_STATUSES,
    Component,
    ComponentStatus,
    ComponentStatusChange,
    Impact,
    Incident,
    IncidentComponent,
    IncidentKind,
    IncidentStatus,
    IncidentUpdate,
    MaintenanceStatus,
    Page,
    Region,
    StatusSource,
)
from incidents.policy import impact_from_component_statuses, worst_component_status
from statuspage.lib.markdown import render_markdown
from statuspage.lib.times import local_text

ComponentStatuses = Mapping[Component, str]


def _now() -> datetime:
    return timezone.now()


# --- components ---------------------------------------------------------------------------


def component_set_status(
    *,
    component: Component,
    status: str,
    source: str,
    actor=None,
    reason: str = "",
    incident: Incident | None = None,
) -> str:
    """Change one component's status and log it; returns the status it had before.

    Locks the component row so two writers cannot both log the same old status.
    """
    if status not in ComponentStatus.values:
        raise ValidationError({"status": f"Unknown component status {status!r}."})
    if source not in StatusSource.values:
        raise ValidationError({"source": f"Unknown status source {source!r}."})
    with transaction.atomic():
        locked = Component.objects.select_for_update().get(pk=component.pk)
        if locked.is_group:
            raise ValidationError({"status": "A group's status follows its components; set theirs instead."})
        previous = locked.status
        if previous != status:
            now = _now()
            ComponentStatusChange.objects.create(
                component=locked, old_status=previous, new_status=status, source=source,
                actor=actor, reason=reason[:500], incident=incident, created=now,
            )
            Component.objects.filter(pk=locked.pk).update(status=status, updated=now)
            component.updated = now
            cache.content_changed()
        component.status = status
    return previous


def component_save(*, component: Component, actor=None, reason: str = "", source: str = StatusSource.MANUAL) -> Component:
    """Create or edit a component or group; a status change goes through the status log."""
    with transaction.atomic():
        if component.is_group and component.status != ComponentStatus.OPERATIONAL:
            raise ValidationError({"status": "A group's status follows its components; set theirs instead."})
        component.full_clean()
        new_status = component.status
        creating = component.pk is None
        if not creating:
            component.status = Component.objects.values_list("status", flat=True).get(pk=component.pk)
        component.updated = _now()
        component.save()
        if creating:
            ComponentStatusChange.objects.create(
                component=component, old_status="", new_status=component.status, source=source,
                actor=actor, reason=reason or "created", created=component.created,
            )
        elif new_status != component.status:
            component_set_status(component=component, status=new_status, source=source, actor=actor, reason=reason)
        cache.content_changed()
    return component


def page_save(*, page: Page) -> Page:
    """Create or edit a page; the page cache and the host routing table are rebuilt on commit."""
    with transaction.atomic():
        page.full_clean()
        page.save()
        cache.content_changed()
    return page


# --- incidents -------------------------------------------------------------------------------


def _display_name(component: Component) -> str:
    # Spec 2.5: a child component is named "<Group> - <Component>" in affected_components.
    return str(component)


def _status_elsewhere(component: Component, *, excluding: Incident) -> str:
    """The status other open incidents and active maintenances hold a component at."""
    held = IncidentComponent.objects.filter(component=component).exclude(incident=excluding).filter(
        incident__status__in=[*OPEN_INCIDENT_STATUSES, *ACTIVE_MAINTENANCE_STATUSES]
    )
    statuses = []
    for link in held.select_related("incident"):
        is_maint = link.incident.kind == IncidentKind.MAINTENANCE
        statuses.append(ComponentStatus.UNDER_MAINTENANCE if is_maint else link.status)
    return worst_component_status(statuses)


def _apply_component_changes(
    *, incident: Incident, changes: ComponentStatuses, actor, source: str, reason: str, remember: bool = True
) -> list[dict] | None:
    """Set components, remember them as affected, and describe the change for the update.

    remember=False (resolving) leaves the links alone: the restored status is not one the
    incident holds its components at.
    """
    if not changes:
        return None
    described = []
    for component, new_status in changes.items():
        if component.page_id != incident.page_id:
            raise ValidationError({"components": f"{component} belongs to another page."})
        if component.is_group:
            raise ValidationError({"components": f"{component} is a group; choose its components."})
        old_status = component_set_status(
            component=component, status=new_status, source=source, actor=actor, reason=reason, incident=incident
        )
        if remember and not incident.is_maintenance:
            # The link keeps the latest status the incident set (operational too, once it says the
            # component recovered): resolving another incident restores the component to it.
            link, created = IncidentComponent.objects.get_or_create(
                incident=incident, component=component, defaults={"status": new_status}
            )
            if not created and link.status != new_status:
                IncidentComponent.objects.filter(pk=link.pk).update(status=new_status)
        described.append({"code": component.public_id, "name": _display_name(component), "old_status": old_status, "new_status": new_status})
    return described


@transaction.atomic
def incident_set_components(*, incident: Incident, changes: ComponentStatuses, actor=None, source: str = StatusSource.INCIDENT,
                            reason: str = "") -> list[dict] | None:
    """Move an open incident's components without a public update (monitoring markers, API
    PATCHes whose words wait for approval); the page changes on commit. Callers check permissions."""
    incident = Incident.objects.select_for_update().get(pk=incident.pk)
    if not incident.is_open:
        raise ValidationError({"components": "The incident is resolved: its components are no longer its to set."})
    described = _apply_component_changes(
        incident=incident, changes=dict(changes), actor=actor, source=source, reason=reason or f"Update on {incident.name}",
    )
    cache.content_changed()
    return described


def _append_update(
    *, incident: Incident, status: str, body: str, display_at: datetime | None, actor,
    deliver_notifications: bool, affected: list[dict] | None, provenance: dict | None = None,
) -> IncidentUpdate:
    if not (body or "").strip():
        raise ValidationError({"body": "Write what is happening; an update cannot be empty."})
    now = _now()
    update = IncidentUpdate(
        incident=incident, status=status, body=body, body_html=render_markdown(body),
        display_at=display_at or now, deliver_notifications=deliver_notifications,
        affected_components=affected, created_by=actor, created=now, updated=now,
    )
    update.full_clean()
    update.save()
    provenance = _provenance(incident, provenance)
    _archive_page_update(update=update, incident=incident, affected=affected, published_at=now, provenance=provenance)
    if deliver_notifications:
        # Same transaction as the update: a rollback leaves no dispatch and queues nothing.
        from notifications.services import dispatch_create

        dispatch_create(update=update, provenance=provenance)
    from incidents import support

    support.support_notify_on_commit(update=update)
    return update


def _next_update_due(incident: Incident, after: datetime) -> datetime | None:
    """The severity policy's cadence (tightened for an extended outage); None: no promise."""
    from incidents import editorial

    step = editorial.cadence(incident.severity, extended=incident.extended_at is not None)
    return after + step if step else None


def _provenance(incident: Incident, given: dict | None) -> dict:
    """What a published update went out under: the policy version (always), and from the
    editorial workflow the template version, the approvals and the revision."""
    from incidents import editorial

    version = editorial.policy_current()
    named = (given or {}).get("policy_version", "")
    if named.startswith("policy-v") and named[len("policy-v"):].isdigit() and int(named[len("policy-v"):]) != version.number:
        # The workflow read its version before ours: the channel matrix must be that version's.
        from incidents.models import PolicyVersion

        version = PolicyVersion.objects.get(number=int(named[len("policy-v"):]))
    provenance = {"policy_version": f"policy-v{version.number}", "template_version": "", "approvals": [], "revision": ""}
    provenance.update(given or {})
    provenance["policy_rules"] = editorial.rules_for(incident.severity, version)
    return provenance


def _archive_page_update(
    *, update: IncidentUpdate, incident: Incident, affected: list[dict] | None, published_at: datetime, provenance: dict,
) -> None:
    """The page is a channel too: archive the update as published, in the caller's transaction,
    so a rolled-back publish leaves no archive row and a committed one always has its row."""
    from notifications.archive import archive_message
    from statuspage.lib.markdown import plain_body

    archive_message(
        channel="page", kind="page_update", recipient=f"{incident.page.base_url}/incidents/{incident.public_id}",
        subject=incident.name, text_body=plain_body(update.body), html_body=update.body_html,
        payload={
            "status": update.status, "body": update.body, "display_at": update.display_at.isoformat(),
            "affected_components": affected, "deliver_notifications": update.deliver_notifications,
        },
        page=incident.page, incident=incident, update=update, sent_at=published_at,
        policy_version=provenance["policy_version"], template_version=provenance["template_version"],
        approvals=provenance["approvals"], revision=provenance["revision"],
    )


def _transition(incident: Incident, status: str, at: datetime) -> None:
    incident.status = status
    if status in (IncidentStatus.MONITORING, MaintenanceStatus.VERIFYING) and not incident.monitoring_at:
        incident.monitoring_at = at
    if status in (IncidentStatus.RESOLVED, IncidentStatus.POSTMORTEM, MaintenanceStatus.COMPLETED):
        incident.resolved_at = incident.resolved_at or at
        incident.next_update_at = None
    elif incident.resolved_at and status in OPEN_INCIDENT_STATUSES:
        incident.resolved_at = None  # reopened


@transaction.atomic
def incident_open(
    *,
    page: Page,
    name: str,
    body: str,
    status: str = IncidentStatus.INVESTIGATING,
    impact: str | None = None,
    severity: str = "P3",
    components: ComponentStatuses | None = None,
    regions: Iterable[Region] = (),
    started_at: datetime | None = None,
    display_at: datetime | None = None,
    next_update_at: datetime | None = None,
    deliver_notifications: bool = True,
    actor=None,
    source: str = StatusSource.INCIDENT,
    parent: Incident | None = None,
    provenance: dict | None = None,
) -> Incident:
    """Open an incident with its first update and set the affected components' statuses.

    With a parent it is a child of that incident's cascade: it shows on the page, but its
    updates notify nobody (the parent's thread carries the message).
    """
    if status not in OPEN_INCIDENT_STATUSES:
        raise ValidationError({"status": "A new incident starts as investigating, identified or monitoring."})
    components = dict(components or {})
    now = _now()
    incident = Incident(
        page=page, kind=IncidentKind.INCIDENT, name=name, status=status,
        impact=impact or impact_from_component_statuses(components.values()),
        severity=severity, started_at=started_at or now, created=now, updated=now, parent=parent,
    )
    _transition(incident, status, now)
    incident.next_update_at = next_update_at or _next_update_due(incident, max(display_at or now, now))
    incident.full_clean()
    incident.save()
    incident.regions.set(list(regions))
    affected = _apply_component_changes(incident=incident, changes=components, actor=actor, source=source, reason=f"Incident opened: {name}")
    _append_update(
        incident=incident, status=status, body=body, display_at=display_at, actor=actor,
        deliver_notifications=deliver_notifications, affected=affected, provenance=provenance,
    )
    cache.content_changed()
    return incident


@transaction.atomic
def incident_post_update(
    *,
    incident: Incident,
    status: str,
    body: str,
    components: ComponentStatuses | None = None,
    display_at: datetime | None = None,
    next_update_at: datetime | None = None,
    deliver_notifications: bool = True,
    actor=None,
    provenance: dict | None = None,
) -> IncidentUpdate:
    """Append an update to an open incident's time line, moving its status and components.

    Resolving goes through incident_resolve, which decides what happens to the components.
    """
    incident = Incident.objects.select_for_update().get(pk=incident.pk)
    if incident.is_maintenance:
        raise ValidationError({"status": "Use the maintenance actions for a maintenance."})
    if status in CLOSED_INCIDENT_STATUSES and incident.is_open:
        # A postmortem too: closing by update would skip the component restore and keep_reason.
        raise ValidationError({"status": "Resolve the incident with the resolve action, which restores its components."})
    if status not in IncidentStatus.values:
        raise ValidationError({"status": f"Unknown incident status {status!r}."})
    now = _now()
    affected = _apply_component_changes(incident=incident, changes=dict(components or {}), actor=actor, source=StatusSource.INCIDENT, reason=f"Update on {incident.name}")
    _transition(incident, status, now)
    if incident.is_open:
        incident.next_update_at = next_update_at or _next_update_due(incident, max(display_at or now, now))
    incident.updated = now
    incident.full_clean()
    incident.save()
    update = _append_update(
        incident=incident, status=status, body=body, display_at=display_at, actor=actor,
        deliver_notifications=deliver_notifications, affected=affected, provenance=provenance,
    )
    cache.content_changed()
    return update


@transaction.atomic
def incident_resolve(
    *,
    incident: Incident,
    body: str,
    restore_components: bool = True,
    keep_reason: str = "",
    resolved_at: datetime | None = None,
    display_at: datetime | None = None,
    deliver_notifications: bool = True,
    actor=None,
    provenance: dict | None = None,
) -> IncidentUpdate:
    """Resolve an incident. Its components go back to operational unless another open incident
    still holds them; leaving them degraded needs a reason, which is written to the status log.
    """
    incident = Incident.objects.select_for_update().get(pk=incident.pk)
    if incident.is_maintenance:
        raise ValidationError({"status": "Complete a maintenance with the maintenance actions."})
    if not incident.is_open:
        raise ValidationError({"status": "This incident is already resolved."})
    now = _now()
    links = list(IncidentComponent.objects.filter(incident=incident).select_related("component", "component__group"))
    still_degraded = [link.component for link in links if link.component.status != ComponentStatus.OPERATIONAL]
    changes: dict[Component, str] = {}
    if restore_components:
        for component in still_degraded:
            changes[component] = _status_elsewhere(component, excluding=incident)
    elif still_degraded:
        if not keep_reason.strip():
            raise ValidationError({"keep_reason": "Say why the affected components stay degraded after the incident is resolved."})
        for component in still_degraded:
            # A same-status entry keeps the decision in the status log without touching uptime.
            ComponentStatusChange.objects.create(
                component=component, old_status=component.status, new_status=component.status,
                source=StatusSource.MANUAL, actor=actor, incident=incident,
                reason=f"Kept after resolving {incident.name}: {keep_reason}"[:500], created=now,
            )
    affected = _apply_component_changes(
        incident=incident, changes=changes, actor=actor, source=StatusSource.INCIDENT, reason=f"Resolved: {incident.name}",
        remember=False,
    )
    if resolved_at and resolved_at > now:
        raise ValidationError({"resolved_at": "The resolution time cannot be in the future."})
    incident.resolved_at = resolved_at or now
    _transition(incident, IncidentStatus.RESOLVED, now)
    incident.updated = now
    incident.full_clean()
    incident.save()
    update = _append_update(
        incident=incident, status=IncidentStatus.RESOLVED, body=body, display_at=display_at, actor=actor,
        deliver_notifications=deliver_notifications, affected=affected, provenance=provenance,
    )
    from incidents import editorial

    editorial.postmortem_schedule(incident=incident)
    cache.content_changed()
    return update


@transaction.atomic
def incident_edit(*, incident: Incident, regions: Iterable[Region] | None = None, actor=None) -> Incident:
    """Save edits to an incident's own fields (name, impact, severity, times) and its regions."""
    if incident.is_maintenance and incident.status == MaintenanceStatus.SCHEDULED:
        # A moved window moves the maintenance in the history and the feeds too.
        incident.started_at = incident.scheduled_for
    incident.updated = _now()
    incident.full_clean()
    incident.save()
    if regions is not None:
        incident.regions.set(list(regions))
    cache.content_changed()
    return incident


@transaction.atomic
def content_delete(*, instances: Iterable, actor=None) -> int:
    """Delete pages, regions, components or incidents; the public page drops them on commit.

    The status log and the incident time lines go with what they belong to; a group that still
    has components is refused by the database (RESTRICT) and nothing is deleted.
    """
    count = 0
    for instance in instances:
        instance.delete()
        count += 1
    cache.content_changed()
    return count


# --- scheduled maintenance ------------------------------------------------------------------------


# Beyond a month a "reminder" is a second announcement; the bound also keeps `start - lead`
# inside the dates Python can represent.
MAX_REMINDER_LEAD_MINUTES = 30 * 24 * 60


def _check_reminder_leads(leads: list) -> None:
    """Whole minutes before the start, at most 30 days (a month's notice is the announcement's job)."""
    if any(isinstance(lead, bool) or not isinstance(lead, int) or not 0 < lead <= MAX_REMINDER_LEAD_MINUTES for lead in leads):
        raise ValidationError({"reminder_leads": "Reminders are whole numbers of minutes before the start, at most 30 days (43200)."})


@transaction.atomic
def maintenance_schedule(
    *,
    page: Page,
    name: str,
    body: str,
    scheduled_for: datetime,
    scheduled_until: datetime,
    components: Iterable[Component] = (),
    auto_start: bool = True,
    auto_complete: bool = True,
    deliver_notifications: bool = True,
    actor=None,
    reminder_leads: list[int] | None = None,
) -> Incident:
    """Announce a maintenance window; its components are only touched when it starts.

    reminder_leads: minutes before the start at which subscribers are reminded (default a day
    and an hour; an empty list sends none).
    """
    now = _now()
    maintenance = Incident(
        page=page, kind=IncidentKind.MAINTENANCE, name=name, status=MaintenanceStatus.SCHEDULED,
        impact=Impact.MAINTENANCE, started_at=scheduled_for, scheduled_for=scheduled_for,
        scheduled_until=scheduled_until, auto_start=auto_start, auto_complete=auto_complete,
        created=now, updated=now,
    )
    if reminder_leads is not None:
        _check_reminder_leads(reminder_leads)
        maintenance.reminder_leads = sorted(set(reminder_leads), reverse=True)
    maintenance.full_clean()
    maintenance.save()
    for component in components:
        if component.page_id != page.pk or component.is_group:
            raise ValidationError({"components": f"{component} cannot be put under maintenance on this page."})
        IncidentComponent.objects.create(incident=maintenance, component=component, status=ComponentStatus.UNDER_MAINTENANCE)
    _append_update(
        incident=maintenance, status=MaintenanceStatus.SCHEDULED, body=body, display_at=now, actor=actor,
        deliver_notifications=deliver_notifications, affected=None,
    )
    cache.content_changed()
    return maintenance


def _maintenance_components(maintenance: Incident) -> list[Component]:
    return [link.component for link in maintenance.affected.select_related("component", "component__group")]


@transaction.atomic
def maintenance_start(*, maintenance: Incident, body: str = "", actor=None, source: str = StatusSource.MAINTENANCE) -> IncidentUpdate:
    """Start a maintenance: its components go under maintenance."""
    maintenance = Incident.objects.select_for_update().get(pk=maintenance.pk)
    if maintenance.status != MaintenanceStatus.SCHEDULED:
        raise ValidationError({"status": "Only a scheduled maintenance can start."})
    now = _now()
    changes = {c: ComponentStatus.UNDER_MAINTENANCE for c in _maintenance_components(maintenance)
               if c.status == ComponentStatus.OPERATIONAL}
    affected = _apply_component_changes(incident=maintenance, changes=changes, actor=actor, source=source, reason=f"Maintenance started: {maintenance.name}")
    _transition(maintenance, MaintenanceStatus.IN_PROGRESS, now)
    maintenance.updated = now
    maintenance.save()
    update = _append_update(
        incident=maintenance, status=MaintenanceStatus.IN_PROGRESS,
        body=body or "The scheduled maintenance is now in progress.", display_at=now, actor=actor,
        deliver_notifications=True, affected=affected,
    )
    cache.content_changed()
    return update


@transaction.atomic
def maintenance_verify(*, maintenance: Incident, body: str, actor=None) -> IncidentUpdate:
    """Mark a running maintenance as being verified."""
    maintenance = Incident.objects.select_for_update().get(pk=maintenance.pk)
    if maintenance.status != MaintenanceStatus.IN_PROGRESS:
        raise ValidationError({"status": "Only a maintenance in progress can move to verifying."})
    now = _now()
    _transition(maintenance, MaintenanceStatus.VERIFYING, now)
    maintenance.updated = now
    maintenance.save()
    update = _append_update(incident=maintenance, status=MaintenanceStatus.VERIFYING, body=body, display_at=now,
                            actor=actor, deliver_notifications=True, affected=None)
    cache.content_changed()
    return update


@transaction.atomic
def maintenance_complete(*, maintenance: Incident, body: str = "", actor=None, source: str = StatusSource.MAINTENANCE) -> IncidentUpdate:
    """Complete a maintenance: components it put under maintenance go back to what other open
    incidents hold them at, or operational."""
    maintenance = Incident.objects.select_for_update().get(pk=maintenance.pk)
    if maintenance.status not in (MaintenanceStatus.SCHEDULED, *ACTIVE_MAINTENANCE_STATUSES):
        raise ValidationError({"status": "This maintenance is already completed."})
    now = _now()
    changes = {c: _status_elsewhere(c, excluding=maintenance) for c in _maintenance_components(maintenance)
               if c.status == ComponentStatus.UNDER_MAINTENANCE}
    affected = _apply_component_changes(incident=maintenance, changes=changes, actor=actor, source=source, reason=f"Maintenance completed: {maintenance.name}")
    _transition(maintenance, MaintenanceStatus.COMPLETED, now)
    maintenance.updated = now
    maintenance.save()
    update = _append_update(
        incident=maintenance, status=MaintenanceStatus.COMPLETED,
        body=body or "The scheduled maintenance has been completed.", display_at=now, actor=actor,
        deliver_notifications=True, affected=affected,
    )
    cache.content_changed()
    return update


def _human_lead(minutes: int) -> str:
    if minutes % (24 * 60) == 0:
        days = minutes // (24 * 60)
        return "24 hours" if days == 1 else f"{days} days"
    if minutes % 60 == 0:
        hours = minutes // 60
        return "1 hour" if hours == 1 else f"{hours} hours"
    return f"{minutes} minutes"


def _window_text(maintenance: Incident) -> str:
    zone = maintenance.page.time_zone
    return f"{local_text(maintenance.scheduled_for, zone)} to {local_text(maintenance.scheduled_until, zone)}"


@transaction.atomic
def maintenance_remind(
    *, maintenance: Incident, lead_minutes: int, now: datetime | None = None, passed: list[int] = (),
) -> IncidentUpdate | None:
    """Remind subscribers that a maintenance starts in `lead_minutes`, once per lead.

    The reminder repeats the announcement's text under a line saying when the window opens;
    a lead that had already passed when the window was announced is skipped, not sent late,
    and so are the longer leads in `passed`.
    """
    from statuspage.lib.markdown import plain_body

    now = now or _now()
    maintenance = Incident.objects.select_for_update().select_related("page").get(pk=maintenance.pk)
    if maintenance.status != MaintenanceStatus.SCHEDULED or lead_minutes in (maintenance.reminders_sent or []):
        return None
    lead = timedelta(minutes=lead_minutes)
    Incident.objects.filter(pk=maintenance.pk).update(reminders_sent=sorted({*(maintenance.reminders_sent or []), lead_minutes, *passed}))
    # The latest announcement (a reschedule notice names the new window), not an earlier reminder.
    announced = (
        maintenance.updates.filter(status=MaintenanceStatus.SCHEDULED).exclude(body__startswith="Reminder:")
        .order_by("-display_at", "-pk").first()
    )
    if maintenance.scheduled_for - lead < maintenance.created or now >= maintenance.scheduled_for:
        return None  # announced inside the lead, or already started: the announcement was the notice
    remaining = -int(-(maintenance.scheduled_for - now).total_seconds() // 60)  # whole minutes, rounded up
    # On time (the schedule runs every minute) it says the lead; late, what is really left.
    starts_in = _human_lead(lead_minutes if lead_minutes - remaining <= 5 else remaining)
    body = (
        f"Reminder: this maintenance starts in {starts_in}.\n\n"
        f"Window: {_window_text(maintenance)}\n\n{plain_body(announced.body) if announced else ''}"
    ).strip()
    update = _append_update(
        incident=maintenance, status=MaintenanceStatus.SCHEDULED, body=body, display_at=now, actor=None,
        deliver_notifications=True, affected=None,
    )
    cache.content_changed()
    return update


def maintenance_reminders_due(*, now: datetime | None = None) -> int:
    """Send every maintenance reminder whose lead has been reached (per-minute, from maintenances_advance)."""
    now = now or _now()
    sent = 0
    upcoming = Incident.objects.maintenances().filter(status=MaintenanceStatus.SCHEDULED, scheduled_for__gt=now)
    for pk, leads, done, starts in upcoming.values_list("pk", "reminder_leads", "reminders_sent", "scheduled_for"):
        reached = [lead for lead in set(leads or []) - set(done or []) if now >= starts - timedelta(minutes=lead)]
        if not reached:
            continue
        try:
            # Several leads reached at once (the worker was down): only the nearest one is
            # worth sending; "starts in 24 hours" an hour before the start would mislead.
            sent += maintenance_remind(
                maintenance=Incident(pk=pk), lead_minutes=min(reached), now=now, passed=[lead for lead in reached if lead != min(reached)],
            ) is not None
        except Exception:  # noqa: BLE001 - a failed reminder must not stop starts and completions
            logger.exception("Reminder for maintenance %s failed", pk)
    return sent


@transaction.atomic
def maintenance_set_reminders(*, maintenance: Incident, reminder_leads: list[int], actor=None) -> list[int]:
    """Change when subscribers are reminded of a window that has not started (an empty list:
    never); returns the new leads that had already passed, which are not sent late.

    Reminder times are internal: the page and the feeds do not change, nor does `updated`.
    """
    maintenance = Incident.objects.select_for_update().get(pk=maintenance.pk)
    if maintenance.status != MaintenanceStatus.SCHEDULED:
        raise ValidationError({"status": "Only a maintenance that has not started has reminders to change."})
    # bool is an int too; True minutes is a typo, not a lead.
    _check_reminder_leads(reminder_leads)
    leads = sorted(set(reminder_leads), reverse=True)
    now = _now()
    done = set(maintenance.reminders_sent or [])
    # A lead added once its time has gone would go out at the next run as a late reminder
    # nobody asked for; it counts as spent, as maintenance_reschedule does.
    passed = [lead for lead in leads if lead not in done and maintenance.scheduled_for - timedelta(minutes=lead) <= now]
    Incident.objects.filter(pk=maintenance.pk).update(reminder_leads=leads, reminders_sent=sorted(done | set(passed)))
    return passed


@transaction.atomic
def maintenance_reschedule(
    *, maintenance: Incident, scheduled_for: datetime, scheduled_until: datetime, body: str = "", actor=None,
    deliver_notifications: bool = True,
) -> IncidentUpdate:
    """Move a window that has not started; subscribers hear the new window, reminders start over."""
    maintenance = Incident.objects.select_for_update().select_related("page").get(pk=maintenance.pk)
    if maintenance.status != MaintenanceStatus.SCHEDULED:
        raise ValidationError({"status": "Only a maintenance that has not started can be rescheduled."})
    now = _now()
    if scheduled_for <= now:
        raise ValidationError({"scheduled_for": "A rescheduled window must start in the future."})
    if scheduled_until <= scheduled_for:
        raise ValidationError({"scheduled_until": "The window must end after it starts."})
    maintenance.scheduled_for, maintenance.scheduled_until = scheduled_for, scheduled_until
    # Leads already inside the new window count as spent: the reschedule notice is that reminder.
    spent = [lead for lead in maintenance.reminder_leads or [] if scheduled_for - timedelta(minutes=lead) <= now]
    maintenance.started_at, maintenance.reminders_sent, maintenance.updated = scheduled_for, spent, now
    maintenance.full_clean()
    maintenance.save()
    text = f"Rescheduled: the new window is {_window_text(maintenance)}."
    update = _append_update(
        incident=maintenance, status=MaintenanceStatus.SCHEDULED, body=f"{text}\n\n{body.strip()}".strip(), display_at=None,
        actor=actor, deliver_notifications=deliver_notifications, affected=None,
    )
    cache.content_changed()
    return update


@transaction.atomic
def maintenance_cancel(*, maintenance: Incident, body: str = "", actor=None, deliver_notifications: bool = True) -> IncidentUpdate:
    """Call off a maintenance that has not started; subscribers hear it will not happen."""
    maintenance = Incident.objects.select_for_update().get(pk=maintenance.pk)
    if maintenance.status != MaintenanceStatus.SCHEDULED:
        raise ValidationError({"status": "Only a maintenance that has not started can be cancelled; complete it instead."})
    now = _now()
    maintenance.status, maintenance.resolved_at, maintenance.updated = MaintenanceStatus.COMPLETED, now, now
    # It never started: the history lists it when it was called off, not at the window it lost.
    maintenance.started_at = min(maintenance.started_at, now)
    maintenance.full_clean()
    maintenance.save()
    update = _append_update(
        incident=maintenance, status=MaintenanceStatus.COMPLETED,
        body=f"Cancelled: this maintenance will not take place.\n\n{body.strip()}".strip(), display_at=now, actor=actor,
        deliver_notifications=deliver_notifications, affected=None,
    )
    cache.content_changed()
    return update


OVERRUN_CREDIT_REVIEW = timedelta(hours=2)


@transaction.atomic
def maintenance_extend(*, maintenance: Incident, scheduled_until: datetime, reason: str, actor=None) -> IncidentUpdate:
    """An overrun: publish the revised end and why; more than 2 h past the planned end flags an SLA credit review."""
    maintenance = Incident.objects.select_for_update().select_related("page").get(pk=maintenance.pk)
    if maintenance.status not in ACTIVE_MAINTENANCE_STATUSES:
        raise ValidationError({"status": "Only a maintenance in progress can overrun."})
    if scheduled_until <= max(maintenance.scheduled_until, _now()):
        raise ValidationError({"scheduled_until": "The revised end must be later than the current one, and in the future."})
    if not reason.strip():
        raise ValidationError({"reason": "Tell subscribers why the work takes longer."})
    maintenance.planned_until = maintenance.planned_until or maintenance.scheduled_until
    maintenance.scheduled_until, maintenance.updated = scheduled_until, _now()
    if scheduled_until - maintenance.planned_until > OVERRUN_CREDIT_REVIEW:
        maintenance.sla_credit_review = True
    maintenance.full_clean()
    maintenance.save()
    update = _append_update(
        incident=maintenance, status=maintenance.status,
        body=f"This maintenance is taking longer than planned. New expected end: "
             f"{local_text(scheduled_until, maintenance.page.time_zone)}.\n\n"
             f"Why: {reason.strip()}",
        display_at=None, actor=actor, deliver_notifications=True, affected=None,
    )
    cache.content_changed()
    return update


def maintenances_advance(*, now: datetime | None = None) -> dict[str, int]:
    """Start and complete maintenances whose time has come. Safe to run from several workers:
    each maintenance is moved in its own transaction under a row lock, and re-checked there."""
    now = now or _now()
    started = completed = 0
    reminded = maintenance_reminders_due(now=now)
    due_start = Incident.objects.maintenances().filter(
        status=MaintenanceStatus.SCHEDULED, auto_start=True, scheduled_for__lte=now, scheduled_until__gt=now
    ).values_list("pk", flat=True)
    for pk in list(due_start):
        try:
            maintenance_start(maintenance=Incident(pk=pk))
            started += 1
        except ValidationError:
            continue  # another worker moved it first
        except Exception:  # noqa: BLE001 - one broken maintenance must not hold up the others
            logger.exception("Starting maintenance %s failed", pk)
    due_end = Incident.objects.maintenances().filter(
        status__in=[MaintenanceStatus.SCHEDULED, *ACTIVE_MAINTENANCE_STATUSES], auto_complete=True, scheduled_until__lte=now
    ).exclude(status=MaintenanceStatus.SCHEDULED, auto_start=False).values_list("pk", flat=True)
    for pk in list(due_end):
        try:
            maintenance_complete(maintenance=Incident(pk=pk))
            completed += 1
        except ValidationError:
            continue
        except Exception:  # noqa: BLE001
            logger.exception("Completing maintenance %s failed", pk)
    return {"reminded": reminded, "started": started, "completed": completed}
