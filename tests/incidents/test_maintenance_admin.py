"""A maintenance's notices in the desk: reminder times, reschedules, cancellations and overruns.

Each notice is a small POST form on the maintenance's change page (incidents.admin_maintenance)
calling one service; refusals come back as error messages naming the field.
"""
from __future__ import annotations

from datetime import timedelta
from datetime import timezone as dt_timezone
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.contrib.auth.models import Permission
from django.urls import reverse
from django.utils import timezone

from incidents import services
from incidents.models import Incident, MaintenanceStatus
from notifications.models import Dispatch
from tests import factories

pytestmark = pytest.mark.django_db

NOTICES = ["reminders", "reschedule", "cancel", "overrun"]


def _url(name: str, *args) -> str:
    return reverse(f"admin:incidents_{name}", args=args)


def _messages(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def _notices(response) -> str:
    """The notices panel of a change page, as HTML."""
    body = response.content.decode()
    assert 'id="maintenance-notices"' in body
    return body[body.index('id="maintenance-notices"'):]


def _local(when, zone=dt_timezone.utc) -> str:
    """A datetime-local value, as a browser posts it."""
    return when.astimezone(zone).strftime("%Y-%m-%dT%H:%M")


def _minute(when):
    return when.replace(second=0, microsecond=0)


@pytest.fixture
def maintenance(page):
    return factories.schedule_maintenance(page=page, starts_in=timedelta(days=2))


@pytest.fixture
def running(maintenance):
    services.maintenance_start(maintenance=maintenance)
    maintenance.refresh_from_db()
    return maintenance


@pytest.fixture
def viewer(db, django_user_model):
    """Staff who may look at maintenances but not change them."""
    user = django_user_model.objects.create_user(username="vic", email="vic@example.com", password="x", is_staff=True)
    user.user_permissions.add(Permission.objects.get(content_type__app_label="incidents", codename="view_maintenance"))
    return user


# --- reminders ------------------------------------------------------------------------------------


def test_a_maintenance_added_in_the_desk_keeps_the_reminder_times_typed(desk, page):
    start = timezone.now() + timedelta(days=5)

    response = desk.post(_url("maintenance_add"), {
        "page": page.pk, "name": "Network switch swap", **factories.split_datetime("scheduled_for", start),
        **factories.split_datetime("scheduled_until", start + timedelta(hours=1)), "auto_start": "on", "auto_complete": "on",
        "reminder_leads": "2880, 240", "body": "We swap the core switches.", "deliver_notifications": "on",
    })

    assert response.status_code == 302
    assert Incident.objects.get(name="Network switch swap").reminder_leads == [2880, 240]


def test_the_add_form_offers_a_day_and_an_hour_before_the_start(desk):
    response = desk.get(_url("maintenance_add"))

    assert 'name="reminder_leads" value="1440, 60"' in response.content.decode()


def test_reminder_times_that_are_not_minutes_are_refused_on_the_add_form(desk, page):
    start = timezone.now() + timedelta(days=5)

    response = desk.post(_url("maintenance_add"), {
        "page": page.pk, "name": "Network switch swap", **factories.split_datetime("scheduled_for", start),
        **factories.split_datetime("scheduled_until", start + timedelta(hours=1)),
        "reminder_leads": "1 day", "body": "We swap the core switches.",
    })

    assert response.status_code == 200
    assert "Write whole minutes separated by commas" in str(response.context["adminform"].form.errors["reminder_leads"])
    assert not Incident.objects.filter(name="Network switch swap").exists()


def test_the_change_page_lists_the_reminders_and_which_have_gone(desk, maintenance):
    with time_machine.travel(maintenance.scheduled_for - timedelta(hours=23), tick=False):
        services.maintenances_advance()

    panel = _notices(desk.get(_url("maintenance_change", maintenance.pk)))

    assert "1 day before the start" in panel and "1 hour before the start" in panel
    assert panel.count('class="reminder-done"') == 1 and panel.count('class="reminder-pending"') == 1


def test_reminder_times_change_while_the_maintenance_is_scheduled(desk, maintenance):
    response = desk.post(_url("maintenance_reminders", maintenance.pk), {"reminder_leads": "240, 1440, 240"}, follow=True)

    maintenance.refresh_from_db()
    assert maintenance.reminder_leads == [1440, 240]
    assert "Reminders set: 1 day, 4 hours before the start." in _messages(response)


def test_an_empty_reminder_field_turns_the_reminders_off(desk, maintenance):
    desk.post(_url("maintenance_reminders", maintenance.pk), {"reminder_leads": ""})

    maintenance.refresh_from_db()
    assert maintenance.reminder_leads == []
    with time_machine.travel(maintenance.scheduled_for - timedelta(minutes=30), tick=False):
        assert services.maintenances_advance()["reminded"] == 0


def test_a_reminder_time_already_past_is_not_sent_late(desk, page):
    maintenance = factories.schedule_maintenance(page=page, starts_in=timedelta(days=5))

    with time_machine.travel(maintenance.scheduled_for - timedelta(days=2), tick=False):
        # Four days before the start went by a day ago, after the announcement.
        response = desk.post(_url("maintenance_reminders", maintenance.pk), {"reminder_leads": "5760, 60"}, follow=True)
        reminded = services.maintenances_advance()["reminded"]

    assert "Already past, so not sent: 4 days before the start." in _messages(response)
    assert reminded == 0


def test_the_reminders_of_a_started_maintenance_do_not_change(desk, running):
    response = desk.post(_url("maintenance_reminders", running.pk), {"reminder_leads": "30"}, follow=True)

    assert "Status: Only a maintenance that has not started has reminders to change." in _messages(response)
    assert Incident.objects.get(pk=running.pk).reminder_leads == [1440, 60]


# --- reschedule and cancel ------------------------------------------------------------------------


def test_rescheduling_in_the_desk_moves_the_window_and_tells_subscribers(desk, staff, maintenance):
    start = _minute(maintenance.scheduled_for + timedelta(days=7))

    response = desk.post(_url("maintenance_reschedule", maintenance.pk), {
        "scheduled_for": _local(start), "scheduled_until": _local(start + timedelta(hours=3)), "body": "A vendor asked us to wait.",
    }, follow=True)

    maintenance.refresh_from_db()
    assert (maintenance.scheduled_for, maintenance.scheduled_until) == (start, start + timedelta(hours=3))
    notice = maintenance.updates.latest("id")
    assert notice.body.startswith("Rescheduled: the new window is") and "A vendor asked us to wait." in notice.body
    assert (notice.created_by, Dispatch.objects.filter(update=notice).exists()) == (staff, True)
    assert any(m.startswith("Rescheduled to") for m in _messages(response))


def test_reschedule_times_are_read_in_the_pages_time_zone(desk):
    paris = factories.make_page(name="Paris", url="https://status.example.fr", time_zone="Europe/Paris")
    maintenance = factories.schedule_maintenance(page=paris)
    start = _minute(timezone.now() + timedelta(days=9))

    page = desk.get(_url("maintenance_change", maintenance.pk)).content.decode()
    desk.post(_url("maintenance_reschedule", maintenance.pk), {
        "scheduled_for": _local(start, ZoneInfo("Europe/Paris")),
        "scheduled_until": _local(start + timedelta(hours=2), ZoneInfo("Europe/Paris")),
    })

    assert "New start (Europe/Paris)" in page
    assert Incident.objects.get(pk=maintenance.pk).scheduled_for == start


def test_cancelling_in_the_desk_closes_the_maintenance_and_tells_subscribers(desk, maintenance):
    response = desk.post(_url("maintenance_cancel", maintenance.pk), {"reason": "The upgrade is no longer needed."}, follow=True)

    maintenance.refresh_from_db()
    notice = maintenance.updates.latest("id")
    assert maintenance.status == MaintenanceStatus.COMPLETED
    assert notice.body.startswith("Cancelled: this maintenance will not take place.")
    assert "The upgrade is no longer needed." in notice.body and Dispatch.objects.filter(update=notice).exists()
    assert "Cancelled: subscribers are told this maintenance will not take place." in _messages(response)


def test_a_reschedule_that_ends_before_it_starts_is_refused_naming_the_end(desk, maintenance):
    start = timezone.now() + timedelta(days=4)
    before = (maintenance.scheduled_for, maintenance.scheduled_until)

    response = desk.post(_url("maintenance_reschedule", maintenance.pk), {
        "scheduled_for": _local(start), "scheduled_until": _local(start - timedelta(hours=1)),
    }, follow=True)

    assert "New end (Etc/UTC): The window must end after it starts." in _messages(response)
    maintenance.refresh_from_db()
    assert (maintenance.scheduled_for, maintenance.scheduled_until) == before
    assert maintenance.updates.count() == 1


def test_a_reschedule_into_the_past_is_refused_naming_the_start(desk, maintenance):
    past = timezone.now() - timedelta(hours=2)

    response = desk.post(_url("maintenance_reschedule", maintenance.pk), {
        "scheduled_for": _local(past), "scheduled_until": _local(past + timedelta(hours=4)),
    }, follow=True)

    assert "New start (Etc/UTC): A rescheduled window must start in the future." in _messages(response)
    assert maintenance.updates.count() == 1


def test_a_reschedule_without_times_is_refused_naming_them(desk, maintenance):
    response = desk.post(_url("maintenance_reschedule", maintenance.pk), {"body": "Later."}, follow=True)

    assert {"New start (Etc/UTC): This field is required.", "New end (Etc/UTC): This field is required."} <= set(_messages(response))
    assert maintenance.updates.count() == 1


# --- overruns -------------------------------------------------------------------------------------


def test_an_overrun_shows_the_planned_end_the_revised_end_and_the_credit_review(desk, running):
    planned = running.scheduled_until
    revised = _minute(planned + timedelta(hours=3))

    response = desk.post(_url("maintenance_overrun", running.pk), {
        "scheduled_until": _local(revised), "reason": "The data copy is slower than tested.",
    }, follow=True)

    panel = _notices(response)
    assert f"{planned:%Y-%m-%d %H:%M} UTC" in panel[panel.index('id="notice-planned-end"'):]
    assert f"to {revised:%Y-%m-%d %H:%M} UTC" in panel[panel.index('id="notice-window"'):]
    assert "flagged" in panel[panel.index('id="notice-sla-review"'):]
    assert "More than 2 hours past the planned end: flagged for an SLA credit review." in _messages(response)
    assert "The data copy is slower than tested." in running.updates.latest("id").body


def test_an_overrun_without_a_reason_is_refused_naming_the_reason(desk, running):
    response = desk.post(_url("maintenance_overrun", running.pk), {
        "scheduled_until": _local(running.scheduled_until + timedelta(hours=1)), "reason": "  ",
    }, follow=True)

    assert "Why it takes longer: Tell subscribers why the work takes longer." in _messages(response)
    assert Incident.objects.get(pk=running.pk).planned_until is None


def test_the_page_offers_the_notices_the_state_allows(desk, maintenance):
    scheduled = _notices(desk.get(_url("maintenance_change", maintenance.pk)))
    services.maintenance_start(maintenance=maintenance)
    started = _notices(desk.get(_url("maintenance_change", maintenance.pk)))

    assert [name in scheduled for name in ('name="reschedule"', 'name="cancel_maintenance"', 'name="overrun"')] == [True, True, False]
    assert [name in started for name in ('name="reschedule"', 'name="cancel_maintenance"', 'name="overrun"')] == [False, False, True]


# --- who and how ----------------------------------------------------------------------------------


def test_a_viewer_reads_the_notices_without_any_form(client, viewer, maintenance):
    client.force_login(viewer)

    panel = _notices(client.get(_url("maintenance_change", maintenance.pk)))

    assert "1 day before the start" in panel and "<form" not in panel


@pytest.mark.parametrize("notice", NOTICES)
def test_a_user_without_change_maintenance_is_refused_with_403(client, viewer, running, notice):
    client.force_login(viewer)

    response = client.post(_url(f"maintenance_{notice}", running.pk), {
        "reminder_leads": "30", "reason": "Slow.", "scheduled_until": _local(running.scheduled_until + timedelta(hours=1)),
    })

    assert response.status_code == 403
    assert Incident.objects.get(pk=running.pk).scheduled_until == running.scheduled_until
    assert running.updates.count() == 2


@pytest.mark.parametrize("notice", NOTICES)
def test_the_notice_actions_take_only_posts(desk, maintenance, notice):
    assert desk.get(_url(f"maintenance_{notice}", maintenance.pk)).status_code == 405
