"""The delivery ledger: create a dispatch, expand it into deliveries, claim and send them.

The database is the record of what was sent; django-q2 only runs functions with ids. Every
step is safe to repeat: expansion creates nothing twice (unique per dispatch x subscriber x
channel), a delivery is only sent by the worker whose conditional UPDATE claimed it, and a
claim that outlives its worker expires and is re-queued by the sweeper.
"""
from __future__ import annotations

import logging
import random
import uuid
from collections import defaultdict
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from incidents import cache
from incidents.models import IncidentUpdate
from notifications import coalescing, selectors
from notifications.models import Delivery, DeliveryStatus, Dispatch, DispatchKind, DispatchStatus, TrackingStatus
from notifications.rendering import TEMPLATE_VERSION, DispatchContext, as_sent, dispatch_context, render
from notifications.transports import FailureCode, OutboundMessage, SendResult, TransportError, get_transport
from subscribers.models import Channel, ConsentSource, Subscriber, SubscriberStatus, Suppression, SuppressionReason

logger = logging.getLogger("notifications.delivery")

EXPAND_CHUNK = 1000
CLAIM_LEASE = timedelta(seconds=90)  # longer than a send batch may take (django-q2 timeout 60 s)
EXPAND_LEASE = timedelta(minutes=5)
BACKOFF_BASE_SECONDS = 30
BACKOFF_CAP_SECONDS = 3600
SUPPRESSING_CODES = (FailureCode.INVALID_ADDRESS, FailureCode.UNSUBSCRIBED, FailureCode.GONE)


def _max_attempts() -> int:
    return settings.DELIVERY_MAX_ATTEMPTS


def _send_batch_size() -> int:
    return settings.DELIVERY_SEND_BATCH


def _enqueue(func: str, *args, save: bool = True) -> None:
    from django_q.tasks import async_task

    async_task(func, *args, save=save)


def _enqueue_send_batches(ids: list[int]) -> None:
    size = _send_batch_size()
    for start in range(0, len(ids), size):
        # save=False: the ledger records what a send batch did; a django-q2 success row per
        # batch would only cost the monitor a few queries each (failures are still kept).
        _enqueue("notifications.tasks.deliveries_send", ids[start:start + size], save=False)


# --- publishing -------------------------------------------------------------------------------


# What a publish hands down to its dispatch (incidents.services._provenance), so that every
# message records it and the audience follows the policy version it went out under.
DISPATCH_PROVENANCE = frozenset({"policy_version", "policy_rules", "template_version", "approvals", "revision", "notified_only"})


def dispatch_create(*, update: IncidentUpdate, provenance: dict | None = None) -> Dispatch | None:
    """Record that an update must be delivered; the fan-out task is queued on commit.

    Call inside the publishing transaction: a rollback leaves no dispatch and queues nothing.
    A child incident of a cascade gets none: the parent's thread carries the message.
    """
    incident = update.incident
    if incident.parent_id:
        return None
    dispatch = Dispatch.objects.create(
        update=update, incident=incident, page_id=incident.page_id,
        kind=DispatchKind.MAINTENANCE if incident.is_maintenance else DispatchKind.INCIDENT,
        severity=incident.severity,
        **{key: value for key, value in (provenance or {}).items() if key in DISPATCH_PROVENANCE},
    )
    transaction.on_commit(lambda: _enqueue("notifications.tasks.dispatch_expand", dispatch.pk))
    return dispatch


# --- expansion --------------------------------------------------------------------------------


def _message_id(key: str) -> str:
    domain = (settings.DEFAULT_FROM_EMAIL.rsplit("@", 1)[-1].strip("> ") or "localhost")
    return f"<{key}@{domain}>"


