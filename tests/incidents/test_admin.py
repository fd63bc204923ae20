"""The editorial desk: admin pages write through the services and show what staff must know."""
from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from django.contrib.admin.models import LogEntry
from django.urls import reverse
from django.utils import timezone

from incidents import cache, services
from incidents.models import (
    Component,
    ComponentStatus,
    ComponentStatusChange,
    Incident,
    IncidentKind,
    IncidentStatus,
    MaintenanceStatus,
    Page,
    Region,
    StatusSource,
)
from tests import factories

# The read-only time line inline still posts its (empty) management form.
TIMELINE = {"updates-TOTAL_FORMS": "0", "updates-INITIAL_FORMS": "0"}


_split = factories.split_datetime


def _status(component: Component) -> str:
    return Component.objects.values_list("status", flat=True).get(pk=component.pk)


def _url(name: str, *args) -> str:
    return reverse(f"admin:incidents_{name}", args=args)


def _messages(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


# --- pages render ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "page_changelist", "page_add", "region_changelist", "region_add", "component_changelist", "component_add",
        "componentgroup_changelist", "componentgroup_add", "componentstatuschange_changelist",
        "incident_changelist", "incident_add", "maintenance_changelist", "maintenance_add",
    ],
)
def test_every_desk_list_and_add_page_renders(desk, rest_api, webhooks, dashboard, name):
    factories.open_incident(page=rest_api.page, components={rest_api: ComponentStatus.MAJOR_OUTAGE})
    factories.schedule_maintenance(page=rest_api.page, components=[dashboard])

    assert desk.get(_url(name)).status_code == 200


def test_every_change_page_renders(desk, page, api_group, rest_api, dashboard):
    incident = factories.open_incident(page=page, components={rest_api: ComponentStatus.MAJOR_OUTAGE})
    maintenance = factories.schedule_maintenance(page=page, components=[dashboard])
    region = Region.objects.create(page=page, code="eu", name="Europe")

    for url in [
        _url("page_change", page.pk), _url("region_change", region.pk), _url("component_change", rest_api.pk),
        _url("componentgroup_change", api_group.pk), _url("incident_change", incident.pk),
        _url("incident_post_update", incident.pk), _url("incident_resolve", incident.pk),
        _url("maintenance_change", maintenance.pk), _url("maintenance_step", maintenance.pk, "start"),
    ]:
        assert desk.get(url).status_code == 200, url


def test_incident_list_shows_incidents_and_the_maintenance_list_shows_maintenances(desk, page):
    factories.open_incident(page=page, name="Login failures")
    factories.schedule_maintenance(page=page, name="Kernel patching")

    incidents = desk.get(_url("incident_changelist")).content.decode()
    maintenances = desk.get(_url("maintenance_changelist")).content.decode()

    assert "Login failures" in incidents and "Kernel patching" not in incidents
    assert "Kernel patching" in maintenances and "Login failures" not in maintenances


def test_incident_list_filters_open_incidents(desk, page):
    factories.open_incident(page=page, name="Still going")
    done = factories.open_incident(page=page, name="All over")
    services.incident_resolve(incident=done, body="Fixed.")

    listed = desk.get(_url("incident_changelist"), {"status": "open"}).content.decode()

    assert "Still going" in listed and "All over" not in listed


def test_the_component_list_shows_the_status_in_colour(desk, rest_api):
    factories.make_component(page=rest_api.page, name="Search", status=ComponentStatus.MAJOR_OUTAGE)

    listed = desk.get(_url("component_changelist")).content.decode()

    assert "#c62828" in listed and "Major outage" in listed


# --- pages -------------------------------------------------------------------------------------


def test_saving_a_page_in_the_desk_invalidates_the_public_cache(desk, page, django_capture_on_commit_callbacks):
    before = cache.current_version()
    data = {
        "name": "Acme Status", "url": "https://status.example.com", "extra_hosts": "status.example.org",
        "is_default": "on", "time_zone": "Europe/Amsterdam", "description": "", "support_url": "",
        "brand_colour": "#112233", "accent_colour": "#445566",
    }

    with django_capture_on_commit_callbacks(execute=True):
        response = desk.post(_url("page_change", page.pk), data)

    assert response.status_code == 302
    page.refresh_from_db()
    assert (page.name, page.time_zone, page.extra_hosts) == ("Acme Status", "Europe/Amsterdam", "status.example.org")
    assert cache.current_version() != before


