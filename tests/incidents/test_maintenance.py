"""Scheduled maintenance: announcing, the timed start and end, and the table's invariants."""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from incidents import services
from incidents.models import (
    Component,
    ComponentStatus,
    ComponentStatusChange,
    Impact,
    Incident,
    IncidentKind,
    IncidentStatus,
    MaintenanceStatus,
    StatusSource,
)
from tests import factories


def _status(component: Component) -> str:
    return Component.objects.values_list("status", flat=True).get(pk=component.pk)


def _reload(maintenance: Incident) -> Incident:
    maintenance.refresh_from_db()
    return maintenance


def test_scheduling_announces_a_scheduled_maintenance_without_touching_components(page, rest_api):
    maintenance = factories.schedule_maintenance(page=page, components=[rest_api])

    maintenance = _reload(maintenance)
    assert (maintenance.kind, maintenance.status, maintenance.impact) == (
        IncidentKind.MAINTENANCE, MaintenanceStatus.SCHEDULED, Impact.MAINTENANCE,
    )
    assert maintenance.updates.get().status == MaintenanceStatus.SCHEDULED
    assert list(maintenance.components.all()) == [rest_api]
    assert _status(rest_api) == ComponentStatus.OPERATIONAL


def test_scheduling_with_another_pages_component_writes_nothing(page):
    other = factories.make_page(name="Other", url="https://status.other.example.org")
    foreign = factories.make_component(page=other, name="Foreign")

    with pytest.raises(ValidationError):
        factories.schedule_maintenance(page=page, components=[foreign])

    assert not Incident.objects.exists()


def test_a_group_cannot_be_put_under_maintenance(page, api_group, rest_api):
    with pytest.raises(ValidationError) as excinfo:
        factories.schedule_maintenance(page=page, components=[api_group])

    assert "components" in excinfo.value.message_dict
    assert not Incident.objects.exists()


def test_advance_starts_a_due_maintenance_and_puts_its_components_under_maintenance(page, rest_api, dashboard):
    maintenance = factories.schedule_maintenance(page=page, components=[rest_api, dashboard])

    result = services.maintenances_advance(now=maintenance.scheduled_for + timedelta(minutes=1))

    assert result == {"reminded": 0, "started": 1, "completed": 0}
    assert _reload(maintenance).status == MaintenanceStatus.IN_PROGRESS
    for component in (rest_api, dashboard):
        assert _status(component) == ComponentStatus.UNDER_MAINTENANCE
        entry = ComponentStatusChange.objects.filter(component=component).first()
        assert (entry.new_status, entry.source, entry.incident_id) == (
            ComponentStatus.UNDER_MAINTENANCE, StatusSource.MAINTENANCE, maintenance.pk,
        )


def test_advance_leaves_a_maintenance_alone_before_its_start(page, rest_api):
    maintenance = factories.schedule_maintenance(page=page, components=[rest_api])

    result = services.maintenances_advance(now=maintenance.scheduled_for - timedelta(minutes=1))

    # Only the reminder is due: the hour-before one (the day-before one is never sent late).
    assert result == {"reminded": 1, "started": 0, "completed": 0}
    assert _reload(maintenance).status == MaintenanceStatus.SCHEDULED
    assert _status(rest_api) == ComponentStatus.OPERATIONAL


def test_advance_completes_a_finished_maintenance_and_restores_operational(page, rest_api):
    maintenance = factories.schedule_maintenance(page=page, components=[rest_api])
    services.maintenances_advance(now=maintenance.scheduled_for)

    result = services.maintenances_advance(now=maintenance.scheduled_until)

    assert result == {"reminded": 0, "started": 0, "completed": 1}
    maintenance = _reload(maintenance)
    assert maintenance.status == MaintenanceStatus.COMPLETED
    assert maintenance.resolved_at is not None
    assert _status(rest_api) == ComponentStatus.OPERATIONAL
    entry = ComponentStatusChange.objects.filter(component=rest_api).first()
    assert (entry.old_status, entry.new_status, entry.source) == (
        ComponentStatus.UNDER_MAINTENANCE, ComponentStatus.OPERATIONAL, StatusSource.MAINTENANCE,
    )


def test_completing_returns_a_component_to_the_status_an_open_incident_holds(page, rest_api):
    incident = factories.open_incident(page=page, components={rest_api: ComponentStatus.PARTIAL_OUTAGE})
    # Staff cleared the component by hand while the incident stayed open; then the window came.
    services.component_set_status(component=rest_api, status=ComponentStatus.OPERATIONAL, source=StatusSource.MANUAL)
    maintenance = factories.schedule_maintenance(page=page, components=[rest_api])
    services.maintenances_advance(now=maintenance.scheduled_for)
    assert _status(rest_api) == ComponentStatus.UNDER_MAINTENANCE

    services.maintenances_advance(now=maintenance.scheduled_until)

    assert _status(rest_api) == ComponentStatus.PARTIAL_OUTAGE
    assert _reload(incident).status == IncidentStatus.INVESTIGATING


