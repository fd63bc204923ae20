"""Claiming and sending deliveries: one sender per delivery, checks at claim time, retries, archive."""
from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from incidents.models import ComponentStatus
from notifications import services
from notifications.models import ArchivedMessage, Delivery, DeliveryStatus, Dispatch
from subscribers import services as subscriber_services
from subscribers.models import Suppression, SuppressionReason
from tests import factories
from tests.notifications.ledger_helpers import confirmed

pytestmark = pytest.mark.django_db


def _queued(page, **incident) -> list[int]:
    """Publish and expand; the send tasks registered on commit never run inside the test."""
    incident.setdefault("severity", "P1")
    factories.open_incident(page=page, **incident)
    services.dispatch_expand(dispatch_id=Dispatch.objects.latest("id").pk)
    return list(Delivery.objects.order_by("pk").values_list("pk", flat=True))


@pytest.fixture
def hook(page, receiver, allow_local):
    return confirmed(page, channel="webhook", address=f"{receiver.url}/hook")


def test_a_sent_email_records_the_provider_id_and_its_stable_message_id(page):
    confirmed(page, address="ann@example.org")
    ids = _queued(page)
    assert services.deliveries_send(ids=ids) == {"sent": 1}
    delivery = Delivery.objects.get()
    [sent] = mail.outbox
    assert delivery.status == DeliveryStatus.SENT
    assert delivery.provider_id and delivery.sent_at and delivery.attempts == 1
    assert sent.extra_headers["Message-ID"] == delivery.message_id


def test_the_email_says_what_happened_and_how_to_leave(page, rest_api):
    subscriber = confirmed(page, address="ann@example.org")
    ids = _queued(page, name="Checkout errors", body="Payments **fail** for some cards.",
                  components={rest_api: ComponentStatus.MAJOR_OUTAGE})
    services.deliveries_send(ids=ids)
    [sent] = mail.outbox
    text = sent.body
    assert "Payments" in text and "API - REST API" in text and "Next update:" in text
    assert f"https://status.example.com/incidents/{subscriber.page.incidents.get().public_id}" in text
    assert "https://status.example.com/subscribers/unsubscribe/" in sent.extra_headers["List-Unsubscribe"]
    assert sent.extra_headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


def test_every_sent_delivery_has_an_archive_row(page):
    for _ in range(3):
        confirmed(page)
    ids = _queued(page)
    services.deliveries_send(ids=ids)
    archived = ArchivedMessage.objects.filter(kind="notification")
    assert sorted(archived.values_list("recipient", flat=True)) == sorted(Delivery.objects.values_list("address", flat=True))
    assert set(archived.values_list("message_id", flat=True)) == set(Delivery.objects.values_list("message_id", flat=True))
    assert all("{{" not in row.text_body for row in archived)  # archived as sent, merge fields filled


def test_a_webhook_carries_the_statuspage_shaped_payload_signed_with_the_delivery_key(page, hook, receiver):
    ids = _queued(page, name="Webhook delays", severity="P3")
    services.deliveries_send(ids=ids)
    delivery = Delivery.objects.get()
    payload = json.loads(receiver.last.body)
    assert set(payload) == {"meta", "page", "incident"}
    assert payload["meta"]["unsubscribe"].startswith("https://status.example.com/subscribers/unsubscribe/")
    assert payload["page"]["id"] == page.public_id and "status_indicator" in payload["page"]
    assert payload["incident"]["name"] == "Webhook delays"
    assert receiver.last.headers["webhook-id"] == delivery.idempotency_key
    assert delivery.status == DeliveryStatus.SENT


def test_only_the_worker_that_claimed_a_delivery_sends_it(page):
    confirmed(page)
    ids = _queued(page)
    first = services.deliveries_claim(ids=ids)
    assert services.deliveries_send(ids=ids) == {}
    assert [d.pk for d in first] == ids
    assert mail.outbox == []
    assert Delivery.objects.get().status == DeliveryStatus.SENDING


def test_a_subscriber_who_unsubscribes_while_waiting_is_skipped(page):
    subscriber = confirmed(page)
    ids = _queued(page)
    subscriber_services.subscriber_unsubscribe(subscriber=subscriber)
    assert services.deliveries_send(ids=ids) == {"skipped": 1}
    assert Delivery.objects.get().status == DeliveryStatus.SKIPPED
    assert mail.outbox == []


def test_an_address_suppressed_while_waiting_is_skipped(page):
    subscriber = confirmed(page)
    ids = _queued(page)
    subscriber_services.address_suppress(channel="email", address=subscriber.address, reason=SuppressionReason.COMPLAINT)
    services.deliveries_send(ids=ids)
    assert Delivery.objects.get().status == DeliveryStatus.SKIPPED
    assert mail.outbox == []
    assert not ArchivedMessage.objects.filter(kind="notification").exists()


