"""`manage.py seed_demo`: a realistic demo page, rebuilt the same way on every run."""
from __future__ import annotations

import io
import re
from datetime import timedelta

import pytest
from allauth.account.models import EmailAddress
from django.contrib.auth import authenticate, get_user_model
from django.core.management import CommandError, call_command
from django.utils import timezone

from incidents import selectors
from incidents.demo import DEMO_PAGE_ID
from incidents.models import (
    Component,
    ComponentStatus,
    ComponentStatusChange,
    Incident,
    IncidentKind,
    IncidentStatus,
    IncidentUpdate,
    MaintenanceStatus,
    Page,
    Region,
)


def _seed(*args: str) -> str:
    out = io.StringIO()
    call_command("seed_demo", *args, stdout=out)
    return out.getvalue()


def _counts() -> dict[str, int]:
    return {
        model.__name__: model.objects.count()
        for model in (Page, Region, Component, ComponentStatusChange, Incident, IncidentUpdate, get_user_model(), EmailAddress)
    }


@pytest.fixture
def seeded(db, monkeypatch):
    monkeypatch.delenv("DEMO_ADMIN_PASSWORD", raising=False)
    output = _seed()
    return Page.objects.get(public_id=DEMO_PAGE_ID), output


def _printed_password(output: str) -> str:
    return re.search(r"password: (\S+)", output).group(1)


def test_running_it_twice_leaves_the_same_data(seeded):
    first = _counts()

    _seed()

    assert _counts() == first
    assert Page.objects.filter(public_id=DEMO_PAGE_ID).count() == 1


def test_it_builds_about_twenty_components_in_groups(seeded):
    page, _output = seeded
    leaves = Component.objects.filter(page=page, is_group=False)
    groups = Component.objects.filter(page=page, is_group=True)

    assert leaves.count() == 20
    assert 4 <= groups.count() <= 5
    assert not leaves.filter(group__isnull=True).exists()
    assert all(c.description for c in leaves)


def test_it_builds_three_regions(seeded):
    page, _output = seeded

    assert set(page.regions.values_list("code", flat=True)) == {"eu", "us", "apac"}


def test_it_builds_one_unresolved_incident_with_three_updates_and_a_degraded_component(seeded):
    page, _output = seeded

    incident = Incident.objects.unresolved().get(page=page)

    assert [u.status for u in incident.updates.order_by("display_at")] == [
        IncidentStatus.INVESTIGATING, IncidentStatus.IDENTIFIED, IncidentStatus.MONITORING,
    ]
    assert list(Component.objects.filter(page=page).exclude(status=ComponentStatus.OPERATIONAL).values_list("status", flat=True)) == [
        ComponentStatus.DEGRADED_PERFORMANCE
    ]
    assert list(incident.components.values_list("status", flat=True)) == [ComponentStatus.DEGRADED_PERFORMANCE]


def test_it_builds_resolved_past_incidents_with_two_to_four_updates(seeded):
    page, _output = seeded
    now = timezone.now()

    past = Incident.objects.filter(page=page, kind=IncidentKind.INCIDENT, status=IncidentStatus.RESOLVED)

    assert past.count() >= 3
    for incident in past:
        assert 2 <= incident.updates.count() <= 4
        assert incident.started_at < incident.resolved_at < now - timedelta(days=1)
        assert incident.updates.order_by("-display_at").first().display_at == incident.resolved_at


def test_it_builds_one_upcoming_maintenance(seeded):
    page, _output = seeded

    upcoming = Incident.objects.maintenances().filter(page=page, status=MaintenanceStatus.SCHEDULED)

    assert upcoming.count() == 1
    assert upcoming.get().scheduled_for > timezone.now()
    assert upcoming.get().components.exists()


def test_the_uptime_history_spans_ninety_days(seeded):
    page, _output = seeded

    uptime = selectors.page_snapshot(page.public_id)["uptime"]

    assert len(uptime) == 20
    for bars in uptime.values():
        assert len(bars["days"]) == 90
        assert bars["days"][0]["uptime"] is not None
    worst = {day["worst"] for bars in uptime.values() for day in bars["days"]}
    assert {ComponentStatus.MAJOR_OUTAGE, ComponentStatus.PARTIAL_OUTAGE, ComponentStatus.UNDER_MAINTENANCE} <= worst


