"""Writes for subscribers: subscribe, confirm, preferences, leaving, suppression, erasure.

Keyword-only, atomic, validated before saving; every consent-relevant change writes a
ConsentEvent in the same transaction; messages leave only from transaction.on_commit.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from incidents.models import Component, Incident, Page, Region
from subscribers.addresses import normalise_address
from subscribers.models import (
    Channel,
    ConfirmationSend,
    ConsentAction,
    ConsentEvent,
    ConsentSource,
    Organization,
    Subscriber,
    SubscriberStatus,
    Suppression,
    SuppressionReason,
    address_digest,
)

# Bump when the consent wording on the subscribe form changes; the ledger records which one people saw.
CONSENT_TEXT_VERSION = "2026-11-v1"
CONFIRMATION_INTERVAL = timedelta(hours=24)
SMS_CODE_TTL = timedelta(minutes=15)
SMS_CODE_MAX_ATTEMPTS = 5


@dataclass(frozen=True)
class Preferences:
    all_components: bool = True
    components: tuple[Component, ...] = ()
    notify_incidents: bool = True
    notify_maintenance: bool = True
    regions: tuple[Region, ...] = ()
    locale: str = ""
    time_zone: str = ""
    incident: Incident | None = None


def _record(
    subscriber: Subscriber | None, action: str, source: str, *, channel: str = "", address: str = "",
    ip: str | None = None, actor=None, details: dict | None = None,
) -> ConsentEvent:
    channel = channel or subscriber.channel
    address = address or subscriber.address
    return ConsentEvent.objects.create(
        subscriber=subscriber, address_digest=address_digest(channel, address), channel=channel, action=action,
        source=source, consent_text_version=CONSENT_TEXT_VERSION if action in (ConsentAction.SUBSCRIBE, ConsentAction.RESUBSCRIBE, ConsentAction.CONFIRM) else "",
        ip_address=ip or None, actor=actor if getattr(actor, "pk", None) else None, details=details or {},
    )


def is_suppressed(channel: str, address: str) -> bool:
    return Suppression.objects.filter(channel=channel, address=address).exists()


def _apply_preferences(subscriber: Subscriber, prefs: Preferences) -> None:
    page_id = subscriber.page_id
    components = [c for c in prefs.components if c.page_id == page_id]
    regions = [r for r in prefs.regions if r.page_id == page_id]
    if len(components) != len(prefs.components):
        raise ValidationError({"components": "Choose components of this status page."})
    if len(regions) != len(prefs.regions):
        raise ValidationError({"regions": "Choose regions of this status page."})
    if prefs.incident is not None and prefs.incident.page_id != page_id:
        raise ValidationError({"incident": "That incident is not on this status page."})
    if not prefs.all_components and not components and prefs.incident is None:
        raise ValidationError({"components": "Choose at least one component, or everything."})
    if not (prefs.notify_incidents or prefs.notify_maintenance):
        raise ValidationError({"notify_incidents": "Choose incidents, maintenance or both."})
    subscriber.all_components = prefs.all_components and prefs.incident is None
    subscriber.notify_incidents = prefs.notify_incidents
    subscriber.notify_maintenance = prefs.notify_maintenance
    subscriber.locale = prefs.locale
    subscriber.time_zone = prefs.time_zone
    subscriber.incident = prefs.incident
    subscriber.full_clean()
    subscriber.save()
    subscriber.components.set(components)
    subscriber.regions.set(regions)


def _queue_confirmation(subscriber: Subscriber) -> bool:
    """Claim this address's one confirmation of the day and send it after commit.

    The claim is a conditional write on a row unique per address, so however many requests,
    processes or pages race, one wins per 24 hours.
    """
    digest = address_digest(subscriber.channel, subscriber.address)
    now = timezone.now()
    claimed = ConfirmationSend.objects.filter(
        channel=subscriber.channel, address_digest=digest, sent_at__lte=now - CONFIRMATION_INTERVAL
    ).update(sent_at=now)
    if not claimed:
        try:
            with transaction.atomic():
                ConfirmationSend.objects.create(channel=subscriber.channel, address_digest=digest, sent_at=now)
        except IntegrityError:
            return False
    subscriber_id = subscriber.pk
    transaction.on_commit(lambda: _enqueue_confirmation(subscriber_id))
    return True


def _enqueue_confirmation(subscriber_id: int) -> None:
    from django_q.tasks import async_task

    async_task("subscribers.tasks.send_confirmation", subscriber_id, task_name=f"confirm-{subscriber_id}")


def ip_allowed(ip: str | None) -> bool:
    """The per-IP cap on subscribe requests (a sliding hour in the shared cache)."""
    if not ip:
        return True
    key = f"subscribe-ip:{ip}:{timezone.now():%Y%m%d%H}"
    cache.add(key, 0, timeout=3600)
    try:
        count = cache.incr(key)
    except ValueError:  # evicted between add and incr
        cache.set(key, 1, timeout=3600)
        count = 1
    return count <= settings.SUBSCRIBE_MAX_PER_IP_PER_HOUR


@transaction.atomic
def subscriber_subscribe(
    *,
    page: Page,
    channel: str,
    address: str,
    phone_country: str = "",
    preferences: Preferences = Preferences(),
    source: str = ConsentSource.PUBLIC_PAGE,
    ip: str | None = None,
    explicit_consent: bool = False,
) -> Subscriber | None:
    """Someone asks to subscribe. Returns the subscriber, or None when nothing may happen.

    Callers answer the same way whatever this returns, so the response tells nothing about
    whether an address is new, subscribed or suppressed. Raises ValidationError for an address
    that is not one (field "address").
    """
    if channel not in Channel.values:
        raise ValidationError({"channel": "Choose email, SMS, webhook, Slack or Microsoft Teams."})
    try:
        address = normalise_address(channel, address, phone_country=phone_country)
    except ValidationError as exc:
        raise ValidationError({"address": exc.messages}) from None
    suppression = Suppression.objects.filter(channel=channel, address=address).first()
    if suppression is not None:
        if not explicit_consent:
            return None
        # A fresh, explicit consent on the public form lifts the suppression, and the ledger says so.
        suppression.delete()
        _record(None, ConsentAction.UNSUPPRESS, source, channel=channel, address=address, ip=ip,
                details={"reason": suppression.reason, "by": "fresh explicit consent"})
    subscriber = Subscriber.objects.select_for_update().filter(page=page, channel=channel, address=address).first()
    if subscriber is None:
        subscriber = Subscriber(page=page, channel=channel, address=address, phone_country=phone_country.upper()[:2])
        try:
            with transaction.atomic():
                _apply_preferences(subscriber, preferences)
        except IntegrityError:  # a concurrent request created it first
            return None
        _record(subscriber, ConsentAction.SUBSCRIBE, source, ip=ip)
    elif subscriber.status == SubscriberStatus.CONFIRMED:
        return subscriber  # nothing to do, and nothing to tell
    elif subscriber.status == SubscriberStatus.UNSUBSCRIBED:
        subscriber.status = SubscriberStatus.PENDING
        subscriber.unsubscribed_at = None
        _apply_preferences(subscriber, preferences)
        _record(subscriber, ConsentAction.RESUBSCRIBE, source, ip=ip)
    _queue_confirmation(subscriber)
    return subscriber


@transaction.atomic
def subscriber_resend_confirmation(*, subscriber: Subscriber) -> bool:
    """Send the confirmation again (at most once a day per address). False when not sent."""
    subscriber = Subscriber.objects.select_for_update().get(pk=subscriber.pk)
    if subscriber.status != SubscriberStatus.PENDING or is_suppressed(subscriber.channel, subscriber.address):
        return False
    return _queue_confirmation(subscriber)


@transaction.atomic
def subscriber_create(
    *,
    page: Page,
    channel: str,
    address: str,
    phone_country: str = "",
    preferences: Preferences = Preferences(),
    organization: Organization | None = None,
    skip_confirmation_reason: str = "",
    source: str = ConsentSource.ADMIN,
    actor=None,
) -> Subscriber:
    """Staff, the API or an import add a subscriber; skipping confirmation needs a recorded reason."""
    try:
        address = normalise_address(channel, address, phone_country=phone_country)
    except ValidationError as exc:
        raise ValidationError({"address": exc.messages}) from None
    if Subscriber.objects.filter(page=page, channel=channel, address=address).exists():
        raise ValidationError({"address": "This address is already subscribed on this channel."})
    if is_suppressed(channel, address):
        raise ValidationError({"address": "This address is on the suppression list; it cannot be added."})
    if organization is not None and organization.page_id != page.pk:
        raise ValidationError({"organization": "That customer account belongs to another page."})
    subscriber = Subscriber(page=page, channel=channel, address=address, phone_country=phone_country.upper()[:2], organization=organization)
    _apply_preferences(subscriber, preferences)
    _record(subscriber, ConsentAction.SUBSCRIBE, source, actor=actor)
    reason = skip_confirmation_reason.strip()
    if reason:
        subscriber.status = SubscriberStatus.CONFIRMED
        subscriber.confirmed_at = timezone.now()
        subscriber.confirmation_skipped_reason = reason[:200]
        subscriber.save(update_fields=["status", "confirmed_at", "confirmation_skipped_reason", "updated"])
        _record(subscriber, ConsentAction.CONFIRMATION_SKIPPED, source, actor=actor, details={"reason": reason[:200]})
    else:
        _queue_confirmation(subscriber)
    return subscriber


@transaction.atomic
def subscriber_confirm(*, subscriber: Subscriber, source: str = ConsentSource.PUBLIC_PAGE, ip: str | None = None) -> bool:
    """Confirm a pending subscriber (a link, a code, or an endpoint that accepted the test message).

    Returns False, changing nothing, when it was not pending or the address is now suppressed.
    """
    subscriber = Subscriber.objects.select_for_update().get(pk=subscriber.pk)
    if subscriber.status != SubscriberStatus.PENDING or is_suppressed(subscriber.channel, subscriber.address):
        return False
    subscriber.status = SubscriberStatus.CONFIRMED
    subscriber.confirmed_at = timezone.now()
    subscriber.sms_code_hash, subscriber.sms_code_expires_at, subscriber.sms_code_attempts = "", None, 0
    subscriber.save()
    _record(subscriber, ConsentAction.CONFIRM, source, ip=ip)
    return True


def _code_hash(subscriber: Subscriber, code: str) -> str:
    key = f"{settings.SECRET_KEY}:sms-code:{subscriber.public_id}".encode()
    return hmac.new(key, code.encode(), hashlib.sha256).hexdigest()


@transaction.atomic
def subscriber_issue_sms_code(*, subscriber: Subscriber) -> str:
    """A fresh six-digit code for an SMS subscriber; only its keyed hash is stored."""
    code = f"{secrets.randbelow(1_000_000):06d}"
    Subscriber.objects.filter(pk=subscriber.pk).update(
        sms_code_hash=_code_hash(subscriber, code), sms_code_expires_at=timezone.now() + SMS_CODE_TTL, sms_code_attempts=0,
    )
    return code


@transaction.atomic
def subscriber_verify_sms_code(*, subscriber: Subscriber, code: str, ip: str | None = None) -> bool:
    """Check a typed SMS code; five wrong tries or fifteen minutes spend it."""
    subscriber = Subscriber.objects.select_for_update().get(pk=subscriber.pk)
    if subscriber.status != SubscriberStatus.PENDING or not subscriber.sms_code_hash:
        return False
    expired = subscriber.sms_code_expires_at is None or subscriber.sms_code_expires_at < timezone.now()
    if expired or subscriber.sms_code_attempts >= SMS_CODE_MAX_ATTEMPTS:
        return False
    if not hmac.compare_digest(subscriber.sms_code_hash, _code_hash(subscriber, (code or "").strip())):
        Subscriber.objects.filter(pk=subscriber.pk).update(sms_code_attempts=subscriber.sms_code_attempts + 1)
        return False
    return subscriber_confirm(subscriber=subscriber, source=ConsentSource.PUBLIC_PAGE, ip=ip)


@transaction.atomic
def subscriber_update_preferences(
    *, subscriber: Subscriber, preferences: Preferences, source: str = ConsentSource.PUBLIC_PAGE, ip: str | None = None, actor=None,
) -> Subscriber:
    """Change what a subscriber hears about (their manage page, staff or the API)."""
    subscriber = Subscriber.objects.select_for_update().get(pk=subscriber.pk)
    if subscriber.erased_at:
        raise ValidationError("This subscription was erased.")
    _apply_preferences(subscriber, preferences)
    _record(subscriber, ConsentAction.PREFERENCES, source, ip=ip, actor=actor, details={
        "all_components": subscriber.all_components,
        "components": [c.public_id for c in preferences.components],
        "regions": [r.code for r in preferences.regions],
        "notify_incidents": subscriber.notify_incidents,
        "notify_maintenance": subscriber.notify_maintenance,
        "locale": subscriber.locale, "time_zone": subscriber.time_zone,
    })
    return subscriber


@transaction.atomic
def subscriber_unsubscribe(*, subscriber: Subscriber, source: str = ConsentSource.PUBLIC_PAGE, ip: str | None = None, actor=None) -> bool:
    """Stop all messages to this subscriber. Repeating it is harmless (returns False)."""
    subscriber = Subscriber.objects.select_for_update().get(pk=subscriber.pk)
    if subscriber.status == SubscriberStatus.UNSUBSCRIBED:
        return False
    subscriber.status = SubscriberStatus.UNSUBSCRIBED
    subscriber.unsubscribed_at = timezone.now()
    subscriber.save()
    _record(subscriber, ConsentAction.UNSUBSCRIBE, source, ip=ip, actor=actor)
    return True


@transaction.atomic
def subscriber_resubscribe_sms(*, subscriber: Subscriber, source: str = ConsentSource.PROVIDER) -> bool:
    """An SMS START reply: the number opted back in from its own phone, which is its confirmation."""
    subscriber = Subscriber.objects.select_for_update().get(pk=subscriber.pk)
    Suppression.objects.filter(channel=Channel.SMS, address=subscriber.address, reason=SuppressionReason.SMS_STOP).delete()
    if subscriber.status == SubscriberStatus.CONFIRMED or is_suppressed(subscriber.channel, subscriber.address):
        return False
    subscriber.status = SubscriberStatus.CONFIRMED
    subscriber.confirmed_at = timezone.now()
    subscriber.unsubscribed_at = None
    subscriber.save()
    _record(subscriber, ConsentAction.RESUBSCRIBE, source)
    return True


@transaction.atomic
def address_suppress(
    *, channel: str, address: str, reason: str, source: str = ConsentSource.ADMIN, note: str = "", actor=None,
) -> Suppression:
    """Put an address on the suppression list (it then wins over every subscription)."""
    if reason not in SuppressionReason.values:
        raise ValidationError({"reason": f"Unknown suppression reason {reason!r}."})
    suppression, created = Suppression.objects.get_or_create(
        channel=channel, address=address, defaults={"reason": reason, "source": source, "note": note[:500]},
    )
    if created:
        subscribers = list(Subscriber.objects.filter(channel=channel, address=address))
        for subscriber in subscribers:
            _record(subscriber, ConsentAction.SUPPRESS, source, actor=actor, details={"reason": reason, "note": note[:200]})
        if not subscribers:
            _record(None, ConsentAction.SUPPRESS, source, channel=channel, address=address, actor=actor, details={"reason": reason})
    return suppression


@transaction.atomic
def suppression_lift(*, suppression: Suppression, actor=None, note: str = "") -> None:
    """Staff lift a suppression (the subscriber still has to be confirmed to hear anything)."""
    _record(None, ConsentAction.UNSUPPRESS, ConsentSource.ADMIN, channel=suppression.channel, address=suppression.address,
            actor=actor, details={"reason": suppression.reason, "note": note[:200]})
    suppression.delete()


def subscriber_export(*, subscriber: Subscriber, actor=None) -> dict:
    """Everything we hold about a subscriber, as JSON-ready data (a data subject access request)."""
    with transaction.atomic():
        _record(subscriber, ConsentAction.EXPORT, ConsentSource.ADMIN, actor=actor)
    subscriber = Subscriber.objects.select_related("page", "organization", "incident").get(pk=subscriber.pk)
    return {
        "id": subscriber.public_id,
        "page": subscriber.page.name,
        "channel": subscriber.channel,
        "address": subscriber.address if not subscriber.erased_at else None,
        "status": subscriber.status,
        "organization": subscriber.organization.name if subscriber.organization else None,
        "all_components": subscriber.all_components,
        "components": [c.name for c in subscriber.components.all()],
        "incident": subscriber.incident.name if subscriber.incident else None,
        "notify_incidents": subscriber.notify_incidents,
        "notify_maintenance": subscriber.notify_maintenance,
        "regions": [r.code for r in subscriber.regions.all()],
        "locale": subscriber.locale,
        "time_zone": subscriber.time_zone,
        "created": subscriber.created.isoformat(),
        "confirmed_at": subscriber.confirmed_at.isoformat() if subscriber.confirmed_at else None,
        "unsubscribed_at": subscriber.unsubscribed_at.isoformat() if subscriber.unsubscribed_at else None,
        "consent_events": [
            {"action": e.action, "source": e.source, "at": e.created.isoformat(), "ip": e.ip_address,
             "consent_text_version": e.consent_text_version}
            for e in subscriber.consent_events.order_by("created", "pk")
        ],
    }


@transaction.atomic
def subscriber_erase(*, subscriber: Subscriber, actor=None) -> Subscriber:
    """Remove a subscriber's personal data from the live tables (right to erasure).

    The ledger keeps its events with the address digest only (proof of consent without the
    address); IP addresses in the ledger are removed. The compliance archive of sent messages
    is kept as the law requires (see README, "Personal data").
    """
    subscriber = Subscriber.objects.select_for_update().get(pk=subscriber.pk)
    digest = address_digest(subscriber.channel, subscriber.address)
    _record(subscriber, ConsentAction.ERASE, ConsentSource.ADMIN, actor=actor)
    ConsentEvent.objects.filter(subscriber=subscriber).update(ip_address=None)
    subscriber.address = f"erased:{digest[:24]}"
    subscriber.phone_country = ""
    subscriber.status = SubscriberStatus.UNSUBSCRIBED
    subscriber.unsubscribed_at = subscriber.unsubscribed_at or timezone.now()
    subscriber.locale = subscriber.time_zone = ""
    subscriber.sms_code_hash, subscriber.sms_code_expires_at = "", None
    subscriber.organization = None
    subscriber.erased_at = timezone.now()
    subscriber.save()
    subscriber.components.clear()
    subscriber.regions.clear()
    return subscriber


@transaction.atomic
def subscriber_delete(*, subscriber: Subscriber, source: str = ConsentSource.ADMIN, actor=None) -> None:
    """Delete a subscriber row; the ledger keeps its events (subscriber set to null, digest kept)."""
    _record(subscriber, ConsentAction.UNSUBSCRIBE, source, actor=actor, details={"deleted": True})
    subscriber.delete()


SMS_STOP_WORDS = {"stop", "stopall", "unsubscribe", "cancel", "end", "quit", "stop all", "opt out", "optout", "revoke"}
SMS_START_WORDS = {"start", "unstop", "yes", "subscribe", "resume", "opt in", "optin"}
SMS_HELP_WORDS = {"help", "info", "aide", "hilfe"}


def classify_sms_reply(body: str) -> str | None:
    """'stop', 'start', 'help' or None for an inbound SMS text (case, punctuation and padding ignored)."""
    words = "".join(ch if ch.isalnum() or ch.isspace() else " " for ch in (body or "").lower()).split()
    text = " ".join(words)
    if not text:
        return None
    if text in SMS_STOP_WORDS or (words[0] == "stop" and len(words) <= 3):
        return "stop"
    if text in SMS_START_WORDS or (words[0] == "start" and len(words) <= 3):
        return "start"
    if text in SMS_HELP_WORDS or words[0] == "help":
        return "help"
    return None


@transaction.atomic
def sms_reply_handle(*, from_number: str, body: str) -> str | None:
    """Act on a verified inbound SMS: STOP suppresses and unsubscribes, START opts back in.

    Returns the keyword handled ('stop', 'start', 'help') or None.
    """
    keyword = classify_sms_reply(body)
    if keyword is None:
        return None
    try:
        number = normalise_address(Channel.SMS, from_number)
    except ValidationError:
        return None
    subscribers = list(Subscriber.objects.filter(channel=Channel.SMS, address=number))
    if keyword == "stop":
        address_suppress(channel=Channel.SMS, address=number, reason=SuppressionReason.SMS_STOP, source=ConsentSource.PROVIDER)
        for subscriber in subscribers:
            subscriber_unsubscribe(subscriber=subscriber, source=ConsentSource.PROVIDER)
    elif keyword == "start":
        Suppression.objects.filter(channel=Channel.SMS, address=number, reason=SuppressionReason.SMS_STOP).delete()
        for subscriber in subscribers:
            subscriber_resubscribe_sms(subscriber=subscriber)
    return keyword
