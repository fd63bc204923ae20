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
from django.db.models import Count, Q
from django.utils import timezone

from incidents.models import Component, Incident, Page, Region
from subscribers.addresses import normalise_address, normalise_phone
from subscribers.models import (
    AccountContact,
    ApiToken,
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
    Tier,
    address_digest,
    normalise_scopes,
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


# --- API helpers ---
# Used by the public v2 subscribe API and the management API (subscribers/api.py).

API_TOKEN_PREFIX = "sp_"
# Writing last_used_at on every request would turn each API read into a write; a minute is precise enough.
API_TOKEN_TOUCH_INTERVAL = timedelta(minutes=1)


def api_token_digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@transaction.atomic
def api_token_create(*, user, name: str, scopes: Iterable[str] | str) -> tuple[ApiToken, str]:
    """A new management API key for `user`. Returns the token and the key, which is stored only as its SHA-256.

    `scopes`: read, write, publish (a list or "read,write"); the scopes each implies are added.
    """
    scopes = normalise_scopes(scopes)
    if not (user.is_active and user.is_staff):
        # The API refuses keys of anyone else, so a key for them would never work.
        raise ValidationError({"user": "API keys act for active staff users only."})
    key = API_TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(user=user, name=(name or "").strip(), scopes=scopes, key_digest=api_token_digest(key), prefix=key[:8])
    token.full_clean()
    token.save()
    return token, key


@transaction.atomic
def api_token_revoke(*, token: ApiToken) -> bool:
    """Refuse the key from now on. Repeating it is harmless (returns False)."""
    revoked = ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
    token.refresh_from_db(fields=["revoked_at"])
    return bool(revoked)


def api_token_record_use(*, token: ApiToken) -> None:
    """Note that a key was used, at most once a minute per key (a conditional update, so concurrent requests write once)."""
    now = timezone.now()
    if token.last_used_at is not None and token.last_used_at > now - API_TOKEN_TOUCH_INTERVAL:
        return
    ApiToken.objects.filter(pk=token.pk).filter(
        Q(last_used_at__isnull=True) | Q(last_used_at__lte=now - API_TOKEN_TOUCH_INTERVAL)
    ).update(last_used_at=now)
    token.last_used_at = now


def subscriber_state_histogram(*, page: Page) -> dict:
    """Subscribers of a page counted by state, overall and per channel (one grouped query)."""
    states = SubscriberStatus.values
    by_channel = {channel: dict.fromkeys(states, 0) for channel in Channel.values}
    rows = Subscriber.objects.filter(page=page).values("channel", "status").annotate(n=Count("pk")).order_by()
    for row in rows:
        by_channel.setdefault(row["channel"], dict.fromkeys(states, 0))[row["status"]] = row["n"]
    totals = {state: sum(counts[state] for counts in by_channel.values()) for state in states}
    return {**totals, "channels": by_channel}


# --- admin and import helpers ---


@transaction.atomic
def organization_save(*, organization: Organization) -> Organization:
    """Create or change a customer account (admin); validated before saving."""
    organization.name = organization.name.strip()
    organization.external_id = organization.external_id.strip()
    if organization.region_id is not None and organization.region.page_id != organization.page_id:
        raise ValidationError({"region": "Choose a region of this account's status page."})
    organization.full_clean()
    organization.save()
    return organization


@transaction.atomic
def organization_upsert(
    *, page: Page, name: str = "", external_id: str = "", tier: str = "", region: Region | None = None, sla: str = "",
) -> tuple[Organization, str]:
    """Find a customer account by CRM id (else by name) and bring it up to date; creates it when missing.

    Empty values leave what the account has. Returns the account and "created", "updated" or "unchanged".
    """
    name, external_id, sla = name.strip(), external_id.strip(), sla.strip()
    organization = None
    if external_id:
        organization = Organization.objects.select_for_update().filter(page=page, external_id=external_id).first()
        if organization is None and name:
            # An account first entered by hand (no CRM id yet) is adopted by its name.
            organization = Organization.objects.select_for_update().filter(
                page=page, external_id="", name__iexact=name
            ).first()
    elif name:
        organization = Organization.objects.select_for_update().filter(page=page, name__iexact=name).order_by("pk").first()
    if organization is None:
        if not name:
            raise ValidationError({"name": "A new customer account needs a name."})
        organization = Organization(page=page, name=name, external_id=external_id, tier=tier or Tier.STANDARD, region=region, sla=sla)
        return organization_save(organization=organization), "created"
    wanted = {"external_id": external_id, "tier": tier, "region": region, "sla": sla}
    if external_id and name:
        wanted["name"] = name
    changed = False
    for field, value in wanted.items():
        if value in ("", None) or getattr(organization, field) == value:
            continue
        setattr(organization, field, value)
        changed = True
    if not changed:
        return organization, "unchanged"
    return organization_save(organization=organization), "updated"


@transaction.atomic
def account_contact_save(*, contact: AccountContact) -> AccountContact:
    """Create or change an enterprise contact; the phone number is stored in E.164."""
    if contact.phone:
        try:
            contact.phone = normalise_phone(contact.phone)
        except ValidationError as exc:
            raise ValidationError({"phone": exc.messages}) from None
    contact.full_clean()
    contact.save()
    return contact


@transaction.atomic
def account_contact_upsert(
    *, organization: Organization, name: str, phone: str, role: str = "", email: str = "", phone_country: str = "",
) -> tuple[AccountContact, str]:
    """The account's contact with this phone number, created or brought up to date (an import).

    Returns the contact and "created", "updated" or "unchanged".
    """
    try:
        phone = normalise_phone(phone, phone_country)
    except ValidationError as exc:
        raise ValidationError({"phone": exc.messages}) from None
    contact = AccountContact.objects.select_for_update().filter(organization=organization, phone=phone).first()
    if contact is None:
        contact = AccountContact(organization=organization, name=name.strip(), role=role.strip(), phone=phone, email=email.strip())
        return account_contact_save(contact=contact), "created"
    wanted = {"name": name.strip(), "role": role.strip(), "email": email.strip()}
    changed = {field: value for field, value in wanted.items() if value and getattr(contact, field) != value}
    if not changed:
        return contact, "unchanged"
    for field, value in changed.items():
        setattr(contact, field, value)
    return account_contact_save(contact=contact), "updated"


@transaction.atomic
def subscriber_set_organization(*, subscriber: Subscriber, organization: Organization | None) -> Subscriber:
    """Link a subscriber to a customer account of its page, or unlink it."""
    subscriber = Subscriber.objects.select_for_update().get(pk=subscriber.pk)
    if subscriber.erased_at and organization is not None:
        raise ValidationError({"organization": "This subscription was erased."})
    if organization is not None and organization.page_id != subscriber.page_id:
        raise ValidationError({"organization": "That customer account belongs to another page."})
    if subscriber.organization_id != (organization.pk if organization else None):
        subscriber.organization = organization
        subscriber.save(update_fields=["organization", "updated"])
    return subscriber
