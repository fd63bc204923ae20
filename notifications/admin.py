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
from notifications.models import Delivery, DeliveryEvent, DeliveryStatus, Dispatch, DispatchStatus  # noqa: E402


# The progress columns of a dispatch, in the order the admin shows them.
PROGRESS_COLUMNS = ("queued", "sending", "sent", "delivered", "failed", "dead", "skipped")
# Provider reports that mean the message reached the recipient (anymail "delivered", SMS "read").
DELIVERED_EVENT_KINDS = ("delivered", "read")


def dispatch_progress(dispatch: Dispatch) -> dict:
    """Per-channel delivery counts of one dispatch: one aggregate query (plus the dispatch row).

    "delivered" counts sent deliveries the provider later reported delivered (DeliveryEvent),
    so it is a subset of "sent", not a status of its own.
    """
    from django.db.models import Exists, OuterRef

    delivered = Exists(DeliveryEvent.objects.filter(delivery=OuterRef("pk"), kind__in=DELIVERED_EVENT_KINDS))
    counts = {
        status: Count("pk", filter=Q(status=status))
        for status in ("queued", "sending", "sent", "failed", "dead", "skipped")
    }
    rows = (
        Delivery.objects.filter(dispatch_id=dispatch.pk).order_by().values("channel")
        .annotate(total=Count("pk"), delivered=Count("pk", filter=Q(delivered)), **counts)
        .order_by("channel")
    )
    channels = {}
    for row in rows:
        total = row["total"] or 1
        channels[row["channel"]] = {
            **{column: row[column] for column in PROGRESS_COLUMNS},
            "total": row["total"],
            # Bar widths, in percent of the channel's deliveries; delivered is drawn inside sent.
            "percent": {column: round(100 * row[column] / total, 1) for column in PROGRESS_COLUMNS},
        }
    totals = {column: sum(c[column] for c in channels.values()) for column in (*PROGRESS_COLUMNS, "total")}
    done = dispatch.status == DispatchStatus.DONE
    return {
        "dispatch": dispatch.pk, "status": dispatch.status, "status_label": dispatch.get_status_display(),
        "done": done, "recipients": dispatch.recipients, "channels": channels, "totals": totals,
        "resendable": totals["failed"] + totals["dead"],
    }


@admin.register(Dispatch)
class DispatchAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """The fan-out of each published update, with its progress by delivery status.

    The change page shows live per-channel progress (polling progress.json every few seconds
    until the dispatch is done), links to its deliveries and resends the failed ones.
    """

    list_display = ("incident", "kind", "severity", "status", "recipients", "sent", "waiting", "failed", "created", "finished_at")
    list_filter = ("status", "kind", "severity")
    search_fields = ("incident__name", "incident__public_id")
    list_select_related = ("incident",)
    date_hierarchy = "created"
    change_form_template = "admin/notifications/dispatch/change_form.html"

    def get_urls(self):
        from django.urls import path

        info = self.opts.app_label, self.opts.model_name
        return [
            path("<int:object_id>/progress.json", self.admin_site.admin_view(self.progress_view), name="%s_%s_progress" % info),
            path("<int:object_id>/resend/", self.admin_site.admin_view(self.resend_view), name="%s_%s_resend" % info),
            *super().get_urls(),
        ]

    def _dispatch_or_404(self, request, object_id: int) -> Dispatch:
        from django.core.exceptions import PermissionDenied
        from django.shortcuts import get_object_or_404

        dispatch = get_object_or_404(Dispatch, pk=object_id)
        if not self.has_view_permission(request, dispatch):
            raise PermissionDenied
        return dispatch

    def progress_view(self, request, object_id: int):
        from django.http import JsonResponse

        response = JsonResponse(dispatch_progress(self._dispatch_or_404(request, object_id)))
        response["Cache-Control"] = "no-store"
        return response

    def has_resend_permission(self, request) -> bool:
        return request.user.has_perm("notifications.change_delivery")

    def resend_view(self, request, object_id: int):
        from django.core.exceptions import PermissionDenied
        from django.http import HttpResponseNotAllowed
        from django.shortcuts import redirect

        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        dispatch = self._dispatch_or_404(request, object_id)
        if not self.has_resend_permission(request):
            raise PermissionDenied
        ids = list(Delivery.objects.filter(
            dispatch=dispatch, status__in=[DeliveryStatus.FAILED, DeliveryStatus.DEAD],
        ).values_list("pk", flat=True))
        count = delivery_services.deliveries_requeue(ids=ids)
        self.message_user(request, f"{count} failed or dead deliveries queued again.", messages.SUCCESS)
        return redirect("admin:notifications_dispatch_change", dispatch.pk)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        from django.urls import reverse

        extra_context = dict(extra_context or {})
        dispatch = Dispatch.objects.filter(pk=object_id).first() if str(object_id).isdigit() else None
        if dispatch is not None:
            extra_context.update(
                progress=(progress := dispatch_progress(dispatch)),
                progress_columns=PROGRESS_COLUMNS,
                progress_rows=[
                    {
                        "channel": channel, "total": counts["total"],
                        "cells": [(column, counts[column]) for column in PROGRESS_COLUMNS],
                        "bars": [(column, counts["percent"][column]) for column in PROGRESS_COLUMNS if column != "delivered"],
                    }
                    for channel, counts in progress["channels"].items()
                ],
                progress_url=reverse("admin:notifications_dispatch_progress", args=[dispatch.pk]),
                resend_url=reverse("admin:notifications_dispatch_resend", args=[dispatch.pk]),
                can_resend=self.has_resend_permission(request),
                deliveries_url=f"{reverse('admin:notifications_delivery_changelist')}?dispatch__id__exact={dispatch.pk}",
            )
        return super().change_view(request, object_id, form_url, extra_context)

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
