"""What leaves the building, and the record of it."""
from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

# --- compliance archive ---
#
# Every message that left (email, SMS, webhook, chat, each update published on the page) is
# archived as sent, append-only and hash-chained; notifications.archive writes, verifies,
# exports and purges it. Rows are never changed in place: the model, its queryset, the admin
# and (on PostgreSQL) a trigger refuse it. The one exception is Django's on_delete=SET_NULL
# detaching a deleted page/incident/update/subscriber: the frozen public ids keep the record
# meaningful and are what the hash covers, so the chain stays intact.


class ArchiveImmutable(Exception):
    """An attempt to change or delete an archived message (or a purge checkpoint)."""


class ArchiveChannel(models.TextChoices):
    EMAIL = "email", "Email"
    SMS = "sms", "SMS"
    WEBHOOK = "webhook", "Webhook"
    SLACK = "slack", "Slack"
    TEAMS = "teams", "Microsoft Teams"
    PAGE = "page", "Status page"
    CHAT = "chat", "Chat / social"


# Channels whose recipient is a URL; webhook, Slack and Teams URLs carry secrets, so the
# admin list shows their host only.
URL_ARCHIVE_CHANNELS = frozenset({ArchiveChannel.WEBHOOK, ArchiveChannel.SLACK, ArchiveChannel.TEAMS, ArchiveChannel.PAGE, ArchiveChannel.CHAT})


class ArchiveKind:
    """Known message kinds. The field is free text so a new kind needs no migration."""

    CONFIRMATION = "confirmation"
    NOTIFICATION = "notification"
    PAGE_UPDATE = "page_update"
    REMINDER = "reminder"
    QUARANTINE_NOTICE = "quarantine_notice"


# The only columns an UPDATE may touch, and only to set them NULL: Django's SET_NULL when the
# page, incident, update or subscriber a message came from is deleted.
DETACHABLE_FIELDS = frozenset({"page", "page_id", "incident", "incident_id", "update", "update_id", "subscriber", "subscriber_id"})


class ArchivedMessageQuerySet(models.QuerySet):
    def update(self, **kwargs):
        if kwargs and set(kwargs) <= DETACHABLE_FIELDS and all(value is None for value in kwargs.values()):
            # Django's collector detaching rows from a deleted page/incident/update/subscriber.
            return super().update(**kwargs)
        raise ArchiveImmutable("Archived messages are append-only; they cannot be updated.")

    def delete(self):
        raise ArchiveImmutable("Archived messages are append-only; only archive_purge removes expired rows.")

    def _purge_delete(self) -> int:
        """The narrow escape hatch for notifications.archive.archive_purge and nothing else.

        The caller holds the archive lock, deletes only a contiguous prefix of the sequence and
        records an ArchiveCheckpoint in the same transaction, so verification still holds.
        On PostgreSQL the caller must first SET LOCAL statuspage.archive_purge = 'on'.
        """
        return self._raw_delete(self.db)