def test_every_status_log_chain_follows_on_and_ends_at_the_current_status(seeded):
    page, _output = seeded

    for component in Component.objects.filter(page=page):
        status = ""
        for change in ComponentStatusChange.objects.filter(component=component).order_by("created", "pk"):
            assert change.old_status == status, (component.name, change.created)
            status = change.new_status
        assert status == component.status, component.name


def test_it_prints_an_admin_login_that_works(seeded):
    _page, output = seeded

    assert "http://testserver/accounts/login/" in output
    assert "admin@example.com" in output
    user = authenticate(username="admin", password=_printed_password(output))
    assert user is not None and user.is_staff and user.is_superuser


def test_it_makes_a_fresh_password_each_run(seeded):
    _page, output = seeded

    again = _seed()

    assert _printed_password(again) != _printed_password(output)
    assert authenticate(username="admin", password=_printed_password(again)) is not None


def test_the_password_comes_from_the_environment_when_set(db, monkeypatch):
    monkeypatch.setenv("DEMO_ADMIN_PASSWORD", "plum-tree-harbour-42")

    output = _seed()

    assert "password: plum-tree-harbour-42" in output
    assert authenticate(username="admin", password="plum-tree-harbour-42") is not None


def test_a_weak_password_from_the_environment_is_refused_and_nothing_is_written(db, monkeypatch):
    monkeypatch.setenv("DEMO_ADMIN_PASSWORD", "admin")

    with pytest.raises(CommandError, match="DEMO_ADMIN_PASSWORD"):
        _seed()

    assert not Page.objects.exists()
    assert not get_user_model().objects.exists()


@pytest.mark.parametrize("count", ["0", "4", "31"])
def test_a_component_count_out_of_range_is_refused(db, count):
    with pytest.raises(CommandError, match="--components"):
        _seed("--components", count)

    assert not Page.objects.exists()


def test_the_component_count_can_be_chosen(db, monkeypatch):
    monkeypatch.delenv("DEMO_ADMIN_PASSWORD", raising=False)

    _seed("--components", "8")

    assert Component.objects.filter(is_group=False).count() == 8
    assert Incident.objects.unresolved().count() == 1


def test_other_pages_are_left_alone(page, monkeypatch):
    monkeypatch.delenv("DEMO_ADMIN_PASSWORD", raising=False)

    _seed()

    page.refresh_from_db()
    demo = Page.objects.get(public_id=DEMO_PAGE_ID)
    assert page.is_default and not demo.is_default
    assert Page.objects.count() == 2


def test_it_shows_progress_while_writing_history(seeded):
    _page, output = seeded

    assert "20/20 components" in output


def test_it_makes_one_staff_account_per_editorial_role_with_the_printed_password(seeded):
    from incidents.demo import ROLE_ACCOUNTS

    _page, output = seeded
    password = _printed_password(output)
    for role, group in ROLE_ACCOUNTS:
        user = authenticate(email=f"{role}@example.com", password=password)
        assert user is not None and user.is_staff and not user.is_superuser
        assert list(user.groups.values_list("name", flat=True)) == [group]
    assert "communicator@example.com" in output


def test_it_leaves_a_p2_alert_waiting_for_pr_approval(seeded):
    from incidents import editorial
    from incidents.models import DraftState, UpdateDraft

    page, _output = seeded
    draft = UpdateDraft.objects.get(page=page)
    assert (draft.state, draft.incident, draft.author.email) == (DraftState.IN_REVIEW, None, "communicator@example.com")
    assert editorial.missing_approvals(draft) == ["pr"]
    assert editorial.redaction_findings(draft) == []
    assert Incident.objects.get(page=page, status__in=["investigating", "identified", "monitoring"]).commander.email == "commander@example.com"
