"""The faults a fan-out must survive: killed workers, two clusters, lost tasks, rollbacks,
a failing or hanging provider, and recipients who leave while their message waits.

Each test drives the ledger the way the workers do (dispatch_expand, deliveries_send,
deliveries_sweep) and simulates the fault at the point where it would hit.
"""
from __future__ import annotations

import json
from collections import Counter
from datetime import timedelta

import pytest
import time_machine
from django.core import mail
from django.db import connection, transaction
from django.utils import timezone

from notifications import selectors, services
from notifications.models import ArchivedMessage, Delivery, DeliveryStatus, Dispatch, DispatchStatus
from subscribers import services as subscriber_services
from subscribers.models import SubscriberStatus
from tests import factories
from tests.notifications.ledger_helpers import confirmed

pytestmark = pytest.mark.django_db

needs_postgresql = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="needs concurrent connections and row-level locking (PostgreSQL)"
)


def _sent_emails() -> list[tuple[str, str]]:
    """(address, Message-ID) of every copy the email backend was handed, batches unfolded."""
    copies = []
    for message in mail.outbox:
        merge_headers = getattr(message, "merge_headers", None) or {}
        for address in message.to:
            message_id = merge_headers.get(address, {}).get("Message-ID") or message.extra_headers.get("Message-ID")
            copies.append((address, message_id))
    return copies


def _ids(dispatch: Dispatch | None = None) -> list[int]:
    deliveries = Delivery.objects.order_by("pk")
    if dispatch is not None:
        deliveries = deliveries.filter(dispatch=dispatch)
    return list(deliveries.values_list("pk", flat=True))


@pytest.fixture
def no_queue(monkeypatch):
    """Tasks queued on commit are dropped: the test runs each worker step itself."""
    monkeypatch.setattr(services, "_enqueue", lambda *args, **kwargs: None)


class WorkerKilled(Exception):
    """Stands for SIGKILL: the worker stops where it is and records nothing more."""


def test_a_worker_killed_mid_fan_out_is_resumed_and_every_subscriber_gets_the_message_once_per_key(
    page, monkeypatch, django_capture_on_commit_callbacks
):
    addresses = [confirmed(page).address for _ in range(30)]
    with django_capture_on_commit_callbacks(execute=False):
        factories.open_incident(page=page, severity="P1")
    dispatch = Dispatch.objects.get()

    # 1. The expansion dies after its first chunk of 10.
    real_chunks = selectors.audience_chunks

    def dying_chunks(*args, **kwargs):
        for number, chunk in enumerate(real_chunks(*args, **kwargs)):
            if number == 1:
                raise WorkerKilled
            yield chunk

    monkeypatch.setattr(selectors, "audience_chunks", dying_chunks)
    with django_capture_on_commit_callbacks(execute=False), pytest.raises(WorkerKilled):
        services.dispatch_expand(dispatch_id=dispatch.pk, chunk_size=10)
    monkeypatch.setattr(selectors, "audience_chunks", real_chunks)
    first_chunk = _ids()
    assert len(first_chunk) == 10
    keys_before = dict(Delivery.objects.values_list("pk", "idempotency_key"))

    # 2. Of the chunk's deliveries, 3 go out normally; 3 are claimed and abandoned before the
    # send; 4 are sent by the provider but the worker dies before recording the outcome.
    services.deliveries_send(ids=first_chunk[:3])
    services.deliveries_claim(ids=first_chunk[3:6])
    monkeypatch.setattr(services, "_record_sent", lambda *args: (_ for _ in ()).throw(WorkerKilled()))
    with pytest.raises(WorkerKilled):
        services.deliveries_send(ids=first_chunk[6:])
    monkeypatch.undo()
    sent_before_restart = {address for address, _ in _sent_emails()}
    message_ids_before_restart = dict(_sent_emails())

    # 3. The restarted cluster's sweeper runs once the leases have run out.
    with time_machine.travel(timezone.now() + services.EXPAND_LEASE + timedelta(seconds=1), tick=False):
        with django_capture_on_commit_callbacks(execute=True):
            services.deliveries_sweep()

    copies = Counter(address for address, _ in _sent_emails())
    assert set(copies) == set(addresses)
    # Sent twice only where the provider had it before the kill, and then under the same Message-ID.
    unrecorded = set(Delivery.objects.filter(pk__in=first_chunk[6:]).values_list("address", flat=True))
    assert unrecorded <= sent_before_restart
    assert {address for address, count in copies.items() if count > 1} == unrecorded
    assert max(copies.values()) == 2
    for address, message_id in _sent_emails():
        if address in message_ids_before_restart:
            assert message_id == message_ids_before_restart[address]
    assert Delivery.objects.count() == 30
    assert not Delivery.objects.exclude(status=DeliveryStatus.SENT).exists()
    assert not Delivery.objects.filter(claimed_until__isnull=False).exists()
    for pk, key in keys_before.items():
        assert Delivery.objects.get(pk=pk).idempotency_key == key
    assert Dispatch.objects.get().status == DispatchStatus.DONE