# --- components --------------------------------------------------------------------------------


def _component_data(component: Component, **changes) -> dict:
    data = {
        "page": component.page_id, "name": component.name, "description": component.description,
        "group": component.group_id or "", "position": component.position, "status": component.status,
        "showcase": "on", "start_date": "", "reason": "",
    }
    if component.is_group:
        data["is_group"] = "on"
    data.update(changes)
    return {k: v for k, v in data.items() if v is not None}


def test_a_status_change_in_the_component_desk_is_logged_as_manual_with_the_user(desk, staff, rest_api):
    response = desk.post(
        _url("component_change", rest_api.pk),
        _component_data(rest_api, status=ComponentStatus.PARTIAL_OUTAGE, reason="Checkout errors reported"),
    )

    assert response.status_code == 302
    assert _status(rest_api) == ComponentStatus.PARTIAL_OUTAGE
    entry = ComponentStatusChange.objects.filter(component=rest_api).first()
    assert (entry.old_status, entry.new_status, entry.source, entry.actor, entry.reason) == (
        ComponentStatus.OPERATIONAL, ComponentStatus.PARTIAL_OUTAGE, StatusSource.MANUAL, staff, "Checkout errors reported",
    )


def test_adding_a_component_in_the_desk_starts_its_status_log(desk, staff, page, api_group):
    response = desk.post(_url("component_add"), {
        "page": page.pk, "name": "GraphQL API", "group": api_group.pk, "position": 3,
        "status": ComponentStatus.OPERATIONAL, "showcase": "on",
    })

    assert response.status_code == 302
    component = Component.objects.get(name="GraphQL API")
    assert component.group == api_group
    assert ComponentStatusChange.objects.filter(component=component, source=StatusSource.MANUAL, actor=staff).exists()


def test_a_status_the_service_refuses_is_shown_on_the_field_and_nothing_is_written(desk, api_group):
    response = desk.post(
        _url("component_change", api_group.pk),
        _component_data(api_group, name="Public API", status=ComponentStatus.MAJOR_OUTAGE),
    )

    assert response.status_code == 200
    assert "A group&#x27;s status follows its components" in str(response.context["adminform"].form.errors["status"])
    api_group.refresh_from_db()
    assert (api_group.name, api_group.status) == ("API", ComponentStatus.OPERATIONAL)


def test_the_set_status_action_logs_each_component_as_manual(desk, staff, rest_api, webhooks):
    response = desk.post(_url("component_changelist"), {
        "action": "set_major_outage", "_selected_action": [rest_api.pk, webhooks.pk],
    })

    assert response.status_code == 302
    assert {_status(rest_api), _status(webhooks)} == {ComponentStatus.MAJOR_OUTAGE}
    assert ComponentStatusChange.objects.filter(new_status=ComponentStatus.MAJOR_OUTAGE, source=StatusSource.MANUAL, actor=staff).count() == 2


def test_the_group_desk_moves_components_in_and_out_through_the_services(desk, staff, page, api_group, rest_api, webhooks, dashboard):
    response = desk.post(_url("componentgroup_change", api_group.pk), {
        "page": page.pk, "name": "API", "description": "", "position": 1, "showcase": "on",
        "members": [rest_api.pk, dashboard.pk],
    })

    assert response.status_code == 302
    assert set(Component.objects.filter(group=api_group)) == {rest_api, dashboard}
    assert Component.objects.get(pk=webhooks.pk).group is None


def test_a_group_gets_a_communications_owner_in_the_desk(desk, staff, page, api_group, rest_api):
    response = desk.post(_url("componentgroup_change", api_group.pk), {
        "page": page.pk, "name": "API", "description": "", "position": 1, "showcase": "on",
        "members": [rest_api.pk], "comms_owner": staff.pk,
    })

    assert response.status_code == 302
    assert Component.objects.get(pk=api_group.pk).comms_owner == staff


def test_a_new_group_can_take_ungrouped_components(desk, page, dashboard):
    response = desk.post(_url("componentgroup_add"), {
        "page": page.pk, "name": "Web", "description": "Browser apps", "position": 3, "showcase": "on",
        "members": [dashboard.pk],
    })

    assert response.status_code == 302
    group = Component.objects.get(name="Web")
    assert group.is_group and list(group.children.all()) == [dashboard]


