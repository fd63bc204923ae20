"""A maintenance's notices on its desk page: when subscribers are reminded of the window, and
the notices that move it (reschedule), call it off (cancel) or say it runs late (overrun).

MaintenanceAdmin mixes in MaintenanceNoticesMixin. As in incidents.admin_coordination, each
action is a small POST-only admin view (the admin's CSRF protection covers it) calling one
service of incidents.services, which checks the maintenance's state again under a row lock.
A ValidationError becomes one error message per problem, named by the form field it is about,
and the change page is shown again as it was. Changing anything needs change_maintenance.

Times on these forms are read and shown in the page's time zone: the notices state the window
in that zone, so staff type what subscribers will read.

This module imports nothing from incidents.admin, which imports it.
"""
from __future__ import annotations

import re
import zoneinfo
from collections.abc import Callable
from datetime import datetime, timedelta, tzinfo

from django import forms
from django.contrib import messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import NON_FIELD_ERRORS, PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import path, reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from incidents import services
from statuspage.lib.times import local_text
from incidents.models import ACTIVE_MAINTENANCE_STATUSES, Incident, MaintenanceStatus, default_reminder_leads

MAX_REMINDER_LEAD = services.MAX_REMINDER_LEAD_MINUTES

REMINDERS_FIELDSET = (
    "Reminders",
    {"fields": ["reminder_leads"], "description": "Subscribers hear the announcement again this long before the window opens."},
)


def lead_label(minutes: int) -> str:
    """1 week, 2 days, 4 hours, 90 minutes: a lead as staff say it."""
    for size, unit in ((7 * 24 * 60, "week"), (24 * 60, "day"), (60, "hour")):
        if minutes % size == 0:
            count = minutes // size
            return f"{count} {unit}{'' if count == 1 else 's'}"
    return f"{minutes} minute{'' if minutes == 1 else 's'}"


def _zone(maintenance: Incident) -> tzinfo:
    return zoneinfo.ZoneInfo(maintenance.page.time_zone)


# --- the forms ------------------------------------------------------------------------------------
# They only parse what the browser sends; the services decide what is allowed, so their rules
# (and messages) are the ones staff meet.


class ReminderLeadsField(forms.CharField):
    """Minutes before the start, separated by commas ("1440, 60"); empty: no reminders.

    Cleans to a list of minutes, or to None when the field was not posted at all (a client
    written before the field existed), so the window keeps the default leads.
    """

    default_error_messages = {
        "invalid": "Write whole minutes separated by commas, e.g. 1440, 60 (not %(value)s).",
        "too_long": "At most %(most)s minutes (30 days) before the start.",
    }

    def __init__(self, **kwargs) -> None:
        kwargs.setdefault("required", False)
        kwargs.setdefault("label", "Remind subscribers before the start")
        kwargs.setdefault(
            "help_text",
            "Minutes, separated by commas: 10080 is a week, 1440 a day, 240 four hours, 60 an hour. "
            "Leave it empty to send no reminders.",
        )
        super().__init__(**kwargs)

    def prepare_value(self, value):
        if isinstance(value, (list, tuple)):
            return ", ".join(str(lead) for lead in value)
        return value

    def to_python(self, value) -> list[int] | None:
        if value is None:
            return None
        leads = []
        for part in re.split(r"[\s,]+", str(value).strip()):
            if not part:
                continue
            if not re.fullmatch(r"[0-9]{1,9}", part) or int(part) == 0:
                raise ValidationError(self.error_messages["invalid"], code="invalid", params={"value": part})
            if int(part) > MAX_REMINDER_LEAD:
                raise ValidationError(self.error_messages["too_long"], code="too_long", params={"most": MAX_REMINDER_LEAD})
            leads.append(int(part))
        return leads


class PageTimeField(forms.DateTimeField):
    """A datetime-local input read and shown in the page's time zone (named in its label)."""

    widget = forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M")

    def __init__(self, *, zone: tzinfo, **kwargs) -> None:
        self.zone = zone
        super().__init__(**kwargs)

    def to_python(self, value):
        # An ambiguous or missing local time (a DST change) is refused with a field error here.
        with timezone.override(self.zone):
            return super().to_python(value)

    def prepare_value(self, value):
        if isinstance(value, datetime) and timezone.is_aware(value):
            return value.astimezone(self.zone).replace(tzinfo=None)
        return value


def _text(label: str, help_text: str = "", rows: int = 3) -> forms.CharField:
    return forms.CharField(
        required=False, max_length=2000, label=label, help_text=help_text,
        widget=forms.Textarea(attrs={"rows": rows, "cols": 70}),
    )


class RemindersForm(forms.Form):
    reminder_leads = ReminderLeadsField()

    def clean_reminder_leads(self) -> list[int]:
        leads = self.cleaned_data["reminder_leads"]
        if leads is None:  # not posted: on this form an omission is a mistake, not "keep the default"
            raise ValidationError("Send the reminder times, or an empty value for none.")
        return leads


