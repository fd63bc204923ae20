"""Builders for the delivery-ledger tests: confirmed subscribers written straight to the table.

The subscriber services normalise and vet addresses (DNS, SSRF checks) and record consent;
these tests are about who a dispatch reaches and how its deliveries are sent, so they start
from subscribers that already passed all of that.
"""
from __future__ import annotations

import itertools

from django.utils import timezone

from subscribers.models import Organization, Subscriber, SubscriberStatus

_seq = itertools.count(1)


def confirmed(page, *, channel: str = "email", address: str | None = None, tier: str | None = None,
              components=(), regions=(), **fields) -> Subscriber:
    organization = None
    if tier:
        organization = Organization.objects.create(page=page, name=f"Customer {next(_seq)}", tier=tier)
    if address is None:
        n = next(_seq)
        address = {"email": f"user{n}@example.org", "sms": f"+3161234{n:04d}"}.get(channel, f"https://hooks.example.org/{n}")
    if components:
        fields.setdefault("all_components", False)
    subscriber = Subscriber.objects.create(
        page=page, channel=channel, address=address, status=SubscriberStatus.CONFIRMED,
        confirmed_at=timezone.now(), organization=organization, **fields,
    )
    if components:
        subscriber.components.set(components)
    if regions:
        subscriber.regions.set(regions)
    return subscriber
