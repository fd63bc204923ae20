"""The subscriber desk: customer accounts, subscribers, the consent ledger and the suppression list.

As on the editorial desk, every write goes through subscribers.services, so the consent
ledger sees it; a service's refusal lands on the form's fields and the request is rolled back.
Endpoint URLs (webhook, Slack, Teams) carry their secret in the path: lists, exports and
reports show display_address, the host only.
"""
from __future__ import annotations

import csv
import json

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Exists, OuterRef, Q
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html

from incidents.admin import ServiceAdmin, adopt, call_service
from incidents.models import Component, Page, Region
from statuspage.lib.admin import ReadOnlyAdminMixin
from subscribers import importer, selectors, services
from subscribers.admin_forms import (
    PREFERENCE_FIELDS,
    AccountContactForm,
    ImportForm,
    OutreachForm,
    SubscriberAddForm,
    SubscriberChangeForm,
    SuppressionAddForm,
    component_choices,
    preferences_from,
)
from subscribers.models import (
    AccountContact,
    ApiScope,
    ApiToken,
    ConsentEvent,
    ConsentSource,
    Organization,
    Subscriber,
    SubscriberStatus,
    Suppression,
    SuppressionReason,
    Tier,
    normalise_scopes,
)

# --- CSV downloads ------------------------------------------------------------------------


class _Echo:
    """A file-like sink for csv.writer that hands each line back, for a streamed response."""

    def write(self, value: str) -> str:
        return value


def _spreadsheet_safe(value) -> str:
    # A cell starting with = + - @ runs as a formula when the CSV is opened in a spreadsheet;
    # names come from customers and the CRM. Phone numbers (+ and digits) stay as they are.
    value = "" if value is None else str(value)
    if value[:1] in ("=", "@", "\t", "\r") or (value[:1] in ("+", "-") and not value[1:].replace(" ", "").isdigit()):
        return "'" + value
    return value


