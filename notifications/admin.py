"""Admin for what leaves the building."""
from __future__ import annotations

from urllib.parse import urlsplit

from django import forms
from django.contrib import admin, messages
from django.utils.text import Truncator

from notifications import archive
from notifications.models import URL_ARCHIVE_CHANNELS, ArchiveCheckpoint, ArchivedMessage, LegalHold
from statuspage.lib.admin import ReadOnlyAdminMixin

# --- compliance archive ---


def masked_recipient(channel: str, recipient: str) -> str:
    """Webhook, Slack and Teams URLs carry secrets in their path: lists show the host only."""
    if channel not in URL_ARCHIVE_CHANNELS:
        return recipient
    parts = urlsplit(recipient)
    if not parts.hostname:
        return "(hidden)"
    return f"{parts.scheme}://{parts.hostname}/…"


@admin.register(ArchivedMessage)
class ArchivedMessageAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Searchable, never changed: the record of every message as it was sent."""

    list_display = ("sequence", "created", "channel", "kind", "recipient_masked", "subject_short", "incident_public_id", "provider_id")
    list_display_links = ("sequence",)
    list_filter = ("channel", "kind", ("created", admin.DateFieldListFilter))
    date_hierarchy = "created"
    search_fields = (
        "recipient", "subject", "page_public_id", "incident_public_id", "update_public_id",
        "subscriber_public_id", "provider_id", "message_id",
    )
    # A large archive: no second COUNT(*) over the whole table on every filtered page.
    show_full_result_count = False
    ordering = ("-sequence",)
    fieldsets = (
        (None, {"fields": ("sequence", "created", "channel", "kind", "recipient", "subject", "sent_at", "attempts", "provider_id", "message_id")}),
        ("Content", {"fields": ("text_body", "html_body", "headers", "payload")}),
        ("Origin", {"fields": ("page_public_id", "incident_public_id", "update_public_id", "subscriber_public_id",
                               "page", "incident", "update", "subscriber", "revision", "template_version", "policy_version", "approvals")}),
        ("Chain", {"fields": ("content_sha256", "prev_hash", "hash")}),
    )

    def get_readonly_fields(self, request, obj=None):
        return [f for fieldset in self.fieldsets for f in fieldset[1]["fields"]]

    @admin.display(description="recipient", ordering="recipient")
    def recipient_masked(self, obj: ArchivedMessage) -> str:
        return masked_recipient(obj.channel, obj.recipient)

    @admin.display(description="subject", ordering="subject")
    def subject_short(self, obj: ArchivedMessage) -> str:
        return Truncator(obj.subject).chars(80)


@admin.register(ArchiveCheckpoint)
class ArchiveCheckpointAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("sequence", "purged_count", "before", "created", "hash")


class LegalHoldForm(forms.ModelForm):
    class Meta:
        model = LegalHold
        fields = ("incident", "page", "starts_at", "ends_at", "reason")

    def clean(self):
        data = super().clean()
        archive.check_legal_hold_scope(
            incident=data.get("incident"), page=data.get("page"),
            starts_at=data.get("starts_at"), ends_at=data.get("ends_at"),
        )
        return data


@admin.register(LegalHold)
class LegalHoldAdmin(admin.ModelAdmin):
    """Placed with the add form, released with the action; never edited or deleted."""

    form = LegalHoldForm
    list_display = ("__str__", "reason_short", "created", "created_by", "released_at", "released_by")
    list_filter = (("released_at", admin.EmptyFieldListFilter),)
    search_fields = ("reason", "incident_public_id", "page_public_id")
    raw_id_fields = ("incident",)
    actions = ["release_holds"]

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def has_release_permission(self, request) -> bool:
        return request.user.has_perm("notifications.change_legalhold")

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return ()
        return ("incident", "page", "incident_public_id", "page_public_id", "starts_at", "ends_at", "reason",
                "created", "created_by", "released_at", "released_by")

    def get_fields(self, request, obj=None):
        return self.get_readonly_fields(request, obj) if obj is not None else LegalHoldForm.Meta.fields

    @admin.display(description="reason")
    def reason_short(self, obj: LegalHold) -> str:
        return Truncator(obj.reason).chars(80)

    def save_model(self, request, obj, form, change) -> None:
        placed = archive.legal_hold_place(
            reason=form.cleaned_data["reason"], actor=request.user,
            incident=form.cleaned_data.get("incident"), page=form.cleaned_data.get("page"),
            starts_at=form.cleaned_data.get("starts_at"), ends_at=form.cleaned_data.get("ends_at"),
        )
        # The admin logs and redirects with the object it was given: make it the placed hold.
        obj.__dict__.update(placed.__dict__)

    @admin.action(description="Release the selected legal holds", permissions=["release"])
    def release_holds(self, request, queryset) -> None:
        released = sum(archive.legal_hold_release(hold=hold, actor=request.user) for hold in queryset)
        self.message_user(request, f"{released} legal hold(s) released; {len(queryset) - released} already were.", messages.SUCCESS)


# --- delivery ledger ---

from django.db.models import Count, Q  # noqa: E402 - kept inside this block, which has its own owner

from notifications import services as delivery_services  # noqa: E402
from notifications.models import Delivery, DeliveryEvent, DeliveryStatus, Dispatch  # noqa: E402


@admin.register(Dispatch)
class DispatchAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """The fan-out of each published update, with its progress by delivery status."""

    list_display = ("incident", "kind", "severity", "status", "recipients", "sent", "waiting", "failed", "created", "finished_at")
    list_filter = ("status", "kind", "severity")
    search_fields = ("incident__name", "incident__public_id")
    list_select_related = ("incident",)
    date_hierarchy = "created"

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(
            n_sent=Count("deliveries", filter=Q(deliveries__status=DeliveryStatus.SENT)),
            n_waiting=Count("deliveries", filter=Q(deliveries__status__in=[DeliveryStatus.QUEUED, DeliveryStatus.SENDING])),
            n_failed=Count("deliveries", filter=Q(deliveries__status__in=[DeliveryStatus.FAILED, DeliveryStatus.DEAD])),
        )

    @admin.display(description="sent", ordering="n_sent")
    def sent(self, obj) -> int:
        return obj.n_sent

    @admin.display(description="waiting", ordering="n_waiting")
    def waiting(self, obj) -> int:
        return obj.n_waiting

    @admin.display(description="failed or dead", ordering="n_failed")
    def failed(self, obj) -> int:
        return obj.n_failed


@admin.register(Delivery)
class DeliveryAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("id", "dispatch", "channel", "recipient", "status", "attempts", "next_attempt_at", "sent_at", "last_error_short")
    list_filter = ("status", "channel")
    search_fields = ("address", "idempotency_key", "message_id", "provider_id")
    list_select_related = ("dispatch", "dispatch__incident")
    raw_id_fields = ("dispatch", "subscriber")
    actions = ("resend",)

    @admin.display(description="recipient")
    def recipient(self, obj) -> str:
        return masked_recipient(obj.channel, obj.address)

    @admin.display(description="last error")
    def last_error_short(self, obj) -> str:
        return Truncator(obj.last_error).chars(80)

    @admin.action(description="Resend the selected failed or dead deliveries")
    def resend(self, request, queryset):
        count = delivery_services.deliveries_requeue(ids=list(queryset.values_list("pk", flat=True)))
        self.message_user(request, f"{count} deliveries queued again.", messages.SUCCESS)


@admin.register(DeliveryEvent)
class DeliveryEventAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("created", "kind", "delivery", "provider_event_id")
    list_filter = ("kind",)
    search_fields = ("provider_event_id",)
    raw_id_fields = ("delivery",)
