"""Reads for the delivery ledger: who is in a dispatch's audience, and what is due."""
from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from django.db.models import Exists, OuterRef, Q, QuerySet

from incidents.models import IncidentComponent, Region
from incidents.policy import channels_for
from notifications.models import Delivery, DeliveryStatus, Dispatch, DispatchKind
from subscribers.models import Subscriber, SubscriberStatus, Suppression, Tier


def not_suppressed() -> Q:
    """NOT EXISTS a suppression for the subscriber's channel and address."""
    return ~Q(Exists(Suppression.objects.filter(channel=OuterRef("channel"), address=OuterRef("address"))))


def _channel_matrix(dispatch: Dispatch) -> Q:
    """The policy's channels, per subscriber tier (no customer account counts as standard)."""
    maintenance = dispatch.kind == DispatchKind.MAINTENANCE
    condition = Q(pk__in=[])
    for tier in Tier.values:
        channels = channels_for(dispatch.severity, tier, maintenance=maintenance, rules=dispatch.policy_rules or None)
        if channels:
            condition |= Q(organization__tier=tier, channel__in=channels)
    standard = channels_for(dispatch.severity, Tier.STANDARD, maintenance=maintenance, rules=dispatch.policy_rules or None)
    if standard:
        condition |= Q(organization__isnull=True, channel__in=standard)
    return condition


def _component_ids(dispatch: Dispatch) -> set[int]:
    """The incident's components and those the update names, with their groups."""
    from incidents.models import Component

    ids = set(IncidentComponent.objects.filter(incident_id=dispatch.incident_id).values_list("component_id", flat=True))
    codes = [entry.get("code") for entry in (dispatch.update.affected_components or []) if isinstance(entry, dict)]
    if codes:
        ids |= set(Component.objects.filter(page_id=dispatch.page_id, public_id__in=codes).values_list("pk", flat=True))
    groups = Component.objects.filter(pk__in=ids, group__isnull=False).values_list("group_id", flat=True)
    return ids | set(groups)


def dispatch_audience(dispatch: Dispatch) -> QuerySet[Subscriber]:
    """Confirmed, unsuppressed subscribers of the page whom this update concerns, on an allowed channel.

    Components: subscribers of everything, or of one of the affected components (an incident
    with no components concerns everyone). Regions: none chosen means every region; an
    incident without regions reaches everyone. One-incident subscribers hear only about theirs.
    """
    through = Subscriber.components.through
    region_through = Subscriber.regions.through
    maintenance = dispatch.kind == DispatchKind.MAINTENANCE

    qs = Subscriber.objects.filter(
        page_id=dispatch.page_id, status=SubscriberStatus.CONFIRMED, erased_at__isnull=True, quarantined_at__isnull=True,
    ).filter(not_suppressed()).filter(_channel_matrix(dispatch))
    qs = qs.filter(notify_maintenance=True) if maintenance else qs.filter(notify_incidents=True)

    component_ids = _component_ids(dispatch)
    if component_ids:
        components_match = Q(all_components=True) | Q(
            Exists(through.objects.filter(subscriber_id=OuterRef("pk"), component_id__in=component_ids))
        )
    else:
        components_match = Q()
    own_incident = Q(incident_id=dispatch.incident_id)
    qs = qs.filter(own_incident | (Q(incident__isnull=True) & components_match))

    if dispatch.notified_only:
        # A false alarm is corrected only where it was heard.
        qs = qs.filter(Exists(
            Delivery.objects.filter(subscriber_id=OuterRef("pk"), dispatch__incident_id=dispatch.incident_id, status=DeliveryStatus.SENT)
            .exclude(dispatch_id=dispatch.pk)
        ))
        return qs
    region_ids = list(Region.objects.filter(incidents=dispatch.incident_id).values_list("pk", flat=True))
    if region_ids:
        qs = qs.filter(
            ~Q(Exists(region_through.objects.filter(subscriber_id=OuterRef("pk"))))
            | Q(Exists(region_through.objects.filter(subscriber_id=OuterRef("pk"), region_id__in=region_ids)))
        )
    return qs


def audience_chunks(dispatch: Dispatch, *, chunk_size: int, after: int = 0) -> Iterator[list[tuple[int, str, str]]]:
    """(pk, channel, address) of the audience in pk order, chunk by chunk (keyset pagination).

    Each chunk is its own short query, so neither memory nor a server-side cursor grows with
    the audience, and nothing holds a transaction open across the fan-out.
    """
    base = dispatch_audience(dispatch).order_by("pk").values_list("pk", "channel", "address")
    last = after
    while True:
        chunk = list(base.filter(pk__gt=last)[:chunk_size])
        if not chunk:
            return
        yield chunk
        last = chunk[-1][0]


def deliveries_due(*, now: datetime, limit: int) -> list[int]:
    """Ids of queued deliveries whose time has come (the delivery_due index)."""
    return list(
        Delivery.objects.filter(status=DeliveryStatus.QUEUED, next_attempt_at__lte=now)
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:limit]
    )