@needs_postgresql
@pytest.mark.django_db(transaction=True)
def test_two_worker_clusters_sending_the_same_batch_at_once_send_each_delivery_once(page, no_queue):
    from concurrent.futures import ThreadPoolExecutor
    from threading import Barrier

    from django.db import connections

    addresses = [confirmed(page).address for _ in range(60)]
    factories.open_incident(page=page, severity="P1")
    services.dispatch_expand(dispatch_id=Dispatch.objects.get().pk)
    ids = _ids()
    barrier = Barrier(2)

    def cluster(_number: int) -> dict[str, int]:
        # A thread of its own is a database connection of its own: a second cluster.
        try:
            barrier.wait(timeout=10)
            return services.deliveries_send(ids=ids)
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=2) as pool:
        first, second = pool.map(cluster, range(2))
    assert first.get("sent", 0) + second.get("sent", 0) == 60
    copies = Counter(address for address, _ in _sent_emails())
    assert copies == Counter(addresses)
    assert set(Delivery.objects.values_list("status", flat=True)) == {DeliveryStatus.SENT}
    assert set(Delivery.objects.values_list("attempts", flat=True)) == {1}


@needs_postgresql
@pytest.mark.django_db(transaction=True)
def test_two_clusters_claiming_the_same_ids_concurrently_get_disjoint_deliveries(page, no_queue):
    from concurrent.futures import ThreadPoolExecutor
    from threading import Barrier

    from django.db import connections

    for _ in range(200):
        confirmed(page)
    factories.open_incident(page=page, severity="P1")
    services.dispatch_expand(dispatch_id=Dispatch.objects.get().pk)
    ids = _ids()
    barrier = Barrier(4)

    def claim(_number: int) -> list[int]:
        try:
            barrier.wait(timeout=10)
            return [delivery.pk for delivery in services.deliveries_claim(ids=ids)]
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=4) as pool:
        claims = list(pool.map(claim, range(4)))
    every_claim = [pk for claimed in claims for pk in claimed]
    assert len(every_claim) == len(set(every_claim))
    assert sorted(every_claim) == ids


def test_a_crash_between_the_publish_commit_and_the_enqueue_is_sent_by_the_sweeper(
    page, monkeypatch, django_capture_on_commit_callbacks
):
    import django_q.tasks

    addresses = [confirmed(page).address for _ in range(12)]
    dropped = []
    monkeypatch.setattr(django_q.tasks, "async_task", lambda *args, **kwargs: dropped.append(args))
    with django_capture_on_commit_callbacks(execute=True):
        factories.open_incident(page=page, severity="P1")
    monkeypatch.undo()
    assert [args[0] for args in dropped] == ["notifications.tasks.dispatch_expand"]
    assert Dispatch.objects.get().status == DispatchStatus.PENDING
    assert mail.outbox == []

    with django_capture_on_commit_callbacks(execute=True):
        services.deliveries_sweep()

    assert Counter(address for address, _ in _sent_emails()) == Counter(addresses)
    assert Dispatch.objects.get().status == DispatchStatus.DONE


def test_a_rolled_back_publish_leaves_no_dispatch_delivery_or_archive_row_and_sends_nothing(
    page, django_capture_on_commit_callbacks
):
    for _ in range(5):
        confirmed(page)
    archived = ArchivedMessage.objects.count()
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        with pytest.raises(RuntimeError), transaction.atomic():
            factories.open_incident(page=page, severity="P1")
            raise RuntimeError("the publishing request failed after the update was written")
    with django_capture_on_commit_callbacks(execute=True):
        services.deliveries_sweep()
    assert callbacks == []
    assert not Dispatch.objects.exists()
    assert not Delivery.objects.exists()
    assert ArchivedMessage.objects.count() == archived
    assert mail.outbox == []