def test_the_group_list_shows_the_worst_member_status(desk, api_group, rest_api, webhooks):
    services.component_set_status(component=webhooks, status=ComponentStatus.PARTIAL_OUTAGE, source=StatusSource.MANUAL)

    listed = desk.get(_url("componentgroup_changelist")).content.decode()

    assert "Partial outage" in listed


def test_a_group_in_the_component_list_shows_its_worst_member(desk, api_group, rest_api, webhooks):
    services.component_set_status(component=rest_api, status=ComponentStatus.MAJOR_OUTAGE, source=StatusSource.MANUAL)

    listed = desk.get(_url("component_changelist"), {"is_group__exact": "1"}).content.decode()

    assert "REST API" not in listed
    assert "#c62828" in listed  # the major outage colour, on the group's row


# --- the status log ------------------------------------------------------------------------------


def test_the_status_log_can_be_read_but_not_added_changed_or_deleted(desk, rest_api):
    entry = ComponentStatusChange.objects.filter(component=rest_api).first()
    count = ComponentStatusChange.objects.count()

    assert desk.get(_url("componentstatuschange_changelist")).status_code == 200
    assert desk.get(_url("componentstatuschange_change", entry.pk)).status_code == 200
    assert desk.get(_url("componentstatuschange_add")).status_code == 403
    assert desk.post(_url("componentstatuschange_change", entry.pk), {"reason": "edited"}).status_code == 403
    assert desk.post(_url("componentstatuschange_delete", entry.pk), {"post": "yes"}).status_code == 403
    assert ComponentStatusChange.objects.count() == count
    entry.refresh_from_db()
    assert entry.reason != "edited"


# --- incidents ---------------------------------------------------------------------------------------


def test_opening_an_incident_in_the_desk_sets_components_and_writes_the_first_update(desk, staff, page, rest_api, dashboard):
    region = Region.objects.create(page=page, code="eu", name="Europe")
    started = timezone.now() - timedelta(minutes=20)

    response = desk.post(_url("incident_add"), {
        "page": page.pk, "name": "API errors", "status": IncidentStatus.INVESTIGATING, "impact": "",
        "severity": "P2", "regions": [region.pk], **_split("started_at", started),
        "body": "We are looking into **errors** on the API.", "deliver_notifications": "on",
        f"component_{rest_api.pk}": ComponentStatus.PARTIAL_OUTAGE, f"component_{dashboard.pk}": "",
    })

    assert response.status_code == 302
    incident = Incident.objects.get(name="API errors")
    assert (incident.kind, incident.status, incident.impact, incident.severity) == (
        IncidentKind.INCIDENT, IncidentStatus.INVESTIGATING, "major", "P2",
    )
    assert list(incident.regions.all()) == [region]
    assert (_status(rest_api), _status(dashboard)) == (ComponentStatus.PARTIAL_OUTAGE, ComponentStatus.OPERATIONAL)
    update = incident.updates.get()
    assert (update.created_by, "<strong>errors</strong>" in update.body_html) == (staff, True)
    assert ComponentStatusChange.objects.filter(component=rest_api, incident=incident, actor=staff).exists()
    assert LogEntry.objects.filter(object_id=str(incident.pk)).exists()


def test_editing_an_incident_saves_its_own_fields_and_regions(desk, page):
    incident = factories.open_incident(page=page, name="Slow pages")
    region = Region.objects.create(page=page, code="us", name="United States")

    response = desk.post(_url("incident_change", incident.pk), {
        "name": "Slow dashboard pages", "impact": "minor", "severity": "P3", "regions": [region.pk],
        **_split("started_at", incident.started_at), **TIMELINE,
    })

    assert response.status_code == 302
    incident.refresh_from_db()
    assert (incident.name, incident.impact) == ("Slow dashboard pages", "minor")
    assert list(incident.regions.all()) == [region]


def test_the_change_page_shows_the_time_line_read_only(desk, page):
    incident = factories.open_incident(page=page, body="First we *looked*.")

    body = desk.get(_url("incident_change", incident.pk)).content.decode()

    assert "<em>looked</em>" in body
    assert "updates-0-body" not in body


