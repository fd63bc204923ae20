"""The editorial desk: the Django admin for pages, components, incidents and maintenance.

Every write with business meaning goes through incidents.services, so the status log, the
page cache and the notifications see it. A ValidationError a service raises after the form
validated is shown on the form's fields, and the whole request is rolled back.
"""
from __future__ import annotations

from collections.abc import Callable

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Count, Prefetch, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from incidents import cache, forms, selectors, services
from incidents.admin_coordination import INTERNAL_FIELDSET, INTERNAL_READONLY_FIELDS, IncidentCoordinationMixin
from incidents.admin_maintenance import MaintenanceNoticesMixin
from incidents.models import (
    ACTIVE_MAINTENANCE_STATUSES,
    OPEN_INCIDENT_STATUSES,
    STATUS_LABELS,
    Component,
    ComponentGroup,
    ComponentStatus,
    ComponentStatusChange,
    Incident,
    IncidentComponent,
    IncidentKind,
    IncidentStatus,
    IncidentUpdate,
    Maintenance,
    MaintenanceStatus,
    Page,
    Region,
    StatusSource,
)
from incidents.policy import worst_component_status
from statuspage.lib.admin import ReadOnlyAdminMixin

admin.site.site_header = "Status page desk"
admin.site.site_title = "Status page desk"
admin.site.index_title = "Editorial desk"

# One colour per status, for components and incidents alike (red is bad, green is done).
STATUS_COLOURS = {
    ComponentStatus.OPERATIONAL: "#2e7d32",
    ComponentStatus.DEGRADED_PERFORMANCE: "#b8860b",
    ComponentStatus.PARTIAL_OUTAGE: "#e65100",
    ComponentStatus.MAJOR_OUTAGE: "#c62828",
    ComponentStatus.UNDER_MAINTENANCE: "#1565c0",
    IncidentStatus.INVESTIGATING: "#c62828",
    IncidentStatus.IDENTIFIED: "#e65100",
    IncidentStatus.MONITORING: "#1565c0",
    IncidentStatus.RESOLVED: "#2e7d32",
    IncidentStatus.POSTMORTEM: "#6a1b9a",
    MaintenanceStatus.SCHEDULED: "#1565c0",
    MaintenanceStatus.IN_PROGRESS: "#e65100",
    MaintenanceStatus.VERIFYING: "#b8860b",
    MaintenanceStatus.COMPLETED: "#2e7d32",
}
COMPONENT_LABELS = dict(ComponentStatus.choices)


def status_badge(status: str) -> str:
    label = COMPONENT_LABELS.get(status) or STATUS_LABELS.get(status) or status
    return format_html(
        '<span style="color:{};font-weight:bold;white-space:nowrap">&#9679; {}</span>',
        STATUS_COLOURS.get(status, "#555"), label,
    )


# --- service calls ---------------------------------------------------------------------------


class ServiceRefused(Exception):
    """A service refused a save the form had accepted; carries its ValidationError."""

    def __init__(self, error: ValidationError, rename: dict[str, str] | None = None) -> None:
        super().__init__(error)
        self.error = error
        self.rename = rename or {}


def call_service(service: Callable, *, rename: dict[str, str] | None = None, **kwargs):
    try:
        return service(**kwargs)
    except ValidationError as exc:
        raise ServiceRefused(exc, rename) from exc


def adopt(target, saved) -> None:
    """Make the admin's unsaved form instance the row a service created, for the admin's
    log entry and redirect."""
    target.pk = saved.pk
    target.refresh_from_db()
    target._state.adding = False


