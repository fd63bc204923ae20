"""Cadence discipline: staff are reminded before a promise to customers falls due, escalated to
once it is broken, and each reminder goes out once however often the per-minute check runs."""
from __future__ import annotations

import json
import zoneinfo
from datetime import timedelta
from io import StringIO

import pytest
import time_machine
from django.core import mail
from django.core.management import call_command
from django.utils import timezone
from django.utils.module_loading import import_string
from django_q.models import Schedule

from incidents import editorial, reminders, services
from incidents.models import Incident, Page, Postmortem, SeverityPolicy, StaffReminder, StaffReminderKind
from tests import factories
from tests.notifications.conftest import allow_local, receiver  # noqa: F401 - fixtures

pytestmark = pytest.mark.django_db

ALERTS = "incident-desk@example.com"
CONTACTS = ["vp-engineering@example.com", "on-call@example.com"]


@pytest.fixture(autouse=True)
def _reminder_settings(settings):
    settings.STAFF_ALERT_EMAILS = [ALERTS]
    settings.STAFF_CHAT_WEBHOOK_URL = ""
    settings.REMINDER_LEAD_MINUTES = 10


@pytest.fixture
def chat(settings, receiver, allow_local):  # noqa: F811 - fixtures
    settings.STAFF_CHAT_WEBHOOK_URL = f"{receiver.url}/staff-chat"
    return receiver


@pytest.fixture
def check(django_capture_on_commit_callbacks):
    """One run of the per-minute check at the frozen time, with its on-commit sends executed."""

    def run(at=None) -> dict[str, int]:
        with django_capture_on_commit_callbacks(execute=True):
            return reminders.reminders_check(now=at)

    return run


@pytest.fixture
def escalation_contacts(staff):
    for severity in ("P1", "P2"):
        policy = SeverityPolicy.objects.get(severity=severity)
        policy.escalation_contacts = "\n".join(CONTACTS) + "\n"
        editorial.policy_save(policy=policy, actor=staff, note="escalation contacts")


def _incident(page, commander, communicator, *, severity="P2", **kwargs) -> Incident:
    incident = factories.open_incident(page=page, name="Checkout errors", severity=severity, **kwargs)
    Incident.objects.filter(pk=incident.pk).update(commander=commander)
    editorial.draft_create(page=page, actor=communicator, incident=incident, body="We are still working on the checkout errors.")
    incident.refresh_from_db()
    return incident


def _mails(kind_word: str) -> list:
    return [m for m in mail.outbox if kind_word in m.subject]


def _local(value, zone: str) -> str:
    local = value.astimezone(zoneinfo.ZoneInfo(zone))
    return f"{local:%Y-%m-%d %H:%M} {local.tzname()}"


def test_a_reminder_goes_out_within_the_lead_time_before_an_update_is_due(page, commander, communicator, check):
    Page.objects.filter(pk=page.pk).update(time_zone="America/New_York")
    incident = _incident(page, commander, communicator)
    due = incident.next_update_at

    with time_machine.travel(due - timedelta(minutes=11), tick=False):
        assert check()[StaffReminderKind.UPDATE_DUE] == 0
    assert mail.outbox == []

    with time_machine.travel(due - timedelta(minutes=9), tick=False):
        assert check()[StaffReminderKind.UPDATE_DUE] == 1
    [email] = mail.outbox
    assert set(email.to) == {commander.email, communicator.email, ALERTS}
    assert "Checkout errors" in email.body
    assert _local(due, "America/New_York") in email.body  # the page's clock, not UTC
    assert f"http://testserver/admin/incidents/incident/{incident.pk}/change/" in email.body


def test_the_staff_chat_gets_the_reminder_as_json_text(page, commander, communicator, chat, check):
    incident = _incident(page, commander, communicator)

    with time_machine.travel(incident.next_update_at - timedelta(minutes=5), tick=False):
        check()

    assert chat.last.path == "/staff-chat"
    text = json.loads(chat.last.body)["text"]
    assert "Checkout errors" in text
    assert f"/admin/incidents/incident/{incident.pk}/change/" in text


def test_an_overdue_update_is_escalated_to_the_policy_escalation_contacts(page, commander, communicator, escalation_contacts, check):
    incident = _incident(page, commander, communicator)

    with time_machine.travel(incident.next_update_at + timedelta(minutes=1), tick=False):
        result = check()

    assert result[StaffReminderKind.UPDATE_OVERDUE] == 1
    [email] = _mails("OVERDUE")
    assert set(email.to) == {commander.email, communicator.email, ALERTS, *CONTACTS}
    assert _local(incident.next_update_at, page.time_zone) in email.body


