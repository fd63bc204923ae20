"""Incidents: opening, updating and resolving, and what each does to components and the log."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone as dt_timezone

import pytest
import time_machine
from django.core.exceptions import ValidationError
from django.utils import timezone

from incidents import services
from incidents.models import (
    Component,
    ComponentStatus,
    ComponentStatusChange,
    Impact,
    Incident,
    IncidentStatus,
    IncidentUpdate,
    StatusSource,
)
from tests import factories

FROZEN = datetime(2026, 3, 10, 12, 0, tzinfo=dt_timezone.utc)


def _status(component: Component) -> str:
    return Component.objects.values_list("status", flat=True).get(pk=component.pk)


# --- opening --------------------------------------------------------------------------------


def test_opening_sets_the_components_and_logs_them_as_incident_changes(page, rest_api, dashboard, staff):
    incident = factories.open_incident(
        page=page, actor=staff,
        components={rest_api: ComponentStatus.MAJOR_OUTAGE, dashboard: ComponentStatus.DEGRADED_PERFORMANCE},
    )

    assert _status(rest_api) == ComponentStatus.MAJOR_OUTAGE
    assert _status(dashboard) == ComponentStatus.DEGRADED_PERFORMANCE
    entries = ComponentStatusChange.objects.filter(incident=incident)
    assert {(e.component_id, e.old_status, e.new_status, e.source, e.actor_id) for e in entries} == {
        (rest_api.pk, ComponentStatus.OPERATIONAL, ComponentStatus.MAJOR_OUTAGE, StatusSource.INCIDENT, staff.pk),
        (dashboard.pk, ComponentStatus.OPERATIONAL, ComponentStatus.DEGRADED_PERFORMANCE, StatusSource.INCIDENT, staff.pk),
    }
    assert set(incident.components.all()) == {rest_api, dashboard}


@pytest.mark.parametrize(
    ("statuses", "impact"),
    [
        ([], Impact.NONE),
        ([ComponentStatus.DEGRADED_PERFORMANCE], Impact.MINOR),
        ([ComponentStatus.PARTIAL_OUTAGE], Impact.MAJOR),
        ([ComponentStatus.MAJOR_OUTAGE], Impact.CRITICAL),
        ([ComponentStatus.DEGRADED_PERFORMANCE, ComponentStatus.MAJOR_OUTAGE], Impact.CRITICAL),
    ],
)
def test_impact_is_derived_from_the_components_when_not_given(page, statuses, impact):
    components = {factories.make_component(page=page): status for status in statuses}

    incident = factories.open_incident(page=page, components=components)

    assert incident.impact == impact


def test_an_explicit_impact_is_kept(page, rest_api):
    incident = factories.open_incident(page=page, impact=Impact.MINOR, components={rest_api: ComponentStatus.MAJOR_OUTAGE})

    incident.refresh_from_db()
    assert incident.impact == Impact.MINOR


def test_severity_is_stored_but_never_served_by_the_api(client, page, rest_api):
    incident = factories.open_incident(page=page, severity="P1", components={rest_api: ComponentStatus.MAJOR_OUTAGE})

    incident.refresh_from_db()
    assert incident.severity == "P1"
    for path in ("/api/v2/summary.json", "/api/v2/incidents.json", "/api/v2/incidents/unresolved.json"):
        body = client.get(path).content.decode()
        assert incident.public_id in body
        assert "severity" not in body
        assert "P1" not in body


def test_started_at_can_be_backdated(page):
    earlier = timezone.now() - timedelta(hours=3)

    incident = factories.open_incident(page=page, started_at=earlier)

    incident.refresh_from_db()
    assert incident.started_at == earlier
    assert incident.created > earlier


def test_an_incident_cannot_start_in_the_future(page):
    with pytest.raises(ValidationError) as excinfo:
        factories.open_incident(page=page, started_at=timezone.now() + timedelta(hours=1))

    assert "started_at" in excinfo.value.message_dict
    assert not Incident.objects.exists()


def test_an_incident_cannot_set_a_groups_status(page, api_group, rest_api):
    with pytest.raises(ValidationError) as excinfo:
        factories.open_incident(page=page, components={api_group: ComponentStatus.MAJOR_OUTAGE})

    assert "components" in excinfo.value.message_dict
    assert not Incident.objects.exists()


def test_an_empty_body_is_refused(page):
    with pytest.raises(ValidationError) as excinfo:
        factories.open_incident(page=page, body="   \n")

    assert "body" in excinfo.value.message_dict
    assert not Incident.objects.exists()


def test_opening_with_another_pages_component_writes_nothing(page, rest_api, django_capture_on_commit_callbacks):
    other = factories.make_page(name="Other", url="https://status.other.example.org")
    foreign = factories.make_component(page=other, name="Foreign")
    changes_before = ComponentStatusChange.objects.count()

    with django_capture_on_commit_callbacks() as callbacks, pytest.raises(ValidationError):
        # The first component is valid and is changed before the foreign one is reached.
        factories.open_incident(
            page=page, components={rest_api: ComponentStatus.MAJOR_OUTAGE, foreign: ComponentStatus.MAJOR_OUTAGE}
        )

    assert not Incident.objects.exists()
    assert not IncidentUpdate.objects.exists()
    assert ComponentStatusChange.objects.count() == changes_before
    assert _status(rest_api) == ComponentStatus.OPERATIONAL
    assert callbacks == []  # no cache bump for a write that never happened


# --- updates --------------------------------------------------------------------------------


def test_monitoring_at_is_set_on_first_monitoring_and_kept(page):
    with time_machine.travel(FROZEN - timedelta(hours=1), tick=False):
        incident = factories.open_incident(page=page)
    with time_machine.travel(FROZEN, tick=False):
        services.incident_post_update(incident=incident, status=IncidentStatus.MONITORING, body="A fix is out.")
    with time_machine.travel(FROZEN + timedelta(hours=1), tick=False):
        services.incident_post_update(incident=incident, status=IncidentStatus.IDENTIFIED, body="Errors are back.")
        services.incident_post_update(incident=incident, status=IncidentStatus.MONITORING, body="A second fix is out.")

    incident.refresh_from_db()
    assert incident.monitoring_at == FROZEN


def test_monitoring_at_stays_null_when_the_incident_skips_monitoring(page):
    incident = factories.open_incident(page=page)
    services.incident_post_update(incident=incident, status=IncidentStatus.IDENTIFIED, body="We found the cause.")
    services.incident_resolve(incident=incident, body="Fixed.")

    incident.refresh_from_db()
    assert incident.monitoring_at is None


def test_update_body_markdown_is_rendered_to_sanitised_html(page):
    incident = factories.open_incident(page=page)
    body = (
        "**Payments** are slow.\n\n"
        "<script>alert('x')</script>\n\n"
        '<img src="x" onerror="alert(1)">\n\n'
        "[details](javascript:alert(1)) and [status](https://status.example.com/)"
    )

    update = services.incident_post_update(incident=incident, status=IncidentStatus.IDENTIFIED, body=body)

    html = update.body_html
    assert "<strong>Payments</strong>" in html
    assert 'href="https://status.example.com/"' in html
    for forbidden in ("<script", "onerror", "javascript:"):
        assert forbidden not in html.lower()
    assert update.body == body  # the author's text is kept as written


def test_the_api_body_of_an_update_with_html_is_made_inert(client, page):
    incident = factories.open_incident(page=page, body='Slow <img src="x" onerror="alert(1)"> <script>x()</script>')

    (served_incident,) = client.get("/api/v2/incidents.json").json()["incidents"]
    served = served_incident["incident_updates"][0]["body"]

    assert served_incident["id"] == incident.public_id
    assert "onerror" not in served and "<script" not in served
    assert served.startswith("Slow")


def test_display_at_is_kept_as_given(page):
    incident = factories.open_incident(page=page)
    shown = timezone.now() - timedelta(minutes=20)

    update = services.incident_post_update(incident=incident, status=IncidentStatus.IDENTIFIED, body="Found it.", display_at=shown)

    update.refresh_from_db()
    assert update.display_at == shown
    assert update.created > shown


def test_affected_components_lists_code_name_and_both_statuses(page, api_group, rest_api, dashboard):
    incident = factories.open_incident(
        page=page, components={rest_api: ComponentStatus.PARTIAL_OUTAGE, dashboard: ComponentStatus.DEGRADED_PERFORMANCE}
    )

    update = incident.updates.get()
    assert sorted(update.affected_components, key=lambda a: a["code"]) == sorted(
        [
            {"code": rest_api.public_id, "name": "API - REST API", "old_status": "operational", "new_status": "partial_outage"},
            {"code": dashboard.public_id, "name": "Dashboard", "old_status": "operational", "new_status": "degraded_performance"},
        ],
        key=lambda a: a["code"],
    )


def test_affected_components_is_null_when_no_component_changed(page, rest_api):
    incident = factories.open_incident(page=page, components={rest_api: ComponentStatus.MAJOR_OUTAGE})

    update = services.incident_post_update(incident=incident, status=IncidentStatus.IDENTIFIED, body="We know why.")

    update.refresh_from_db()
    assert update.affected_components is None


@pytest.mark.parametrize(("severity", "cadence"), [("P1", timedelta(minutes=30)), ("P2", timedelta(minutes=60)), ("P3", timedelta(hours=2))])
def test_next_update_at_follows_the_severity_cadence(page, severity, cadence):
    with time_machine.travel(FROZEN, tick=False):
        incident = factories.open_incident(page=page, severity=severity)
        assert incident.next_update_at == FROZEN + cadence
    with time_machine.travel(FROZEN + timedelta(minutes=10), tick=False):
        services.incident_post_update(incident=incident, status=IncidentStatus.IDENTIFIED, body="Found it.")

    incident.refresh_from_db()
    assert incident.next_update_at == FROZEN + timedelta(minutes=10) + cadence


def test_a_p4_incident_promises_no_next_update(page):
    incident = factories.open_incident(page=page, severity="P4")

    services.incident_post_update(incident=incident, status=IncidentStatus.IDENTIFIED, body="Cosmetic issue found.")

    incident.refresh_from_db()
    assert incident.next_update_at is None


def test_an_update_cannot_resolve_an_open_incident(page, rest_api):
    incident = factories.open_incident(page=page, components={rest_api: ComponentStatus.MAJOR_OUTAGE})

    with pytest.raises(ValidationError):
        services.incident_post_update(incident=incident, status=IncidentStatus.RESOLVED, body="Done.")

    incident.refresh_from_db()
    assert incident.status == IncidentStatus.INVESTIGATING


def test_a_postmortem_update_cannot_close_an_open_incident_around_resolve(page, rest_api):
    # Closing through a postmortem update would skip the component restore and keep_reason.
    incident = factories.open_incident(page=page, components={rest_api: ComponentStatus.MAJOR_OUTAGE})

    with pytest.raises(ValidationError):
        services.incident_post_update(incident=incident, status=IncidentStatus.POSTMORTEM, body="Write-up follows.")

    incident.refresh_from_db()
    assert incident.status == IncidentStatus.INVESTIGATING
    assert incident.resolved_at is None


def test_a_postmortem_update_follows_a_resolved_incident(page):
    incident = factories.open_incident(page=page)
    services.incident_resolve(incident=incident, body="Fixed.")

    services.incident_post_update(incident=incident, status=IncidentStatus.POSTMORTEM, body="What went wrong.")

    incident.refresh_from_db()
    assert incident.status == IncidentStatus.POSTMORTEM
    assert incident.resolved_at is not None


# --- resolving ------------------------------------------------------------------------------


def test_resolving_sets_resolved_at_and_clears_next_update_at(page):
    with time_machine.travel(FROZEN - timedelta(hours=1), tick=False):
        incident = factories.open_incident(page=page, severity="P1")
    assert incident.next_update_at is not None

    with time_machine.travel(FROZEN, tick=False):
        services.incident_resolve(incident=incident, body="Fixed.")

    incident.refresh_from_db()
    assert incident.status == IncidentStatus.RESOLVED
    assert incident.resolved_at == FROZEN
    assert incident.next_update_at is None


def test_resolving_restores_affected_components_to_operational(page, rest_api, dashboard):
    incident = factories.open_incident(
        page=page, components={rest_api: ComponentStatus.MAJOR_OUTAGE, dashboard: ComponentStatus.DEGRADED_PERFORMANCE}
    )

    update = services.incident_resolve(incident=incident, body="Fixed.")

    assert _status(rest_api) == ComponentStatus.OPERATIONAL
    assert _status(dashboard) == ComponentStatus.OPERATIONAL
    assert {(a["code"], a["old_status"], a["new_status"]) for a in update.affected_components} == {
        (rest_api.public_id, "major_outage", "operational"),
        (dashboard.public_id, "degraded_performance", "operational"),
    }


def test_a_component_held_by_another_open_incident_is_restored_to_that_status(page, rest_api):
    older = factories.open_incident(page=page, name="Partial outage", components={rest_api: ComponentStatus.PARTIAL_OUTAGE})
    newer = factories.open_incident(page=page, name="Full outage", components={rest_api: ComponentStatus.MAJOR_OUTAGE})

    services.incident_resolve(incident=newer, body="The full outage is over.")

    assert _status(rest_api) == ComponentStatus.PARTIAL_OUTAGE
    services.incident_resolve(incident=older, body="All clear.")
    assert _status(rest_api) == ComponentStatus.OPERATIONAL


def test_a_component_another_incident_has_since_cleared_is_restored_to_operational(page, rest_api):
    # The other incident's latest word on the component counts, not the worst it ever said.
    first = factories.open_incident(page=page, name="Outage", components={rest_api: ComponentStatus.MAJOR_OUTAGE})
    services.incident_post_update(
        incident=first, status=IncidentStatus.MONITORING, body="REST API recovered.",
        components={rest_api: ComponentStatus.OPERATIONAL},
    )
    second = factories.open_incident(page=page, name="Slowness", components={rest_api: ComponentStatus.DEGRADED_PERFORMANCE})

    services.incident_resolve(incident=second, body="Speed is back.")

    assert _status(rest_api) == ComponentStatus.OPERATIONAL


def test_resolving_without_restoring_needs_a_keep_reason(page, rest_api):
    incident = factories.open_incident(page=page, components={rest_api: ComponentStatus.PARTIAL_OUTAGE})

    with pytest.raises(ValidationError) as excinfo:
        services.incident_resolve(incident=incident, body="Fixed.", restore_components=False)

    assert "keep_reason" in excinfo.value.message_dict
    incident.refresh_from_db()
    assert incident.status == IncidentStatus.INVESTIGATING
    assert _status(rest_api) == ComponentStatus.PARTIAL_OUTAGE


def test_resolving_without_restoring_logs_the_keep_reason(page, rest_api, staff):
    incident = factories.open_incident(page=page, components={rest_api: ComponentStatus.PARTIAL_OUTAGE})

    services.incident_resolve(
        incident=incident, body="Fixed for most users.", restore_components=False,
        keep_reason="EU customers still see errors", actor=staff,
    )

    assert _status(rest_api) == ComponentStatus.PARTIAL_OUTAGE
    entry = ComponentStatusChange.objects.filter(component=rest_api).first()
    assert "EU customers still see errors" in entry.reason
    assert (entry.old_status, entry.new_status, entry.incident_id, entry.actor_id) == (
        ComponentStatus.PARTIAL_OUTAGE, ComponentStatus.PARTIAL_OUTAGE, incident.pk, staff.pk,
    )


def test_a_failed_resolve_leaves_the_incident_and_components_untouched(page, rest_api):
    incident = factories.open_incident(page=page, components={rest_api: ComponentStatus.MAJOR_OUTAGE})
    changes_before = ComponentStatusChange.objects.count()

    with pytest.raises(ValidationError):
        services.incident_resolve(incident=incident, body="Fixed.", resolved_at=timezone.now() + timedelta(hours=1))

    incident.refresh_from_db()
    assert incident.status == IncidentStatus.INVESTIGATING
    assert incident.updates.count() == 1
    assert _status(rest_api) == ComponentStatus.MAJOR_OUTAGE
    assert ComponentStatusChange.objects.count() == changes_before


def test_the_api_serves_an_update_trail_newest_first(client, page):
    incident = factories.open_incident(page=page, body="Looking into it.")
    services.incident_post_update(incident=incident, status=IncidentStatus.IDENTIFIED, body="Found it.")
    services.incident_resolve(incident=incident, body="Fixed.")

    served = json.loads(client.get("/api/v2/incidents.json").content)["incidents"][0]

    assert [u["status"] for u in served["incident_updates"]] == ["resolved", "identified", "investigating"]