def test_an_incident_during_a_maintenance_keeps_its_status_at_completion(page, rest_api):
    maintenance = factories.schedule_maintenance(page=page, components=[rest_api])
    services.maintenances_advance(now=maintenance.scheduled_for)
    factories.open_incident(page=page, components={rest_api: ComponentStatus.MAJOR_OUTAGE})

    services.maintenances_advance(now=maintenance.scheduled_until)

    assert _reload(maintenance).status == MaintenanceStatus.COMPLETED
    assert _status(rest_api) == ComponentStatus.MAJOR_OUTAGE


def test_resolving_an_incident_during_a_maintenance_returns_the_component_to_maintenance(page, rest_api):
    maintenance = factories.schedule_maintenance(page=page, components=[rest_api])
    services.maintenances_advance(now=maintenance.scheduled_for)
    incident = factories.open_incident(page=page, components={rest_api: ComponentStatus.MAJOR_OUTAGE})

    services.incident_resolve(incident=incident, body="Fixed.")

    assert _status(rest_api) == ComponentStatus.UNDER_MAINTENANCE


def test_auto_start_false_is_not_started_by_advance(page, rest_api):
    maintenance = factories.schedule_maintenance(page=page, components=[rest_api], auto_start=False)

    services.maintenances_advance(now=maintenance.scheduled_for + timedelta(minutes=1))
    services.maintenances_advance(now=maintenance.scheduled_until + timedelta(minutes=1))

    assert _reload(maintenance).status == MaintenanceStatus.SCHEDULED
    assert _status(rest_api) == ComponentStatus.OPERATIONAL


def test_auto_complete_false_is_not_completed_by_advance(page, rest_api):
    maintenance = factories.schedule_maintenance(page=page, components=[rest_api], auto_complete=False)
    services.maintenances_advance(now=maintenance.scheduled_for)

    services.maintenances_advance(now=maintenance.scheduled_until + timedelta(hours=1))

    assert _reload(maintenance).status == MaintenanceStatus.IN_PROGRESS
    assert _status(rest_api) == ComponentStatus.UNDER_MAINTENANCE


def test_running_advance_twice_does_nothing_the_second_time(page, rest_api):
    maintenance = factories.schedule_maintenance(page=page, components=[rest_api])
    at = maintenance.scheduled_for + timedelta(minutes=1)
    services.maintenances_advance(now=at)
    updates, changes = maintenance.updates.count(), ComponentStatusChange.objects.count()

    result = services.maintenances_advance(now=at)

    assert result == {"reminded": 0, "started": 0, "completed": 0}
    assert maintenance.updates.count() == updates
    assert ComponentStatusChange.objects.count() == changes


def test_a_maintenance_whose_window_passed_unstarted_is_completed(page, rest_api):
    # The worker was down for the whole window: complete it, never flip components on and off.
    maintenance = factories.schedule_maintenance(page=page, components=[rest_api])

    result = services.maintenances_advance(now=maintenance.scheduled_until + timedelta(minutes=5))

    assert result == {"reminded": 0, "started": 0, "completed": 1}
    assert _reload(maintenance).status == MaintenanceStatus.COMPLETED
    assert not ComponentStatusChange.objects.filter(component=rest_api, source=StatusSource.MAINTENANCE).exists()


def test_verifying_sets_monitoring_at(page):
    maintenance = factories.schedule_maintenance(page=page)
    services.maintenance_start(maintenance=maintenance)

    services.maintenance_verify(maintenance=maintenance, body="Checking the new database.")

    maintenance = _reload(maintenance)
    assert maintenance.status == MaintenanceStatus.VERIFYING
    assert maintenance.monitoring_at is not None


def test_a_maintenance_ending_before_it_starts_is_refused(page):
    start = timezone.now() + timedelta(days=1)

    with pytest.raises(ValidationError) as excinfo:
        services.maintenance_schedule(
            page=page, name="Backwards", body="Time runs the other way.", scheduled_for=start, scheduled_until=start - timedelta(hours=1),
        )

    assert "scheduled_until" in excinfo.value.message_dict
    assert not Incident.objects.exists()


def test_a_maintenance_ending_before_it_starts_is_refused_by_the_database(page):
    start = timezone.now() + timedelta(days=1)
    backwards = Incident(
        page=page, kind=IncidentKind.MAINTENANCE, name="Backwards", status=MaintenanceStatus.SCHEDULED,
        scheduled_for=start, scheduled_until=start - timedelta(hours=1),
    )

    with pytest.raises(IntegrityError), transaction.atomic():
        backwards.save()


def test_a_resolved_incident_without_resolved_at_is_refused(page):
    incident = Incident(page=page, name="Half closed", status=IncidentStatus.RESOLVED)

    with pytest.raises(ValidationError) as excinfo:
        incident.full_clean()
    assert "resolved_at" in excinfo.value.message_dict
    with pytest.raises(IntegrityError), transaction.atomic():
        incident.save()


def test_an_incident_cannot_take_a_maintenance_status(page):
    incident = Incident(page=page, name="Confused", status=MaintenanceStatus.IN_PROGRESS)

    with pytest.raises(ValidationError) as excinfo:
        incident.full_clean()

    assert "status" in excinfo.value.message_dict
