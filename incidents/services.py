"""Writes for pages, components, incidents and maintenance.

Every function is keyword-only and atomic, validates before it saves, and starts anything that
leaves the process (cache invalidation, static export) from transaction.on_commit.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from incidents import cache
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
    incident.next_update_at = next_update_at or _next_update_due(incident, display_at or now)
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
        incident.next_update_at = next_update_at or _next_update_due(incident, display_at or now)
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
) -> Incident:
    """Announce a maintenance window; its components are only touched when it starts."""
    now = _now()
    maintenance = Incident(
        page=page, kind=IncidentKind.MAINTENANCE, name=name, status=MaintenanceStatus.SCHEDULED,
        impact=Impact.MAINTENANCE, started_at=scheduled_for, scheduled_for=scheduled_for,
        scheduled_until=scheduled_until, auto_start=auto_start, auto_complete=auto_complete,
        created=now, updated=now,
    )
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


def maintenances_advance(*, now: datetime | None = None) -> dict[str, int]:
    """Start and complete maintenances whose time has come. Safe to run from several workers:
    each maintenance is moved in its own transaction under a row lock, and re-checked there."""
    now = now or _now()
    started = completed = 0
    due_start = Incident.objects.maintenances().filter(
        status=MaintenanceStatus.SCHEDULED, auto_start=True, scheduled_for__lte=now, scheduled_until__gt=now
    ).values_list("pk", flat=True)
    for pk in list(due_start):
        try:
            maintenance_start(maintenance=Incident(pk=pk))
            started += 1
        except ValidationError:
            continue  # another worker moved it first
    due_end = Incident.objects.maintenances().filter(
        status__in=[MaintenanceStatus.SCHEDULED, *ACTIVE_MAINTENANCE_STATUSES], auto_complete=True, scheduled_until__lte=now
    ).exclude(status=MaintenanceStatus.SCHEDULED, auto_start=False).values_list("pk", flat=True)
    for pk in list(due_end):
        try:
            maintenance_complete(maintenance=Incident(pk=pk))
            completed += 1
        except ValidationError:
            continue
    return {"started": started, "completed": completed}