def test_posting_an_update_moves_the_incident_and_the_chosen_components(desk, staff, page, rest_api, webhooks):
    incident = factories.open_incident(page=page, components={rest_api: ComponentStatus.MAJOR_OUTAGE})
    shown = timezone.now() - timedelta(minutes=2)

    response = desk.post(_url("incident_post_update", incident.pk), {
        "status": IncidentStatus.IDENTIFIED, "body": "A bad deploy; rolling back.", **_split("display_at", shown),
        f"component_{rest_api.pk}": ComponentStatus.DEGRADED_PERFORMANCE, f"component_{webhooks.pk}": "",
    })

    assert response.status_code == 302
    incident.refresh_from_db()
    assert incident.status == IncidentStatus.IDENTIFIED
    update = incident.updates.latest("id")
    assert (update.status, update.body, update.created_by, update.deliver_notifications) == (
        IncidentStatus.IDENTIFIED, "A bad deploy; rolling back.", staff, False,
    )
    assert update.display_at.replace(microsecond=0) == shown.replace(microsecond=0)
    assert (_status(rest_api), _status(webhooks)) == (ComponentStatus.DEGRADED_PERFORMANCE, ComponentStatus.OPERATIONAL)


def test_an_update_without_text_is_refused_and_changes_nothing(desk, page, rest_api):
    incident = factories.open_incident(page=page, components={rest_api: ComponentStatus.MAJOR_OUTAGE})

    response = desk.post(_url("incident_post_update", incident.pk), {
        "status": IncidentStatus.MONITORING, "body": "", f"component_{rest_api.pk}": ComponentStatus.OPERATIONAL,
    })

    assert response.status_code == 200
    assert "body" in response.context["form"].errors
    assert incident.updates.count() == 1
    assert _status(rest_api) == ComponentStatus.MAJOR_OUTAGE


def test_the_resolve_form_offers_to_restore_components_by_default(desk, page, rest_api):
    incident = factories.open_incident(page=page, components={rest_api: ComponentStatus.MAJOR_OUTAGE})

    response = desk.get(_url("incident_resolve", incident.pk))

    assert response.context["form"]["restore_components"].value() is True
    assert "REST API" in response.content.decode()


def test_resolving_in_the_desk_restores_the_affected_components(desk, staff, page, rest_api):
    incident = factories.open_incident(page=page, components={rest_api: ComponentStatus.MAJOR_OUTAGE})

    response = desk.post(_url("incident_resolve", incident.pk), {
        "body": "Fixed by rolling back.", "restore_components": "on", "deliver_notifications": "on",
    })

    assert response.status_code == 302
    incident.refresh_from_db()
    assert (incident.status, incident.resolved_at is not None) == (IncidentStatus.RESOLVED, True)
    assert _status(rest_api) == ComponentStatus.OPERATIONAL
    assert incident.updates.latest("id").created_by == staff


def test_keeping_components_degraded_without_a_reason_is_refused_and_changes_nothing(desk, page, rest_api):
    incident = factories.open_incident(page=page, components={rest_api: ComponentStatus.MAJOR_OUTAGE})

    response = desk.post(_url("incident_resolve", incident.pk), {"body": "The outage is over.", "keep_reason": ""})

    assert response.status_code == 200
    assert "Say why the affected components stay degraded" in str(response.context["form"].errors["keep_reason"])
    incident.refresh_from_db()
    assert incident.status == IncidentStatus.INVESTIGATING
    assert incident.updates.count() == 1
    assert _status(rest_api) == ComponentStatus.MAJOR_OUTAGE


def test_keeping_components_degraded_with_a_reason_logs_it(desk, staff, page, rest_api):
    incident = factories.open_incident(page=page, components={rest_api: ComponentStatus.MAJOR_OUTAGE})

    response = desk.post(_url("incident_resolve", incident.pk), {
        "body": "Customers are no longer affected.", "keep_reason": "Failover region still serving",
    })

    assert response.status_code == 302
    assert _status(rest_api) == ComponentStatus.MAJOR_OUTAGE
    entry = ComponentStatusChange.objects.filter(component=rest_api).first()
    assert (entry.actor, "Failover region still serving" in entry.reason) == (staff, True)


def test_a_resolved_incident_with_an_unexplained_degraded_component_shows_a_warning(desk, page, rest_api):
    incident = factories.open_incident(page=page, components={rest_api: ComponentStatus.MAJOR_OUTAGE})
    services.incident_resolve(incident=incident, body="Done.", restore_components=False, keep_reason="Watching it")

    response = desk.get(_url("incident_change", incident.pk))

    assert any("API - REST API is still major outage" in m for m in _messages(response))


