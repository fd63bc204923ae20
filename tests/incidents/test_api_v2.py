"""The public Statuspage v2 API: endpoints, headers, filters, caps, order, timestamps, routing."""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone as dt_timezone

import pytest
from django.utils import timezone

from incidents import services
from incidents.models import ComponentStatus, IncidentStatus
from incidents.wire import timestamp
from tests import factories

ENDPOINTS = [
    "summary.json",
    "status.json",
    "components.json",
    "incidents.json",
    "incidents/unresolved.json",
    "incidents/resolved.json",
    "scheduled-maintenances.json",
    "scheduled-maintenances/upcoming.json",
    "scheduled-maintenances/active.json",
]
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}(Z|[+-]\d\d:\d\d)$")
TIME_KEYS = {"created_at", "updated_at", "monitoring_at", "resolved_at", "started_at", "display_at", "scheduled_for", "scheduled_until"}


def _get(client, endpoint: str, **extra) -> dict:
    response = client.get(f"/api/v2/{endpoint}", **extra)
    assert response.status_code == 200
    return response.json()


def _timestamps(value, found=None) -> list[str]:
    """Every non-null timestamp anywhere in a payload."""
    found = [] if found is None else found
    if isinstance(value, dict):
        for key, item in value.items():
            if key in TIME_KEYS and item is not None:
                found.append(item)
            else:
                _timestamps(item, found)
    elif isinstance(value, list):
        for item in value:
            _timestamps(item, found)
    return found


# --- endpoints and headers ---------------------------------------------------------------------


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize("method", ["get", "head"])
def test_every_endpoint_answers_get_and_head_with_json_cors_and_cache_headers(client, page, rest_api, endpoint, method):
    response = getattr(client, method)(f"/api/v2/{endpoint}")

    assert response.status_code == 200
    assert response["Content-Type"] == "application/json; charset=utf-8"
    assert response["Access-Control-Allow-Origin"] == "*"
    assert response["ETag"].startswith('"')
    assert "max-age=" in response["Cache-Control"] and "public" in response["Cache-Control"]
    if method == "head":
        assert response.content == b""
    else:
        assert response.json()["page"]["id"] == page.public_id


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_post_is_refused_with_405(client, page, endpoint):
    response = client.post(f"/api/v2/{endpoint}")

    assert response.status_code == 405
    assert set(response["Allow"].replace(" ", "").split(",")) == {"GET", "HEAD"}


@pytest.mark.parametrize("path", ["/api/v2/nothing.json", "/api/v2/incidents/abc.json", "/api/v1/nothing", "/api/"])
def test_unknown_api_paths_answer_404_in_json(client, page, path):
    response = client.get(path)

    assert response.status_code == 404
    assert response["Content-Type"].startswith("application/json")
    assert response["Access-Control-Allow-Origin"] == "*"
    assert response.json()["error"] == "not_found"


def test_without_any_page_the_api_answers_404(client, db):
    assert client.get("/api/v2/summary.json").status_code == 404


# --- summary -------------------------------------------------------------------------------------


def test_summary_has_only_unresolved_incidents(client, page, rest_api):
    open_one = factories.open_incident(page=page, name="Open", components={rest_api: ComponentStatus.PARTIAL_OUTAGE})
    closed = factories.open_incident(page=page, name="Closed")
    services.incident_resolve(incident=closed, body="Fixed.")

    summary = _get(client, "summary.json")

    assert [i["id"] for i in summary["incidents"]] == [open_one.public_id]
    assert list(summary) == ["page", "components", "incidents", "scheduled_maintenances", "status"]


def test_summary_has_upcoming_and_active_maintenances_by_start_ascending(client, page, rest_api):
    later = factories.schedule_maintenance(page=page, name="Later", starts_in=timedelta(days=5))
    sooner = factories.schedule_maintenance(page=page, name="Sooner", starts_in=timedelta(days=1))
    running = factories.schedule_maintenance(page=page, name="Running", starts_in=timedelta(hours=1), components=[rest_api])
    services.maintenance_start(maintenance=running)
    verifying = factories.schedule_maintenance(page=page, name="Verifying", starts_in=timedelta(hours=2))
    services.maintenance_start(maintenance=verifying)
    services.maintenance_verify(maintenance=verifying, body="Checking.")
    done = factories.schedule_maintenance(page=page, name="Done", starts_in=timedelta(minutes=30))
    services.maintenance_complete(maintenance=done)

    summary = _get(client, "summary.json")

    assert [m["id"] for m in summary["scheduled_maintenances"]] == [
        running.public_id, verifying.public_id, sooner.public_id, later.public_id,
    ]
    assert [m["status"] for m in summary["scheduled_maintenances"]] == ["in_progress", "verifying", "scheduled", "scheduled"]


def test_summary_lists_every_component_with_groups_flat_by_position(client, page, api_group, rest_api, webhooks, dashboard):
    components = _get(client, "summary.json")["components"]

    # Positions are per group (spec 1), so they repeat; ties keep creation order.
    assert [c["id"] for c in components] == [api_group.public_id, rest_api.public_id, webhooks.public_id, dashboard.public_id]
    assert [c["position"] for c in components] == [1, 1, 2, 2]


