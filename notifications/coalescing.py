"""No floods: per-subscriber email coalescing and SMS only on lifecycle edges.

Email: at most one message per incident per subscriber every NOTIFY_COALESCE_MINUTES
(default 10). An update arriving inside the window is *held* (its delivery waits until the
window closes, next_attempt_at = window end); when the held delivery is sent, the earlier
still-unsent deliveries of the same incident for that subscriber are folded into it (marked
skipped, "coalesced into <id>") and the one message lists every update, newest first.
The first notice of an incident and its resolution are never held, and a resolution takes
the held progress updates with it.

SMS: only the lifecycle edges of an incident (first notice, resolution) and of a maintenance
(start, end) reach phones, unless settings.NOTIFY_SMS_EVERY_UPDATE says otherwise. That is
decided at expansion: no SMS delivery exists for any other update.

Everything here reads and writes the ledger with conditional UPDATEs, so two workers racing
over the same subscriber can at worst send one message too many, never lose one.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from incidents.models import IncidentStatus, IncidentUpdate, MaintenanceStatus
from notifications.models import Delivery, DeliveryStatus, Dispatch
from subscribers.models import Channel

COALESCED_PREFIX = "coalesced into "
# Updates that close something: they go at once and supersede held progress updates.
CLOSING_STATUSES = frozenset({IncidentStatus.RESOLVED, MaintenanceStatus.COMPLETED})
# Maintenance edges besides its first notice (the announcement): the start and the end.
MAINTENANCE_EDGE_STATUSES = frozenset({MaintenanceStatus.IN_PROGRESS, MaintenanceStatus.COMPLETED})


def coalesce_window() -> timedelta:
    return timedelta(minutes=float(settings.NOTIFY_COALESCE_MINUTES))


def coalesced_into(delivery_id: int) -> str:
    return f"{COALESCED_PREFIX}{delivery_id}"


# --- at expansion ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExpansionPlan:
    """What a dispatch's expansion must do about floods, decided once per dispatch."""

    dispatch_id: int
    incident_id: int
    first_notice: bool
    closing: bool
    sms_allowed: bool

    @property
    def immediate(self) -> bool:
        """The first notice and the resolution are never held."""
        return self.first_notice or self.closing

    def allows(self, channel: str) -> bool:
        return channel != Channel.SMS or self.sms_allowed

    def hold_until(self, subscriber_ids: list[int], *, now: datetime) -> dict[int, datetime]:
        """When each of these subscribers' email for this dispatch may go, for those who must wait.

        One query per chunk. The window is anchored on the subscriber's last email about the
        incident: sent (its sent_at), or on its way (created, or, for a held one, the end of
        the window it already waits for, so later updates join it instead of opening another).
        """
        if self.immediate or not subscriber_ids:
            return {}
        window = coalesce_window()
        rows = (
            Delivery.objects.filter(
                dispatch__incident_id=self.incident_id, channel=Channel.EMAIL, subscriber_id__in=subscriber_ids,
            )
            .exclude(dispatch_id=self.dispatch_id)
            .filter(
                Q(status=DeliveryStatus.SENT, sent_at__gt=now - window)
                | Q(status__in=[DeliveryStatus.QUEUED, DeliveryStatus.SENDING])
            )
            .values_list("subscriber_id", "status", "created", "next_attempt_at", "sent_at", "attempts")
        )
        held: dict[int, datetime] = {}
        for subscriber_id, status, created, next_attempt_at, sent_at, attempts in rows:
            if status == DeliveryStatus.SENT:
                until = sent_at + window
            elif attempts == 0 and next_attempt_at > created:
                until = next_attempt_at  # itself held: join its window
            else:
                until = created + window
            if until > now and until > held.get(subscriber_id, now):
                held[subscriber_id] = until
        return held


def is_sms_edge(dispatch: Dispatch, *, first_notice: bool) -> bool:
    status = dispatch.update.status
    if first_notice:
        return True
    if dispatch.incident.is_maintenance:
        return status in MAINTENANCE_EDGE_STATUSES
    return status in CLOSING_STATUSES


def expansion_plan(dispatch: Dispatch) -> ExpansionPlan:
    """Decide, for one dispatch, whether it is the incident's first notice, closes it, and may reach phones."""
    first_notice = not Dispatch.objects.filter(incident_id=dispatch.incident_id, pk__lt=dispatch.pk).exists()
    closing = dispatch.update.status in CLOSING_STATUSES
    sms_allowed = settings.NOTIFY_SMS_EVERY_UPDATE or is_sms_edge(dispatch, first_notice=first_notice)
    return ExpansionPlan(
        dispatch_id=dispatch.pk, incident_id=dispatch.incident_id, first_notice=first_notice,
        closing=closing, sms_allowed=sms_allowed,
    )


# --- at send time ------------------------------------------------------------------------------