def test_no_warning_when_an_open_incident_explains_the_status(desk, page, rest_api):
    first = factories.open_incident(page=page, components={rest_api: ComponentStatus.MAJOR_OUTAGE})
    factories.open_incident(page=page, name="Second", components={rest_api: ComponentStatus.MAJOR_OUTAGE})
    services.incident_resolve(incident=first, body="Our part is done.")

    response = desk.get(_url("incident_change", first.pk))

    assert _status(rest_api) == ComponentStatus.MAJOR_OUTAGE
    assert not any("is still" in m for m in _messages(response))


# --- maintenance ---------------------------------------------------------------------------------


def test_scheduling_a_maintenance_in_the_desk(desk, staff, page, rest_api):
    start = timezone.now() + timedelta(days=3)

    response = desk.post(_url("maintenance_add"), {
        "page": page.pk, "name": "Database upgrade", **_split("scheduled_for", start),
        **_split("scheduled_until", start + timedelta(hours=2)), "auto_start": "on", "auto_complete": "on",
        "affected_components": [rest_api.pk], "body": "We upgrade the primary database.", "deliver_notifications": "on",
    })

    assert response.status_code == 302
    maintenance = Incident.objects.get(name="Database upgrade")
    assert (maintenance.kind, maintenance.status) == (IncidentKind.MAINTENANCE, MaintenanceStatus.SCHEDULED)
    assert list(maintenance.components.all()) == [rest_api]
    assert maintenance.updates.get().created_by == staff
    assert response["Location"] == _url("maintenance_changelist")


def test_the_maintenance_steps_move_it_through_its_life(desk, page, rest_api):
    maintenance = factories.schedule_maintenance(page=page, components=[rest_api])

    for step, status, component_status in [
        ("start", MaintenanceStatus.IN_PROGRESS, ComponentStatus.UNDER_MAINTENANCE),
        ("verify", MaintenanceStatus.VERIFYING, ComponentStatus.UNDER_MAINTENANCE),
        ("complete", MaintenanceStatus.COMPLETED, ComponentStatus.OPERATIONAL),
    ]:
        response = desk.post(_url("maintenance_step", maintenance.pk, step), {"body": f"Step {step}."})
        assert response.status_code == 302
        maintenance.refresh_from_db()
        assert (maintenance.status, _status(rest_api)) == (status, component_status)
    assert [u.body for u in maintenance.updates.order_by("id")][1:] == ["Step start.", "Step verify.", "Step complete."]


def test_a_step_out_of_order_is_refused(desk, page):
    maintenance = factories.schedule_maintenance(page=page)

    response = desk.post(_url("maintenance_step", maintenance.pk, "verify"), {"body": "Checking."})

    assert response.status_code == 302
    maintenance.refresh_from_db()
    assert maintenance.status == MaintenanceStatus.SCHEDULED
    assert maintenance.updates.count() == 1


def test_the_start_action_starts_the_selected_maintenances(desk, staff, page, rest_api):
    maintenance = factories.schedule_maintenance(page=page, components=[rest_api])

    response = desk.post(_url("maintenance_changelist"), {"action": "start_selected", "_selected_action": [maintenance.pk]})

    assert response.status_code == 302
    maintenance.refresh_from_db()
    assert maintenance.status == MaintenanceStatus.IN_PROGRESS
    assert _status(rest_api) == ComponentStatus.UNDER_MAINTENANCE
    assert maintenance.updates.latest("id").created_by == staff


def test_the_complete_action_reports_a_maintenance_it_cannot_complete(desk, page):
    maintenance = factories.schedule_maintenance(page=page)
    services.maintenance_complete(maintenance=maintenance)

    response = desk.post(
        _url("maintenance_changelist"), {"action": "complete_selected", "_selected_action": [maintenance.pk]}, follow=True,
    )

    assert any("already completed" in m for m in _messages(response))


def test_pages_are_not_deleted_behind_the_caches_back(desk, page, django_capture_on_commit_callbacks):
    other = factories.make_page(name="Old page", url="https://old.example.org")
    before = cache.current_version()

    with django_capture_on_commit_callbacks(execute=True):
        response = desk.post(_url("page_delete", other.pk), {"post": "yes"})

    assert response.status_code == 302
    assert not Page.objects.filter(pk=other.pk).exists()
    assert cache.current_version() != before