class ServiceAdmin(admin.ModelAdmin):
    """Add and change views whose saves go through services.

    save_model/save_related raise ServiceRefused when a service says no. The first attempt is
    then rolled back whole, and the view runs again with the service's errors added to the
    form's validation, so the page shows them on their fields and nothing was written.
    """

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        if request.method != "POST":
            return super().changeform_view(request, object_id, form_url, extra_context)
        try:
            with transaction.atomic():
                return super().changeform_view(request, object_id, form_url, extra_context)
        except ServiceRefused as refused:
            request._service_refusal = refused
            return super().changeform_view(request, object_id, form_url, extra_context)

    # Adding often takes other fields than changing (a first update, a skip reason, ...).
    add_form = None
    add_fieldsets = None
    change_fieldsets = None

    def get_fieldsets(self, request, obj=None):
        chosen = self.change_fieldsets if obj is not None else self.add_fieldsets
        return chosen if chosen is not None else super().get_fieldsets(request, obj)

    # Read-only inlines (time lines, ledgers) list what exists; a new object has nothing yet.
    inlines_when_adding = True

    def get_inlines(self, request, obj):
        return self.inlines if obj is not None or self.inlines_when_adding else []

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None and self.add_form is not None and "form" not in kwargs:
            kwargs["form"] = self.add_form
        form_class = super().get_form(request, obj, change, **kwargs)
        refusal: ServiceRefused | None = getattr(request, "_service_refusal", None)
        if refusal is None:
            return form_class

        class RefusedByService(form_class):
            def _post_clean(self) -> None:
                super()._post_clean()
                forms.apply_errors(self, refusal.error, rename=refusal.rename)

        RefusedByService.__name__ = form_class.__name__
        return RefusedByService

    def delete_model(self, request, obj) -> None:
        services.content_delete(instances=[obj], actor=request.user)

    def delete_queryset(self, request, queryset) -> None:
        services.content_delete(instances=list(queryset), actor=request.user)

    # Custom views (post an update, resolve, maintenance steps) share one template.
    def render_action_form(
        self, request: HttpRequest, obj, form, *, title: str, fieldsets: list, intro: str = "", submit: str = "Save"
    ) -> HttpResponse:
        adminform = helpers.AdminForm(form, fieldsets, {}, model_admin=self)
        context = {
            **self.admin_site.each_context(request),
            "title": title,
            "subtitle": str(obj),
            "opts": self.opts,
            "original": obj,
            "adminform": adminform,
            "form": form,
            "errors": helpers.AdminErrorList(form, []),
            "media": self.media + adminform.media,
            "has_view_permission": self.has_view_permission(request, obj),
            "intro": intro,
            "submit_label": submit,
            "change_url": reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_change", args=[obj.pk]),
        }
        return TemplateResponse(request, "admin/incidents/action_form.html", context)

    def get_changeable_object(self, request: HttpRequest, object_id: str):
        obj = self.get_object(request, unquote(object_id))
        if obj is None:
            return None
        if not self.has_change_permission(request, obj):
            raise PermissionDenied
        return obj


# --- pages and regions -----------------------------------------------------------------------


@admin.register(Page)
class PageAdmin(ServiceAdmin):
    form = forms.PageForm
    list_display = ("name", "url", "time_zone", "is_default", "public_id")
    list_filter = ("is_default",)
    search_fields = ("name", "url", "extra_hosts", "public_id")
    readonly_fields = ("public_id", "created", "updated")
    fieldsets = (
        (None, {"fields": ("public_id", "name", "description", "support_url")}),
        ("Routing", {"fields": ("url", "extra_hosts", "is_default")}),
        ("Time zone", {"fields": ("time_zone",)}),
        ("Branding", {"fields": ("logo", "brand_colour", "accent_colour")}),
        ("Record", {"fields": ("created", "updated")}),
    )

    def save_model(self, request, obj, form, change) -> None:
        call_service(services.page_save, page=obj)


@admin.register(Region)
class RegionAdmin(admin.ModelAdmin):
    list_display = ("name", "code", "page")
    list_filter = ("page",)
    search_fields = ("name", "code")
    list_select_related = ("page",)


# --- components ------------------------------------------------------------------------------


def _set_status_action(status: str):
    label = COMPONENT_LABELS[status].lower()

    @admin.action(description=f"Set the selected components to {label}", permissions=["change"])
    def action(modeladmin: ComponentAdmin, request: HttpRequest, queryset: QuerySet) -> None:
        changed, skipped = 0, []
        for component in queryset.select_related("group"):
            if component.is_group:
                skipped.append(component.name)
                continue
            services.component_set_status(
                component=component, status=status, source=StatusSource.MANUAL, actor=request.user,
                reason="Set from the component list",
            )
            changed += 1
        modeladmin.message_user(request, f"{changed} component(s) set to {label}.", messages.SUCCESS)
        if skipped:
            modeladmin.message_user(
                request, f"Skipped groups, whose status follows their components: {', '.join(skipped)}.", messages.WARNING
            )

    action.__name__ = f"set_{status}"
    return action


