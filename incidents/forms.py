"""Forms of the editorial desk (the Django admin).

They parse and check what staff type; the writes happen in incidents.services, called by
incidents.admin. A rule only a service knows comes back as a ValidationError, which
apply_errors() puts on the field it names.
"""
from __future__ import annotations

import zoneinfo
from collections.abc import Iterable

from django import forms
from django.contrib.admin.widgets import AdminSplitDateTime, FilteredSelectMultiple
from django.contrib.auth import get_user_model
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError

from incidents.models import (
    OPEN_INCIDENT_STATUSES,
    Component,
    ComponentGroup,
    ComponentStatus,
    Impact,
    Incident,
    IncidentKind,
    IncidentStatus,
    Maintenance,
    MaintenanceStatus,
    Page,
    Region,
)

TIME_ZONE_CHOICES = [(name, name) for name in sorted(zoneinfo.available_timezones())]
INCIDENT_IMPACT_CHOICES = [(value, label) for value, label in Impact.choices if value != Impact.MAINTENANCE]
OPEN_STATUS_CHOICES = [(value, label) for value, label in IncidentStatus.choices if value in OPEN_INCIDENT_STATUSES]
COMPONENT_FIELD_PREFIX = "component_"


def apply_errors(form: forms.BaseForm, error: ValidationError, *, rename: dict[str, str] | None = None) -> None:
    """Show a service's ValidationError on the form: on the field it names when the form has
    that field, otherwise above the form."""
    rename = rename or {}
    if not hasattr(error, "error_dict"):
        form.add_error(None, error)
        return
    for name, errors in error.error_dict.items():
        name = rename.get(name, name)
        target = name if name in form.fields else None
        for item in errors:
            if target is None and name != NON_FIELD_ERRORS:
                # Keep the service's field name in the message: "regions: ..." is still useful.
                item = ValidationError(f"{name.replace('_', ' ').capitalize()}: {' '.join(item.messages)}")
            form.add_error(target, item)


def _split_datetime(*, required: bool = False, **kwargs) -> forms.SplitDateTimeField:
    return forms.SplitDateTimeField(required=required, widget=AdminSplitDateTime, **kwargs)


def _markdown_body(**kwargs) -> forms.CharField:
    kwargs.setdefault("help_text", "Markdown. What is affected, the impact, what customers can do, and when the next update comes.")
    return forms.CharField(widget=forms.Textarea(attrs={"rows": 8, "cols": 80}), **kwargs)


def leaf_components(page: Page | None = None):
    """Components (not groups), with what their labels need."""
    queryset = Component.objects.filter(is_group=False).select_related("group", "page")
    if page is not None:
        queryset = queryset.filter(page=page)
    return queryset.order_by("page__name", "page_id", "position", "name")


def leaf_components_in_page_order(page: Page | None = None) -> list[Component]:
    """As the page shows them: top-level entries by position, a group's members under it."""

    def place(c: Component) -> tuple:
        top = c.group or c
        return (c.page.name, c.page_id, top.position, top.name, top.pk, c.group_id is not None, c.position, c.name)

    return sorted(leaf_components(page), key=place)


def _component_label(component: Component, *, with_page: bool) -> str:
    label = str(component)
    return f"{component.page.name}: {label}" if with_page else label


class ComponentStatusFields:
    """One "new status" select per component, blank meaning "leave it as it is".

    Built per request (the components are rows), so the fields are added to a subclass made by
    with_component_fields() rather than declared here.
    """

    status_components: dict[str, Component] = {}

    def component_changes(self) -> dict[Component, str]:
        return {
            component: self.cleaned_data[name]
            for name, component in self.status_components.items()
            if self.cleaned_data.get(name)
        }

    def component_field_names(self) -> list[str]:
        return list(self.status_components)


def with_component_fields(form_class: type, components: Iterable[Component]) -> type:
    components = list(components)
    with_page = len({c.page_id for c in components}) > 1
    attrs: dict[str, object] = {}
    status_components: dict[str, Component] = {}
    labels = dict(ComponentStatus.choices)
    for component in components:
        name = f"{COMPONENT_FIELD_PREFIX}{component.pk}"
        status_components[name] = component
        attrs[name] = forms.ChoiceField(
            label=_component_label(component, with_page=with_page),
            choices=[("", f"No change (now {labels[component.status].lower()})"), *ComponentStatus.choices],
            required=False,
        )
    attrs["status_components"] = status_components
    return type(form_class.__name__, (form_class,), attrs)


# --- pages -----------------------------------------------------------------------------------


