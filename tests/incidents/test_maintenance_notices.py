"""Maintenance notices beyond the announcement: reminders, reschedules, cancellations, overruns."""
from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.core.exceptions import ValidationError
from django.utils import timezone

from incidents import services
from incidents.models import Incident, MaintenanceStatus
from notifications.models import Dispatch
from tests import factories

pytestmark = pytest.mark.django_db


def _reminders(maintenance) -> list[str]:
    return [u.body for u in maintenance.updates.order_by("display_at", "pk") if u.body.startswith("Reminder")]


def test_subscribers_are_reminded_a_day_and_an_hour_before_the_window(page):
    maintenance = factories.schedule_maintenance(page=page, starts_in=timedelta(days=2))
    start = maintenance.scheduled_for
    with time_machine.travel(start - timedelta(hours=23, minutes=59), tick=False):
        assert services.maintenances_advance()["reminded"] == 1
    with time_machine.travel(start - timedelta(minutes=59), tick=False):
        assert services.maintenances_advance()["reminded"] == 1
    bodies = _reminders(maintenance)
    assert [b.splitlines()[0] for b in bodies] == [
        "Reminder: this maintenance starts in 24 hours.", "Reminder: this maintenance starts in 1 hour.",
    ]
    assert "We will upgrade the primary database." in bodies[0]
    # Each reminder is a notice of its own: subscribers hear it.
    assert Dispatch.objects.filter(update__body__startswith="Reminder").count() == 2


def test_a_reminder_goes_once_however_often_the_schedule_runs(page):
    maintenance = factories.schedule_maintenance(page=page, starts_in=timedelta(days=2))
    with time_machine.travel(maintenance.scheduled_for - timedelta(hours=20), tick=False):
        services.maintenances_advance()
        services.maintenances_advance()
    assert len(_reminders(maintenance)) == 1


def test_a_window_announced_inside_a_lead_skips_that_reminder(page):
    maintenance = factories.schedule_maintenance(page=page, starts_in=timedelta(hours=3))
    with time_machine.travel(maintenance.scheduled_for - timedelta(hours=2), tick=False):
        assert services.maintenances_advance()["reminded"] == 0
    with time_machine.travel(maintenance.scheduled_for - timedelta(minutes=30), tick=False):
        assert services.maintenances_advance()["reminded"] == 1
    assert len(_reminders(maintenance)) == 1


def test_a_window_can_carry_its_own_reminder_times(page):
    maintenance = factories.schedule_maintenance(page=page, starts_in=timedelta(days=3), reminder_leads=[2 * 24 * 60])
    with time_machine.travel(maintenance.scheduled_for - timedelta(hours=48) + timedelta(minutes=1), tick=False):
        services.maintenances_advance()
    with time_machine.travel(maintenance.scheduled_for - timedelta(minutes=30), tick=False):
        services.maintenances_advance()
    assert [b.splitlines()[0] for b in _reminders(maintenance)] == ["Reminder: this maintenance starts in 2 days."]


def test_reminder_times_must_be_minutes_before_the_start(page):
    with pytest.raises(ValidationError) as refused:
        factories.schedule_maintenance(page=page, reminder_leads=[60, -5])
    assert "reminder_leads" in refused.value.message_dict


def test_a_rescheduled_window_is_announced_and_its_reminders_start_over(page):
    maintenance = factories.schedule_maintenance(page=page, starts_in=timedelta(days=2))
    with time_machine.travel(maintenance.scheduled_for - timedelta(hours=20), tick=False):
        services.maintenances_advance()
    new_start = maintenance.scheduled_for + timedelta(days=7)
    update = services.maintenance_reschedule(
        maintenance=maintenance, scheduled_for=new_start, scheduled_until=new_start + timedelta(hours=2), body="A vendor asked us to wait.",
    )
    maintenance.refresh_from_db()
    assert update.body.startswith("Rescheduled: the new window is")
    assert (maintenance.scheduled_for, maintenance.reminders_sent) == (new_start, [])
    assert Dispatch.objects.filter(update=update).exists()


def test_a_started_maintenance_cannot_be_rescheduled(page):
    maintenance = factories.schedule_maintenance(page=page)
    services.maintenance_start(maintenance=maintenance)
    later = timezone.now() + timedelta(days=9)
    with pytest.raises(ValidationError) as refused:
        services.maintenance_reschedule(maintenance=maintenance, scheduled_for=later, scheduled_until=later + timedelta(hours=1))
    assert "status" in refused.value.message_dict


def test_a_cancelled_maintenance_tells_subscribers_and_closes(page):
    maintenance = factories.schedule_maintenance(page=page)
    update = services.maintenance_cancel(maintenance=maintenance, body="The upgrade is no longer needed.")
    maintenance.refresh_from_db()
    assert maintenance.status == MaintenanceStatus.COMPLETED
    assert update.body.startswith("Cancelled: this maintenance will not take place.")
    assert Dispatch.objects.filter(update=update).exists()