def dispatch_expand(*, dispatch_id: int, chunk_size: int = EXPAND_CHUNK, now: datetime | None = None) -> int:
    """Create the deliveries of a dispatch chunk by chunk and queue their send batches.

    Claims the dispatch first (pending, or expanding with an expired lease), so two workers
    never expand it at once; a repeat creates nothing new. Returns the deliveries created.
    """
    now = now or timezone.now()
    claimed = Dispatch.objects.filter(
        Q(status=DispatchStatus.PENDING) | Q(status=DispatchStatus.EXPANDING, claimed_until__lt=now), pk=dispatch_id,
    ).update(status=DispatchStatus.EXPANDING, claimed_until=now + EXPAND_LEASE)
    if claimed != 1:
        return 0
    dispatch = Dispatch.objects.select_related("update", "incident", "page").get(pk=dispatch_id)
    created = 0
    if dispatch.update.deliver_notifications:
        plan = coalescing.expansion_plan(dispatch)
        for chunk in selectors.audience_chunks(dispatch, chunk_size=chunk_size, after=dispatch.expanded_through):
            rows = []
            # Emails inside a subscriber's coalescing window wait for it to close.
            held = plan.hold_until([row[0] for row in chunk if row[1] == Channel.EMAIL], now=now)
            for subscriber_id, channel, address in chunk:
                if not plan.allows(channel):
                    continue  # SMS only on lifecycle edges
                key = uuid.uuid4().hex
                due = held.get(subscriber_id, now) if channel == Channel.EMAIL else now
                rows.append(Delivery(
                    dispatch=dispatch, subscriber_id=subscriber_id, channel=channel, address=address,
                    idempotency_key=key, message_id=_message_id(key) if channel == Channel.EMAIL else "",
                    next_attempt_at=due, created=now,
                ))
            # ignore_conflicts: a repeated expansion skips rows that exist (and keeps their keys).
            with transaction.atomic():
                Delivery.objects.bulk_create(rows, ignore_conflicts=True)
                # Held deliveries are left to the sweeper, which queues them when they fall due.
                ids = list(Delivery.objects.filter(
                    dispatch=dispatch, subscriber_id__in=[row[0] for row in chunk], status=DeliveryStatus.QUEUED,
                    next_attempt_at__lte=now,
                ).values_list("pk", flat=True))
                # Progress and a renewed lease in the same commit: a live expansion keeps its
                # claim, a killed one is resumed after the last chunk it finished.
                Dispatch.objects.filter(pk=dispatch.pk).update(
                    expanded_through=chunk[-1][0], claimed_until=timezone.now() + EXPAND_LEASE,
                )
            created += len(rows)
            # Queued after the chunk commits, so a send task always finds its rows.
            transaction.on_commit(lambda ids=ids: _enqueue_send_batches(ids))
    total = Delivery.objects.filter(dispatch=dispatch).count()
    Dispatch.objects.filter(pk=dispatch.pk).update(
        status=DispatchStatus.SENDING, recipients=total, expanded_at=timezone.now(), claimed_until=None,
    )
    dispatch_finish_if_done(dispatch_id=dispatch.pk)
    return created


def dispatch_finish_if_done(*, dispatch_id: int) -> bool:
    """Mark a sending dispatch done once none of its deliveries can still go out."""
    open_deliveries = Delivery.objects.filter(dispatch_id=dispatch_id, status__in=[DeliveryStatus.QUEUED, DeliveryStatus.SENDING])
    if open_deliveries.exists():
        return False
    return bool(Dispatch.objects.filter(pk=dispatch_id, status=DispatchStatus.SENDING).update(
        status=DispatchStatus.DONE, finished_at=timezone.now(),
    ))


# --- claiming and sending ---------------------------------------------------------------------


def deliveries_claim(*, ids: list[int], now: datetime | None = None) -> list[Delivery]:
    """Atomically take the due, queued deliveries among `ids`; only the rows this call won come back.

    One conditional UPDATE (status queued -> sending, with a fresh claim token): another worker
    running the same ids at the same moment gets the rows it updated, never the same ones.
    """
    now = now or timezone.now()
    token = uuid.uuid4().hex
    Delivery.objects.filter(pk__in=ids, status=DeliveryStatus.QUEUED, next_attempt_at__lte=now).update(
        status=DeliveryStatus.SENDING, claimed_until=now + CLAIM_LEASE, claim_token=token, attempts=F("attempts") + 1,
    )
    claimed = list(
        Delivery.objects.filter(claim_token=token, status=DeliveryStatus.SENDING).select_related("subscriber").order_by("pk")
    )
    # A batch nearly always belongs to one dispatch: load it (and its page) once and share the
    # instances, instead of joining five tables into every row.
    dispatches = {
        dispatch.pk: dispatch
        for dispatch in Dispatch.objects.filter(pk__in={d.dispatch_id for d in claimed}).select_related("update", "incident", "page")
    }
    for delivery in claimed:
        delivery.dispatch = dispatches[delivery.dispatch_id]
        subscriber = delivery.subscriber
        if subscriber is not None and subscriber.page_id == delivery.dispatch.page_id:
            subscriber.page = delivery.dispatch.page
    return claimed