def test_an_update_that_moves_the_next_update_time_prevents_the_overdue_escalation(
    page, commander, communicator, escalation_contacts, check,
):
    incident = _incident(page, commander, communicator)
    first_due = incident.next_update_at

    with time_machine.travel(first_due - timedelta(minutes=5), tick=False):
        check()
        services.incident_post_update(incident=incident, status="identified", body="We found the faulty release.")
    with time_machine.travel(first_due + timedelta(minutes=1), tick=False):
        result = check()

    assert result[StaffReminderKind.UPDATE_OVERDUE] == 0
    assert _mails("OVERDUE") == []
    assert not StaffReminder.objects.filter(kind=StaffReminderKind.UPDATE_OVERDUE).exists()


def test_an_open_incident_without_eta_becomes_an_extended_outage_after_four_hours(
    page, commander, communicator, executive, executive_approver, escalation_contacts, check,
):
    started = timezone.now() - timedelta(hours=4, minutes=1)
    incident = _incident(page, commander, communicator, severity="P2", started_at=started)
    assert incident.next_update_at > timezone.now() + timedelta(minutes=15)  # P2 promises an hour

    with time_machine.travel(timezone.now(), tick=False):
        now = timezone.now()
        result = check()

    incident.refresh_from_db()
    assert result[StaffReminderKind.EXTENDED_OUTAGE] == 1
    assert incident.extended_at == now
    assert incident.sla_credit_review is True
    assert incident.next_update_at <= now + timedelta(minutes=15)
    [email] = _mails("Extended outage")
    assert {executive.email, executive_approver.email, commander.email, *CONTACTS} <= set(email.to)
    assert "extended-outage template" in email.body
    assert "SLA credit review" in email.body


def test_an_incident_with_an_eta_is_not_extended(page, commander, communicator, check):
    incident = _incident(page, commander, communicator, started_at=timezone.now() - timedelta(hours=5))
    Incident.objects.filter(pk=incident.pk).update(eta=timezone.now() + timedelta(hours=1))

    result = check()

    incident.refresh_from_db()
    assert result[StaffReminderKind.EXTENDED_OUTAGE] == 0
    assert (incident.extended_at, incident.sla_credit_review) == (None, False)
    assert _mails("Extended outage") == []


def test_an_incident_younger_than_four_hours_is_not_extended(page, commander, communicator, check):
    incident = _incident(page, commander, communicator, started_at=timezone.now() - timedelta(hours=3, minutes=59))

    check()

    incident.refresh_from_db()
    assert incident.extended_at is None


def _resolved_with_postmortem(page, commander, communicator) -> Postmortem:
    incident = _incident(page, commander, communicator, severity="P1")
    services.incident_resolve(incident=incident, body="Fixed.")
    return Postmortem.objects.get(incident=incident)  # P1: public, within 48 hours


def test_a_postmortem_reminder_goes_out_24_hours_before_its_deadline(page, commander, communicator, escalation_contacts, check):
    postmortem = _resolved_with_postmortem(page, commander, communicator)

    with time_machine.travel(postmortem.due_at - timedelta(hours=25), tick=False):
        assert check()[StaffReminderKind.POSTMORTEM_DUE] == 0
    with time_machine.travel(postmortem.due_at - timedelta(hours=23), tick=False):
        assert check()[StaffReminderKind.POSTMORTEM_DUE] == 1

    [email] = _mails("Post-mortem due")
    assert {commander.email, communicator.email, *CONTACTS} <= set(email.to)
    assert _local(postmortem.due_at, page.time_zone) in email.body


def test_an_overdue_postmortem_is_escalated(page, commander, communicator, escalation_contacts, check):
    postmortem = _resolved_with_postmortem(page, commander, communicator)

    with time_machine.travel(postmortem.due_at + timedelta(minutes=1), tick=False):
        result = check()

    assert result[StaffReminderKind.POSTMORTEM_OVERDUE] == 1
    assert result[StaffReminderKind.POSTMORTEM_DUE] == 0
    [email] = _mails("Post-mortem OVERDUE")
    assert {commander.email, communicator.email, *CONTACTS} <= set(email.to)


def test_a_published_postmortem_gets_no_reminder(page, commander, communicator, check):
    postmortem = _resolved_with_postmortem(page, commander, communicator)
    Postmortem.objects.filter(pk=postmortem.pk).update(state="published", published_at=timezone.now())

    with time_machine.travel(postmortem.due_at + timedelta(minutes=1), tick=False):
        result = check()

    assert result[StaffReminderKind.POSTMORTEM_OVERDUE] == 0


def test_a_maintenance_still_in_progress_30_minutes_before_its_end_alerts_staff(page, rest_api, chat, check):
    maintenance = factories.schedule_maintenance(page=page, components=[rest_api], starts_in=timedelta(minutes=5))
    with time_machine.travel(maintenance.scheduled_for + timedelta(minutes=1), tick=False):
        services.maintenances_advance()

    with time_machine.travel(maintenance.scheduled_until - timedelta(minutes=31), tick=False):
        assert check()[StaffReminderKind.MAINTENANCE_ENDING] == 0
    with time_machine.travel(maintenance.scheduled_until - timedelta(minutes=29), tick=False):
        assert check()[StaffReminderKind.MAINTENANCE_ENDING] == 1

    [email] = mail.outbox
    assert email.to == [ALERTS]
    assert "Database upgrade" in email.body
    assert _local(maintenance.scheduled_until, page.time_zone) in email.body
    assert f"/admin/incidents/maintenance/{maintenance.pk}/change/" in email.body
    assert "Database upgrade" in json.loads(chat.last.body)["text"]


