"""The page rollup of spec 5.2: component state first, then incident impact, then maintenance."""
from __future__ import annotations

import pytest

from incidents import services
from incidents.models import ComponentStatus, Impact, StatusSource
from incidents.policy import page_rollup
from incidents.selectors import page_snapshot
from tests import factories

OP = ComponentStatus.OPERATIONAL
DEGRADED = ComponentStatus.DEGRADED_PERFORMANCE
PARTIAL = ComponentStatus.PARTIAL_OUTAGE
MAJOR = ComponentStatus.MAJOR_OUTAGE
MAINT = ComponentStatus.UNDER_MAINTENANCE

ALL_DOWN = ("critical", "Major System Outage")
PARTIAL_SYSTEM = ("major", "Partial System Outage")
DEGRADED_SERVICE = ("minor", "Partially Degraded Service")
MAJOR_SERVICE = ("critical", "Major Service Outage")
MINOR_SERVICE = ("minor", "Minor Service Outage")
MAINTENANCE = ("maintenance", "Service Under Maintenance")
ALL_GOOD = ("none", "All Systems Operational")


def _rollup(leaves, impacts=(), maintenance_active=False):
    return page_rollup(leaf_components=list(leaves), unresolved_impacts=list(impacts), maintenance_active=maintenance_active)


@pytest.mark.parametrize(
    ("leaves", "impacts", "maintenance_active", "expected"),
    [
        # Step 1: component state.
        pytest.param([(MAJOR, False), (MAJOR, False)], [], False, ALL_DOWN, id="every-leaf-major-outage"),
        pytest.param([(MAJOR, False), (OP, False)], [], False, PARTIAL_SYSTEM, id="one-leaf-major-outage"),
        pytest.param([(PARTIAL, False), (OP, False)], [], False, PARTIAL_SYSTEM, id="one-leaf-partial-outage"),
        pytest.param([(PARTIAL, False), (PARTIAL, False)], [], False, PARTIAL_SYSTEM, id="every-leaf-partial-is-not-critical"),
        pytest.param([(DEGRADED, False), (OP, False)], [], False, DEGRADED_SERVICE, id="one-leaf-degraded"),
        # Component state wins over incident impact and over maintenance.
        pytest.param([(DEGRADED, False), (OP, False)], [Impact.CRITICAL], True, DEGRADED_SERVICE, id="component-beats-impact"),
        pytest.param([(MAJOR, False), (MAINT, False)], [], True, PARTIAL_SYSTEM, id="outage-beats-maintenance"),
        # Step 2: the worst impact among unresolved incidents.
        pytest.param([(OP, False)], [Impact.MINOR, Impact.CRITICAL], False, MAJOR_SERVICE, id="critical-impact"),
        pytest.param([(OP, False)], [Impact.MINOR, Impact.MAJOR], False, PARTIAL_SYSTEM, id="major-impact"),
        pytest.param([(OP, False)], [Impact.MINOR, Impact.NONE], False, MINOR_SERVICE, id="minor-impact"),
        pytest.param([(OP, False)], [Impact.MINOR], True, MINOR_SERVICE, id="impact-beats-maintenance"),
        pytest.param([(OP, False)], [Impact.NONE], False, ALL_GOOD, id="impact-none-is-nothing"),
        # Step 3: maintenance.
        pytest.param([(OP, False)], [], True, MAINTENANCE, id="maintenance-in-progress"),
        pytest.param([(MAINT, False), (OP, False)], [], False, MAINTENANCE, id="component-under-maintenance"),
        # Step 4.
        pytest.param([(OP, False), (OP, False)], [], False, ALL_GOOD, id="all-operational"),
        pytest.param([], [], False, ALL_GOOD, id="no-components"),
        # Hidden (only_show_if_degraded) components are skipped only while operational.
        pytest.param([(MAJOR, False), (OP, True)], [], False, ALL_DOWN, id="hidden-operational-skipped"),
        pytest.param([(OP, True), (OP, True)], [], False, ALL_GOOD, id="only-hidden-operational"),
        pytest.param([(OP, False), (DEGRADED, True)], [], False, DEGRADED_SERVICE, id="hidden-degraded-counts"),
        pytest.param([(MAJOR, True), (MAJOR, False)], [], False, ALL_DOWN, id="hidden-major-counts"),
    ],
)
def test_page_rollup(leaves, impacts, maintenance_active, expected):
    assert _rollup(leaves, impacts, maintenance_active) == expected


def _status(page) -> tuple[str, str]:
    snap = page_snapshot(page.public_id)
    return snap["status"]["indicator"], snap["status"]["description"]


def test_snapshot_rollup_is_all_operational_by_default(page, rest_api, webhooks, dashboard):
    assert _status(page) == ALL_GOOD


def test_snapshot_rollup_is_critical_when_every_leaf_is_down(page, rest_api, webhooks, dashboard):
    # The group itself is not a leaf: its derived status must not dilute "every leaf is down".
    factories.open_incident(page=page, components={c: MAJOR for c in (rest_api, webhooks, dashboard)})

    assert _status(page) == ALL_DOWN


def test_snapshot_rollup_skips_a_hidden_operational_component(page, rest_api, webhooks, dashboard):
    for component in (rest_api, webhooks):
        services.component_set_status(component=component, status=MAJOR, source=StatusSource.MANUAL)
    dashboard.only_show_if_degraded = True
    services.component_save(component=dashboard)

    assert _status(page) == ALL_DOWN


def test_snapshot_rollup_uses_unresolved_incident_impact(page, rest_api):
    factories.open_incident(page=page, impact=Impact.MAJOR)

    assert _status(page) == PARTIAL_SYSTEM


def test_snapshot_rollup_ignores_resolved_incidents(page, rest_api):
    incident = factories.open_incident(page=page, impact=Impact.CRITICAL)
    services.incident_resolve(incident=incident, body="Fixed.")

    assert _status(page) == ALL_GOOD


def test_snapshot_rollup_shows_a_maintenance_in_progress(page, rest_api, dashboard):
    maintenance = factories.schedule_maintenance(page=page, components=[rest_api])
    assert _status(page) == ALL_GOOD  # announced, not started

    services.maintenances_advance(now=maintenance.scheduled_for)

    assert _status(page) == MAINTENANCE


def test_snapshot_rollup_shows_a_maintenance_without_components(page, dashboard):
    maintenance = factories.schedule_maintenance(page=page)

    services.maintenance_start(maintenance=maintenance)

    assert _status(page) == MAINTENANCE
