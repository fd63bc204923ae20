"""Support coordination: the support team and the helpdesk hear what customers were told."""
from __future__ import annotations

import json

import pytest
from django.core import mail

from incidents import editorial, support
from incidents.models import IncidentUpdate
from statuspage.lib.signing import sign_standard_webhook
from tests import factories
from tests.notifications.conftest import allow_local, receiver  # noqa: F401 - fixtures

pytestmark = pytest.mark.django_db


@pytest.fixture
def support_desk(settings, receiver, allow_local):  # noqa: F811 - fixtures
    settings.SUPPORT_ALERT_EMAILS = ["support@example.com"]
    settings.SUPPORT_CHAT_WEBHOOK_URL = f"{receiver.url}/chat"
    settings.HELPDESK_WEBHOOK_URL = f"{receiver.url}/helpdesk"
    return receiver


def _posts(receiver, path: str) -> list[dict]:
    return [json.loads(r.body) for r in receiver.requests if r.path == path]


def test_a_published_update_briefs_the_support_team_after_the_commit(page, rest_api, support_desk, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        factories.open_incident(page=page, name="Checkout errors", severity="P1", components={rest_api: "major_outage"})
    [email] = [m for m in mail.outbox if m.to == ["support@example.com"]]
    assert "Checkout errors" in email.subject
    assert "What customers were told" in email.body
    assert "REST API" in email.body
    assert "Checkout errors" in _posts(support_desk, "/chat")[0]["text"]


def test_nothing_is_briefed_when_the_publish_rolls_back(page, support_desk, django_capture_on_commit_callbacks):
    from django.db import transaction

    with django_capture_on_commit_callbacks(execute=True), pytest.raises(RuntimeError), transaction.atomic():
        factories.open_incident(page=page, severity="P1")
        raise RuntimeError("the publish failed after the update was written")
    assert support_desk.requests == []
    assert mail.outbox == []


def test_the_talking_points_of_the_draft_go_to_support_and_never_to_the_page(page, rest_api, support_desk, commander, staff):
    draft = editorial.draft_create(
        page=page, actor=staff, proposal={"name": "Login failures", "severity": "P3", "components": {str(rest_api.pk): "partial_outage"}},
        body="Some customers cannot sign in. We are investigating.",
    )
    draft.talking_points = "Tell customers to retry in five minutes; no data was lost."
    draft.save(update_fields=["talking_points"])
    editorial.draft_submit(draft=draft, actor=staff)
    update = editorial.draft_publish(draft=draft, actor=commander)
    support.support_notify(update_id=update.pk)
    [email] = [m for m in mail.outbox if m.to == ["support@example.com"]]
    assert "retry in five minutes" in email.body
    assert "retry in five minutes" not in IncidentUpdate.objects.get().body
    assert _posts(support_desk, "/helpdesk")[0]["talking_points"] == "Tell customers to retry in five minutes; no data was lost."


def test_the_helpdesk_hears_of_a_known_issue_signed_and_deduplicable(page, support_desk, settings):
    incident = factories.open_incident(page=page, severity="P2")
    update = incident.updates.get()
    support.support_notify(update_id=update.pk)
    request = [r for r in support_desk.requests if r.path == "/helpdesk"][0]
    event = json.loads(request.body)
    assert event["event"] == "incident.known_issue"
    assert (event["known_issue"], event["tickets_can_be_closed"]) == (True, False)
    assert request.headers["webhook-id"] == f"helpdesk-{update.public_id}"
    expected = sign_standard_webhook(
        secret=settings.WEBHOOK_SIGNING_SECRET, msg_id=request.headers["webhook-id"],
        timestamp=int(request.headers["webhook-timestamp"]), body=request.body,
    )
    assert request.headers["webhook-signature"] == expected


def test_on_resolution_the_helpdesk_is_told_linked_tickets_can_be_closed(page, support_desk):
    from incidents import services

    incident = factories.open_incident(page=page, severity="P2")
    update = services.incident_resolve(incident=incident, body="Fixed: a bad deploy was rolled back.")
    support.support_notify(update_id=update.pk)
    event = _posts(support_desk, "/helpdesk")[-1]
    assert event["event"] == "incident.resolved"
    assert event["tickets_can_be_closed"] is True
    assert "tickets linked to this incident can be closed" in mail.outbox[-1].body


def test_a_failing_helpdesk_does_not_stop_the_support_email(page, support_desk):
    support_desk.reply(503, "down")
    incident = factories.open_incident(page=page, severity="P2")
    outcomes = support.support_notify(update_id=incident.updates.get().pk)
    assert outcomes["email"] == "sent"
    assert outcomes["helpdesk"].startswith("failed")
    assert any(m.to == ["support@example.com"] for m in mail.outbox)


def test_a_child_of_a_cascade_briefs_nobody_on_its_own(page, support_desk, django_capture_on_commit_callbacks):
    parent = factories.open_incident(page=page, severity="P1", name="Data centre power")
    with django_capture_on_commit_callbacks(execute=True):
        factories.open_incident(page=page, severity="P1", name="API down", parent=parent)
    assert not any("API down" in m.subject for m in mail.outbox)


def test_a_blackout_holds_the_briefing_until_it_ends(page, support_desk, commander):
    from datetime import timedelta

    from django.utils import timezone
    from django_q.models import Schedule

    from incidents import coordination

    incident = factories.open_incident(page=page, severity="P2")
    ends = timezone.now() + timedelta(hours=1)
    coordination.blackout_start(incident=incident, actor=commander, ends_at=ends, reason="Database restore")
    outcome = support.support_notify(update_id=incident.updates.get().pk)
    assert outcome == {"held_until": ends.isoformat()}
    assert support_desk.requests == [] and mail.outbox == []
    held = Schedule.objects.get(func="incidents.tasks.support_notify")
    assert held.next_run == ends
