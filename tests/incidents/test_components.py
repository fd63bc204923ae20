"""Components and groups: the status log, group rollup, the two-level shape and public ids."""
from __future__ import annotations

import re

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from incidents import services
from incidents.models import Component, ComponentStatus, ComponentStatusChange, StatusSource
from incidents.selectors import page_snapshot
from tests import factories

# Worst last, as spec 2.3 orders them.
SEVERITY_ORDER = [
    ComponentStatus.OPERATIONAL,
    ComponentStatus.UNDER_MAINTENANCE,
    ComponentStatus.DEGRADED_PERFORMANCE,
    ComponentStatus.PARTIAL_OUTAGE,
    ComponentStatus.MAJOR_OUTAGE,
]


def _snapshot_component(page, component: Component) -> dict:
    snap = page_snapshot(page.public_id)
    return next(c for c in snap["components"] if c["id"] == component.public_id)


def test_status_change_is_logged_with_old_new_source_actor_reason_and_time(dashboard, staff):
    before = ComponentStatusChange.objects.filter(component=dashboard).count()

    previous = services.component_set_status(
        component=dashboard, status=ComponentStatus.PARTIAL_OUTAGE, source=StatusSource.MANUAL,
        actor=staff, reason="Load balancer drops requests",
    )

    assert previous == ComponentStatus.OPERATIONAL
    assert ComponentStatusChange.objects.filter(component=dashboard).count() == before + 1
    entry = ComponentStatusChange.objects.filter(component=dashboard).first()  # newest first
    assert entry.old_status == ComponentStatus.OPERATIONAL
    assert entry.new_status == ComponentStatus.PARTIAL_OUTAGE
    assert entry.source == StatusSource.MANUAL
    assert entry.actor == staff
    assert entry.reason == "Load balancer drops requests"
    dashboard.refresh_from_db()
    assert dashboard.status == ComponentStatus.PARTIAL_OUTAGE
    assert entry.created == dashboard.updated


def test_setting_the_same_status_writes_no_log_entry(dashboard):
    before = ComponentStatusChange.objects.filter(component=dashboard).count()

    services.component_set_status(component=dashboard, status=ComponentStatus.OPERATIONAL, source=StatusSource.MANUAL)

    assert ComponentStatusChange.objects.filter(component=dashboard).count() == before


def test_a_status_edit_through_component_save_is_logged(dashboard, staff):
    dashboard.status = ComponentStatus.DEGRADED_PERFORMANCE

    services.component_save(component=dashboard, actor=staff, reason="Slow dashboards")

    entry = ComponentStatusChange.objects.filter(component=dashboard).first()
    assert (entry.old_status, entry.new_status, entry.actor, entry.reason) == (
        ComponentStatus.OPERATIONAL, ComponentStatus.DEGRADED_PERFORMANCE, staff, "Slow dashboards",
    )


def test_creating_a_component_logs_its_first_status(page):
    component = factories.make_component(page=page, name="Search")

    entry = ComponentStatusChange.objects.get(component=component)
    assert (entry.old_status, entry.new_status) == ("", ComponentStatus.OPERATIONAL)


@pytest.mark.parametrize("worse_index", range(1, len(SEVERITY_ORDER)))
def test_group_status_is_its_worst_childs(page, api_group, rest_api, webhooks, worse_index):
    # The lesser of the two statuses must not win, whichever child holds it.
    lesser, worse = SEVERITY_ORDER[worse_index - 1], SEVERITY_ORDER[worse_index]
    services.component_set_status(component=rest_api, status=lesser, source=StatusSource.MANUAL)
    services.component_set_status(component=webhooks, status=worse, source=StatusSource.MANUAL)

    assert _snapshot_component(page, api_group)["status"] == worse


def test_group_with_every_child_operational_is_operational(page, api_group, rest_api, webhooks):
    assert _snapshot_component(page, api_group)["status"] == ComponentStatus.OPERATIONAL


def test_setting_a_groups_status_directly_is_refused(api_group, rest_api):
    with pytest.raises(ValidationError) as excinfo:
        services.component_set_status(component=api_group, status=ComponentStatus.MAJOR_OUTAGE, source=StatusSource.MANUAL)

    assert "status" in excinfo.value.message_dict
    api_group.refresh_from_db()
    assert api_group.status == ComponentStatus.OPERATIONAL
    assert not ComponentStatusChange.objects.filter(component=api_group, new_status=ComponentStatus.MAJOR_OUTAGE).exists()


def test_a_group_inside_a_group_is_refused_by_full_clean(page, api_group):
    inner = Component(page=page, is_group=True, group=api_group, name="Inner group")

    with pytest.raises(ValidationError) as excinfo:
        inner.full_clean()

    assert "group" in excinfo.value.message_dict


def test_a_group_inside_a_group_is_refused_by_the_database(page, api_group):
    inner = Component(page=page, is_group=True, group=api_group, name="Inner group")

    with pytest.raises(IntegrityError), transaction.atomic():
        inner.save()


def test_a_component_pointing_to_a_non_group_is_refused(page, dashboard):
    child = Component(page=page, group=dashboard, name="Charts")

    with pytest.raises(ValidationError) as excinfo:
        services.component_save(component=child)

    assert "group" in excinfo.value.message_dict
    assert not Component.objects.filter(name="Charts").exists()


def test_a_component_in_a_group_of_another_page_is_refused(page):
    other = factories.make_page(name="Other", url="https://status.other.example.org")
    foreign_group = factories.make_group(page=other, name="Foreign")
    child = Component(page=page, group=foreign_group, name="Stray")

    with pytest.raises(ValidationError) as excinfo:
        child.full_clean()

    assert "group" in excinfo.value.message_dict


def test_public_ids_are_twelve_lowercase_base36_characters_not_the_pk(page, api_group, rest_api, dashboard):
    for thing in (page, api_group, rest_api, dashboard):
        assert re.fullmatch(r"[a-z0-9]{12}", thing.public_id)
        assert thing.public_id != str(thing.pk)
    assert len({page.public_id, api_group.public_id, rest_api.public_id, dashboard.public_id}) == 4


def test_the_snapshot_lists_components_by_public_id_with_group_children(page, api_group, rest_api, webhooks):
    snap = page_snapshot(page.public_id)
    group = next(c for c in snap["components"] if c["group"])

    assert group["id"] == api_group.public_id
    assert group["components"] == [rest_api.public_id, webhooks.public_id]
    child = next(c for c in snap["components"] if c["id"] == rest_api.public_id)
    assert child["group_id"] == api_group.public_id