def test_an_overrun_publishes_the_revised_end_and_why(page):
    maintenance = factories.schedule_maintenance(page=page)
    services.maintenance_start(maintenance=maintenance)
    planned = maintenance.scheduled_until
    update = services.maintenance_extend(maintenance=maintenance, scheduled_until=planned + timedelta(minutes=45), reason="The data copy is slower than tested.")
    maintenance.refresh_from_db()
    assert "New expected end" in update.body and "The data copy is slower than tested." in update.body
    assert (maintenance.scheduled_until, maintenance.planned_until) == (planned + timedelta(minutes=45), planned)
    assert not maintenance.sla_credit_review


def test_an_overrun_of_more_than_two_hours_flags_an_sla_credit_review(page):
    maintenance = factories.schedule_maintenance(page=page)
    services.maintenance_start(maintenance=maintenance)
    planned = maintenance.scheduled_until
    services.maintenance_extend(maintenance=maintenance, scheduled_until=planned + timedelta(hours=1), reason="Slow copy.")
    services.maintenance_extend(maintenance=maintenance, scheduled_until=planned + timedelta(hours=2, minutes=30), reason="Slower still.")
    assert Incident.objects.get(pk=maintenance.pk).sla_credit_review


def test_an_overrun_needs_a_reason_and_a_later_end(page):
    maintenance = factories.schedule_maintenance(page=page)
    services.maintenance_start(maintenance=maintenance)
    with pytest.raises(ValidationError) as refused:
        services.maintenance_extend(maintenance=maintenance, scheduled_until=maintenance.scheduled_until - timedelta(minutes=5), reason="")
    assert "scheduled_until" in refused.value.message_dict
    with pytest.raises(ValidationError) as refused:
        services.maintenance_extend(maintenance=maintenance, scheduled_until=maintenance.scheduled_until + timedelta(hours=1), reason=" ")
    assert "reason" in refused.value.message_dict


def test_after_a_worker_outage_only_the_nearest_reminder_goes(page):
    maintenance = factories.schedule_maintenance(page=page, starts_in=timedelta(days=2))
    with time_machine.travel(maintenance.scheduled_for - timedelta(minutes=20), tick=False):
        services.maintenances_advance()
    # Neither "in 24 hours" nor "in 1 hour": what is really left.
    assert [b.splitlines()[0] for b in _reminders(maintenance)] == ["Reminder: this maintenance starts in 20 minutes."]


def test_a_window_moved_inside_a_lead_gets_no_reminder_right_after_its_reschedule_notice(page):
    maintenance = factories.schedule_maintenance(page=page, starts_in=timedelta(days=2))
    soon = timezone.now() + timedelta(minutes=30)
    services.maintenance_reschedule(maintenance=maintenance, scheduled_for=soon, scheduled_until=soon + timedelta(hours=1))
    assert services.maintenances_advance()["reminded"] == 0
    assert _reminders(maintenance) == []


def test_a_reminder_after_a_reschedule_repeats_the_new_window(page):
    maintenance = factories.schedule_maintenance(page=page, starts_in=timedelta(days=2))
    later = maintenance.scheduled_for + timedelta(days=5)
    services.maintenance_reschedule(maintenance=maintenance, scheduled_for=later, scheduled_until=later + timedelta(hours=2))
    with time_machine.travel(later - timedelta(minutes=59), tick=False):
        services.maintenances_advance()
    [reminder] = _reminders(maintenance)
    assert "Rescheduled: the new window is" in reminder


def test_a_window_cannot_be_moved_into_the_past(page):
    maintenance = factories.schedule_maintenance(page=page)
    past = timezone.now() - timedelta(hours=1)
    with pytest.raises(ValidationError) as refused:
        services.maintenance_reschedule(maintenance=maintenance, scheduled_for=past, scheduled_until=past + timedelta(hours=2))
    assert "scheduled_for" in refused.value.message_dict


def test_one_failing_reminder_does_not_stop_the_maintenance_schedule(page, monkeypatch):
    factories.schedule_maintenance(page=page, name="Reminded", starts_in=timedelta(minutes=30))
    due = factories.schedule_maintenance(page=page, name="Due now", starts_in=timedelta(minutes=1))

    def broken(**kwargs):
        raise RuntimeError("the provider of reminders is down")

    monkeypatch.setattr(services, "maintenance_remind", broken)
    with time_machine.travel(due.scheduled_for + timedelta(seconds=30), tick=False):
        result = services.maintenances_advance()
    assert result["started"] == 1
    assert Incident.objects.get(pk=due.pk).status == MaintenanceStatus.IN_PROGRESS


def test_reminder_times_are_at_most_thirty_days(page):
    with pytest.raises(ValidationError) as refused:
        factories.schedule_maintenance(page=page, starts_in=timedelta(days=90), reminder_leads=[10**10])
    assert "reminder_leads" in refused.value.message_dict