def test_the_reminder_check_is_scheduled_every_minute(db):
    call_command("setup_schedules", stdout=StringIO())

    schedule = Schedule.objects.get(name="incidents.check_reminders")
    assert (schedule.func, schedule.schedule_type, schedule.minutes, schedule.repeats) == (
        "incidents.tasks.check_reminders", Schedule.MINUTES, 1, -1,
    )
    assert set(import_string(schedule.func)()) == set(StaffReminderKind.values)


def test_running_the_check_twice_sends_nothing_new(page, rest_api, commander, communicator, executive, escalation_contacts, chat, check):
    _incident(page, commander, communicator, started_at=timezone.now() - timedelta(hours=5))  # extended, then overdue
    postmortem = _resolved_with_postmortem(page, commander, communicator)
    maintenance = factories.schedule_maintenance(
        page=page, components=[rest_api], starts_in=timedelta(minutes=1), lasts=timedelta(minutes=20),
    )
    services.maintenance_start(maintenance=maintenance)

    with time_machine.travel(postmortem.due_at - timedelta(hours=1), tick=False):
        first = check()
        sent_mail, sent_chat = len(mail.outbox), len(chat.requests)
        second = check()

    assert first[StaffReminderKind.EXTENDED_OUTAGE] == first[StaffReminderKind.UPDATE_OVERDUE] == 1
    assert first[StaffReminderKind.POSTMORTEM_DUE] == first[StaffReminderKind.MAINTENANCE_ENDING] == 1
    assert set(second.values()) == {0}
    assert (len(mail.outbox), len(chat.requests)) == (sent_mail, sent_chat)


def test_a_failing_chat_webhook_does_not_stop_email_reminders(page, commander, communicator, chat, check):
    chat.reply(503, "chat is down")
    first = _incident(page, commander, communicator)
    second = _incident(page, commander, communicator)

    with time_machine.travel(first.next_update_at - timedelta(minutes=5), tick=False):
        result = check()

    assert result[StaffReminderKind.UPDATE_DUE] == 2
    assert len(chat.requests) == 2  # both were tried
    assert len(_mails("Public update due")) == 2
    assert StaffReminder.objects.filter(incident__in=[first, second], kind=StaffReminderKind.UPDATE_DUE).count() == 2


def test_a_child_incident_of_a_cascade_is_held_to_no_cadence(page, commander, communicator, check):
    parent = _incident(page, commander, communicator)
    child = factories.open_incident(page=page, name="Slow webhooks", severity="P2", parent=parent)

    with time_machine.travel(child.next_update_at + timedelta(minutes=1), tick=False):
        check()

    assert not StaffReminder.objects.filter(incident=child).exists()


def test_a_blackout_holds_reminders_until_it_ends(page, commander, communicator, check):
    from incidents import coordination

    incident = _incident(page, commander, communicator)
    due = incident.next_update_at
    coordination.blackout_start(incident=incident, actor=commander, ends_at=due + timedelta(minutes=20), reason="Database restore")
    with time_machine.travel(due + timedelta(minutes=5), tick=False):
        assert set(check().values()) == {0}
    assert mail.outbox == []
    with time_machine.travel(due + timedelta(minutes=21), tick=False):
        assert check()[StaffReminderKind.UPDATE_OVERDUE] == 1
    assert len(mail.outbox) == 1


def test_the_communications_owner_of_an_affected_group_is_reminded_too(page, api_group, rest_api, commander, communicator, check, django_user_model):
    owner = django_user_model.objects.create_user(username="olga", email="olga@example.com", is_staff=True)
    api_group.comms_owner = owner
    api_group.save(update_fields=["comms_owner"])
    incident = _incident(page, commander, communicator, components={rest_api: "major_outage"})
    with time_machine.travel(incident.next_update_at - timedelta(minutes=5), tick=False):
        check()
    [email] = mail.outbox
    assert owner.email in email.to


def test_escalated_post_mortems_cost_no_queries_on_later_checks(page, commander, communicator, check, django_assert_max_num_queries):
    postmortems = [_resolved_with_postmortem(page, commander, communicator) for _ in range(3)]
    late = max(p.due_at for p in postmortems) + timedelta(hours=1)
    with time_machine.travel(late, tick=False):
        check()
        # Nothing left to send: a fixed handful of queries, not a few per unwritten review.
        with django_assert_max_num_queries(6):
            reminders.reminders_check()