@admin.register(Component)
class ComponentAdmin(ServiceAdmin):
    form = forms.ComponentForm
    list_display = ("name", "coloured_status", "group", "position", "page", "is_group", "showcase")
    list_filter = ("status", "page", ("group", admin.RelatedOnlyFieldListFilter), "is_group")
    list_select_related = ("page", "group")
    search_fields = ("name", "description", "public_id")
    readonly_fields = ("public_id", "created", "updated", "recent_changes")
    ordering = ("page", "group__position", "position", "name")
    actions = [_set_status_action(status) for status in ComponentStatus.values]
    fieldsets = (
        (None, {"fields": ("public_id", "page", "name", "description")}),
        ("Place", {"fields": ("is_group", "group", "position")}),
        ("Status", {"fields": ("status", "reason", "recent_changes")}),
        ("Display", {"fields": ("showcase", "only_show_if_degraded", "start_date")}),
        ("Record", {"fields": ("created", "updated")}),
    )

    def get_queryset(self, request):
        children = Prefetch("children", queryset=Component.objects.only("status", "group_id"))
        return super().get_queryset(request).prefetch_related(children)

    @admin.display(description="status", ordering="status")
    def coloured_status(self, obj: Component) -> str:
        if obj.is_group:  # a group shows its worst member, as on the page
            return status_badge(worst_component_status(child.status for child in obj.children.all()))
        return status_badge(obj.status)

    @admin.display(description="recent status changes")
    def recent_changes(self, obj: Component) -> str:
        if obj.pk is None:
            return "-"
        rows = obj.status_changes.select_related("actor")[:10]
        if not rows:
            return "-"
        return format_html(
            "<ul>{}</ul>",
            format_html_join(
                "", "<li>{}: {} &rarr; {} ({}{}){}</li>",
                (
                    (
                        f"{row.created:%Y-%m-%d %H:%M} UTC", COMPONENT_LABELS.get(row.old_status, "-"),
                        COMPONENT_LABELS[row.new_status], row.get_source_display(),
                        f", {row.actor}" if row.actor_id else "", f" - {row.reason}" if row.reason else "",
                    )
                    for row in rows
                ),
            ),
        )

    def save_model(self, request, obj, form, change) -> None:
        call_service(
            services.component_save, component=obj, actor=request.user,
            reason=form.cleaned_data.get("reason", ""), source=StatusSource.MANUAL,
        )


@admin.register(ComponentGroup)
class ComponentGroupAdmin(ServiceAdmin):
    form = forms.ComponentGroupForm
    list_display = ("name", "rolled_up_status", "member_count", "position", "page")
    list_filter = ("page",)
    search_fields = ("name", "description", "public_id")
    readonly_fields = ("public_id", "rolled_up_status")
    fieldsets = (
        (None, {"fields": ("public_id", "page", "name", "description", "position")}),
        ("Components", {"fields": ("members", "rolled_up_status")}),
        ("Display", {"fields": ("showcase", "only_show_if_degraded")}),
        ("Communication", {"fields": ("comms_owner",)}),
    )

    def get_queryset(self, request):
        return (
            super().get_queryset(request).filter(is_group=True).select_related("page")
            .annotate(member_count=Count("children"))
            .prefetch_related(Prefetch("children", queryset=Component.objects.only("status", "group_id")))
        )

    @admin.display(description="status")
    def rolled_up_status(self, obj: Component) -> str:
        if obj.pk is None:
            return "-"
        return status_badge(worst_component_status(child.status for child in obj.children.all()))

    @admin.display(description="components", ordering="member_count")
    def member_count(self, obj) -> int:
        return obj.member_count

    def save_model(self, request, obj, form, change) -> None:
        obj.is_group = True
        call_service(services.component_save, component=obj, actor=request.user)

    def save_related(self, request, form, formsets, change) -> None:
        super().save_related(request, form, formsets, change)
        group = form.instance
        chosen = {c.pk: c for c in form.cleaned_data.get("members") or []}
        leaving = Component.objects.filter(group=group).exclude(pk__in=chosen)
        rename = {"group": "members", "page": "members", "is_group": "members", "__all__": "members"}
        for component in leaving:
            component.group = None
            call_service(services.component_save, component=component, actor=request.user, rename=rename)
        for component in chosen.values():
            if component.group_id != group.pk:
                component.group = group
                call_service(services.component_save, component=component, actor=request.user, rename=rename)