def _suppressed(deliveries: list[Delivery]) -> set[tuple[str, str]]:
    """(channel, address) pairs among these deliveries that are on the suppression list (one query)."""
    condition = Q(pk__in=[])
    for channel in {d.channel for d in deliveries}:
        condition |= Q(channel=channel, address__in=[d.address for d in deliveries if d.channel == channel])
    return set(Suppression.objects.filter(condition).values_list("channel", "address"))


def _skip_reason(delivery: Delivery, suppressed: set[tuple[str, str]]) -> str:
    subscriber = delivery.subscriber
    if subscriber is None or subscriber.erased_at:
        return "The subscriber was deleted."
    if subscriber.status != SubscriberStatus.CONFIRMED:
        return f"The subscriber is {subscriber.get_status_display().lower()}."
    if subscriber.quarantined_at:
        return "The endpoint is quarantined."
    if (delivery.channel, delivery.address) in suppressed:
        return "The address is suppressed."
    return ""


def _finish(delivery: Delivery, **fields) -> bool:
    # Only while we still hold the claim: a worker whose lease ran out must not overwrite
    # the outcome of the worker that took the delivery over.
    return bool(Delivery.objects.filter(pk=delivery.pk, status=DeliveryStatus.SENDING, claim_token=delivery.claim_token).update(**fields))


def backoff_delay(attempts: int, retry_after: float | None = None) -> timedelta:
    """Exponential backoff with full jitter over its upper half, never sooner than Retry-After."""
    base = getattr(settings, "DELIVERY_BACKOFF_BASE_SECONDS", BACKOFF_BASE_SECONDS)
    ceiling = min(BACKOFF_CAP_SECONDS, base * 2 ** max(0, attempts - 1))
    seconds = random.uniform(ceiling / 2, ceiling)
    if retry_after:
        seconds = max(seconds, min(float(retry_after), BACKOFF_CAP_SECONDS * 6))
    return timedelta(seconds=seconds)


def _suppression_reason(channel: str, code: str) -> str:
    if channel == Channel.SMS:
        return SuppressionReason.SMS_STOP if code == FailureCode.UNSUBSCRIBED else SuppressionReason.INVALID_NUMBER
    return SuppressionReason.HARD_BOUNCE


def _record_sent(items: list[tuple[Delivery, SendResult]]) -> int:
    """Mark a batch's accepted deliveries sent in ONE UPDATE, each with its provider id.

    Still conditional on the claim (status and token), as _finish is for a single row: rows
    another worker took over after our lease ran out are left alone. Written as SQL because
    the ORM spends longer compiling a 500-branch CASE than the database spends running it.
    """
    if not items:
        return 0
    by_token: dict[str, list[tuple[Delivery, SendResult]]] = defaultdict(list)
    for delivery, result in items:
        by_token[delivery.claim_token].append((delivery, result))
    table = connection.ops.quote_name(Delivery._meta.db_table)
    now = timezone.now()
    updated = 0
    with connection.cursor() as cursor:
        for token, rows in by_token.items():
            cases = " ".join(["WHEN %s THEN %s"] * len(rows))
            ids = ", ".join(["%s"] * len(rows))
            params: list = []
            for delivery, result in rows:
                params += [delivery.pk, result.provider_id[:200]]
            params += [DeliveryStatus.SENT, now, *[delivery.pk for delivery, _result in rows], DeliveryStatus.SENDING, token]
            cursor.execute(
                f"UPDATE {table} SET provider_id = CASE id {cases} ELSE provider_id END, status = %s, sent_at = %s, "
                f"claimed_until = NULL, last_error = '' WHERE id IN ({ids}) AND status = %s AND claim_token = %s",
                params,
            )
            updated += cursor.rowcount
    return updated


def _record_failure(delivery: Delivery, outcome: TransportError) -> str:
    now = timezone.now()
    error = str(outcome.message)[:500]
    if outcome.permanent:
        with transaction.atomic():
            _finish(delivery, status=DeliveryStatus.FAILED, claimed_until=None, last_error=error)
            if outcome.code in SUPPRESSING_CODES:
                from subscribers.services import address_suppress

                address_suppress(
                    channel=delivery.channel, address=delivery.address, source=ConsentSource.PROVIDER,
                    reason=_suppression_reason(delivery.channel, outcome.code), note=error,
                )
        return DeliveryStatus.FAILED
    if delivery.attempts >= _max_attempts():
        _finish(delivery, status=DeliveryStatus.DEAD, claimed_until=None, last_error=error)
        return DeliveryStatus.DEAD
    _finish(delivery, status=DeliveryStatus.QUEUED, claimed_until=None, last_error=error,
            next_attempt_at=now + backoff_delay(delivery.attempts, outcome.retry_after))
    return DeliveryStatus.QUEUED


