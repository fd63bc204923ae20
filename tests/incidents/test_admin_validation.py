"""The desk refuses impossible data with an error on the field, and writes nothing."""
from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from incidents import services
from incidents.models import Component, ComponentStatusChange, Incident, IncidentStatus, Page
from tests import factories

TIMELINE = {"updates-TOTAL_FORMS": "0", "updates-INITIAL_FORMS": "0"}


_split = factories.split_datetime


def _url(name: str, *args) -> str:
    return reverse(f"admin:incidents_{name}", args=args)


def _field_errors(response, field: str) -> str:
    assert response.status_code == 200, "the form was accepted"
    return " ".join(response.context["adminform"].form.errors.get(field, []))


def test_a_maintenance_that_ends_before_it_starts_is_refused(desk, page, rest_api):
    start = timezone.now() + timedelta(days=2)

    response = desk.post(_url("maintenance_add"), {
        "page": page.pk, "name": "Network work", **_split("scheduled_for", start),
        **_split("scheduled_until", start - timedelta(hours=1)), "auto_start": "on", "auto_complete": "on",
        "affected_components": [rest_api.pk], "body": "Switch replacement.",
    })

    assert "The maintenance must end after it starts." in _field_errors(response, "scheduled_until")
    assert not Incident.objects.exists()


def test_moving_a_maintenance_end_before_its_start_is_refused(desk, page):
    maintenance = factories.schedule_maintenance(page=page)
    until = maintenance.scheduled_until

    response = desk.post(_url("maintenance_change", maintenance.pk), {
        "name": maintenance.name, **_split("scheduled_for", maintenance.scheduled_for),
        **_split("scheduled_until", maintenance.scheduled_for - timedelta(minutes=30)), **TIMELINE,
    })

    assert "The maintenance must end after it starts." in _field_errors(response, "scheduled_until")
    maintenance.refresh_from_db()
    assert maintenance.scheduled_until == until


def test_a_resolved_incident_without_a_resolution_time_is_refused(desk, page):
    incident = factories.open_incident(page=page, name="Queue backlog")
    services.incident_resolve(incident=incident, body="Drained.")
    incident.refresh_from_db()
    resolved_at = incident.resolved_at

    response = desk.post(_url("incident_change", incident.pk), {
        "name": "Queue backlog (renamed)", "impact": incident.impact, "severity": incident.severity,
        **_split("started_at", incident.started_at), "resolved_at_0": "", "resolved_at_1": "", **TIMELINE,
    })

    assert "A resolved incident needs a resolution time." in _field_errors(response, "resolved_at")
    incident.refresh_from_db()
    assert (incident.name, incident.status, incident.resolved_at) == ("Queue backlog", IncidentStatus.RESOLVED, resolved_at)


def test_a_component_already_in_another_group_is_refused(desk, page, api_group, rest_api, dashboard):
    groups_before = Component.objects.filter(is_group=True).count()

    response = desk.post(_url("componentgroup_add"), {
        "page": page.pk, "name": "Core", "description": "", "position": 2, "showcase": "on",
        "members": [dashboard.pk, rest_api.pk],
    })

    assert "REST API is already in the group API; a component belongs to one group only." in _field_errors(response, "members")
    assert Component.objects.filter(is_group=True).count() == groups_before
    assert Component.objects.get(pk=rest_api.pk).group == api_group
    assert Component.objects.get(pk=dashboard.pk).group is None


def test_an_unknown_time_zone_is_refused(desk, page):
    response = desk.post(_url("page_change", page.pk), {
        "name": "Acme", "url": "https://status.example.com", "extra_hosts": "", "is_default": "on",
        "time_zone": "Mars/Olympus_Mons", "brand_colour": "#1f2d3d", "accent_colour": "#3498db",
    })

    assert "Unknown time zone Mars/Olympus_Mons" in _field_errors(response, "time_zone")
    page.refresh_from_db()
    assert page.time_zone == "Etc/UTC"


def test_a_new_page_with_an_unknown_time_zone_is_not_created(desk, page):
    response = desk.post(_url("page_add"), {
        "name": "Beta", "url": "https://beta.example.org", "time_zone": "Europe/Atlantis",
        "brand_colour": "#1f2d3d", "accent_colour": "#3498db",
    })

    assert "Unknown time zone Europe/Atlantis" in _field_errors(response, "time_zone")
    assert list(Page.objects.all()) == [page]


def test_a_group_inside_a_group_is_refused_in_the_component_desk(desk, page, api_group):
    log_before = ComponentStatusChange.objects.count()

    response = desk.post(_url("component_add"), {
        "page": page.pk, "name": "Sub-group", "is_group": "on", "group": api_group.pk, "position": 1,
        "status": "operational", "showcase": "on",
    })

    assert "A group cannot belong to another group." in _field_errors(response, "group")
    assert not Component.objects.filter(name="Sub-group").exists()
    assert ComponentStatusChange.objects.count() == log_before


def test_a_group_picked_as_a_member_of_a_group_is_refused(desk, page, api_group):
    web = factories.make_group(page=page, name="Web", position=2)

    response = desk.post(_url("componentgroup_change", api_group.pk), {
        "page": page.pk, "name": "API", "description": "", "position": 1, "showcase": "on", "members": [web.pk],
    })

    assert "Web is a group; a group cannot sit inside another group." in _field_errors(response, "members")
    assert Component.objects.get(pk=web.pk).group is None


def test_a_component_of_another_page_is_refused_as_a_group_member(desk, page, api_group):
    other = factories.make_page(name="Other", url="https://status.other.example.org")
    foreign = factories.make_component(page=other, name="Foreign")

    response = desk.post(_url("componentgroup_change", api_group.pk), {
        "page": page.pk, "name": "API", "description": "", "position": 1, "showcase": "on", "members": [foreign.pk],
    })

    assert "Foreign belongs to the page Other." in _field_errors(response, "members")
    assert Component.objects.get(pk=foreign.pk).group is None


def test_an_incident_cannot_start_in_the_future(desk, page, rest_api):
    response = desk.post(_url("incident_add"), {
        "page": page.pk, "name": "Time travel", "status": IncidentStatus.INVESTIGATING, "severity": "P3",
        **_split("started_at", timezone.now() + timedelta(hours=3)), "body": "Hmm.",
        f"component_{rest_api.pk}": "major_outage",
    })

    assert "An incident cannot start in the future." in _field_errors(response, "started_at")
    assert not Incident.objects.exists()
    assert Component.objects.get(pk=rest_api.pk).status == "operational"