class RescheduleForm(forms.Form):
    body = _text("Message to subscribers", "Optional; published under the new window, e.g. why it moved.")

    def __init__(self, *args, zone: tzinfo, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        name = getattr(zone, "key", str(zone))
        self.fields = {
            "scheduled_for": PageTimeField(zone=zone, label=f"New start ({name})"),
            "scheduled_until": PageTimeField(zone=zone, label=f"New end ({name})"),
            **self.fields,
        }


class CancelForm(forms.Form):
    reason = _text("Reason", "Optional; published under “Cancelled: this maintenance will not take place.”")


class OverrunForm(forms.Form):
    reason = _text("Why it takes longer", "Published with the new end.")

    def __init__(self, *args, zone: tzinfo, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        name = getattr(zone, "key", str(zone))
        self.fields = {"scheduled_until": PageTimeField(zone=zone, label=f"New expected end ({name})"), **self.fields}


def _ids(form_class: type[forms.Form], name: str, *args, **kwargs) -> forms.Form:
    # The main change form owns ids such as id_scheduled_for; keep ours apart.
    return form_class(*args, auto_id=f"id_notice_{name}_%s", **kwargs)


def _report_errors(request: HttpRequest, form: forms.Form, errors: dict[str, list[str]]) -> None:
    for field, texts in errors.items():
        if field == NON_FIELD_ERRORS:
            prefix = ""
        elif field in form.fields and form.fields[field].label:
            prefix = f"{form.fields[field].label}: "
        else:
            prefix = f"{field.replace('_', ' ').capitalize()}: "
        for text in texts:
            messages.error(request, f"{prefix}{text}")


def _service_errors(error: ValidationError) -> dict[str, list[str]]:
    return error.message_dict if hasattr(error, "error_dict") else {NON_FIELD_ERRORS: error.messages}


# --- the mixin ------------------------------------------------------------------------------------


class MaintenanceNoticesMixin:
    """For MaintenanceAdmin: reminder times on the add form, the notices panel on the change
    page, and its action views."""

    def get_urls(self):
        info = self.opts.app_label, self.opts.model_name

        def post_only(view):
            return self.admin_site.admin_view(require_POST(view))

        return [
            path("<path:object_id>/notices/reminders/", post_only(self.notice_reminders_view), name="%s_%s_reminders" % info),
            path("<path:object_id>/notices/reschedule/", post_only(self.notice_reschedule_view), name="%s_%s_reschedule" % info),
            path("<path:object_id>/notices/cancel/", post_only(self.notice_cancel_view), name="%s_%s_cancel" % info),
            path("<path:object_id>/notices/overrun/", post_only(self.notice_overrun_view), name="%s_%s_overrun" % info),
            *super().get_urls(),
        ]

    # --- adding: the reminder times -------------------------------------------------------------

    def get_fieldsets(self, request, obj=None):
        fieldsets = list(super().get_fieldsets(request, obj))
        if obj is not None:
            return fieldsets
        names = [name for name, _options in fieldsets]
        at = names.index("Window") + 1 if "Window" in names else len(fieldsets)
        return [*fieldsets[:at], REMINDERS_FIELDSET, *fieldsets[at:]]

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None and "form" not in kwargs and getattr(self, "add_form", None) is not None:
            kwargs["form"] = type(self.add_form.__name__, (self.add_form,), {"reminder_leads": ReminderLeadsField(initial=default_reminder_leads)})
        return super().get_form(request, obj, change, **kwargs)

    # --- the change page ------------------------------------------------------------------------

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = dict(extra_context or {})
        maintenance = self.get_object(request, unquote(object_id))
        if maintenance is not None and self.has_view_permission(request, maintenance):
            extra_context["notices"] = self.notices_panel(request, maintenance)
        return super().change_view(request, object_id, form_url, extra_context)

    def _notice_url(self, name: str, maintenance: Incident) -> str:
        return reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_{name}", args=[maintenance.pk])

    def notices_panel(self, request: HttpRequest, maintenance: Incident) -> dict:
        zone = _zone(maintenance)
        sent = set(maintenance.reminders_sent or [])
        reminders = [
            {
                "label": lead_label(lead), "minutes": lead, "done": lead in sent,
                "at": local_text(maintenance.scheduled_for - timedelta(minutes=lead), zone) if maintenance.scheduled_for else "",
            }
            for lead in sorted(maintenance.reminder_leads or [], reverse=True)
        ]
        return {
            "zone": getattr(zone, "key", str(zone)),
            "starts": local_text(maintenance.scheduled_for, zone) if maintenance.scheduled_for else "",
            "ends": local_text(maintenance.scheduled_until, zone) if maintenance.scheduled_until else "",
            "planned_end": local_text(maintenance.planned_until, zone) if maintenance.planned_until else "",
            "reminders": reminders,
            "forms": self._notice_forms(request, maintenance, zone) if self.has_change_permission(request, maintenance) else {},
        }

    def _notice_forms(self, request: HttpRequest, maintenance: Incident, zone: tzinfo) -> dict:
        found: dict = {}
        if maintenance.status == MaintenanceStatus.SCHEDULED:
            window = {"scheduled_for": maintenance.scheduled_for, "scheduled_until": maintenance.scheduled_until}
            found["reminders"] = {
                "form": _ids(RemindersForm, "reminders", initial={"reminder_leads": maintenance.reminder_leads or []}),
                "url": self._notice_url("reminders", maintenance),
            }
            found["reschedule"] = {
                "form": _ids(RescheduleForm, "reschedule", zone=zone, initial=window),
                "url": self._notice_url("reschedule", maintenance),
            }
            found["cancel"] = {"form": _ids(CancelForm, "cancel"), "url": self._notice_url("cancel", maintenance)}
        elif maintenance.status in ACTIVE_MAINTENANCE_STATUSES:
            found["overrun"] = {
                "form": _ids(OverrunForm, "overrun", zone=zone, initial={"scheduled_until": maintenance.scheduled_until}),
                "url": self._notice_url("overrun", maintenance),
            }
        return found

    # --- the actions ----------------------------------------------------------------------------

    def _notice(
        self, request: HttpRequest, object_id: str, make_form: Callable[[Incident], forms.Form],
        perform: Callable[[Incident, dict], str],
    ) -> HttpResponse:
        """Parse, call the service, report, and go back to the maintenance's notices."""
        if not self.has_change_permission(request):
            raise PermissionDenied
        maintenance = self.get_object(request, unquote(object_id))
        if maintenance is None:
            raise Http404("No such maintenance.")
        if not self.has_change_permission(request, maintenance):
            raise PermissionDenied
        form = make_form(maintenance)
        if not form.is_valid():
            _report_errors(request, form, form.errors)
        else:
            try:
                done = perform(maintenance, form.cleaned_data)
            except ValidationError as exc:
                _report_errors(request, form, _service_errors(exc))
            else:
                self.log_change(request, maintenance, done)
                self.message_user(request, done, messages.SUCCESS)
        return HttpResponseRedirect(self._notice_url("change", maintenance) + "#maintenance-notices")

    def notice_reminders_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        def perform(maintenance: Incident, data: dict) -> str:
            leads = data["reminder_leads"]
            passed = services.maintenance_set_reminders(maintenance=maintenance, reminder_leads=leads, actor=request.user)
            if passed:
                self.message_user(
                    request, "Already past, so not sent: " + ", ".join(lead_label(lead) for lead in passed) + " before the start.",
                    messages.WARNING,
                )
            if not leads:
                return "Reminders turned off: subscribers will not be reminded of this window."
            return "Reminders set: " + ", ".join(lead_label(lead) for lead in sorted(set(leads), reverse=True)) + " before the start."

        return self._notice(request, object_id, lambda m: RemindersForm(request.POST), perform)

    def notice_reschedule_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        def perform(maintenance: Incident, data: dict) -> str:
            services.maintenance_reschedule(
                maintenance=maintenance, scheduled_for=data["scheduled_for"], scheduled_until=data["scheduled_until"],
                body=data["body"], actor=request.user,
            )
            zone = _zone(maintenance)
            return (
                f"Rescheduled to {local_text(data['scheduled_for'], zone)} - {local_text(data['scheduled_until'], zone)}; "
                "subscribers are told the new window."
            )

        return self._notice(request, object_id, lambda m: RescheduleForm(request.POST, zone=_zone(m)), perform)

    def notice_cancel_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        def perform(maintenance: Incident, data: dict) -> str:
            services.maintenance_cancel(maintenance=maintenance, body=data["reason"], actor=request.user)
            return "Cancelled: subscribers are told this maintenance will not take place."

        return self._notice(request, object_id, lambda m: CancelForm(request.POST), perform)

    def notice_overrun_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        def perform(maintenance: Incident, data: dict) -> str:
            flagged_before = maintenance.sla_credit_review
            services.maintenance_extend(
                maintenance=maintenance, scheduled_until=data["scheduled_until"], reason=data["reason"], actor=request.user,
            )
            if not flagged_before and Incident.objects.filter(pk=maintenance.pk, sla_credit_review=True).exists():
                self.message_user(request, "More than 2 hours past the planned end: flagged for an SLA credit review.", messages.WARNING)
            return f"Overrun announced: the new expected end is {local_text(data['scheduled_until'], _zone(maintenance))}."

        return self._notice(request, object_id, lambda m: OverrunForm(request.POST, zone=_zone(m)), perform)