def _archive_entry(delivery: Delivery, message: OutboundMessage, ctx: DispatchContext) -> dict:
    dispatch = delivery.dispatch
    subject, text, html = as_sent(message)
    headers = dict(message.headers)
    if message.message_id:
        headers["Message-ID"] = message.message_id
    return {
        "channel": delivery.channel, "kind": "notification", "recipient": delivery.address, "subject": subject,
        "text_body": text, "html_body": html, "headers": headers, "payload": message.payload, "page": ctx.page,
        "incident": ctx.incident, "update": ctx.update, "subscriber": delivery.subscriber,
        "template_version": f"{TEMPLATE_VERSION}; {dispatch.template_version}" if dispatch.template_version else TEMPLATE_VERSION,
        "policy_version": dispatch.policy_version, "approvals": dispatch.approvals, "revision": dispatch.revision,
        # Archived before the provider answers, so no provider id yet; the delivery's stable key
        # (the email Message-ID, else the idempotency key = webhook-id) ties the row to the ledger.
        "provider_id": "", "attempts": delivery.attempts, "sent_at": timezone.now(),
        "message_id": message.message_id or delivery.idempotency_key,
    }


def _context(dispatch: Dispatch, contexts: dict[int, DispatchContext]) -> DispatchContext:
    """The dispatch's rendering context, built once per content version in this process.

    Consecutive send batches of one dispatch share it (and the email templates it holds);
    a publish or an edit bumps the content version, so an edited update is never sent stale.
    """
    if dispatch.pk not in contexts:
        contexts[dispatch.pk] = cache.cached(
            ("dispatch_context", dispatch.pk, dispatch.update_id),
            lambda: dispatch_context(page=dispatch.page, incident=dispatch.incident, update=dispatch.update),
            share=False,
        )
    return contexts[dispatch.pk]


def deliveries_send(*, ids: list[int], now: datetime | None = None) -> dict[str, int]:
    """Claim, re-check, render, archive, send and record a batch of deliveries.

    The archive row is written before the send: a crash between the two can at worst send the
    message again later, under the same idempotency key and Message-ID, never send it unrecorded.
    """
    counts: dict[str, int] = defaultdict(int)
    claimed = deliveries_claim(ids=ids, now=now)
    contexts: dict[int, DispatchContext] = {}
    by_channel: dict[str, list[tuple[Delivery, OutboundMessage]]] = defaultdict(list)
    entries: list[dict] = []
    suppressed = _suppressed(claimed) if claimed else set()
    sendable: list[Delivery] = []
    for delivery in claimed:
        reason = _skip_reason(delivery, suppressed)
        if reason:
            _finish(delivery, status=DeliveryStatus.SKIPPED, claimed_until=None, last_error=reason)
            counts[DeliveryStatus.SKIPPED] += 1
        else:
            sendable.append(delivery)
    # --- rate limits and coalescing --- (notifications.coalescing)
    folding = coalescing.fold(sendable, now=now)
    for delivery in sendable:
        if delivery.pk in folding.yielded:
            _finish(delivery, status=DeliveryStatus.SKIPPED, claimed_until=None,
                    last_error=coalescing.coalesced_into(folding.yielded[delivery.pk]))
            counts[DeliveryStatus.SKIPPED] += 1
            continue
        ctx = _context(delivery.dispatch, contexts)
        message = render(ctx, channel=delivery.channel, to=delivery.address, subscriber=delivery.subscriber,
                         idempotency_key=delivery.idempotency_key, message_id=delivery.message_id,
                         earlier=folding.earlier.get(delivery.pk, ()))
        by_channel[delivery.channel].append((delivery, message))
        entries.append(_archive_entry(delivery, message, ctx))
    if entries:
        from notifications.archive import archive_messages

        # Committed before anything is sent (short transaction: it holds the archive lock).
        with transaction.atomic():
            archive_messages(entries)
    for channel, items in by_channel.items():
        outcomes = get_transport(channel).send_batch([message for _delivery, message in items])
        # One commit for the batch's outcomes, and one UPDATE for all its successes (bench/fanout:
        # an UPDATE per delivery was 40% of a worker's time). A crash inside leaves the whole
        # batch claimed, and the sweeper resends it under the same keys, as for any crash here.
        with transaction.atomic():
            sent = [(delivery, outcome) for (delivery, _message), outcome in zip(items, outcomes) if isinstance(outcome, SendResult)]
            if sent:
                _record_sent(sent)
                counts[DeliveryStatus.SENT] += len(sent)
            for (delivery, _message), outcome in zip(items, outcomes):
                if not isinstance(outcome, SendResult):
                    counts[_record_failure(delivery, outcome)] += 1
                _endpoint_health_record(delivery, outcome)
    for dispatch_id in {delivery.dispatch_id for delivery in claimed} | folding.dispatch_ids:
        dispatch_finish_if_done(dispatch_id=dispatch_id)
    return dict(counts)