class PageForm(forms.ModelForm):
    url = forms.URLField(
        assume_scheme="https", max_length=200,
        help_text="The public address of the page, e.g. https://status.example.com",
    )
    support_url = forms.URLField(assume_scheme="https", max_length=200, required=False)
    time_zone = forms.ChoiceField(
        choices=TIME_ZONE_CHOICES,
        initial="Etc/UTC",
        help_text="Times on the page and in messages are shown in this zone.",
        error_messages={"invalid_choice": "Unknown time zone %(value)s: choose an IANA name from the list, such as Europe/Paris."},
    )

    class Meta:
        model = Page
        fields = [
            "name", "url", "extra_hosts", "is_default", "time_zone", "description", "support_url",
            "logo", "brand_colour", "accent_colour",
        ]
        widgets = {
            "brand_colour": forms.TextInput(attrs={"type": "color"}),
            "accent_colour": forms.TextInput(attrs={"type": "color"}),
        }


# --- components ------------------------------------------------------------------------------


class ComponentForm(forms.ModelForm):
    reason = forms.CharField(
        required=False, max_length=500,
        help_text="Why the status changes. Kept in the status log with your name.",
    )

    class Meta:
        model = Component
        fields = [
            "page", "name", "description", "is_group", "group", "position", "status",
            "showcase", "only_show_if_degraded", "start_date",
        ]


class ComponentGroupForm(forms.ModelForm):
    members = forms.ModelMultipleChoiceField(
        queryset=Component.objects.none(),
        required=False,
        widget=FilteredSelectMultiple("components", is_stacked=False),
        help_text="The components shown under this group. A component already in another group must leave it there first.",
    )

    class Meta:
        model = ComponentGroup
        fields = ["page", "name", "description", "position", "showcase", "only_show_if_degraded", "comms_owner"]

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.instance.is_group = True
        # Only staff can own customer communication (they are reminded with the communicators).
        self.fields["comms_owner"].queryset = get_user_model().objects.filter(is_staff=True, is_active=True).order_by("username")
        page = self.instance.page if self.instance.page_id else None
        members = self.fields["members"]
        # Any component may be posted, so a group or another page's component gets a message
        # that says why it is refused; the select only offers components that can join.
        members.queryset = Component.objects.select_related("group", "page")
        offered = leaf_components_in_page_order(page)
        with_page = len({c.page_id for c in offered}) > 1
        members.widget.choices = [
            (c.pk, _component_label(c, with_page=with_page) + ("" if c.group_id in (None, self.instance.pk) else " (in another group)"))
            for c in offered
        ]
        if self.instance.pk:
            members.initial = [c.pk for c in offered if c.group_id == self.instance.pk]

    def clean(self) -> dict:
        cleaned = super().clean()
        page = cleaned.get("page")
        refused = []
        for component in cleaned.get("members") or []:
            if component.is_group:
                refused.append(f"{component.name} is a group; a group cannot sit inside another group.")
            elif page is not None and component.page_id != page.pk:
                refused.append(f"{component.name} belongs to the page {component.page.name}.")
            elif component.group_id and component.group_id != self.instance.pk:
                refused.append(f"{component.name} is already in the group {component.group.name}; a component belongs to one group only.")
        if refused:
            self.add_error("members", refused)
        return cleaned


# --- incidents -------------------------------------------------------------------------------


class IncidentOpenForm(ComponentStatusFields, forms.ModelForm):
    status = forms.ChoiceField(choices=OPEN_STATUS_CHOICES, initial=IncidentStatus.INVESTIGATING)
    impact = forms.ChoiceField(
        choices=[("", "From the component statuses"), *INCIDENT_IMPACT_CHOICES], required=False,
        help_text="Leave blank to derive it from the worst new component status.",
    )
    regions = forms.ModelMultipleChoiceField(
        queryset=Region.objects.select_related("page"), required=False,
        widget=FilteredSelectMultiple("regions", is_stacked=False),
    )
    body = _markdown_body(label="First update")
    display_at = _split_datetime(help_text="When the update shows as posted. Blank: now.")
    deliver_notifications = forms.BooleanField(required=False, initial=True, help_text="Notify subscribers of this update.")

    class Meta:
        model = Incident
        fields = ["page", "name", "status", "severity", "started_at", "next_update_at"]

    def clean(self) -> dict:
        cleaned = super().clean()
        page = cleaned.get("page")
        if page is not None:
            other = [r.name for r in cleaned.get("regions") or [] if r.page_id != page.pk]
            if other:
                self.add_error("regions", f"Not regions of {page.name}: {', '.join(other)}.")
            for name, component in self.status_components.items():
                if cleaned.get(name) and component.page_id != page.pk:
                    self.add_error(name, f"{component.name} belongs to the page {component.page.name}.")
        return cleaned


