"""Endpoint quarantine: a webhook/Slack/Teams endpoint failing for an hour is paused, its owner told once."""
from __future__ import annotations

import datetime as dt

import pytest
import time_machine
from django.core import mail

from notifications import services
from notifications.models import ArchivedMessage, Delivery, DeliveryStatus, Dispatch
from subscribers.models import AccountContact, ConsentAction, ConsentEvent, Subscriber
from tests import factories
from tests.notifications.ledger_helpers import confirmed

pytestmark = pytest.mark.django_db

START = dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.timezone.utc)


def _fail(subscriber: Subscriber, *, minutes: float) -> bool:
    return services.endpoint_failure_record(subscriber=subscriber, at=START + dt.timedelta(minutes=minutes))


def _with_owner(page) -> Subscriber:
    """A webhook of a customer account with one contact email and one email subscriber."""
    hook = confirmed(page, channel="webhook", tier="enterprise")
    AccountContact.objects.create(organization=hook.organization, name="Ops lead", email="Lead@Customer.example")
    ops = confirmed(page, channel="email", address="ops@customer.example")
    Subscriber.objects.filter(pk=ops.pk).update(organization=hook.organization)
    return hook


def test_a_failed_webhook_send_starts_the_endpoints_run_of_failures(page, receiver, allow_local):
    receiver.reply(500)
    hook = confirmed(page, channel="webhook", address=f"{receiver.url}/hook")
    with time_machine.travel(START, tick=False):
        factories.open_incident(page=page, severity="P3")
        services.dispatch_expand(dispatch_id=Dispatch.objects.latest("id").pk)
        services.deliveries_send(ids=list(Delivery.objects.values_list("pk", flat=True)))
    hook.refresh_from_db()
    assert Delivery.objects.get().status == DeliveryStatus.QUEUED  # retried later
    assert hook.endpoint_failing_since == START and hook.quarantined_at is None


def test_an_endpoint_failing_for_less_than_an_hour_is_not_quarantined(page):
    hook = confirmed(page, channel="webhook")
    _fail(hook, minutes=0)
    assert _fail(hook, minutes=59) is False
    hook.refresh_from_db()
    assert hook.quarantined_at is None


def test_an_endpoint_failing_for_an_hour_is_quarantined_and_leaves_the_audience(page):
    hook = confirmed(page, channel="webhook")
    with time_machine.travel(START, tick=False) as traveller:
        services.endpoint_failure_record(subscriber=hook)
        traveller.shift(dt.timedelta(minutes=61))
        assert services.endpoint_failure_record(subscriber=hook) is True
    hook.refresh_from_db()
    assert hook.quarantined_at == START + dt.timedelta(minutes=61)
    factories.open_incident(page=page, severity="P3")
    services.dispatch_expand(dispatch_id=Dispatch.objects.latest("id").pk)
    assert not Delivery.objects.filter(subscriber=hook).exists()


def test_a_success_ends_the_run_of_failures(page):
    hook = confirmed(page, channel="webhook")
    _fail(hook, minutes=0)
    services.endpoint_success_record(subscriber=hook)
    assert _fail(hook, minutes=70) is False  # a new run starts here, not an hour ago
    hook.refresh_from_db()
    assert hook.quarantined_at is None and hook.endpoint_failing_since == START + dt.timedelta(minutes=70)


def test_email_subscribers_failures_never_quarantine(page):
    subscriber = confirmed(page, channel="email")
    _fail(subscriber, minutes=0)
    _fail(subscriber, minutes=120)
    subscriber.refresh_from_db()
    assert subscriber.quarantined_at is None and subscriber.endpoint_failing_since is None


def test_the_owner_is_told_once(page, django_capture_on_commit_callbacks):
    hook = _with_owner(page)
    with django_capture_on_commit_callbacks(execute=True):
        _fail(hook, minutes=0)
        _fail(hook, minutes=61)
        _fail(hook, minutes=90)
    # Lifted by staff and failing for another hour: quarantined again, but not told again.
    Subscriber.objects.filter(pk=hook.pk).update(quarantined_at=None, endpoint_failing_since=None)
    with django_capture_on_commit_callbacks(execute=True):
        _fail(hook, minutes=200)
        assert _fail(hook, minutes=270) is True
    assert sorted(message.to[0] for message in mail.outbox) == ["lead@customer.example", "ops@customer.example"]
    assert "paused" in mail.outbox[0].subject
    assert ArchivedMessage.objects.filter(kind="endpoint_quarantine").count() == 2
    hook.refresh_from_db()
    assert hook.quarantine_notified_at == START + dt.timedelta(minutes=61)


def test_an_endpoint_without_an_owner_is_recorded_in_the_consent_ledger_only(page, django_capture_on_commit_callbacks):
    hook = confirmed(page, channel="slack", address="https://hooks.slack.com/services/T0/B0/x")
    with django_capture_on_commit_callbacks(execute=True):
        _fail(hook, minutes=0)
        _fail(hook, minutes=60)
    [event] = ConsentEvent.objects.filter(subscriber=hook, action=ConsentAction.QUARANTINE)
    assert event.details["owner_notified"] == 0
    assert mail.outbox == []
    hook.refresh_from_db()
    assert hook.quarantined_at is not None and hook.quarantine_notified_at is None