def deliveries_requeue(*, ids: list[int]) -> int:
    """Staff resend failed or dead deliveries: back to queued with fresh attempts, same keys.

    Skipped ones stay skipped (the recipient left or is suppressed). Sending starts on commit.
    """
    with transaction.atomic():
        now = timezone.now()
        requeued = Delivery.objects.filter(pk__in=ids, status__in=[DeliveryStatus.FAILED, DeliveryStatus.DEAD]).update(
            status=DeliveryStatus.QUEUED, attempts=0, next_attempt_at=now, claimed_until=None,
        )
        dispatch_ids = set(Delivery.objects.filter(pk__in=ids, status=DeliveryStatus.QUEUED).values_list("dispatch_id", flat=True))
        Dispatch.objects.filter(pk__in=dispatch_ids, status=DispatchStatus.DONE).update(
            status=DispatchStatus.SENDING, finished_at=None,
        )
        queued = list(Delivery.objects.filter(pk__in=ids, status=DeliveryStatus.QUEUED).values_list("pk", flat=True))
        transaction.on_commit(lambda: _enqueue_send_batches(queued))
    return requeued


# --- the sweeper -------------------------------------------------------------------------------


def deliveries_sweep(*, now: datetime | None = None, limit: int = 10_000) -> dict[str, int]:
    """Re-queue expired claims, queue due deliveries in batches, expand dispatches left pending.

    Runs every minute; everything it does is a repeat-safe nudge, so a lost task, a killed
    worker or a flushed broker only delays messages.
    """
    now = now or timezone.now()
    expired = Delivery.objects.filter(status=DeliveryStatus.SENDING, claimed_until__lt=now)
    # A claim that died after its attempt was counted: give up once attempts are used up.
    dead = expired.filter(attempts__gte=_max_attempts()).update(
        status=DeliveryStatus.DEAD, claimed_until=None, last_error="The worker stopped while sending; attempts used up.",
    )
    requeued = Delivery.objects.filter(status=DeliveryStatus.SENDING, claimed_until__lt=now).update(
        status=DeliveryStatus.QUEUED, claimed_until=None, next_attempt_at=now,
    )
    stuck = list(Dispatch.objects.filter(
        Q(status=DispatchStatus.PENDING) | Q(status=DispatchStatus.EXPANDING, claimed_until__lt=now)
    ).values_list("pk", flat=True))
    for dispatch_id in stuck:
        _enqueue("notifications.tasks.dispatch_expand", dispatch_id)
    due = selectors.deliveries_due(now=now, limit=limit)
    _enqueue_send_batches(due)
    finished = 0
    for dispatch_id in Dispatch.objects.filter(status=DispatchStatus.SENDING).values_list("pk", flat=True)[:500]:
        finished += dispatch_finish_if_done(dispatch_id=dispatch_id)
    return {"requeued": requeued, "dead": dead, "expanded": len(stuck), "queued": len(due), "finished": finished}


# --- tracking and quarantine -------------------------------------------------------------------
# Provider reports (anymail tracking events, SMS status callbacks) arrive late, repeated and out
# of order. Each becomes at most one DeliveryEvent (unique provider event id), and a delivery's
# provider_status only ever moves forward, so a late "delivered" never hides a bounce.

TRACKING_RANK = {
    TrackingStatus.QUEUED: 1,
    TrackingStatus.SENT: 2,
    TrackingStatus.DELIVERED: 3,
    # Terminal: nothing moves a delivery out of these (the first one reported wins).
    TrackingStatus.BOUNCED: 4,
    TrackingStatus.REJECTED: 4,
    TrackingStatus.COMPLAINED: 4,
    TrackingStatus.FAILED: 4,
}
SUPPRESS_ON = {
    TrackingStatus.BOUNCED: SuppressionReason.HARD_BOUNCE,
    TrackingStatus.REJECTED: SuppressionReason.HARD_BOUNCE,
    TrackingStatus.COMPLAINED: SuppressionReason.COMPLAINT,
}
ENDPOINT_CHANNELS = (Channel.WEBHOOK, Channel.SLACK, Channel.TEAMS)
QUARANTINE_AFTER = timedelta(hours=1)
QUARANTINE_NOTICE_MAX_RECIPIENTS = 10


