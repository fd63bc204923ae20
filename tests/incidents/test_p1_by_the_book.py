"""A whole P1 outage run by the book, from the first draft to the post-mortem deadline.

One long test on purpose: it is the story the editorial pieces must tell together. Each step's
own rules are proven one by one in the other test files.
"""
from __future__ import annotations

import re
from datetime import timedelta

import pytest
import time_machine
from django.core import mail
from django.utils import timezone

from incidents import editorial, reminders, services
from incidents.message_templates import MessageKind
from incidents.models import (
    ComponentStatus,
    DraftState,
    Incident,
    NearMiss,
    NearMissKind,
    Postmortem,
    SeverityPolicy,
    StaffReminderKind,
)
from notifications.models import ArchivedMessage, Delivery, Dispatch
from notifications.services import deliveries_send, dispatch_expand
from tests.notifications.ledger_helpers import confirmed

pytestmark = pytest.mark.django_db


def _written(body: str) -> str:
    """The communicator writes what the template left for people to say."""
    facts = {
        "what_to_do": "Retry failed payments in a few minutes; no card has been charged twice.",
        "scope": "Card payments in the EU region.",
        "what_we_are_doing": "We have found the failing payment gateway node and are replacing it.",
    }
    return re.sub(r"\[\[(\w+)\]\]", lambda m: facts.get(m.group(1), f"Our {m.group(1).replace('_', ' ')}."), body)


def test_a_p1_outage_by_the_book(page, rest_api, communicator, legal, pr, commander, staff, django_capture_on_commit_callbacks, settings):
    settings.STAFF_ALERT_EMAILS = []
    settings.STAFF_CHAT_WEBHOOK_URL = ""
    policy = SeverityPolicy.objects.get(severity="P1")
    policy.escalation_contacts = "vp-engineering@example.com"
    version = editorial.policy_save(policy=policy, actor=staff, note="who hears of a missed P1 update")
    reader = confirmed(page, channel="email")
    enterprise_phone = confirmed(page, channel="sms", tier="enterprise")
    standard_phone = confirmed(page, channel="sms")

    # 1. The communicator drafts the initial alert from the template, for an incident not yet open.
    draft = editorial.draft_create(
        page=page, actor=communicator,
        proposal={"name": "Payments failing", "severity": "P1", "components": {str(rest_api.pk): ComponentStatus.MAJOR_OUTAGE}},
    )
    assert draft.kind == MessageKind.INITIAL_ALERT and draft.template.kind == MessageKind.INITIAL_ALERT
    assert "**REST API**" in draft.body
    # ... writes what only people know, and leaks an internal host while at it.
    draft = editorial.draft_edit(draft=draft, actor=communicator, body=_written(draft.body) + "\n\nThe node db-03.prod.internal was replaced.")
    findings = editorial.draft_submit(draft=draft, actor=communicator)
    assert [finding.kind for finding in findings] == ["internal_host"]

    # 2. Legal and PR approve; the policy asked for both, and neither may be the author.
    editorial.draft_approve(draft=draft, actor=legal, role="legal")
    editorial.draft_approve(draft=draft, actor=pr, role="pr")
    draft.refresh_from_db()
    assert draft.state == DraftState.APPROVED

    # 3. Publishing stops at the redaction finding; the commander overrides it with a reason.
    with pytest.raises(editorial.PublishBlocked) as blocked:
        editorial.draft_publish(draft=draft, actor=commander)
    assert any("Redaction findings" in problem and "line" in problem for problem in blocked.value.problems)
    assert not Incident.objects.exists()
    with django_capture_on_commit_callbacks(execute=False):
        update = editorial.draft_publish(
            draft=draft, actor=commander, redaction_override="The host name is already public in our vendor's notice.",
        )
    incident = update.incident
    assert (incident.severity, incident.commander) == ("P1", commander)
    assert NearMiss.objects.filter(kind=NearMissKind.REDACTION_OVERRIDE, incident=incident).exists()

    # 4. The right channels and audience: email, and SMS only for the enterprise account.
    dispatch = Dispatch.objects.get(update=update)
    dispatch_expand(dispatch_id=dispatch.pk)
    audience = set(Delivery.objects.filter(dispatch=dispatch).values_list("subscriber_id", "channel"))
    assert audience == {(reader.pk, "email"), (enterprise_phone.pk, "sms")}
    assert standard_phone.pk not in {subscriber for subscriber, _channel in audience}
    deliveries_send(ids=list(Delivery.objects.filter(dispatch=dispatch, channel="email").values_list("pk", flat=True)))
    [alert] = [m for m in mail.outbox if reader.address in m.to]
    assert "Payments failing" in alert.subject

    # 5. Archived with the policy and template versions and the approvers, on every channel that left.
    for row in ArchivedMessage.objects.filter(update=update, channel__in=["page", "email"]):
        assert row.policy_version == f"policy-v{version.number}"
        assert "initial_alert/en/v1" in row.template_version
        assert {(a["role"], a["approver"]) for a in row.approvals} == {("legal", "lee"), ("pr", "pat")}
    assert ArchivedMessage.objects.filter(update=update, channel="page").count() == 1

    # 6. The next update is due at the P1 cadence (30 minutes): a reminder comes before it ...
    incident.refresh_from_db()
    due = incident.next_update_at
    assert abs(due - update.display_at - timedelta(minutes=30)) < timedelta(seconds=1)
    mail.outbox.clear()
    with time_machine.travel(due - timedelta(minutes=5), tick=False), django_capture_on_commit_callbacks(execute=True):
        assert reminders.reminders_check()[StaffReminderKind.UPDATE_DUE] == 1
    [reminder] = mail.outbox
    assert set(reminder.to) >= {commander.email, communicator.email}

    # 7. ... and, missed, it is escalated to the policy's escalation contacts.
    mail.outbox.clear()
    with time_machine.travel(due + timedelta(minutes=2), tick=False), django_capture_on_commit_callbacks(execute=True):
        assert reminders.reminders_check()[StaffReminderKind.UPDATE_OVERDUE] == 1
    [escalation] = mail.outbox
    assert "vp-engineering@example.com" in escalation.to

    # 8. Resolution, drafted and approved like the alert, published by the commander.
    resolution = editorial.draft_create(
        page=page, actor=communicator, incident=incident, kind=MessageKind.RESOLUTION,
        body="Resolved: payments work again since 10:41 UTC. A failed gateway node was replaced; we are adding a health check.",
    )
    editorial.draft_submit(draft=resolution, actor=communicator)
    editorial.draft_approve(draft=resolution, actor=legal, role="legal")
    editorial.draft_approve(draft=resolution, actor=pr, role="pr")
    editorial.draft_publish(draft=resolution, actor=commander)
    incident.refresh_from_db()
    assert not incident.is_open

    # 9. The post-mortem is owed within 48 hours, and its deadline is tracked.
    postmortem = Postmortem.objects.get(incident=incident)
    assert postmortem.due_at == incident.resolved_at + timedelta(hours=48)
    mail.outbox.clear()
    with time_machine.travel(postmortem.due_at - timedelta(hours=2), tick=False), django_capture_on_commit_callbacks(execute=True):
        assert reminders.reminders_check()[StaffReminderKind.POSTMORTEM_DUE] == 1
    assert commander.email in mail.outbox[0].to
    assert timezone.now() < postmortem.due_at