# --- incidents -----------------------------------------------------------------------------------


def test_incidents_json_is_capped_at_fifty_newest_first(client, page):
    now = timezone.now()
    made = [
        factories.open_incident(page=page, name=f"Incident {n}", started_at=now - timedelta(hours=60 - n))
        for n in range(55)
    ]

    incidents = _get(client, "incidents.json")["incidents"]

    assert len(incidents) == 50
    assert [i["id"] for i in incidents] == [i.public_id for i in reversed(made)][:50]


def test_summary_and_unresolved_list_every_unresolved_incident_past_fifty(client, page):
    # Only incidents.json is capped (spec 0.7); a client reading summary.json must see every open one.
    for n in range(55):
        factories.open_incident(page=page, name=f"Incident {n}")

    assert len(_get(client, "summary.json")["incidents"]) == 55
    assert len(_get(client, "incidents/unresolved.json")["incidents"]) == 55


def test_incidents_json_includes_resolved_incidents(client, page):
    closed = factories.open_incident(page=page)
    services.incident_resolve(incident=closed, body="Fixed.")

    assert [i["id"] for i in _get(client, "incidents.json")["incidents"]] == [closed.public_id]


def _mixed_incidents(page) -> dict[str, str]:
    ids = {}
    for status in (IncidentStatus.INVESTIGATING, IncidentStatus.IDENTIFIED, IncidentStatus.MONITORING):
        ids[status] = factories.open_incident(page=page, name=status, status=status).public_id
    resolved = factories.open_incident(page=page, name="resolved")
    services.incident_resolve(incident=resolved, body="Fixed.")
    ids["resolved"] = resolved.public_id
    postmortem = factories.open_incident(page=page, name="postmortem")
    services.incident_resolve(incident=postmortem, body="Fixed.")
    services.incident_post_update(incident=postmortem, status=IncidentStatus.POSTMORTEM, body="What happened.")
    ids["postmortem"] = postmortem.public_id
    return ids


def test_unresolved_filter_lists_investigating_identified_and_monitoring(client, page):
    ids = _mixed_incidents(page)

    listed = {i["id"]: i["status"] for i in _get(client, "incidents/unresolved.json")["incidents"]}

    assert listed == {ids[s]: s for s in ("investigating", "identified", "monitoring")}


def test_resolved_filter_lists_resolved_and_postmortem(client, page):
    ids = _mixed_incidents(page)

    listed = {i["id"]: i["status"] for i in _get(client, "incidents/resolved.json")["incidents"]}

    assert listed == {ids[s]: s for s in ("resolved", "postmortem")}


def test_maintenances_never_appear_among_incidents(client, page):
    factories.schedule_maintenance(page=page)

    assert _get(client, "incidents.json")["incidents"] == []
    assert _get(client, "summary.json")["incidents"] == []


# --- scheduled maintenances ----------------------------------------------------------------------


def test_scheduled_maintenances_json_is_capped_at_fifty_latest_first(client, page):
    made = [factories.schedule_maintenance(page=page, name=f"Window {n}", starts_in=timedelta(days=n + 1)) for n in range(55)]

    maintenances = _get(client, "scheduled-maintenances.json")["scheduled_maintenances"]

    assert len(maintenances) == 50
    assert [m["id"] for m in maintenances] == [m.public_id for m in reversed(made)][:50]


def test_summary_and_upcoming_list_every_upcoming_maintenance_past_fifty(client, page):
    for n in range(55):
        factories.schedule_maintenance(page=page, name=f"Window {n}", starts_in=timedelta(days=n + 1))

    assert len(_get(client, "summary.json")["scheduled_maintenances"]) == 55
    assert len(_get(client, "scheduled-maintenances/upcoming.json")["scheduled_maintenances"]) == 55


def _mixed_maintenances(page) -> dict[str, str]:
    ids = {}
    for n, status in enumerate(("scheduled", "in_progress", "verifying", "completed")):
        maintenance = factories.schedule_maintenance(page=page, name=status, starts_in=timedelta(days=n + 1))
        if status != "scheduled":
            services.maintenance_start(maintenance=maintenance)
        if status == "verifying":
            services.maintenance_verify(maintenance=maintenance, body="Checking.")
        if status == "completed":
            services.maintenance_complete(maintenance=maintenance)
        ids[status] = maintenance.public_id
    return ids


def test_scheduled_maintenances_json_includes_completed(client, page):
    ids = _mixed_maintenances(page)

    listed = {m["id"] for m in _get(client, "scheduled-maintenances.json")["scheduled_maintenances"]}

    assert listed == set(ids.values())


def test_upcoming_filter_lists_only_scheduled(client, page):
    ids = _mixed_maintenances(page)

    listed = [m["id"] for m in _get(client, "scheduled-maintenances/upcoming.json")["scheduled_maintenances"]]

    assert listed == [ids["scheduled"]]