@admin.register(ComponentStatusChange)
class ComponentStatusChangeAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """The status log is evidence: it is read here and written only by the services."""

    list_display = ("created", "component", "old", "new", "source", "actor", "incident", "reason")
    list_filter = ("source", "new_status", "component__page")
    list_select_related = ("component", "component__group", "actor", "incident")
    search_fields = ("component__name", "reason", "incident__name")
    date_hierarchy = "created"

    @admin.display(description="from", ordering="old_status")
    def old(self, obj: ComponentStatusChange) -> str:
        return status_badge(obj.old_status) if obj.old_status else "-"

    @admin.display(description="to", ordering="new_status")
    def new(self, obj: ComponentStatusChange) -> str:
        return status_badge(obj.new_status)


# --- incidents -------------------------------------------------------------------------------


class TimelineInline(ReadOnlyAdminMixin, admin.TabularInline):
    """The published time line, read only: updates are added with "Post an update"."""

    model = IncidentUpdate
    verbose_name = "update"
    verbose_name_plural = "time line"
    fields = ("display_at", "coloured_status", "text", "deliver_notifications", "created_by", "public_id")
    readonly_fields = fields
    extra = 0
    can_delete = False
    ordering = ("-display_at", "-id")

    @admin.display(description="status")
    def coloured_status(self, obj: IncidentUpdate) -> str:
        return status_badge(obj.status)

    @admin.display(description="text")
    def text(self, obj: IncidentUpdate) -> str:
        # body_html was sanitised with nh3 when the update was written.
        return mark_safe(obj.body_html)  # noqa: S308


class StatusListFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "status"
    status_choices: list[tuple[str, str]] = []
    open_statuses: tuple[str, ...] = ()

    def lookups(self, request, model_admin):
        return [("open", "Open"), *self.status_choices]

    def queryset(self, request, queryset):
        value = self.value()
        if value == "open":
            return queryset.filter(status__in=self.open_statuses)
        if value:
            return queryset.filter(status=value)
        return queryset


class IncidentStatusFilter(StatusListFilter):
    status_choices = IncidentStatus.choices
    open_statuses = OPEN_INCIDENT_STATUSES


class MaintenanceStatusFilter(StatusListFilter):
    status_choices = MaintenanceStatus.choices
    open_statuses = (MaintenanceStatus.SCHEDULED, *ACTIVE_MAINTENANCE_STATUSES)


def _affected_summary(obj: Incident) -> str:
    links = list(obj.affected.select_related("component", "component__group"))
    if not links:
        return "-"
    return format_html(
        "<ul>{}</ul>",
        format_html_join("", "<li>{}: now {}</li>", ((str(link.component), status_badge(link.component.status)) for link in links)),
    )