class ArchivedMessage(models.Model):
    """One message as it was sent; a link in the archive's hash chain."""

    sequence = models.BigIntegerField(unique=True, editable=False)
    created = models.DateTimeField(editable=False, db_index=True)
    channel = models.CharField(max_length=16, choices=ArchiveChannel.choices)
    kind = models.CharField(max_length=40)
    recipient = models.TextField(help_text="The address, number or URL the message went to, as sent.")
    subject = models.TextField(blank=True)
    text_body = models.TextField(blank=True)
    html_body = models.TextField(blank=True)
    headers = models.JSONField(default=dict, blank=True)
    payload = models.JSONField(null=True, blank=True)
    # Links for navigation only; the frozen *_public_id copies are the record (and are hashed).
    page = models.ForeignKey("incidents.Page", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    incident = models.ForeignKey("incidents.Incident", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    update = models.ForeignKey("incidents.IncidentUpdate", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    subscriber = models.ForeignKey("subscribers.Subscriber", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    page_public_id = models.CharField(max_length=12, blank=True, db_index=True)
    incident_public_id = models.CharField(max_length=12, blank=True, db_index=True)
    update_public_id = models.CharField(max_length=12, blank=True)
    subscriber_public_id = models.CharField(max_length=12, blank=True, db_index=True)
    template_version = models.CharField(max_length=64, blank=True)
    policy_version = models.CharField(max_length=64, blank=True)
    approvals = models.JSONField(default=list, blank=True)
    revision = models.CharField(max_length=64, blank=True)
    provider_id = models.CharField(max_length=255, blank=True, db_index=True)
    attempts = models.PositiveIntegerField(default=1)
    sent_at = models.DateTimeField(null=True, blank=True)
    message_id = models.CharField(max_length=255, blank=True, help_text="The email Message-ID header, when there was one.")
    content_sha256 = models.CharField(max_length=64, editable=False)
    prev_hash = models.CharField(max_length=64, editable=False)
    hash = models.CharField(max_length=64, editable=False)

    objects = ArchivedMessageQuerySet.as_manager()

    class Meta:
        ordering = ["-sequence"]
        # The collector (deleting a subscriber or incident) goes through the base manager: make
        # it ours so its update() is the guarded one.
        base_manager_name = "objects"
        verbose_name = "archived message"
        constraints = [
            models.CheckConstraint(condition=Q(sequence__gte=1), name="archived_message_sequence_positive"),
        ]

    def __str__(self) -> str:
        return f"#{self.sequence} {self.channel} {self.kind}"

    def save(self, *args, **kwargs) -> None:
        if not self._state.adding:
            raise ArchiveImmutable("Archived messages are append-only; they cannot be changed.")
        kwargs["force_insert"] = True
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ArchiveImmutable("Archived messages are append-only; only archive_purge removes expired rows.")


class ArchiveCheckpointQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise ArchiveImmutable("Purge checkpoints cannot be changed.")

    def delete(self):
        raise ArchiveImmutable("Purge checkpoints cannot be deleted.")


class ArchiveCheckpoint(models.Model):
    """Where the chain continues after a purge: the last purged sequence and its hash.

    archive_verify starts from the newest checkpoint, so removing expired rows (always a
    contiguous prefix of the sequence) leaves the rest of the chain verifiable.
    """

    sequence = models.BigIntegerField(unique=True, editable=False)
    hash = models.CharField(max_length=64, editable=False)
    purged_count = models.PositiveIntegerField(editable=False)
    before = models.DateTimeField(editable=False, help_text="The retention cut-off of the purge.")
    created = models.DateTimeField(editable=False)

    objects = ArchiveCheckpointQuerySet.as_manager()

    class Meta:
        ordering = ["-sequence"]
        base_manager_name = "objects"

    def __str__(self) -> str:
        return f"purged through #{self.sequence}"

    def save(self, *args, **kwargs) -> None:
        if not self._state.adding:
            raise ArchiveImmutable("Purge checkpoints cannot be changed.")
        kwargs["force_insert"] = True
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ArchiveImmutable("Purge checkpoints cannot be deleted.")


class LegalHold(models.Model):
    """Keeps archived messages from being purged: of one incident, one page, or a time window.

    The scope is kept as frozen public ids (and times), so a hold outlives the deletion of the
    incident or page it names. A hold is released, never deleted.
    """

    incident = models.ForeignKey("incidents.Incident", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    page = models.ForeignKey("incidents.Page", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    incident_public_id = models.CharField(max_length=12, blank=True, editable=False)
    page_public_id = models.CharField(max_length=12, blank=True, editable=False)
    starts_at = models.DateTimeField(null=True, blank=True, help_text="Hold messages archived from this time ...")
    ends_at = models.DateTimeField(null=True, blank=True, help_text="... until this time (exclusive).")
    reason = models.TextField(help_text="Why the messages must be kept (matter, request, reference).")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    created = models.DateTimeField(editable=False)
    released_at = models.DateTimeField(null=True, blank=True, editable=False)
    released_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")

    class Meta:
        ordering = ["-created"]
        constraints = [
            models.CheckConstraint(
                name="legal_hold_one_scope",
                condition=(
                    (~Q(incident_public_id="") & Q(page_public_id="") & Q(starts_at__isnull=True) & Q(ends_at__isnull=True))
                    | (Q(incident_public_id="") & ~Q(page_public_id="") & Q(starts_at__isnull=True) & Q(ends_at__isnull=True))
                    | (Q(incident_public_id="") & Q(page_public_id="") & Q(starts_at__isnull=False) & Q(ends_at__isnull=False) & Q(ends_at__gt=models.F("starts_at")))
                ),
            ),
        ]

    def __str__(self) -> str:
        return f"Legal hold on {self.scope_label}"

    @property
    def scope_label(self) -> str:
        if self.incident_public_id:
            return f"incident {self.incident.name if self.incident else self.incident_public_id}"
        if self.page_public_id:
            return f"page {self.page.name if self.page else self.page_public_id}"
        return f"{self.starts_at:%Y-%m-%d %H:%M} to {self.ends_at:%Y-%m-%d %H:%M}"

    @property
    def is_active(self) -> bool:
        return self.released_at is None

    def holds(self) -> Q:
        """The archived messages this hold keeps."""
        if self.incident_public_id:
            return Q(incident_public_id=self.incident_public_id)
        if self.page_public_id:
            return Q(page_public_id=self.page_public_id)
        return Q(created__gte=self.starts_at, created__lt=self.ends_at)


# --- delivery ledger ---
# One Dispatch per published update, one Delivery per recipient x channel, written before
# anything is sent. Tasks carry ids only; these rows are the record of what went out.

from django.utils import timezone  # noqa: E402 - kept inside this block, which has its own owner


class DispatchKind(models.TextChoices):
    INCIDENT = "incident", "Incident update"
    MAINTENANCE = "maintenance", "Maintenance notice"


class DispatchStatus(models.TextChoices):
    PENDING = "pending", "Waiting to expand"
    EXPANDING = "expanding", "Finding recipients"
    SENDING = "sending", "Sending"
    DONE = "done", "Done"


class Dispatch(models.Model):
    """The fan-out of one published update (or maintenance notice) to its audience."""

    update = models.OneToOneField("incidents.IncidentUpdate", on_delete=models.CASCADE, related_name="dispatch")
    incident = models.ForeignKey("incidents.Incident", on_delete=models.CASCADE, related_name="dispatches")
    page = models.ForeignKey("incidents.Page", on_delete=models.CASCADE, related_name="dispatches")
    kind = models.CharField(max_length=12, choices=DispatchKind.choices)
    severity = models.CharField(max_length=2, blank=True, help_text="The incident's severity when it was published.")
    # What the update went out under, copied at the publish so every message records it: the
    # severity policy version and its rules for this severity (the channel matrix), the
    # template version, the approvals and the draft revision.
    policy_version = models.CharField(max_length=64, blank=True)
    policy_rules = models.JSONField(default=dict, blank=True)
    template_version = models.CharField(max_length=64, blank=True)
    approvals = models.JSONField(default=list, blank=True)
    revision = models.CharField(max_length=64, blank=True)
    # A false-alarm notice: only subscribers who were sent something about the incident hear it.
    notified_only = models.BooleanField(default=False)
    status = models.CharField(max_length=12, choices=DispatchStatus.choices, default=DispatchStatus.PENDING)
    recipients = models.PositiveIntegerField(default=0, help_text="Deliveries created by the expansion.")
    # The last subscriber id expanded: a worker killed mid fan-out is resumed from here.
    expanded_through = models.BigIntegerField(default=0, editable=False)
    # An expansion that dies is taken over once its lease runs out (see sweep_deliveries).
    claimed_until = models.DateTimeField(null=True, blank=True)
    created = models.DateTimeField(default=timezone.now, editable=False)
    expanded_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created", "-id"]
        verbose_name_plural = "dispatches"
        indexes = [
            # sweep_deliveries: dispatches still pending/expanding/sending, oldest first
            models.Index(
                fields=["status", "created"], name="dispatch_unfinished",
                condition=~Q(status="done"),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.incident} ({self.get_kind_display()}, {self.created:%Y-%m-%d %H:%M})"


class DeliveryStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    SENDING = "sending", "Sending"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed (permanent)"
    DEAD = "dead", "Gave up after retries"
    SKIPPED = "skipped", "Skipped (unsubscribed or suppressed)"


class TrackingStatus(models.TextChoices):
    """What the provider reported after the send (anymail tracking, SMS status callbacks).

    Ordered: queued < sent < delivered < the terminal outcomes; a delivery only moves forward.
    """
    QUEUED = "queued", "Queued at the provider"
    SENT = "sent", "Sent by the provider"
    DELIVERED = "delivered", "Delivered"
    BOUNCED = "bounced", "Bounced"
    REJECTED = "rejected", "Rejected"
    COMPLAINED = "complained", "Marked as spam"
    FAILED = "failed", "Undelivered"


class Delivery(models.Model):
    """One message of a dispatch to one subscriber on one channel."""

    dispatch = models.ForeignKey(Dispatch, on_delete=models.CASCADE, related_name="deliveries")
    # SET_NULL: erasing a subscriber must not be blocked by (or erase) the operational record;
    # channel and address are copied at expansion, and the archive keeps what was sent.
    subscriber = models.ForeignKey(
        "subscribers.Subscriber", on_delete=models.SET_NULL, null=True, blank=True, related_name="deliveries"
    )
    channel = models.CharField(max_length=8)
    address = models.CharField(max_length=500)
    status = models.CharField(max_length=8, choices=DeliveryStatus.choices, default=DeliveryStatus.QUEUED)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    claimed_until = models.DateTimeField(null=True, blank=True)
    # Set by the claiming UPDATE: the worker reads back exactly the rows it won.
    claim_token = models.CharField(max_length=32, blank=True, editable=False)
    # Stable across retries: receivers and ESPs drop repeats by these.
    idempotency_key = models.CharField(max_length=64, unique=True, editable=False)
    message_id = models.CharField(max_length=200, blank=True, editable=False)
    provider_id = models.CharField(max_length=200, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    created = models.DateTimeField(default=timezone.now, editable=False)
    sent_at = models.DateTimeField(null=True, blank=True)
    # Set by provider tracking events only (see notifications.services.tracking_event_record).
    provider_status = models.CharField(max_length=12, choices=TrackingStatus.choices, blank=True)

    class Meta:
        ordering = ["id"]
        verbose_name_plural = "deliveries"
        constraints = [
            models.UniqueConstraint(fields=["dispatch", "subscriber", "channel"], name="delivery_once_per_recipient"),
        ]
        indexes = [
            # deliveries_send / sweep_deliveries: status='queued' AND next_attempt_at <= now
            models.Index(fields=["next_attempt_at"], condition=Q(status="queued"), name="delivery_due"),
            # sweep_deliveries: status='sending' AND claimed_until < now (a worker died holding it)
            models.Index(fields=["claimed_until"], condition=Q(status="sending"), name="delivery_claim_expired"),
            # dispatch_finish_if_done: any queued or sending delivery left for a dispatch? Without
            # it the check walks every finished row of a big dispatch, once per send batch.
            models.Index(fields=["dispatch"], condition=Q(status__in=["queued", "sending"]), name="delivery_open"),
        ]

    def __str__(self) -> str:
        return f"{self.channel} delivery {self.pk} ({self.status})"


class DeliveryEvent(models.Model):
    """What a provider later reported about a delivery (delivered, bounced, ...)."""

    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="events")
    provider_event_id = models.CharField(max_length=200, unique=True)
    kind = models.CharField(max_length=32)
    payload = models.JSONField(default=dict, blank=True)
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created", "id"]

    def __str__(self) -> str:
        return f"{self.kind} for delivery {self.delivery_id}"
