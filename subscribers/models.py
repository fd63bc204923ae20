"""Who hears what, and how they leave: subscribers, customer accounts, consent and suppression."""
from __future__ import annotations

import hashlib

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.utils import timezone

from incidents.models import Component, Page, Region, public_id_field, validate_time_zone


class Tier(models.TextChoices):
    ENTERPRISE = "enterprise", "Enterprise"
    BUSINESS = "business", "Business"
    STANDARD = "standard", "Standard"


class Organization(models.Model):
    """A customer account from the CRM: its tier and region steer who is told what, and how."""

    public_id = public_id_field()
    page = models.ForeignKey(Page, on_delete=models.CASCADE, related_name="organizations")
    name = models.CharField(max_length=200)
    external_id = models.CharField(max_length=100, blank=True, help_text="The account's id in the CRM.")
    tier = models.CharField(max_length=16, choices=Tier.choices, default=Tier.STANDARD)
    region = models.ForeignKey(Region, on_delete=models.SET_NULL, null=True, blank=True, related_name="organizations")
    sla = models.CharField(max_length=100, blank=True, help_text="The contractual SLA, e.g. 99.95% monthly.")
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        verbose_name = "customer account"
        constraints = [
            models.UniqueConstraint(
                fields=["page", "external_id"], condition=~Q(external_id=""), name="organization_external_id_unique"
            ),
        ]

    def __str__(self) -> str:
        return self.name