def csv_download(filename: str, header, rows) -> StreamingHttpResponse:
    writer = csv.writer(_Echo())
    lines = (writer.writerow([_spreadsheet_safe(cell) for cell in row]) for row in _with_header(header, rows))
    response = StreamingHttpResponse(lines, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def _with_header(header, rows):
    yield header
    yield from rows


# --- customer accounts --------------------------------------------------------------------


class AccountContactInline(admin.TabularInline):
    model = AccountContact
    form = AccountContactForm
    extra = 0
    verbose_name = "enterprise contact"
    verbose_name_plural = "enterprise contacts (phoned directly in a P1)"


@admin.register(Organization)
class OrganizationAdmin(ServiceAdmin):
    list_display = ("name", "external_id", "tier", "region", "sla", "subscriber_count", "confirmed_count", "contact_count", "page")
    list_filter = ("tier", ("region", admin.RelatedOnlyFieldListFilter), "page")
    list_select_related = ("page", "region")
    search_fields = ("name", "external_id")
    readonly_fields = ("public_id", "created", "updated")
    inlines = [AccountContactInline]
    fieldsets = (
        (None, {"fields": ("public_id", "page", "name", "external_id")}),
        ("Contract", {"fields": ("tier", "region", "sla")}),
        ("Record", {"fields": ("created", "updated")}),
    )

    def get_queryset(self, request):
        # distinct: the two joins would otherwise multiply each other's counts.
        return super().get_queryset(request).annotate(
            subscriber_count=Count("subscribers", distinct=True),
            confirmed_count=Count("subscribers", filter=Q(subscribers__status=SubscriberStatus.CONFIRMED), distinct=True),
            contact_count=Count("contacts", distinct=True),
        )

    @admin.display(description="subscribers", ordering="subscriber_count")
    def subscriber_count(self, obj: Organization) -> int:
        return obj.subscriber_count

    @admin.display(description="confirmed", ordering="confirmed_count")
    def confirmed_count(self, obj: Organization) -> int:
        return obj.confirmed_count

    @admin.display(description="contacts", ordering="contact_count")
    def contact_count(self, obj: Organization) -> int:
        return obj.contact_count

    def save_model(self, request, obj, form, change) -> None:
        call_service(services.organization_save, organization=obj)

    def save_formset(self, request, form, formset, change) -> None:
        contacts = formset.save(commit=False)
        for contact in formset.deleted_objects:
            contact.delete()
        for contact in contacts:
            contact.organization = form.instance
            call_service(services.account_contact_save, contact=contact)

    def delete_model(self, request, obj) -> None:
        obj.delete()  # subscribers keep their subscription; only the account link goes

    def delete_queryset(self, request, queryset) -> None:
        queryset.delete()

    def get_urls(self):
        info = self.opts.app_label, self.opts.model_name
        return [
            path("outreach.csv", self.admin_site.admin_view(self.outreach_view), name="%s_%s_outreach" % info),
            *super().get_urls(),
        ]

    def changelist_view(self, request, extra_context=None):
        pages = [
            (page, reverse("admin:subscribers_organization_outreach") + f"?page={page.pk}")
            for page in Page.objects.order_by("name")
        ]
        return super().changelist_view(request, {**(extra_context or {}), "outreach_pages": pages})

    def outreach_view(self, request: HttpRequest) -> HttpResponse:
        """The direct outreach list: every enterprise contact of a page (optionally one region's), as CSV."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        form = OutreachForm(request.GET)
        if not form.is_valid():
            problems = "; ".join(f"{name}: {' '.join(errors)}" for name, errors in form.errors.items())
            return HttpResponse(f"Choose a page (and optionally a region of it): {problems}", status=400, content_type="text/plain")
        page, region = form.cleaned_data["page"], form.cleaned_data["region"]
        contacts = selectors.enterprise_contacts(page, region=region)
        stamp = timezone.now().strftime("%Y%m%d-%H%M")
        suffix = f"-{region.code}" if region else ""
        return csv_download(f"outreach-{page.public_id}{suffix}-{stamp}.csv", selectors.OUTREACH_COLUMNS, selectors.outreach_rows(contacts))


# --- subscribers --------------------------------------------------------------------------


class TierFilter(admin.SimpleListFilter):
    title = "tier"
    parameter_name = "tier"

    def lookups(self, request, model_admin):
        return [*Tier.choices, ("none", "No customer account")]

    def queryset(self, request, queryset):
        if self.value() == "none":
            return queryset.filter(organization__isnull=True)
        if self.value() in Tier.values:
            return queryset.filter(organization__tier=self.value())
        return queryset


class ComponentFilter(admin.SimpleListFilter):
    """Who hears about a component: the whole page's subscribers, and those who chose it or its group."""

    title = "hears about component"
    parameter_name = "component"

    def lookups(self, request, model_admin):
        return component_choices()

    def queryset(self, request, queryset):
        if not self.value():
            return queryset
        component = Component.objects.filter(pk=self.value()).first()
        if component is None:
            return queryset.none()
        chosen = Subscriber.components.through.objects.filter(component_id__in=[component.pk, component.group_id or component.pk])
        return queryset.filter(
            Q(page_id=component.page_id) & (Q(all_components=True) | Q(pk__in=chosen.values("subscriber_id")))
        )


class RegionFilter(admin.SimpleListFilter):
    """Who hears about a region: those who chose it, and those who chose none (every region)."""

    title = "hears about region"
    parameter_name = "region"

    def lookups(self, request, model_admin):
        return [(r.pk, f"{r.name} ({r.page})") for r in Region.objects.select_related("page").order_by("page__name", "name")]

    def queryset(self, request, queryset):
        if not self.value():
            return queryset
        region = Region.objects.filter(pk=self.value()).first()
        if region is None:
            return queryset.none()
        links = Subscriber.regions.through.objects.filter(subscriber_id=OuterRef("pk"))
        return queryset.filter(page_id=region.page_id).filter(
            Q(pk__in=links.filter(region_id=region.pk).values("subscriber_id")) | ~Exists(links)
        )


class ConsentEventInline(ReadOnlyAdminMixin, admin.TabularInline):
    """The subscriber's ledger, newest first, on its change page: read, never written here."""

    model = ConsentEvent
    fields = ("created", "action", "source", "consent_text_version", "ip_address", "actor", "details")
    readonly_fields = fields
    ordering = ("-created", "-id")
    extra = 0
    can_delete = False
    verbose_name_plural = "consent ledger"


@admin.register(Subscriber)
class SubscriberAdmin(ServiceAdmin):
    inlines_when_adding = False
    form = SubscriberChangeForm
    add_form = SubscriberAddForm
    list_display = ("shown_address", "channel", "coloured_status", "organization", "tier", "created")
    list_filter = ("channel", "status", ComponentFilter, RegionFilter, TierFilter, ("organization", admin.RelatedOnlyFieldListFilter), "page")
    list_select_related = ("organization", "page")
    search_fields = ("address", "=public_id", "organization__name")
    filter_horizontal = ("components", "regions")
    inlines = [ConsentEventInline]
    actions = [
        "resend_confirmation", "unsubscribe_selected", "export_personal_data", "erase_personal_data", "export_csv",
        "delete_selected",
    ]
    add_fieldsets = [
        (None, {"fields": ["page", "channel", "address", "phone_country", "organization"]}),
        ("What they hear about", {"fields": PREFERENCE_FIELDS}),
        ("Confirmation", {"fields": ["skip_confirmation", "skip_confirmation_reason"]}),
    ]
    change_fieldsets = [
        (None, {"fields": ["public_id", "page", "channel", "shown_address", "phone_country", "organization"]}),
        ("What they hear about", {"fields": ["incident", *PREFERENCE_FIELDS]}),
        ("State", {"fields": [
            "status", "suppressed", "created", "confirmed_at", "confirmation_skipped_reason", "unsubscribed_at",
            "quarantined_at", "erased_at",
        ]}),
    ]
    change_readonly = [
        "public_id", "page", "channel", "shown_address", "phone_country", "incident", "status", "suppressed", "created",
        "confirmed_at", "confirmation_skipped_reason", "unsubscribed_at", "quarantined_at", "erased_at",
    ]

    # --- list ---

    @admin.display(description="address", ordering="address")
    def shown_address(self, obj: Subscriber) -> str:
        return obj.display_address

    @admin.display(description="status", ordering="status")
    def coloured_status(self, obj: Subscriber) -> str:
        colours = {SubscriberStatus.PENDING: "#b8860b", SubscriberStatus.CONFIRMED: "#2e7d32", SubscriberStatus.UNSUBSCRIBED: "#777"}
        return format_html('<span style="color:{}">{}</span>', colours.get(obj.status, "#555"), obj.get_status_display())

    @admin.display(description="tier", ordering="organization__tier")
    def tier(self, obj: Subscriber) -> str:
        return obj.organization.get_tier_display() if obj.organization else "-"

    @admin.display(description="suppressed", boolean=True)
    def suppressed(self, obj: Subscriber) -> bool:
        return services.is_suppressed(obj.channel, obj.address)

    def changelist_view(self, request, extra_context=None):
        response = super().changelist_view(request, extra_context)
        context = getattr(response, "context_data", None)
        if context and "cl" in context:
            # Counted over the filtered list, so the figures answer "of these, how many...".
            context["state_counts"] = selectors.subscriber_counts(context["cl"].queryset)
        return response

    # --- add and change ---


    def get_readonly_fields(self, request, obj=None):
        return self.change_readonly if obj is not None else ()


    def save_model(self, request, obj, form, change) -> None:
        data = form.cleaned_data
        if change:
            if obj.erased_at is None and "organization" in form.changed_data:
                call_service(services.subscriber_set_organization, subscriber=obj, organization=data["organization"])
            call_service(
                services.subscriber_update_preferences, subscriber=obj, preferences=preferences_from(data, incident=obj.incident),
                source=ConsentSource.ADMIN, actor=request.user,
            )
            return
        subscriber = call_service(
            services.subscriber_create,
            page=data["page"], channel=data["channel"], address=data["address"], phone_country=data.get("phone_country", ""),
            preferences=preferences_from(data), organization=data.get("organization"),
            skip_confirmation_reason=data["skip_confirmation_reason"] if data.get("skip_confirmation") else "",
            source=ConsentSource.ADMIN, actor=request.user,
        )
        adopt(obj, subscriber)

    def save_related(self, request, form, formsets, change) -> None:
        # The services set components and regions. The ledger inline is read only: saving its
        # (empty) formset writes nothing, and gives the change message what it reads.
        for formset in formsets:
            self.save_formset(request, form, formset, change=change)

    def delete_model(self, request, obj) -> None:
        services.subscriber_delete(subscriber=obj, source=ConsentSource.ADMIN, actor=request.user)

    def delete_queryset(self, request, queryset) -> None:
        for subscriber in queryset:
            services.subscriber_delete(subscriber=subscriber, source=ConsentSource.ADMIN, actor=request.user)

    # --- actions ---

    @admin.action(description="Resend the confirmation to the selected subscribers", permissions=["change"])
    def resend_confirmation(self, request, queryset) -> None:
        sent = sum(services.subscriber_resend_confirmation(subscriber=subscriber) for subscriber in queryset)
        if sent:
            self.message_user(request, f"Confirmation queued for {sent} subscriber(s).", messages.SUCCESS)
        if sent < len(queryset):
            self.message_user(
                request,
                f"{len(queryset) - sent} not sent: not waiting for confirmation, suppressed, or already sent a "
                "confirmation in the last 24 hours.",
                messages.WARNING,
            )

    @admin.action(description="Unsubscribe the selected subscribers", permissions=["change"])
    def unsubscribe_selected(self, request, queryset) -> None:
        done = 0
        for subscriber in queryset:
            if services.subscriber_unsubscribe(subscriber=subscriber, source=ConsentSource.ADMIN, actor=request.user):
                self.log_change(request, subscriber, "Unsubscribed.")
                done += 1
        self.message_user(request, f"{done} subscriber(s) unsubscribed; {len(queryset) - done} already were.", messages.SUCCESS)

    @admin.action(description="Export the personal data of one subscriber (JSON)", permissions=["view"])
    def export_personal_data(self, request, queryset):
        subscribers = list(queryset[:2])
        if len(subscribers) != 1:
            self.message_user(request, "Select exactly one subscriber to export their data.", messages.ERROR)
            return None
        subscriber = subscribers[0]
        data = services.subscriber_export(subscriber=subscriber, actor=request.user)
        response = HttpResponse(json.dumps(data, indent=2, ensure_ascii=False), content_type="application/json; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="subscriber-{subscriber.public_id}.json"'
        return response

    @admin.action(description="Erase the personal data of the selected subscribers", permissions=["delete"])
    def erase_personal_data(self, request, queryset):
        subscribers = list(queryset.select_related("organization"))
        already = [s for s in subscribers if s.erased_at]
        to_erase = [s for s in subscribers if not s.erased_at]
        if request.POST.get("post") == "yes":
            for subscriber in to_erase:
                services.subscriber_erase(subscriber=subscriber, actor=request.user)
                self.log_change(request, subscriber, "Erased personal data.")
            self.message_user(request, f"Personal data of {len(to_erase)} subscriber(s) erased.", messages.SUCCESS)
            if already:
                self.message_user(request, f"{len(already)} had been erased before.", messages.INFO)
            return None
        context = {
            **self.admin_site.each_context(request),
            "title": "Erase personal data?",
            "opts": self.opts,
            "subscribers": to_erase,
            "already": already,
            "queryset": queryset,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "action_name": "erase_personal_data",
            "media": self.media,
        }
        return TemplateResponse(request, "admin/subscribers/subscriber/erase_confirmation.html", context)

    @admin.action(description="Download the selected subscribers (CSV)", permissions=["view"])
    def export_csv(self, request, queryset) -> StreamingHttpResponse:
        stamp = timezone.now().strftime("%Y%m%d-%H%M")
        return csv_download(f"subscribers-{stamp}.csv", selectors.SUBSCRIBER_EXPORT_COLUMNS, selectors.subscriber_export_rows(queryset))

    # --- import ---

    def get_urls(self):
        info = self.opts.app_label, self.opts.model_name
        return [
            path("import/", self.admin_site.admin_view(self.import_view), name="%s_%s_import" % info),
            *super().get_urls(),
        ]

    def import_view(self, request: HttpRequest) -> HttpResponse:
        """Upload a CRM export: checked whole, then written whole (or, for a dry run, only reported)."""
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = ImportForm(request.POST or None, request.FILES or None)
        report = None
        if request.method == "POST" and form.is_valid():
            upload = form.cleaned_data["file"]
            report = importer.import_subscribers(
                upload.file, page=form.cleaned_data["page"], dry_run=form.cleaned_data["dry_run"],
                skip_confirmation_reason=form.cleaned_data["skip_confirmation_reason"], actor=request.user,
            )
            if report.written:
                self.message_user(request, report.summary(), messages.SUCCESS)
        adminform = helpers.AdminForm(form, [(None, {"fields": list(form.fields)})], {}, model_admin=self)
        context = {
            **self.admin_site.each_context(request),
            "title": "Import subscribers from a CRM export",
            "opts": self.opts,
            "adminform": adminform,
            "form": form,
            "report": report,
            "columns": importer.COLUMNS,
            "media": self.media + adminform.media,
        }
        return TemplateResponse(request, "admin/subscribers/subscriber/import.html", context)


# --- the consent ledger ---------------------------------------------------------------------


@admin.register(ConsentEvent)
class ConsentEventAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """The consent ledger is evidence: staff read it; only the services write it."""

    list_display = ("created", "action", "source", "channel", "subscriber_link", "consent_text_version", "ip_address", "actor")
    list_filter = ("action", "source", "channel")
    list_select_related = ("subscriber", "actor")
    search_fields = ("=subscriber__public_id", "=address_digest")
    date_hierarchy = "created"
    actions = None

    @admin.display(description="subscriber", ordering="subscriber__public_id")
    def subscriber_link(self, obj: ConsentEvent) -> str:
        if obj.subscriber is None:
            return "(deleted)"
        url = reverse("admin:subscribers_subscriber_change", args=[obj.subscriber_id])
        return format_html('<a href="{}">{}</a> {}', url, obj.subscriber.public_id, obj.subscriber.display_address)


# --- the suppression list -------------------------------------------------------------------


@admin.register(Suppression)
class SuppressionAdmin(admin.ModelAdmin):
    """Addresses we must not message. Staff add manual blocks and lift entries; nobody edits one."""

    add_form = SuppressionAddForm
    list_display = ("address", "channel", "reason", "source", "note", "created")
    list_filter = ("reason", "source", "channel")
    search_fields = ("address", "note")
    actions = ["lift_selected"]
    readonly_fields = ("channel", "address", "reason", "source", "note", "created")

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs["form"] = self.add_form
            kwargs["fields"] = ["channel", "address", "phone_country", "note"]
        return super().get_form(request, obj, change, **kwargs)

    def get_fieldsets(self, request, obj=None):
        if obj is None:
            return [(None, {"fields": ["channel", "address", "phone_country", "note"]})]
        return [(None, {"fields": list(self.readonly_fields)})]

    def get_readonly_fields(self, request, obj=None):
        return self.readonly_fields if obj is not None else ()

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # lifting is the way out, and the ledger records it

    def has_lift_permission(self, request) -> bool:
        return request.user.has_perm(f"{self.opts.app_label}.delete_{self.opts.model_name}")

    def save_model(self, request, obj, form, change) -> None:
        data = form.cleaned_data
        suppression = services.address_suppress(
            channel=data["channel"], address=data["address"], reason=SuppressionReason.MANUAL,
            source=ConsentSource.ADMIN, note=data.get("note", ""), actor=request.user,
        )
        adopt(obj, suppression)

    @admin.action(description="Lift the selected suppressions", permissions=["lift"])
    def lift_selected(self, request, queryset) -> None:
        lifted = 0
        for suppression in queryset:
            services.suppression_lift(suppression=suppression, actor=request.user, note="Lifted from the suppression list")
            lifted += 1
        self.message_user(
            request,
            f"{lifted} suppression(s) lifted. The subscribers still have to be confirmed to hear anything.",
            messages.SUCCESS,
        )


# --- management API keys ----------------------------------------------------------------------


class ApiTokenAddForm(forms.ModelForm):
    scopes = forms.MultipleChoiceField(
        choices=ApiScope.choices, widget=forms.CheckboxSelectMultiple, initial=[ApiScope.READ],
        help_text="Write includes read; publish (approve and publish updates) includes write.",
    )

    class Meta:
        model = ApiToken
        fields = ["user", "name"]
        help_texts = {"user": "The key acts as this staff user, with their permissions.", "name": "What the key is for, e.g. 'Pager sync'."}

    def __init__(self, *args, request=None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        users = self.fields["user"].queryset.filter(is_active=True, is_staff=True)
        if request is not None and not request.user.is_superuser:
            # A key acts as its user: anyone else would be handing themselves another's rights.
            users = users.filter(pk=request.user.pk)
        self.fields["user"].queryset = users

    def clean_scopes(self) -> list[str]:
        # With the scopes each implies, as the model stores them (write -> read, write).
        return normalise_scopes(self.cleaned_data["scopes"])


@admin.register(ApiToken)
class ApiTokenAdmin(ServiceAdmin):
    """Keys are created here (the key is shown once) and revoked; never edited, never deleted.

    Only the SHA-256 of a key is stored, so a lost key cannot be shown again: revoke it and
    create another. Deleting would lose the record of who had access; revoking keeps it.
    """

    add_form = ApiTokenAddForm
    list_display = ("name", "user", "prefix_shown", "scope_list", "created", "last_used_at", "revoked_at")
    list_filter = (("revoked_at", admin.EmptyFieldListFilter),)
    list_select_related = ("user",)
    search_fields = ("name", "prefix", "user__email")
    readonly_fields = ("name", "user", "prefix_shown", "scope_list", "created", "last_used_at", "revoked_at")
    add_fieldsets = [(None, {"fields": ["user", "name", "scopes"]})]
    change_fieldsets = [(None, {"fields": list(readonly_fields)})]
    actions = ["revoke_selected"]

    @admin.display(description="prefix", ordering="prefix")
    def prefix_shown(self, obj: ApiToken) -> str:
        return f"{obj.prefix}…"

    @admin.display(description="scopes")
    def scope_list(self, obj: ApiToken) -> str:
        return ", ".join(obj.scopes or []) or "-"

    def get_form(self, request, obj=None, change=False, **kwargs):
        form_class = super().get_form(request, obj, change, **kwargs)
        if obj is not None:
            return form_class

        class WithRequest(form_class):
            def __init__(self, *args, **kw) -> None:
                super().__init__(*args, request=request, **kw)

        return WithRequest

    def get_readonly_fields(self, request, obj=None):
        return self.readonly_fields if obj is not None else ()

    def has_change_permission(self, request, obj=None) -> bool:
        return False  # the digest, user and scopes are fixed: a different key is a new key

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def has_revoke_permission(self, request) -> bool:
        return request.user.has_perm(f"{self.opts.app_label}.change_{self.opts.model_name}")

    def save_model(self, request, obj, form, change) -> None:
        data = form.cleaned_data
        token, key = call_service(services.api_token_create, user=data["user"], name=data["name"], scopes=data["scopes"])
        adopt(obj, token)
        self.message_user(
            request,
            format_html(
                "The new API key is <code>{}</code>. Copy it now: it is not shown again. "
                "Send it as <code>Authorization: OAuth &lt;key&gt;</code>.", key,
            ),
            messages.WARNING,
        )

    @admin.action(description="Revoke the selected API keys", permissions=["revoke"])
    def revoke_selected(self, request, queryset) -> None:
        revoked = 0
        for token in queryset:
            if services.api_token_revoke(token=token):
                self.log_change(request, token, "Revoked.")
                revoked += 1
        self.message_user(request, f"{revoked} API key(s) revoked; {len(queryset) - revoked} already were.", messages.SUCCESS)
