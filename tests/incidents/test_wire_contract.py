"""Our v2 JSON against real Statuspage payloads: key sets, key order, value types and enums.

The captures live in shared/spec/statuspage-examples/, beside the repository (in CI too).
"""
from __future__ import annotations

import json
import re
from collections import defaultdict
from datetime import date, timedelta
from pathlib import Path

import pytest
from django.core.cache import cache as shared_cache
from django.db import transaction
from django.test import Client

from incidents import cache as read_cache
from incidents import services
from incidents.models import ComponentStatus, IncidentStatus
from tests import factories

EXAMPLES = Path(__file__).resolve().parents[3] / "shared" / "spec" / "statuspage-examples"
pytestmark = [
    pytest.mark.skipif(
        not EXAMPLES.is_dir(), reason=f"the Statuspage captures are not checked out beside the repository ({EXAMPLES})"
    ),
    # Marks the module as a database user, so pytest-django sets up the test database before the
    # module-scoped fixture below writes to it (even when this file runs alone).
    pytest.mark.django_db,
]

# Spec section 3: the exact enum strings clients accept.
COMPONENT_STATUSES = {"operational", "degraded_performance", "partial_outage", "major_outage", "under_maintenance"}
INDICATORS = {"none", "minor", "major", "critical", "maintenance"}
INCIDENT_STATUSES = {"investigating", "identified", "monitoring", "resolved", "postmortem"}
MAINTENANCE_STATUSES = {"scheduled", "in_progress", "verifying", "completed"}
IMPACTS = {"none", "minor", "major", "critical", "maintenance"}
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}(Z|[+-]\d\d:\d\d)$")
PUBLIC_ID = re.compile(r"^[a-z0-9]{12}$")
# Keys that later captures added; older captures lack them but we always emit them.
NEWER_KEYS = {"start_date", "reminder_intervals"}

KINDS = ("page", "status", "component", "group", "incident", "incident_update", "affected_component", "scheduled_maintenance")


def _collect(payload: dict, into: dict[str, list[dict]]) -> None:
    """Sort every object of a v2 payload by kind."""
    if "page" in payload:
        into["page"].append(payload["page"])
    if "status" in payload:
        into["status"].append(payload["status"])
    components = list(payload.get("components", []))
    for kind, key in (("incident", "incidents"), ("scheduled_maintenance", "scheduled_maintenances")):
        for item in payload.get(key, []):
            into[kind].append(item)
            components += item["components"]
            for update in item["incident_updates"]:
                into["incident_update"].append(update)
                into["affected_component"] += update["affected_components"] or []
    for component in components:
        into["group" if component["group"] else "component"].append(component)


def _examples() -> dict[str, list[dict]]:
    found: dict[str, list[dict]] = defaultdict(list)
    for path in sorted(EXAMPLES.glob("*.json")):
        payload = json.loads(path.read_text(encoding="utf-8"))
        if "page" in payload:  # the subscribe response is not a v2 read payload
            _collect(payload, found)
    return found


@pytest.fixture(scope="module")
def examples() -> dict[str, list[dict]]:
    return _examples()


@pytest.fixture(scope="module")
def ours(django_db_setup, django_db_blocker) -> dict[str, list[dict]]:
    """Our payloads for a page that has every kind of object, nulls included.

    Built once for the module (every test here only reads it) inside a transaction that is
    rolled back, so no row outlives the fixture.
    """
    found: dict[str, list[dict]] = defaultdict(list)
    with django_db_blocker.unblock(), transaction.atomic():
        page = factories.make_page(name="Acme", url="https://status.example.com/", is_default=True)
        group = factories.make_group(page=page, name="API", position=1)
        rest_api = factories.make_component(page=page, group=group, name="REST API", position=1)
        webhooks = factories.make_component(page=page, group=group, name="Webhooks", position=2)
        dashboard = factories.make_component(
            page=page, name="Dashboard", position=2,
            description="Charts and reports\r\nfor every account", start_date=date(2025, 5, 13),
        )
        open_one = factories.open_incident(page=page, components={rest_api: ComponentStatus.PARTIAL_OUTAGE})
        services.incident_post_update(incident=open_one, status=IncidentStatus.IDENTIFIED, body="We found the cause.")
        closed = factories.open_incident(page=page, name="Slow dashboard", components={dashboard: ComponentStatus.DEGRADED_PERFORMANCE})
        services.incident_post_update(incident=closed, status=IncidentStatus.MONITORING, body="A fix is out.")
        services.incident_resolve(incident=closed, body="Fixed.")
        factories.schedule_maintenance(page=page, name="Upcoming", components=[webhooks])
        running = factories.schedule_maintenance(page=page, name="Running", starts_in=timedelta(hours=1), components=[webhooks])
        services.maintenance_start(maintenance=running)
        client = Client()
        for endpoint in ("summary.json", "status.json", "components.json", "incidents.json", "scheduled-maintenances.json"):
            response = client.get(f"/api/v2/{endpoint}")
            assert response.status_code == 200
            _collect(response.json(), found)
        transaction.set_rollback(True)
    read_cache.clear_local()
    shared_cache.clear()
    return found