def provider_event_key(*parts: object) -> str:
    """A DeliveryEvent.provider_event_id from its parts, hashed when it would not fit."""
    key = ":".join(str(part) for part in parts)
    if len(key) > 200:
        import hashlib

        key = f"{parts[0]}:sha256:{hashlib.sha256(key.encode()).hexdigest()}"
    return key


def _statuses_below(status: str) -> list[str]:
    rank = TRACKING_RANK[status]
    return [""] + [value for value, other in TRACKING_RANK.items() if other < rank]


def tracking_event_record(
    *, delivery: Delivery, event_key: str, kind: str, status: str | None, payload: dict,
    suppress_reason: str | None = None, at: datetime | None = None,
) -> bool:
    """Append one provider event to a delivery, move it forward, suppress on a hard failure.

    `status` is the TrackingStatus this event means (None: recorded only, e.g. "deferred").
    Returns False for a replay (the event id is already recorded): nothing changes then.
    """
    from django.db import IntegrityError

    from notifications.models import DeliveryEvent

    with transaction.atomic():
        try:
            with transaction.atomic():  # a savepoint: the replay's failed INSERT must not poison the caller
                DeliveryEvent.objects.create(
                    delivery=delivery, provider_event_id=event_key, kind=kind[:32], payload=payload,
                    created=at or timezone.now(),
                )
        except IntegrityError:
            return False
        if status:
            # Conditional: only from a lower rank, so concurrent or late events cannot move it back.
            Delivery.objects.filter(pk=delivery.pk, provider_status__in=_statuses_below(status)).update(
                provider_status=status,
            )
        if suppress_reason:
            from subscribers.services import address_suppress

            address_suppress(
                channel=delivery.channel, address=delivery.address, reason=suppress_reason,
                source=ConsentSource.PROVIDER, note=f"{kind} reported for delivery {delivery.pk}",
            )
    return True


# anymail's normalised event types -> what they mean for a delivery.
ANYMAIL_STATUS = {
    "queued": TrackingStatus.QUEUED,
    "sent": TrackingStatus.SENT,
    "delivered": TrackingStatus.DELIVERED,
    "bounced": TrackingStatus.BOUNCED,  # anymail: permanent ("deferred" is the temporary kind)
    "rejected": TrackingStatus.REJECTED,
    "complained": TrackingStatus.COMPLAINED,
    "failed": TrackingStatus.FAILED,
}
ANYMAIL_RECORDED = set(ANYMAIL_STATUS) | {"deferred"}  # opens and clicks are not kept


def _email_delivery(message_id: str, recipient: str | None) -> Delivery | None:
    candidates = list(Delivery.objects.filter(provider_id=message_id[:200], channel=Channel.EMAIL).order_by("pk")[:50])
    if len(candidates) > 1 and recipient:
        # Some ESPs give a whole batch one message id; the recipient tells the copies apart.
        candidates = [d for d in candidates if d.address == recipient.strip().lower()] or candidates
    return candidates[0] if len(candidates) == 1 else None


def email_tracking_event_handle(*, event, esp_name: str = "") -> bool:
    """Record one anymail AnymailTrackingEvent. Never raises for events that are not ours.

    Called from the ESP's webhook request: an exception would make the ESP send the batch
    again (and again), so unknown or ambiguous message ids are logged and dropped.
    """
    event_type = str(getattr(event, "event_type", "") or "")
    if event_type not in ANYMAIL_RECORDED:
        return False
    message_id = str(event.message_id or "")
    delivery = _email_delivery(message_id, event.recipient) if message_id else None
    if delivery is None:
        logger.info("Tracking event %s from %s for unknown message id %r: ignored", event_type, esp_name, message_id)
        return False
    timestamp = event.timestamp.isoformat() if getattr(event, "timestamp", None) else ""
    if event.event_id:
        key = provider_event_key("email", event.event_id)
    else:
        key = provider_event_key("email", message_id, event_type, timestamp)
    status = ANYMAIL_STATUS.get(event_type)
    payload = {
        "esp": esp_name, "event_type": event_type, "event_id": event.event_id or "", "message_id": message_id,
        "recipient": event.recipient or "", "timestamp": timestamp, "reject_reason": event.reject_reason or "",
        "description": str(event.description or "")[:500], "mta_response": str(event.mta_response or "")[:500],
    }
    return tracking_event_record(
        delivery=delivery, event_key=key, kind=event_type, status=status, payload=payload,
        suppress_reason=SUPPRESS_ON.get(status),
    )


