"""No floods: one email per incident per subscriber per window, first notice and resolution at once, SMS on edges."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.core import mail

from incidents import services as incident_services
from notifications import services
from notifications.models import Delivery, DeliveryStatus, Dispatch
from tests import factories
from tests.notifications.ledger_helpers import confirmed

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
def clock(time_machine):
    time_machine.move_to(T0, tick=False)
    return time_machine


@pytest.fixture
def tick(django_capture_on_commit_callbacks):
    """One run of the per-minute sweeper, with the tasks it queues run in-process (django-q2 sync)."""
    def run() -> None:
        with django_capture_on_commit_callbacks(execute=True):
            services.deliveries_sweep()
    return run


def _at(clock, minutes: float) -> None:
    clock.move_to(T0 + timedelta(minutes=minutes), tick=False)


def _emails_to(address: str) -> list:
    return [message for message in mail.outbox if message.to == [address]]


def _email_deliveries(subscriber) -> list[Delivery]:
    return list(Delivery.objects.filter(subscriber=subscriber, channel="email").order_by("dispatch_id"))


def test_three_updates_inside_the_window_send_the_first_at_once_and_the_rest_as_one_email(page, clock, tick):
    ann = confirmed(page, address="ann@example.org")
    incident = factories.open_incident(page=page, severity="P2", body="Checkout is failing.")
    tick()
    assert len(_emails_to(ann.address)) == 1
    _at(clock, 2)
    incident_services.incident_post_update(incident=incident, status="identified", body="A bad deploy broke card payments.")
    tick()
    _at(clock, 5)
    incident_services.incident_post_update(incident=incident, status="monitoring", body="Rolled back; watching the error rate.")
    tick()
    assert len(_emails_to(ann.address)) == 1  # both held inside the window
    first, second, third = _email_deliveries(ann)
    assert second.next_attempt_at == third.next_attempt_at == T0 + timedelta(minutes=10)

    _at(clock, 10)
    tick()
    emails = _emails_to(ann.address)
    assert len(emails) == 2
    combined = emails[1].body
    assert combined.index("Rolled back") < combined.index("A bad deploy")  # newest first
    assert "(2 updates)" in emails[1].subject
    first, second, third = _email_deliveries(ann)
    assert (first.status, third.status) == (DeliveryStatus.SENT, DeliveryStatus.SENT)
    assert second.status == DeliveryStatus.SKIPPED and second.last_error == f"coalesced into {third.pk}"


def test_the_first_notice_of_an_incident_is_never_held(page, clock, tick):
    ann = confirmed(page, address="ann@example.org")
    factories.open_incident(page=page, severity="P2", name="Checkout errors")
    tick()
    # Another incident's first notice a minute later is not held by the first one's window.
    _at(clock, 1)
    factories.open_incident(page=page, severity="P2", name="Login errors")
    tick()
    assert [m.subject for m in _emails_to(ann.address)] == ["[Acme] Checkout errors: Investigating", "[Acme] Login errors: Investigating"]


def test_a_resolution_inside_the_window_goes_at_once_and_takes_the_held_update(page, clock, tick):
    ann = confirmed(page, address="ann@example.org")
    incident = factories.open_incident(page=page, severity="P1", body="Checkout is failing.")
    tick()
    _at(clock, 3)
    incident_services.incident_post_update(incident=incident, status="identified", body="A bad deploy broke card payments.")
    tick()
    _at(clock, 4)
    incident_services.incident_resolve(incident=incident, body="Payments work again.")
    tick()
    emails = _emails_to(ann.address)
    assert len(emails) == 2
    assert "Resolved" in emails[1].subject
    assert emails[1].body.index("Payments work again") < emails[1].body.index("A bad deploy")
    _first, held, resolution = _email_deliveries(ann)
    assert held.status == DeliveryStatus.SKIPPED and held.last_error == f"coalesced into {resolution.pk}"
    assert resolution.sent_at == T0 + timedelta(minutes=4)

    _at(clock, 10)
    tick()
    assert len(_emails_to(ann.address)) == 2  # nothing left to send when the window closes


def test_an_update_after_the_window_goes_at_once(page, clock, tick):
    ann = confirmed(page, address="ann@example.org")
    incident = factories.open_incident(page=page, severity="P2")
    tick()
    _at(clock, 11)
    incident_services.incident_post_update(incident=incident, status="identified", body="Found the cause.")
    tick()
    assert len(_emails_to(ann.address)) == 2


def test_the_window_follows_the_setting(page, clock, tick, settings):
    settings.NOTIFY_COALESCE_MINUTES = 30
    ann = confirmed(page, address="ann@example.org")
    incident = factories.open_incident(page=page, severity="P2")
    tick()
    _at(clock, 12)
    incident_services.incident_post_update(incident=incident, status="identified", body="Found the cause.")
    tick()
    assert len(_emails_to(ann.address)) == 1
    assert _email_deliveries(ann)[1].next_attempt_at == T0 + timedelta(minutes=30)


def test_webhooks_are_not_coalesced(page, clock, tick, receiver, allow_local):
    confirmed(page, channel="webhook", address=f"{receiver.url}/hook")
    incident = factories.open_incident(page=page, severity="P2")
    tick()
    _at(clock, 1)
    incident_services.incident_post_update(incident=incident, status="identified", body="Found the cause.")
    tick()
    assert len(receiver.requests) == 2


def test_sms_goes_out_only_on_the_lifecycle_edges(page, clock, tick):
    phone = confirmed(page, channel="sms", tier="enterprise")
    incident = factories.open_incident(page=page, severity="P1")
    incident_services.incident_post_update(incident=incident, status="identified", body="Found the cause.")
    incident_services.incident_post_update(incident=incident, status="monitoring", body="Fix deployed.")
    resolution = incident_services.incident_resolve(incident=incident, body="All good.")
    tick()
    sms_updates = set(Delivery.objects.filter(subscriber=phone).values_list("dispatch__update_id", flat=True))
    assert sms_updates == {incident.updates.earliest("id").pk, resolution.pk}
    assert Dispatch.objects.filter(incident=incident).count() == 4  # the updates still reached the other channels' audience


def test_sms_on_every_update_when_the_policy_says_so(page, clock, tick, settings):
    settings.NOTIFY_SMS_EVERY_UPDATE = True
    phone = confirmed(page, channel="sms", tier="enterprise")
    incident = factories.open_incident(page=page, severity="P1")
    incident_services.incident_post_update(incident=incident, status="identified", body="Found the cause.")
    tick()
    assert Delivery.objects.filter(subscriber=phone).count() == 2