@dataclass
class Folding:
    """The outcome of coalescing one claimed batch."""

    # Claimed deliveries that yielded to a later one due now: delivery id -> the carrier's id.
    yielded: dict[int, int]
    # Carrier delivery id -> the earlier updates it carries, newest first.
    earlier: dict[int, list[IncidentUpdate]]
    # Dispatches whose deliveries were folded here: they may be finished now.
    dispatch_ids: set[int]


def fold(deliveries: list[Delivery], *, now: datetime | None = None) -> Folding:
    """Coalesce a claimed batch's email deliveries with their subscriber's other ones for the incident.

    A claimed delivery with a later one of the same subscriber and incident that is due now
    (or claimed in this batch) yields to it. Every other claimed delivery is a carrier: it
    folds the earlier still-queued ones (a conditional UPDATE, so one claimed meanwhile by
    another worker is left to that worker) and carries their updates. Two queries for the
    family, one UPDATE per carrier that has something to fold, one to read the updates.
    """
    now = now or timezone.now()
    mine = {d.pk: d for d in deliveries if d.channel == Channel.EMAIL and d.subscriber_id}
    if not mine:
        return Folding({}, {}, set())
    subscriber_ids = {d.subscriber_id for d in mine.values()}
    incident_ids = {d.dispatch.incident_id for d in mine.values()}
    family_rows = list(
        Delivery.objects.filter(channel=Channel.EMAIL, subscriber_id__in=subscriber_ids, dispatch__incident_id__in=incident_ids)
        .filter(
            Q(pk__in=list(mine)) | Q(status=DeliveryStatus.QUEUED)
            | Q(status=DeliveryStatus.SKIPPED, last_error__startswith=COALESCED_PREFIX)
        )
        .values_list("pk", "subscriber_id", "dispatch__incident_id", "dispatch_id", "status", "next_attempt_at", "last_error")
    )
    families: dict[tuple[int, int], list[tuple]] = defaultdict(list)
    for row in family_rows:
        families[(row[1], row[2])].append(row)

    yielded: dict[int, int] = {}
    carriers: list[Delivery] = []
    for delivery in sorted(mine.values(), key=lambda d: d.dispatch_id):
        family = families[(delivery.subscriber_id, delivery.dispatch.incident_id)]
        later = [
            row for row in family
            if row[3] > delivery.dispatch_id and (
                row[0] in mine
                or row[4] == DeliveryStatus.QUEUED and row[5] <= now
            )
        ]
        if later:
            yielded[delivery.pk] = max(later, key=lambda row: row[3])[0]
        else:
            carriers.append(delivery)

    folded_into: dict[int, int] = {}
    dispatch_of: dict[int, int] = {}
    for rows in families.values():
        for pk, _sub, _inc, dispatch_id, _status, _due, last_error in rows:
            dispatch_of[pk] = dispatch_id
            if last_error.startswith(COALESCED_PREFIX):
                folded_into[pk] = int(last_error[len(COALESCED_PREFIX):] or 0)
    folded_into.update(yielded)

    for carrier in carriers:
        family = families[(carrier.subscriber_id, carrier.dispatch.incident_id)]
        earlier_queued = [
            row[0] for row in family
            if row[3] < carrier.dispatch_id and row[4] == DeliveryStatus.QUEUED and row[0] not in mine
        ]
        if not earlier_queued:
            continue
        Delivery.objects.filter(pk__in=earlier_queued, status=DeliveryStatus.QUEUED).update(
            status=DeliveryStatus.SKIPPED, last_error=coalesced_into(carrier.pk), claimed_until=None,
        )
        for pk in Delivery.objects.filter(pk__in=earlier_queued, last_error=coalesced_into(carrier.pk)).values_list("pk", flat=True):
            folded_into[pk] = carrier.pk

    carried: dict[int, list[int]] = defaultdict(list)
    carrier_ids = {c.pk for c in carriers}
    for pk in folded_into:
        target, seen = folded_into[pk], {pk}
        # Follow chains (a folded one may have carried others before yielding).
        while target in folded_into and target not in seen and target not in carrier_ids:
            seen.add(target)
            target = folded_into[target]
        if target in carrier_ids:
            carried[target].append(dispatch_of.get(pk) or mine[pk].dispatch_id)
    touched = {dispatch_of[pk] for pk in folded_into if pk in dispatch_of}
    if not carried:
        return Folding(yielded, {}, touched)
    updates = {
        dispatch_id: update
        for dispatch_id, update in (
            (d.pk, d.update) for d in Dispatch.objects.filter(pk__in={i for ids in carried.values() for i in ids}).select_related("update")
        )
    }
    earlier = {
        carrier_id: sorted(
            {updates[i].pk: updates[i] for i in dispatch_ids if i in updates}.values(),
            key=lambda u: (u.display_at, u.pk), reverse=True,
        )
        for carrier_id, dispatch_ids in carried.items()
    }
    return Folding(yielded, earlier, touched)