def _key_orders(objects: list[dict]) -> set[tuple[str, ...]]:
    return {tuple(o) for o in objects}


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_of_object_appears_in_ours_and_in_the_captures(ours, examples, kind):
    assert ours[kind], f"our payloads have no {kind}"
    assert examples[kind], f"the captures have no {kind}"


@pytest.mark.parametrize("kind", KINDS)
def test_key_order_matches_the_captures(ours, examples, kind):
    (our_order,) = _key_orders(ours[kind])  # one shape for every object of a kind
    for their_order in _key_orders(examples[kind]):
        # A capture older than a key lacks it; every other key must be there, in the same order.
        missing = [key for key in our_order if key not in their_order]
        assert set(missing) <= NEWER_KEYS, (kind, their_order)
        assert tuple(key for key in our_order if key in their_order) == their_order


def test_start_date_and_reminder_intervals_are_always_emitted(ours):
    assert all("start_date" in c for c in ours["component"] + ours["group"])
    assert all(i["reminder_intervals"] is None for i in ours["incident"])


def test_a_group_lists_its_children_and_a_component_has_no_children_key(ours):
    (group,) = {g["id"]: g for g in ours["group"]}.values()
    children = [c["id"] for c in {c["id"]: c for c in ours["component"]}.values() if c["group_id"] == group["id"]]
    assert len(children) == 2
    assert group["components"] == children
    assert all("components" not in c for c in ours["component"])


def test_scheduled_for_and_until_follow_components(ours):
    for maintenance in ours["scheduled_maintenance"]:
        assert list(maintenance)[-3:] == ["components", "scheduled_for", "scheduled_until"]


def _type_name(value) -> str:
    return type(value).__name__


@pytest.mark.parametrize("kind", KINDS)
def test_value_types_match_the_captures(ours, examples, kind):
    seen: dict[str, set[str]] = defaultdict(set)
    for obj in examples[kind]:
        for key, value in obj.items():
            seen[key].add(_type_name(value))
    seen["start_date"] |= {"str", "NoneType"}  # spec 2.3: "YYYY-MM-DD" or null
    for obj in ours[kind]:
        for key, value in obj.items():
            assert _type_name(value) in seen[key], (kind, key, value)


def test_nullable_fields_stay_present_as_null(ours):
    unresolved = next(i for i in ours["incident"] if i["status"] == "identified")
    assert (unresolved["monitoring_at"], unresolved["resolved_at"]) == (None, None)
    rest_api = next(c for c in ours["component"] if c["name"] == "REST API")
    assert (rest_api["description"], rest_api["start_date"]) == (None, None)
    assert all(g["group_id"] is None for g in ours["group"])
    update = next(u for u in ours["incident_update"] if u["status"] == "identified")
    assert (update["affected_components"], update["custom_tweet"], update["tweet_id"]) == (None, None, None)


def test_a_set_description_and_start_date_are_served(ours):
    dashboard = next(c for c in ours["component"] if c["name"] == "Dashboard")
    assert dashboard["description"] == "Charts and reports\r\nfor every account"
    assert dashboard["start_date"] == "2025-05-13"


def test_enum_values_are_the_exact_lowercase_strings(ours, examples):
    for source in (ours, examples):
        assert {c["status"] for c in source["component"] + source["group"]} <= COMPONENT_STATUSES
        assert {s["indicator"] for s in source["status"]} <= INDICATORS
        assert {i["status"] for i in source["incident"]} <= INCIDENT_STATUSES
        assert {m["status"] for m in source["scheduled_maintenance"]} <= MAINTENANCE_STATUSES
        assert {i["impact"] for i in source["incident"] + source["scheduled_maintenance"]} <= IMPACTS
        for entry in source["affected_component"]:
            assert {entry["old_status"], entry["new_status"]} <= COMPONENT_STATUSES


def test_update_statuses_follow_their_kind(ours):
    for incident in ours["incident"]:
        assert {u["status"] for u in incident["incident_updates"]} <= INCIDENT_STATUSES
    for maintenance in ours["scheduled_maintenance"]:
        assert {u["status"] for u in maintenance["incident_updates"]} <= MAINTENANCE_STATUSES
        assert maintenance["impact"] == "maintenance"


def test_ids_are_twelve_character_base36_strings(ours):
    for kind in ("page", "component", "group", "incident", "incident_update", "scheduled_maintenance"):
        for obj in ours[kind]:
            assert PUBLIC_ID.match(obj["id"]), (kind, obj["id"])
    for entry in ours["affected_component"]:
        assert PUBLIC_ID.match(entry["code"])


def test_timestamps_are_shaped_like_the_captures(ours, examples):
    keys = ("created_at", "updated_at", "monitoring_at", "resolved_at", "started_at", "display_at", "scheduled_for", "scheduled_until")
    for source in (examples, ours):
        for kind in KINDS:
            for obj in source[kind]:
                for key in keys:
                    if obj.get(key) is not None:
                        assert TIMESTAMP.match(obj[key]), (kind, key, obj[key])


def test_the_page_url_has_no_trailing_slash_and_shortlinks_are_strings(ours):
    assert not ours["page"][0]["url"].endswith("/")
    for incident in ours["incident"] + ours["scheduled_maintenance"]:
        assert incident["shortlink"] == f"https://status.example.com/incidents/{incident['id']}"