class IncidentChangeForm(forms.ModelForm):
    impact = forms.ChoiceField(choices=INCIDENT_IMPACT_CHOICES)

    class Meta:
        model = Incident
        fields = ["name", "impact", "severity", "regions", "started_at", "next_update_at", "resolved_at"]

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if "regions" in self.fields and self.instance.page_id:
            self.fields["regions"].queryset = Region.objects.filter(page_id=self.instance.page_id)


class PostUpdateForm(ComponentStatusFields, forms.Form):
    status = forms.ChoiceField(choices=OPEN_STATUS_CHOICES)
    body = _markdown_body(label="Update")
    display_at = _split_datetime(help_text="When the update shows as posted. Blank: now.")
    next_update_at = _split_datetime(
        label="Next update at", help_text="Blank: the severity's cadence from now (none for P4)."
    )
    deliver_notifications = forms.BooleanField(required=False, initial=True, help_text="Notify subscribers of this update.")

    def __init__(self, *args, incident: Incident, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if incident.is_open:
            self.fields["status"].initial = incident.status
        else:
            # A closed incident takes a postmortem or a further resolved note, or reopens.
            self.fields["status"].choices = IncidentStatus.choices
            self.fields["status"].initial = incident.status


class ResolveForm(forms.Form):
    body = _markdown_body(
        label="Resolution update",
        help_text="Markdown. When it was resolved, what happened, what was fixed and how it is prevented.",
    )
    restore_components = forms.BooleanField(
        required=False, initial=True, label="Restore the affected components",
        help_text="Set them back to operational, or to what another open incident holds them at.",
    )
    keep_reason = forms.CharField(
        required=False, max_length=400, label="Why they stay as they are",
        help_text="Needed when you do not restore components that are still not operational.",
    )
    resolved_at = _split_datetime(help_text="When the impact ended. Blank: now.")
    display_at = _split_datetime(help_text="When the update shows as posted. Blank: now.")
    deliver_notifications = forms.BooleanField(required=False, initial=True, help_text="Notify subscribers of this update.")

    def clean(self) -> dict:
        cleaned = super().clean()
        resolved_at, display_at = cleaned.get("resolved_at"), cleaned.get("display_at")
        if resolved_at and display_at and display_at < resolved_at:
            self.add_error("display_at", "The resolution update cannot show before the resolution time.")
        return cleaned


# --- scheduled maintenance ------------------------------------------------------------------------


class MaintenanceScheduleForm(forms.ModelForm):
    affected_components = forms.ModelMultipleChoiceField(
        queryset=Component.objects.none(), required=False, label="Components",
        widget=FilteredSelectMultiple("components", is_stacked=False),
        help_text="They go under maintenance when the window starts.",
    )
    body = _markdown_body(
        label="Announcement",
        help_text="Markdown. The window, the expected impact and what customers should do.",
    )
    deliver_notifications = forms.BooleanField(required=False, initial=True, help_text="Notify subscribers of the announcement.")

    class Meta:
        model = Maintenance
        fields = ["page", "name", "scheduled_for", "scheduled_until", "auto_start", "auto_complete"]
        field_classes = {"scheduled_for": forms.SplitDateTimeField, "scheduled_until": forms.SplitDateTimeField}
        widgets = {"scheduled_for": AdminSplitDateTime, "scheduled_until": AdminSplitDateTime}

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # The model's own checks (a window that ends after it starts) apply to maintenances only.
        self.instance.kind = IncidentKind.MAINTENANCE
        self.instance.status = MaintenanceStatus.SCHEDULED
        self.instance.impact = Impact.MAINTENANCE
        self.fields["scheduled_for"].required = True
        self.fields["scheduled_until"].required = True
        components = leaf_components()
        self.fields["affected_components"].queryset = components
        with_page = len({c.page_id for c in components}) > 1
        self.fields["affected_components"].label_from_instance = lambda c: _component_label(c, with_page=with_page)

    def clean(self) -> dict:
        cleaned = super().clean()
        page = cleaned.get("page")
        if page is not None:
            other = [c.name for c in cleaned.get("affected_components") or [] if c.page_id != page.pk]
            if other:
                self.add_error("affected_components", f"Not components of {page.name}: {', '.join(other)}.")
        return cleaned


class MaintenanceChangeForm(forms.ModelForm):
    class Meta:
        model = Maintenance
        fields = ["name", "scheduled_for", "scheduled_until", "auto_start", "auto_complete"]


class MaintenanceStepForm(forms.Form):
    body = _markdown_body(label="Update")