class AccountContact(models.Model):
    """A named person at an enterprise account whom account managers call directly in a P1."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="contacts")
    name = models.CharField(max_length=200)
    role = models.CharField(max_length=100, blank=True)
    phone = models.CharField(max_length=20, blank=True, help_text="E.164, e.g. +31201234567")
    email = models.EmailField(blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.organization})"


class Channel(models.TextChoices):
    EMAIL = "email", "Email"
    SMS = "sms", "SMS"
    WEBHOOK = "webhook", "Webhook"
    SLACK = "slack", "Slack"
    TEAMS = "teams", "Microsoft Teams"


URL_CHANNELS = (Channel.WEBHOOK, Channel.SLACK, Channel.TEAMS)


class SubscriberStatus(models.TextChoices):
    PENDING = "pending", "Waiting for confirmation"
    CONFIRMED = "confirmed", "Confirmed"
    UNSUBSCRIBED = "unsubscribed", "Unsubscribed"


class Subscriber(models.Model):
    """One address on one channel. Nobody is notified before status is confirmed."""

    public_id = public_id_field()
    page = models.ForeignKey(Page, on_delete=models.CASCADE, related_name="subscribers")
    channel = models.CharField(max_length=8, choices=Channel.choices)
    # Normalised: lower-cased email, E.164 phone number, or the endpoint URL as entered.
    address = models.CharField(max_length=500)
    phone_country = models.CharField(max_length=2, blank=True)
    status = models.CharField(max_length=16, choices=SubscriberStatus.choices, default=SubscriberStatus.PENDING)
    organization = models.ForeignKey(Organization, on_delete=models.SET_NULL, null=True, blank=True, related_name="subscribers")
    # What they hear about.
    all_components = models.BooleanField(default=True, help_text="Everything on the page, now and later.")
    components = models.ManyToManyField(Component, blank=True, related_name="subscribers")
    incident = models.ForeignKey(
        "incidents.Incident", on_delete=models.CASCADE, null=True, blank=True, related_name="subscribers",
        help_text="Set when they follow one incident only.",
    )
    notify_incidents = models.BooleanField(default=True)
    notify_maintenance = models.BooleanField(default=True)
    regions = models.ManyToManyField(Region, blank=True, related_name="subscribers", help_text="None: every region.")
    locale = models.CharField(max_length=10, blank=True, help_text="Empty: the page's language.")
    time_zone = models.CharField(max_length=64, blank=True, validators=[validate_time_zone])
    # Confirmation.
    confirmed_at = models.DateTimeField(null=True, blank=True)
    confirmation_skipped_reason = models.CharField(max_length=200, blank=True)
    sms_code_hash = models.CharField(max_length=64, blank=True, editable=False)
    sms_code_expires_at = models.DateTimeField(null=True, blank=True, editable=False)
    sms_code_attempts = models.PositiveSmallIntegerField(default=0, editable=False)
    unsubscribed_at = models.DateTimeField(null=True, blank=True)
    quarantined_at = models.DateTimeField(null=True, blank=True)
    # Webhook/Slack/Teams endpoints: when the current run of failed deliveries began (None
    # once one succeeds), and when the owner was told of the quarantine (told once only).
    endpoint_failing_since = models.DateTimeField(null=True, blank=True, editable=False)
    quarantine_notified_at = models.DateTimeField(null=True, blank=True, editable=False)
    erased_at = models.DateTimeField(null=True, blank=True)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created"]
        constraints = [
            models.UniqueConstraint(fields=["page", "channel", "address"], name="subscriber_address_once_per_channel"),
            models.CheckConstraint(
                condition=~Q(status=SubscriberStatus.CONFIRMED) | Q(confirmed_at__isnull=False),
                name="confirmed_subscriber_has_confirmed_at",
            ),
        ]
        indexes = [
            # audience selection: confirmed subscribers of a page by channel
            models.Index(fields=["page", "status", "channel"], name="subscriber_audience"),
        ]

    def __str__(self) -> str:
        return f"{self.get_channel_display()}: {self.display_address}"

    @property
    def display_address(self) -> str:
        if self.erased_at:
            return "(erased)"
        if self.channel in URL_CHANNELS:
            # Endpoint URLs often carry secrets in their path (Slack, Teams): show the host only.
            from urllib.parse import urlsplit

            return f"{urlsplit(self.address).hostname or ''}/…"
        return self.address

    @property
    def is_confirmed(self) -> bool:
        return self.status == SubscriberStatus.CONFIRMED


def address_digest(channel: str, address: str) -> str:
    """A stable, non-reversible key for an address: what the ledger keeps after an erasure."""
    return hashlib.sha256(f"{settings.SECRET_KEY}:{channel}:{address}".encode()).hexdigest()


class ConsentAction(models.TextChoices):
    SUBSCRIBE = "subscribe", "Subscribed"
    CONFIRM = "confirm", "Confirmed"
    PREFERENCES = "preferences", "Changed preferences"
    UNSUBSCRIBE = "unsubscribe", "Unsubscribed"
    RESUBSCRIBE = "resubscribe", "Subscribed again"
    SUPPRESS = "suppress", "Suppressed"
    UNSUPPRESS = "unsuppress", "Suppression lifted"
    CONFIRMATION_SKIPPED = "confirmation_skipped", "Confirmation skipped"
    ERASE = "erase", "Personal data erased"
    EXPORT = "export", "Personal data exported"
    QUARANTINE = "quarantine", "Endpoint quarantined"


class ConsentSource(models.TextChoices):
    PUBLIC_PAGE = "public_page", "Public page"
    API = "api", "API"
    ADMIN = "admin", "Admin"
    IMPORT = "import", "Import"
    PROVIDER = "provider", "Provider"
    EMAIL_CLIENT = "email_client", "Email client (one-click)"


class ConsentEvent(models.Model):
    """The consent ledger: append-only evidence of what each subscriber agreed to, and when."""

    subscriber = models.ForeignKey(Subscriber, on_delete=models.SET_NULL, null=True, blank=True, related_name="consent_events")
    address_digest = models.CharField(max_length=64, db_index=True)
    channel = models.CharField(max_length=8, choices=Channel.choices)
    action = models.CharField(max_length=24, choices=ConsentAction.choices)
    source = models.CharField(max_length=16, choices=ConsentSource.choices)
    consent_text_version = models.CharField(max_length=32, blank=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    details = models.JSONField(default=dict, blank=True)
    created = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created", "-id"]

    def __str__(self) -> str:
        return f"{self.get_action_display()} via {self.get_source_display()}"


class SuppressionReason(models.TextChoices):
    HARD_BOUNCE = "hard_bounce", "Hard bounce"
    COMPLAINT = "complaint", "Spam complaint"
    INVALID_NUMBER = "invalid_number", "Invalid number (provider)"
    SMS_STOP = "sms_stop", "Replied STOP"
    MANUAL = "manual", "Blocked by staff"


class Suppression(models.Model):
    """An address we must not message. It wins over every subscription."""

    channel = models.CharField(max_length=8, choices=Channel.choices)
    address = models.CharField(max_length=500)
    reason = models.CharField(max_length=16, choices=SuppressionReason.choices)
    source = models.CharField(max_length=16, choices=ConsentSource.choices, default=ConsentSource.ADMIN)
    note = models.CharField(max_length=500, blank=True)
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created"]
        constraints = [models.UniqueConstraint(fields=["channel", "address"], name="suppression_once_per_address")]

    def __str__(self) -> str:
        return f"{self.address} ({self.get_reason_display()})"


class ConfirmationSend(models.Model):
    """When a confirmation last went to an address: at most one per address per day, whoever asks."""

    channel = models.CharField(max_length=8, choices=Channel.choices)
    address_digest = models.CharField(max_length=64)
    sent_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["channel", "address_digest"], name="confirmation_send_once_per_address")]


class ApiScope(models.TextChoices):
    """What a management API key may do. Each scope includes the ones before it."""

    READ = "read", "Read"
    WRITE = "write", "Write"
    PUBLISH = "publish", "Publish"


# A key that may write must be able to read what it wrote, and publishing is a write: the
# implied scopes are stored too, so a check is one membership test and the admin shows them all.
SCOPE_IMPLIES = {ApiScope.READ: (), ApiScope.WRITE: (ApiScope.READ,), ApiScope.PUBLISH: (ApiScope.READ, ApiScope.WRITE)}


def normalise_scopes(values) -> list[str]:
    """`"read,write"` or `["publish"]` -> the canonical list with implied scopes, in a fixed order.

    Raises ValidationError naming the unknown scope, or when none is given (deny by default).
    """
    if isinstance(values, str):
        values = values.split(",")
    wanted = {str(value).strip().lower() for value in values or () if str(value).strip()}
    unknown = sorted(wanted - set(ApiScope.values))
    if unknown:
        raise ValidationError({"scopes": f"Unknown scope {', '.join(unknown)}; use {', '.join(ApiScope.values)}."})
    if not wanted:
        raise ValidationError({"scopes": f"Give at least one scope: {', '.join(ApiScope.values)}."})
    for scope in list(wanted):
        wanted.update(SCOPE_IMPLIES[ApiScope(scope)])
    return [scope for scope in ApiScope.values if scope in wanted]


def validate_scopes(value) -> None:
    if not isinstance(value, list) or value != normalise_scopes(value):
        raise ValidationError("Scopes must be a list of read, write, publish with the scopes they imply.")


class ApiToken(models.Model):
    """A management API key. Only its SHA-256 is stored; the key is shown once, when created."""

    Scope = ApiScope

    name = models.CharField(max_length=100)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    key_digest = models.CharField(max_length=64, unique=True, editable=False)
    prefix = models.CharField(max_length=8, editable=False, help_text="The key's first characters, to recognise it.")
    scopes = models.JSONField(
        default=list, validators=[validate_scopes],
        help_text="read: GET only; write: also create and change; publish: also approve and publish updates.",
    )
    created = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created"]
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    def has_scope(self, scope: str) -> bool:
        return scope in (self.scopes or ())