# Twilio MessageStatus -> TrackingStatus (https://www.twilio.com/docs/messaging/api/message-resource).
SMS_STATUS = {
    "accepted": TrackingStatus.QUEUED,
    "scheduled": TrackingStatus.QUEUED,
    "queued": TrackingStatus.QUEUED,
    "sending": TrackingStatus.SENT,
    "sent": TrackingStatus.SENT,
    "delivered": TrackingStatus.DELIVERED,
    "read": TrackingStatus.DELIVERED,
    "undelivered": TrackingStatus.FAILED,
    "failed": TrackingStatus.FAILED,
    "canceled": TrackingStatus.FAILED,
}
# Error codes of an undelivered/failed SMS that say the number will never receive:
# 21211 invalid number, 21614 not a mobile number, 30005 unknown destination, 30006 landline or
# unreachable carrier; 21610 and 30004 (blocked) are how an opted-out (STOP) recipient shows up.
SMS_INVALID_NUMBER_CODES = {"21211", "21614", "30005", "30006"}
SMS_STOP_CODES = {"21610", "30004"}


def sms_status_handle(*, message_sid: str, message_status: str, error_code: str = "", payload: dict | None = None) -> bool:
    """Record one SMS status callback (already signature-checked). Unknown sids are ignored."""
    message_status = message_status.strip().lower()
    delivery = (
        Delivery.objects.filter(provider_id=message_sid[:200], channel=Channel.SMS).order_by("pk").first()
        if message_sid else None
    )
    if delivery is None or not message_status:
        logger.info("SMS status %r for unknown message %r: ignored", message_status, message_sid)
        return False
    status = SMS_STATUS.get(message_status)
    suppress_reason = None
    if status == TrackingStatus.FAILED:
        code = error_code.strip()
        if code in SMS_INVALID_NUMBER_CODES:
            suppress_reason = SuppressionReason.INVALID_NUMBER
        elif code in SMS_STOP_CODES:
            suppress_reason = SuppressionReason.SMS_STOP
    return tracking_event_record(
        delivery=delivery, event_key=provider_event_key("sms", message_sid, message_status), kind=message_status,
        status=status, payload=dict(payload or {}), suppress_reason=suppress_reason,
    )


def endpoint_success_record(*, subscriber: Subscriber) -> None:
    """A delivery to a webhook/Slack/Teams endpoint went through: its run of failures is over."""
    if subscriber.channel not in ENDPOINT_CHANNELS or subscriber.endpoint_failing_since is None:
        return  # the common case costs no query
    Subscriber.objects.filter(pk=subscriber.pk).update(endpoint_failing_since=None)
    subscriber.endpoint_failing_since = None


def endpoint_failure_record(*, subscriber: Subscriber, at: datetime | None = None) -> bool:
    """A delivery to an endpoint failed; quarantine it once failures have lasted QUARANTINE_AFTER.

    Returns True when this call quarantined it. The conditional UPDATEs make two workers
    recording failures at once start the run once and quarantine (and notify) once.
    """
    if subscriber.channel not in ENDPOINT_CHANNELS:
        return False
    at = at or timezone.now()
    Subscriber.objects.filter(pk=subscriber.pk, endpoint_failing_since__isnull=True).update(endpoint_failing_since=at)
    with transaction.atomic():
        quarantined = Subscriber.objects.filter(
            pk=subscriber.pk, quarantined_at__isnull=True, endpoint_failing_since__lte=at - QUARANTINE_AFTER,
        ).update(quarantined_at=at)
        if quarantined:
            _quarantine_notify(subscriber=Subscriber.objects.select_related("page", "organization").get(pk=subscriber.pk), at=at)
    fresh = Subscriber.objects.filter(pk=subscriber.pk).values("endpoint_failing_since", "quarantined_at").first() or {}
    subscriber.endpoint_failing_since = fresh.get("endpoint_failing_since")
    subscriber.quarantined_at = fresh.get("quarantined_at")
    return bool(quarantined)


