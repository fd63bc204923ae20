"""Reads for subscribers: outreach lists, counts and exports for staff."""
from __future__ import annotations

from collections.abc import Iterator

from django.db.models import Count, Exists, OuterRef, Q, QuerySet

from incidents.models import Page, Region
from subscribers.models import AccountContact, Subscriber, SubscriberStatus, Suppression, Tier

OUTREACH_COLUMNS = ("organization", "external_id", "region", "sla", "contact", "role", "phone", "email")
SUBSCRIBER_EXPORT_COLUMNS = (
    "id", "channel", "address", "status", "organization", "tier", "all_components", "notify_incidents",
    "notify_maintenance", "locale", "time_zone", "created", "confirmed_at", "unsubscribed_at",
)


def enterprise_contacts(page: Page, *, region: Region | None = None) -> QuerySet[AccountContact]:
    """The people account managers phone in a P1: contacts of the page's enterprise accounts.

    With `region`, only accounts in that region (and accounts with no region, which may be anywhere).
    """
    contacts = AccountContact.objects.filter(organization__page=page, organization__tier=Tier.ENTERPRISE)
    if region is not None:
        contacts = contacts.filter(Q(organization__region=region) | Q(organization__region__isnull=True))
    return contacts.select_related("organization", "organization__region").order_by("organization__name", "name", "pk")


def outreach_rows(contacts: QuerySet[AccountContact]) -> Iterator[tuple[str, ...]]:
    """The rows of the direct outreach list, in OUTREACH_COLUMNS order."""
    for contact in contacts.iterator(chunk_size=500):
        organization = contact.organization
        yield (
            organization.name, organization.external_id, organization.region.code if organization.region else "",
            organization.sla, contact.name, contact.role, contact.phone, contact.email,
        )


def suppressed_subscribers() -> Exists:
    """True for a subscriber whose address is on the suppression list (which wins over its status)."""
    return Exists(Suppression.objects.filter(channel=OuterRef("channel"), address=OuterRef("address")))


def subscriber_counts(subscribers: QuerySet[Subscriber]) -> dict[str, int]:
    """How many of these subscribers are in each state, in one aggregate query.

    "suppressed" counts confirmed subscribers whose address is suppressed: they look confirmed but hear nothing.
    """
    return subscribers.order_by().aggregate(
        total=Count("pk"),
        pending=Count("pk", filter=Q(status=SubscriberStatus.PENDING)),
        confirmed=Count("pk", filter=Q(status=SubscriberStatus.CONFIRMED)),
        unsubscribed=Count("pk", filter=Q(status=SubscriberStatus.UNSUBSCRIBED)),
        suppressed=Count("pk", filter=Q(suppressed_subscribers(), status=SubscriberStatus.CONFIRMED)),
    )


def subscriber_export_rows(subscribers: QuerySet[Subscriber]) -> Iterator[tuple[str, ...]]:
    """Subscribers as CSV rows (SUBSCRIBER_EXPORT_COLUMNS), streamed in chunks.

    The address column is display_address: endpoint URLs show their host only, because their
    paths are the secret that lets anyone post into a customer's Slack or Teams channel.
    """
    for subscriber in subscribers.select_related("organization").order_by("pk").iterator(chunk_size=1000):
        organization = subscriber.organization
        yield (
            subscriber.public_id, subscriber.channel, subscriber.display_address, subscriber.status,
            organization.name if organization else "", organization.tier if organization else "",
            _flag(subscriber.all_components), _flag(subscriber.notify_incidents), _flag(subscriber.notify_maintenance),
            subscriber.locale, subscriber.time_zone, subscriber.created.isoformat(),
            subscriber.confirmed_at.isoformat() if subscriber.confirmed_at else "",
            subscriber.unsubscribed_at.isoformat() if subscriber.unsubscribed_at else "",
        )


def _flag(value: bool) -> str:
    return "yes" if value else "no"