@pytest.fixture
def hooks(page, receiver, allow_local):
    return [confirmed(page, channel="webhook", address=f"{receiver.url}/hook/{n}") for n in range(3)]


def _webhook_ids(receiver) -> Counter[tuple[str, str]]:
    return Counter((request.path, request.headers["webhook-id"]) for request in receiver.requests)


def test_a_provider_failing_with_5xx_then_429_delivers_everything_later_honouring_retry_after(
    page, hooks, receiver, no_queue
):
    factories.open_incident(page=page, severity="P1")
    services.dispatch_expand(dispatch_id=Dispatch.objects.get().pk)
    ids = _ids()

    receiver.reply(503, "maintenance")
    started = timezone.now()
    assert services.deliveries_send(ids=ids) == {"queued": 3}
    assert all(d.next_attempt_at > started for d in Delivery.objects.all())

    receiver.reply(429, "slow down", {"Retry-After": "600"})
    with time_machine.travel(max(Delivery.objects.values_list("next_attempt_at", flat=True)) + timedelta(seconds=1), tick=False):
        rate_limited_at = timezone.now()
        assert services.deliveries_send(ids=ids) == {"queued": 3}
    for delivery in Delivery.objects.all():
        assert delivery.next_attempt_at >= rate_limited_at + timedelta(seconds=600)
        assert delivery.status == DeliveryStatus.QUEUED and delivery.claimed_until is None
    # Before the Retry-After time nothing is due, so the sweeper leaves them alone.
    with time_machine.travel(rate_limited_at + timedelta(seconds=590), tick=False):
        assert services.deliveries_sweep()["queued"] == 0

    receiver.reply(200, "ok")
    with time_machine.travel(rate_limited_at + timedelta(seconds=3700), tick=False):
        assert services.deliveries_send(ids=ids) == {"sent": 3}

    assert set(Delivery.objects.values_list("status", flat=True)) == {DeliveryStatus.SENT}
    assert set(Delivery.objects.values_list("attempts", flat=True)) == {3}
    # Three attempts per endpoint, each under the delivery's one webhook-id.
    keys = dict(Delivery.objects.values_list("address", "idempotency_key"))
    assert _webhook_ids(receiver) == Counter({(f"/hook/{n}", keys[f"{receiver.url}/hook/{n}"]): 3 for n in range(3)})


def test_a_hanging_provider_is_cut_off_at_the_timeout_and_delivered_later(page, hooks, receiver, settings, no_queue):
    settings.OUTBOUND_HTTP_TIMEOUT = 1
    factories.open_incident(page=page, severity="P1")
    services.dispatch_expand(dispatch_id=Dispatch.objects.get().pk)
    ids = _ids()

    receiver.reply(hang=True)
    assert services.deliveries_send(ids=ids) == {"queued": 3}
    # One request per delivery, each abandoned at the timeout (the error names it), none retried inline.
    assert len(receiver.requests) == 3
    for delivery in Delivery.objects.all():
        assert "did not answer within 1 s" in delivery.last_error
        assert delivery.status == DeliveryStatus.QUEUED

    receiver.release.set()
    receiver.reply(200, "ok")
    later = max(Delivery.objects.values_list("next_attempt_at", flat=True)) + timedelta(seconds=1)
    with time_machine.travel(later, tick=False):
        assert services.deliveries_send(ids=ids) == {"sent": 3}
    assert len({request.headers["webhook-id"] for request in receiver.requests}) == 3
    assert json.loads(receiver.last.body)["incident"]["name"] == "Elevated error rates"


def test_a_subscriber_who_unsubscribes_while_the_delivery_waits_is_not_sent_to(page, no_queue):
    subscribers = [confirmed(page) for _ in range(5)]
    factories.open_incident(page=page, severity="P1")
    services.dispatch_expand(dispatch_id=Dispatch.objects.get().pk)
    leaving = subscribers[2]
    subscriber_services.subscriber_unsubscribe(subscriber=leaving)

    assert services.deliveries_send(ids=_ids()) == {"sent": 4, "skipped": 1}
    assert leaving.address not in {address for address, _ in _sent_emails()}
    skipped = Delivery.objects.get(subscriber=leaving)
    assert skipped.status == DeliveryStatus.SKIPPED
    assert leaving.__class__.objects.get(pk=leaving.pk).status == SubscriberStatus.UNSUBSCRIBED
    assert not ArchivedMessage.objects.filter(channel="email", recipient=leaving.address).exists()