def quarantine_notice_recipients(subscriber: Subscriber) -> list[str]:
    """Who owns an endpoint: the account's contacts with an email, and its confirmed email subscribers."""
    if subscriber.organization_id is None:
        return []
    from subscribers.models import AccountContact

    contacts = AccountContact.objects.filter(organization_id=subscriber.organization_id).exclude(email="")
    emails = [email.strip().lower() for email in contacts.values_list("email", flat=True)]
    emails += list(
        Subscriber.objects.filter(
            page_id=subscriber.page_id, organization_id=subscriber.organization_id, channel=Channel.EMAIL,
            status=SubscriberStatus.CONFIRMED, erased_at__isnull=True,
        ).filter(selectors.not_suppressed()).order_by("pk").values_list("address", flat=True)
    )
    return list(dict.fromkeys(emails))[:QUARANTINE_NOTICE_MAX_RECIPIENTS]


def _quarantine_notice_text(subscriber: Subscriber, since: datetime | None) -> tuple[str, str]:
    page = subscriber.page
    since_text = f"{since:%Y-%m-%d %H:%M} UTC" if since else "more than an hour ago"
    subject = f"{page.name}: notifications to {subscriber.display_address} are paused"
    text = (
        f"Every attempt to deliver {page.name} status notifications to the {subscriber.get_channel_display()} "
        f"endpoint {subscriber.display_address} has failed since {since_text}.\n\n"
        "We have stopped sending to it so that it does not keep failing. Nothing more will be sent there "
        "until the endpoint is fixed and our support team turns it back on.\n\n"
        f"Current status: {page.base_url}/\n"
    )
    return subject, text


def _quarantine_notify(*, subscriber: Subscriber, at: datetime) -> None:
    """Tell the owner of a newly quarantined endpoint, once; the ledger records it either way."""
    from subscribers.models import ConsentAction
    from subscribers.services import _record

    recipients = quarantine_notice_recipients(subscriber)
    # Marked in the quarantining transaction: a second quarantine of the same row never re-sends.
    first_notice = bool(recipients) and bool(
        Subscriber.objects.filter(pk=subscriber.pk, quarantine_notified_at__isnull=True).update(quarantine_notified_at=at)
    )
    _record(subscriber, ConsentAction.QUARANTINE, ConsentSource.PROVIDER, details={
        "failing_since": subscriber.endpoint_failing_since.isoformat() if subscriber.endpoint_failing_since else None,
        "owner_notified": len(recipients) if first_notice else 0,
    })
    if first_notice:
        subject, text = _quarantine_notice_text(subscriber, subscriber.endpoint_failing_since)
        subscriber_id = subscriber.pk
        transaction.on_commit(lambda: _quarantine_notice_send(subscriber_id, recipients, subject, text))


def _quarantine_notice_send(subscriber_id: int, recipients: list[str], subject: str, text: str) -> None:
    """Send and archive the notice (after the quarantine commits; a failure is logged, not retried)."""
    from notifications.archive import archive_messages

    subscriber = Subscriber.objects.select_related("page").filter(pk=subscriber_id).first()
    transport = get_transport(Channel.EMAIL)
    for address in recipients:
        key = uuid.uuid4().hex
        message = OutboundMessage(channel=Channel.EMAIL, to=address, subject=subject, text=text,
                                  idempotency_key=key, message_id=_message_id(key))
        with transaction.atomic():
            archive_messages([{
                "channel": Channel.EMAIL, "kind": "endpoint_quarantine", "recipient": address, "subject": subject,
                "text_body": text, "html_body": "", "headers": {"Message-ID": message.message_id},
                "page": subscriber.page if subscriber else None, "subscriber": subscriber,
                "template_version": TEMPLATE_VERSION, "sent_at": timezone.now(), "message_id": message.message_id,
            }])
        try:
            transport.send(message)
        except TransportError as exc:
            logger.warning("Quarantine notice for subscriber %s to %s failed: %s", subscriber_id, address, exc.message)


def _endpoint_health_record(delivery: Delivery, outcome: SendResult | TransportError) -> None:
    """Feed a webhook/Slack/Teams send outcome to the quarantine bookkeeping (deliveries_send)."""
    subscriber = delivery.subscriber
    if subscriber is None or delivery.channel not in ENDPOINT_CHANNELS:
        return
    if isinstance(outcome, SendResult):
        endpoint_success_record(subscriber=subscriber)
    else:
        endpoint_failure_record(subscriber=subscriber)