def test_a_transient_failure_is_retried_later_with_the_same_key(page, hook, receiver):
    receiver.then(503, "busy", headers={"Retry-After": "120"})
    ids = _queued(page, severity="P3")
    before = timezone.now()
    assert services.deliveries_send(ids=ids) == {"queued": 1}
    delivery = Delivery.objects.get()
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.QUEUED, 1)
    assert delivery.next_attempt_at >= before + timedelta(seconds=120)  # Retry-After honoured
    assert services.deliveries_send(ids=ids) == {}  # not due yet
    assert services.deliveries_send(ids=ids, now=delivery.next_attempt_at) == {"sent": 1}
    first, second = receiver.requests
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == delivery.idempotency_key
    assert Delivery.objects.get().attempts == 2


def test_backoff_grows_with_each_attempt():
    assert services.backoff_delay(1) <= timedelta(seconds=30) < services.backoff_delay(4)


def test_a_permanent_failure_fails_the_delivery_and_suppresses_the_address(page, hook, receiver):
    receiver.reply(410, "no such hook")
    ids = _queued(page, severity="P3")
    assert services.deliveries_send(ids=ids) == {"failed": 1}
    delivery = Delivery.objects.get()
    assert delivery.status == DeliveryStatus.FAILED and "410" in delivery.last_error
    assert Suppression.objects.filter(channel="webhook", address=hook.address).exists()
    assert len(receiver.requests) == 1


def test_a_refusal_that_is_not_about_the_address_does_not_suppress_it(page, hook, receiver):
    receiver.reply(400, "bad request")
    ids = _queued(page, severity="P3")
    services.deliveries_send(ids=ids)
    assert Delivery.objects.get().status == DeliveryStatus.FAILED
    assert not Suppression.objects.exists()


def test_a_delivery_that_keeps_failing_is_dead_after_the_last_attempt(page, hook, receiver, settings):
    settings.DELIVERY_MAX_ATTEMPTS = 2
    receiver.reply(500, "down")
    ids = _queued(page, severity="P3")
    services.deliveries_send(ids=ids)
    later = Delivery.objects.get().next_attempt_at
    assert services.deliveries_send(ids=ids, now=later) == {"dead": 1}
    delivery = Delivery.objects.get()
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.DEAD, 2)
    assert services.deliveries_send(ids=ids, now=later + timedelta(days=1)) == {}


def test_staff_resend_a_dead_delivery_with_its_original_key(page, hook, receiver, desk, settings, django_capture_on_commit_callbacks):
    settings.DELIVERY_MAX_ATTEMPTS = 1
    receiver.then(500, "down")
    ids = _queued(page, severity="P3")
    services.deliveries_send(ids=ids)
    assert Delivery.objects.get().status == DeliveryStatus.DEAD
    with django_capture_on_commit_callbacks(execute=True):
        response = desk.post("/admin/notifications/delivery/", {"action": "resend", "_selected_action": ids})
    assert response.status_code == 302
    delivery = Delivery.objects.get()
    assert delivery.status == DeliveryStatus.SENT
    assert [r.headers["webhook-id"] for r in receiver.requests] == [delivery.idempotency_key] * 2


def test_the_dispatch_admin_shows_progress_by_status(page, desk):
    for _ in range(2):
        confirmed(page)
    ids = _queued(page, name="Slow dashboards")
    services.deliveries_send(ids=ids[:1])
    response = desk.get("/admin/notifications/dispatch/")
    assert response.status_code == 200
    row = response.context["cl"].result_list.get()
    assert (row.recipients, row.n_sent, row.n_waiting, row.n_failed) == (2, 1, 1, 0)


@pytest.mark.django_db(transaction=True)
def test_two_workers_claiming_the_same_ids_at_once_never_share_a_delivery(page, monkeypatch):
    from concurrent.futures import ThreadPoolExecutor
    from threading import Barrier

    from django.db import connection, connections

    if connection.vendor != "postgresql":
        pytest.skip("needs concurrent connections (PostgreSQL)")
    for _ in range(40):
        confirmed(page)
    # Real commits here: keep the queue out of it so the deliveries wait for the two workers.
    monkeypatch.setattr(services, "_enqueue", lambda *args, **kwargs: None)
    ids = _queued(page)
    barrier = Barrier(2)

    def claim() -> list[int]:
        try:
            barrier.wait(timeout=10)
            return [d.pk for d in services.deliveries_claim(ids=ids)]
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=2) as pool:
        first, second = pool.map(lambda _: claim(), range(2))
    assert not set(first) & set(second)
    assert sorted(first + second) == ids


def test_a_renamed_incident_is_never_sent_from_a_stale_rendering(page, django_capture_on_commit_callbacks):
    # Consecutive batches of one dispatch share a rendering context, but only at one content
    # version: an edit between two batches reaches the second batch.
    confirmed(page)
    confirmed(page)
    ids = _queued(page, name="Checkout errors")
    services.deliveries_send(ids=ids[:1])
    from incidents import services as incident_services
    from incidents.models import Incident

    incident = Incident.objects.get()
    incident.name = "Card payments failing"
    with django_capture_on_commit_callbacks(execute=True):
        incident_services.incident_edit(incident=incident)
    services.deliveries_send(ids=ids[1:])
    assert [message.subject.count("Card payments failing") for message in mail.outbox] == [0, 1]
