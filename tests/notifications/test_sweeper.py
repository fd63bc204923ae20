"""The per-minute sweeper: lost tasks, killed workers and flushed brokers only delay messages."""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from incidents.schedules import SCHEDULES
from notifications import services
from notifications.models import Delivery, DeliveryStatus, Dispatch, DispatchStatus
from tests import factories
from tests.notifications.ledger_helpers import confirmed

pytestmark = pytest.mark.django_db


def test_the_sweeper_runs_every_minute():
    [spec] = [s for s in SCHEDULES if s["func"] == "notifications.tasks.sweep_deliveries"]
    assert spec["minutes"] == 1


def test_a_pending_dispatch_whose_task_was_lost_is_expanded_and_sent(page, django_capture_on_commit_callbacks):
    subscriber = confirmed(page)
    # The publish committed but its on-commit enqueue never ran (a crash, a broker outage).
    factories.open_incident(page=page, severity="P1")
    assert Dispatch.objects.get().status == DispatchStatus.PENDING
    with django_capture_on_commit_callbacks(execute=True):
        result = services.deliveries_sweep()
    assert result["expanded"] == 1
    assert [m.to for m in mail.outbox] == [[subscriber.address]]
    assert Delivery.objects.get().status == DeliveryStatus.SENT
    assert Dispatch.objects.get().status == DispatchStatus.DONE


def test_an_expired_claim_is_requeued_and_sent_with_the_same_key(page, django_capture_on_commit_callbacks):
    confirmed(page)
    factories.open_incident(page=page, severity="P1")
    services.dispatch_expand(dispatch_id=Dispatch.objects.get().pk)
    # A worker claimed the delivery and was killed before recording anything.
    [claimed] = services.deliveries_claim(ids=list(Delivery.objects.values_list("pk", flat=True)))
    Delivery.objects.filter(pk=claimed.pk).update(claimed_until=timezone.now() - timedelta(seconds=1))  # the lease ran out
    with django_capture_on_commit_callbacks(execute=True):
        result = services.deliveries_sweep()
    assert result["requeued"] == 1
    delivery = Delivery.objects.get()
    assert delivery.status == DeliveryStatus.SENT
    assert delivery.idempotency_key == claimed.idempotency_key
    assert mail.outbox[0].extra_headers["Message-ID"] == claimed.message_id


def test_a_claim_that_has_not_expired_is_left_alone(page):
    confirmed(page)
    factories.open_incident(page=page, severity="P1")
    services.dispatch_expand(dispatch_id=Dispatch.objects.get().pk)
    services.deliveries_claim(ids=list(Delivery.objects.values_list("pk", flat=True)))
    assert services.deliveries_sweep()["requeued"] == 0
    assert Delivery.objects.get().status == DeliveryStatus.SENDING
    assert mail.outbox == []


def test_an_expired_claim_with_no_attempts_left_is_dead(page, settings):
    settings.DELIVERY_MAX_ATTEMPTS = 1
    confirmed(page)
    factories.open_incident(page=page, severity="P1")
    services.dispatch_expand(dispatch_id=Dispatch.objects.get().pk)
    [claimed] = services.deliveries_claim(ids=list(Delivery.objects.values_list("pk", flat=True)))
    result = services.deliveries_sweep(now=claimed.claimed_until + timedelta(seconds=1))
    assert (result["dead"], result["requeued"]) == (1, 0)
    assert Delivery.objects.get().status == DeliveryStatus.DEAD


def test_due_deliveries_whose_send_task_was_lost_are_sent(page, django_capture_on_commit_callbacks):
    for _ in range(2):
        confirmed(page)
    factories.open_incident(page=page, severity="P1")
    # Expanded, but the send batches it queued were lost with the broker.
    services.dispatch_expand(dispatch_id=Dispatch.objects.get().pk)
    with django_capture_on_commit_callbacks(execute=True):
        result = services.deliveries_sweep()
    assert result["queued"] == 2
    # One ESP call with per-recipient merge data carries both.
    assert sorted(address for message in mail.outbox for address in message.to) == sorted(Delivery.objects.values_list("address", flat=True))
    assert set(Delivery.objects.values_list("status", flat=True)) == {DeliveryStatus.SENT}