def test_active_filter_lists_in_progress_and_verifying(client, page):
    ids = _mixed_maintenances(page)

    listed = {m["id"]: m["status"] for m in _get(client, "scheduled-maintenances/active.json")["scheduled_maintenances"]}

    assert listed == {ids["in_progress"]: "in_progress", ids["verifying"]: "verifying"}


# --- timestamps ----------------------------------------------------------------------------------


def test_every_timestamp_has_three_millisecond_digits_and_z_on_a_utc_page(client, page, rest_api):
    incident = factories.open_incident(page=page, components={rest_api: ComponentStatus.MAJOR_OUTAGE})
    services.incident_post_update(incident=incident, status=IncidentStatus.MONITORING, body="Watching.")
    services.incident_resolve(incident=incident, body="Fixed.")
    factories.schedule_maintenance(page=page, components=[rest_api])

    for endpoint in ("summary.json", "incidents.json", "scheduled-maintenances.json"):
        stamps = _timestamps(_get(client, endpoint))
        assert stamps
        for stamp in stamps:
            assert TIMESTAMP.match(stamp), stamp
            assert stamp.endswith("Z"), stamp


def test_round_times_keep_their_zero_milliseconds():
    at = datetime(2020, 7, 16, 21, 0, tzinfo=dt_timezone.utc)

    assert timestamp(at, "Etc/UTC") == "2020-07-16T21:00:00.000Z"
    assert timestamp(at.replace(microsecond=999_999), "UTC") == "2020-07-16T21:00:00.999Z"


def test_timestamps_carry_the_pages_offset_shifting_with_daylight_saving(client, db):
    page = factories.make_page(name="West", url="https://status.example.com", time_zone="America/Los_Angeles", is_default=True)
    winter = factories.open_incident(page=page, name="Winter", started_at=datetime(2025, 1, 15, 20, 0, 0, 31_000, tzinfo=dt_timezone.utc))
    summer = factories.open_incident(page=page, name="Summer", started_at=datetime(2025, 7, 15, 20, 0, tzinfo=dt_timezone.utc))

    payload = _get(client, "incidents.json")
    started = {i["id"]: i["started_at"] for i in payload["incidents"]}

    assert started[winter.public_id] == "2025-01-15T12:00:00.031-08:00"
    assert started[summer.public_id] == "2025-07-15T13:00:00.000-07:00"
    assert payload["page"]["time_zone"] == "America/Los_Angeles"
    for stamp in _timestamps(payload):
        assert TIMESTAMP.match(stamp) and not stamp.endswith("Z"), stamp


# --- routing by host -----------------------------------------------------------------------------


@pytest.fixture
def two_pages(settings, page, dashboard):
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "status.other.test", "status.other-alias.test"]
    other = factories.make_page(name="Other", url="https://status.other.test", extra_hosts="status.other-alias.test")
    return page, other, factories.make_component(page=other, name="Billing")


def test_each_host_sees_only_its_own_pages_components(client, two_pages):
    page, other, billing = two_pages

    mine = _get(client, "components.json", HTTP_HOST="status.example.com")
    theirs = _get(client, "components.json", HTTP_HOST="status.other.test")

    assert mine["page"]["id"] == page.public_id
    assert [c["name"] for c in mine["components"]] == ["Dashboard"]
    assert theirs["page"]["id"] == other.public_id
    assert [c["id"] for c in theirs["components"]] == [billing.public_id]
    assert {c["page_id"] for c in theirs["components"]} == {other.public_id}


def test_an_extra_host_name_serves_its_page(client, two_pages):
    _page, other, _billing = two_pages

    assert _get(client, "status.json", HTTP_HOST="status.other-alias.test")["page"]["id"] == other.public_id


def test_an_unknown_host_gets_the_default_page(client, two_pages):
    page, _other, _billing = two_pages

    payload = _get(client, "components.json", HTTP_HOST="somewhere.example.org")

    assert payload["page"]["id"] == page.public_id


def test_each_host_has_its_own_etag(client, two_pages):
    first = client.get("/api/v2/summary.json", HTTP_HOST="status.example.com")
    second = client.get("/api/v2/summary.json", HTTP_HOST="status.other.test")

    assert first["ETag"] != second["ETag"]
    assert "Host" in first["Vary"]
    # Another host's ETag must not earn a 304 for this host's content.
    assert client.get("/api/v2/summary.json", HTTP_HOST="status.example.com", HTTP_IF_NONE_MATCH=second["ETag"]).status_code == 200


def test_resolved_filter_still_lists_older_resolved_incidents_behind_fifty_open_ones(client, page):
    old = factories.open_incident(page=page, name="old", started_at=timezone.now() - timedelta(days=3))
    services.incident_resolve(incident=old, body="Fixed.")
    for n in range(50):
        factories.open_incident(page=page, name=f"Incident {n}")

    assert [i["id"] for i in _get(client, "incidents/resolved.json")["incidents"]] == [old.public_id]
    assert len(_get(client, "incidents.json")["incidents"]) == 50


def test_unknown_api_paths_answer_json_with_a_charset(client, page):
    response = client.get("/api/v2/nothing-here.json")
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json; charset=utf-8"