@admin.register(Incident)
class IncidentAdmin(IncidentCoordinationMixin, ServiceAdmin):
    inlines_when_adding = False
    form = forms.IncidentChangeForm
    list_display = ("name", "coloured_status", "impact", "severity", "started_at", "resolved_at", "page", "public_id")
    list_filter = (IncidentStatusFilter, "impact", "severity", "page")
    list_select_related = ("page",)
    search_fields = ("name", "public_id", "updates__body")
    date_hierarchy = "started_at"
    inlines = [TimelineInline]
    change_fieldsets = [
        (None, {"fields": ["public_id", "page", "name", "status", "impact", "severity", "regions"]}),
        ("Times", {"fields": ["started_at", "monitoring_at", "resolved_at", "next_update_at"]}),
        ("Affected components", {"fields": ["affected_components"]}),
        INTERNAL_FIELDSET,
    ]

    def get_queryset(self, request):
        return super().get_queryset(request).filter(kind=IncidentKind.INCIDENT)

    @admin.display(description="status", ordering="status")
    def coloured_status(self, obj: Incident) -> str:
        return status_badge(obj.status)

    @admin.display(description="components")
    def affected_components(self, obj: Incident) -> str:
        return _affected_summary(obj)

    def _components(self, request) -> list[Component]:
        if not hasattr(request, "_desk_components"):
            request._desk_components = forms.leaf_components_in_page_order()
        return request._desk_components

    def get_fieldsets(self, request, obj=None):
        if obj is not None:
            return self.change_fieldsets
        names = [f"{forms.COMPONENT_FIELD_PREFIX}{c.pk}" for c in self._components(request)]
        fieldsets = [
            (None, {"fields": ["page", "name", "status", "impact", "severity", "regions"]}),
            ("Times", {"fields": ["started_at", "next_update_at"]}),
            ("First update", {"fields": ["body", "display_at", "deliver_notifications"]}),
        ]
        if names:
            fieldsets.append(("Component statuses", {"fields": names, "description": "Set the components this incident affects."}))
        return fieldsets

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return ()
        readonly = ["public_id", "page", "status", "monitoring_at", "affected_components", *INTERNAL_READONLY_FIELDS]
        if obj.is_open:
            readonly.append("resolved_at")  # set by resolving, corrected afterwards
        return readonly

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs["form"] = forms.with_component_fields(forms.IncidentOpenForm, self._components(request))
        return super().get_form(request, obj, change, **kwargs)

    def save_model(self, request, obj, form, change) -> None:
        if change:
            call_service(services.incident_edit, incident=obj, regions=form.cleaned_data.get("regions"), actor=request.user)
            return
        data = form.cleaned_data
        incident = call_service(
            services.incident_open,
            page=data["page"], name=data["name"], body=data["body"], status=data["status"],
            impact=data["impact"] or None, severity=data["severity"], components=form.component_changes(),
            regions=data["regions"], started_at=data["started_at"], display_at=data["display_at"],
            next_update_at=data["next_update_at"], deliver_notifications=data["deliver_notifications"],
            actor=request.user,
        )
        adopt(obj, incident)

    def save_related(self, request, form, formsets, change) -> None:
        if change:  # incident_edit saved the fields and regions; the time line inline is read only
            super().save_related(request, form, formsets, change)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        if request.method == "GET":
            incident = self.get_object(request, unquote(object_id))
            if incident is not None:
                for component in selectors.components_drifted(incident):
                    messages.warning(
                        request,
                        f"{component} is still {COMPONENT_LABELS[component.status].lower()} although this incident is "
                        "resolved and no open incident explains it. Post an update on an open incident or set the "
                        "component's status.",
                    )
        return super().change_view(request, object_id, form_url, extra_context)

    def get_urls(self):
        info = self.opts.app_label, self.opts.model_name
        return [
            path("<path:object_id>/post-update/", self.admin_site.admin_view(self.post_update_view), name="%s_%s_post_update" % info),
            path("<path:object_id>/resolve/", self.admin_site.admin_view(self.resolve_view), name="%s_%s_resolve" % info),
            *super().get_urls(),
        ]

    def _change_redirect(self, obj) -> HttpResponseRedirect:
        return HttpResponseRedirect(reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_change", args=[obj.pk]))

    def post_update_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        incident = self.get_changeable_object(request, object_id)
        if incident is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        form_class = forms.with_component_fields(forms.PostUpdateForm, forms.leaf_components_in_page_order(incident.page))
        form = form_class(request.POST if request.method == "POST" else None, incident=incident)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            try:
                services.incident_post_update(
                    incident=incident, status=data["status"], body=data["body"], components=form.component_changes(),
                    display_at=data["display_at"], next_update_at=data["next_update_at"],
                    deliver_notifications=data["deliver_notifications"], actor=request.user,
                )
            except ValidationError as exc:
                forms.apply_errors(form, exc)
            else:
                self.log_change(request, incident, f"Posted an update: {STATUS_LABELS[data['status']]}.")
                self.message_user(request, f"Update posted on “{incident}”.", messages.SUCCESS)
                return self._change_redirect(incident)
        fieldsets = [(None, {"fields": ["status", "body", "display_at", "next_update_at", "deliver_notifications"]})]
        if form.component_field_names():
            fieldsets.append(("Component statuses", {"fields": form.component_field_names(), "description": "Leave a component at “No change” to keep its status."}))
        return self.render_action_form(request, incident, form, title="Post an update", fieldsets=fieldsets, submit="Post update")

    def resolve_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        incident = self.get_changeable_object(request, object_id)
        if incident is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        if not incident.is_open:
            self.message_user(request, "This incident is already resolved.", messages.WARNING)
            return self._change_redirect(incident)
        form = forms.ResolveForm(request.POST if request.method == "POST" else None)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            try:
                services.incident_resolve(
                    incident=incident, body=data["body"], restore_components=data["restore_components"],
                    keep_reason=data["keep_reason"], resolved_at=data["resolved_at"], display_at=data["display_at"],
                    deliver_notifications=data["deliver_notifications"], actor=request.user,
                )
            except ValidationError as exc:
                forms.apply_errors(form, exc)
            else:
                self.log_change(request, incident, "Resolved.")
                self.message_user(request, f"“{incident}” is resolved.", messages.SUCCESS)
                return self._change_redirect(incident)
        degraded = [
            link.component for link in incident.affected.select_related("component", "component__group")
            if link.component.status != ComponentStatus.OPERATIONAL
        ]
        intro = (
            "Not operational now: " + ", ".join(f"{c} ({COMPONENT_LABELS[c.status].lower()})" for c in degraded) + "."
            if degraded else "All the components this incident affected are operational."
        )
        fieldsets = [
            (None, {"fields": ["body", "resolved_at", "display_at", "deliver_notifications"]}),
            ("Affected components", {"fields": ["restore_components", "keep_reason"]}),
        ]
        return self.render_action_form(request, incident, form, title="Resolve the incident", fieldsets=fieldsets, intro=intro, submit="Resolve")


# --- scheduled maintenance ------------------------------------------------------------------------

# What each step writes on the time line when staff do not write their own text.
MAINTENANCE_STEPS: dict[str, dict] = {
    "start": {
        "service": services.maintenance_start, "from": (MaintenanceStatus.SCHEDULED,), "title": "Start the maintenance",
        "body": "The scheduled maintenance has begun. We will post an update when it is complete.",
    },
    "verify": {
        "service": services.maintenance_verify, "from": (MaintenanceStatus.IN_PROGRESS,), "title": "Verify the maintenance",
        "body": "The work is done and we are checking that everything runs as expected.",
    },
    "complete": {
        "service": services.maintenance_complete, "from": (MaintenanceStatus.SCHEDULED, *ACTIVE_MAINTENANCE_STATUSES),
        "title": "Complete the maintenance",
        "body": "The scheduled maintenance is complete and all affected services are running normally.",
    },
}


class MaintenanceWhenFilter(admin.SimpleListFilter):
    title = "window"
    parameter_name = "when"

    def lookups(self, request, model_admin):
        return [("upcoming", "Upcoming"), ("active", "In progress or verifying"), ("past", "Completed")]

    def queryset(self, request, queryset):
        return {
            "upcoming": lambda: queryset.filter(status=MaintenanceStatus.SCHEDULED),
            "active": lambda: queryset.filter(status__in=ACTIVE_MAINTENANCE_STATUSES),
            "past": lambda: queryset.filter(status=MaintenanceStatus.COMPLETED),
        }.get(self.value(), lambda: queryset)()


@admin.register(Maintenance)
class MaintenanceAdmin(MaintenanceNoticesMixin, ServiceAdmin):
    inlines_when_adding = False
    form = forms.MaintenanceChangeForm
    add_form = forms.MaintenanceScheduleForm
    list_display = ("name", "coloured_status", "scheduled_for", "scheduled_until", "auto_start", "auto_complete", "page", "public_id")
    list_filter = (MaintenanceWhenFilter, MaintenanceStatusFilter, "page")
    list_select_related = ("page",)
    search_fields = ("name", "public_id", "updates__body")
    date_hierarchy = "scheduled_for"
    inlines = [TimelineInline]
    actions = ["start_selected", "verify_selected", "complete_selected"]
    add_fieldsets = [
        (None, {"fields": ["page", "name"]}),
        ("Window", {"fields": ["scheduled_for", "scheduled_until", "auto_start", "auto_complete"]}),
        ("Components", {"fields": ["affected_components"]}),
        ("Announcement", {"fields": ["body", "deliver_notifications"]}),
    ]
    change_fieldsets = [
        (None, {"fields": ["public_id", "page", "name", "status"]}),
        ("Window", {"fields": ["scheduled_for", "scheduled_until", "auto_start", "auto_complete"]}),
        ("Record", {"fields": ["monitoring_at", "resolved_at", "affected_components"]}),
    ]

    def get_queryset(self, request):
        return super().get_queryset(request).filter(kind=IncidentKind.MAINTENANCE)

    @admin.display(description="status", ordering="status")
    def coloured_status(self, obj: Incident) -> str:
        return status_badge(obj.status)

    @admin.display(description="components")
    def affected_components(self, obj: Incident) -> str:
        return _affected_summary(obj)


    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return ()
        return ("public_id", "page", "status", "monitoring_at", "resolved_at", "affected_components")


    def save_model(self, request, obj, form, change) -> None:
        if change:
            call_service(services.incident_edit, incident=obj, actor=request.user)
            return
        data = form.cleaned_data
        maintenance = call_service(
            services.maintenance_schedule,
            rename={"components": "affected_components"},
            page=data["page"], name=data["name"], body=data["body"],
            scheduled_for=data["scheduled_for"], scheduled_until=data["scheduled_until"],
            components=data["affected_components"], auto_start=data["auto_start"], auto_complete=data["auto_complete"],
            deliver_notifications=data["deliver_notifications"], actor=request.user,
            reminder_leads=data.get("reminder_leads"),
        )
        adopt(obj, maintenance)

    def save_related(self, request, form, formsets, change) -> None:
        # A new maintenance's components were linked by maintenance_schedule.
        if change:
            super().save_related(request, form, formsets, change)

    def get_urls(self):
        info = self.opts.app_label, self.opts.model_name
        return [
            path("<path:object_id>/step/<str:step>/", self.admin_site.admin_view(self.step_view), name="%s_%s_step" % info),
            *super().get_urls(),
        ]

    def step_view(self, request: HttpRequest, object_id: str, step: str) -> HttpResponse:
        spec = MAINTENANCE_STEPS.get(step)
        maintenance = self.get_changeable_object(request, object_id)
        if maintenance is None or spec is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        change_url = reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_change", args=[maintenance.pk])
        if maintenance.status not in spec["from"]:
            self.message_user(request, f"A maintenance that is {maintenance.get_status_display().lower()} cannot do that.", messages.WARNING)
            return HttpResponseRedirect(change_url)
        form = forms.MaintenanceStepForm(request.POST if request.method == "POST" else None, initial={"body": spec["body"]})
        if request.method == "POST" and form.is_valid():
            try:
                spec["service"](maintenance=maintenance, body=form.cleaned_data["body"], actor=request.user)
            except ValidationError as exc:
                forms.apply_errors(form, exc)
            else:
                self.log_change(request, maintenance, spec["title"] + ".")
                self.message_user(request, f"“{maintenance}”: {spec['title'].lower()} - done.", messages.SUCCESS)
                return HttpResponseRedirect(change_url)
        return self.render_action_form(
            request, maintenance, form, title=spec["title"], fieldsets=[(None, {"fields": ["body"]})], submit=spec["title"]
        )

    def _run_step(self, request: HttpRequest, queryset: QuerySet, step: str) -> None:
        spec = MAINTENANCE_STEPS[step]
        done, refused = 0, []
        for maintenance in queryset:
            try:
                spec["service"](maintenance=maintenance, body=spec["body"], actor=request.user)
            except ValidationError as exc:
                refused.append(f"{maintenance}: {' '.join(exc.messages)}")
            else:
                self.log_change(request, maintenance, spec["title"] + ".")
                done += 1
        if done:
            self.message_user(request, f"{spec['title']}: {done} maintenance(s) done.", messages.SUCCESS)
        for line in refused:
            self.message_user(request, line, messages.ERROR)

    @admin.action(description="Start the selected maintenances now", permissions=["change"])
    def start_selected(self, request, queryset) -> None:
        self._run_step(request, queryset, "start")

    @admin.action(description="Move the selected maintenances to verifying", permissions=["change"])
    def verify_selected(self, request, queryset) -> None:
        self._run_step(request, queryset, "verify")

    @admin.action(description="Complete the selected maintenances", permissions=["change"])
    def complete_selected(self, request, queryset) -> None:
        self._run_step(request, queryset, "complete")


from incidents import admin_editorial  # noqa: E402,F401
