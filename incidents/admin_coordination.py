"""The incident's internal side on its desk page: the internal log, command, the vendor
disclosure review, communication blackouts and the incident's drafts. Never public.

IncidentAdmin mixes in IncidentCoordinationMixin. The actions are small POST-only admin views
(the admin's CSRF protection covers them) that call incidents.coordination outside any
transaction of ours, so a refusal's NearMiss row is kept: the service raises Forbidden, a
PermissionDenied, and the request answers 403. A ValidationError becomes one error message
per problem, named by the form field it is about; the page is then shown again as it was.

This module imports nothing from incidents.admin, which imports it.
"""
from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from datetime import timezone as dt_timezone

from django import forms
from django.contrib import messages
from django.contrib.admin.utils import unquote
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.exceptions import NON_FIELD_ERRORS, PermissionDenied, ValidationError
from django.db.models import Q, QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import path, reverse
from django.utils import timezone
from django.utils.http import urlencode
from django.views.decorators.http import require_POST

from incidents import coordination, editorial
from incidents.models import Incident, IncidentNote, NoteKind, UpdateDraft

# The permission a commander needs (coordination.commander_hand_off checks the same).
COMMAND_PERMISSION = ("incidents", "publish_updatedraft")

# Shown in the main change form. Commander and vendor flag are read only there: changing them
# goes through the hand-off and vendor forms, which check the new commander and write the log.
INTERNAL_FIELDSET = (
    "Internal (never public)",
    {
        "fields": ["category", "commander", "eta", "vendor_caused", "sla_credit_review"],
        "description": "Commander and vendor flag change through the forms of the internal log below, which record them.",
    },
)
INTERNAL_READONLY_FIELDS = ("commander", "vendor_caused")


def commander_candidates(*, exclude: int | None = None) -> QuerySet:
    """Active users who can publish (by group, own permission or as superuser): who may command."""
    User = get_user_model()
    app_label, codename = COMMAND_PERMISSION
    perm = Permission.objects.filter(content_type__app_label=app_label, codename=codename)
    users = User.objects.filter(is_active=True).filter(
        Q(is_superuser=True) | Q(groups__permissions__in=perm) | Q(user_permissions__in=perm)
    )
    if exclude is not None:
        users = users.exclude(pk=exclude)
    return users.distinct().order_by(User.USERNAME_FIELD)


# --- the small forms ----------------------------------------------------------------------------
# They only parse what the browser sends; the services decide what is allowed, so their rules
# (and messages) are the ones staff meet. Each renders with its own ids, beside the main form.


class UTCDateTimeField(forms.DateTimeField):
    """A datetime-local input read and shown in UTC, whatever the desk's time zone, because the
    log (coordination.blackout_start) and this panel state blackout times in UTC."""

    widget = forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M")

    def to_python(self, value):
        with timezone.override(dt_timezone.utc):
            return super().to_python(value)

    def prepare_value(self, value):
        if isinstance(value, datetime) and timezone.is_aware(value):
            return value.astimezone(dt_timezone.utc).replace(tzinfo=None)
        return value


class NoteForm(forms.Form):
    kind = forms.ChoiceField(choices=[(NoteKind.NOTE, "Note"), (NoteKind.DECISION, "Decision")], initial=NoteKind.NOTE)
    body = forms.CharField(required=False, strip=False, label="Text", widget=forms.Textarea(attrs={"rows": 3, "cols": 70}))


class HandOffForm(forms.Form):
    # A plain number, not a choice among the candidates: the service says who may command.
    to = forms.IntegerField(label="Hand command to", required=False, widget=forms.Select)
    note = forms.CharField(
        required=False, max_length=1000, label="Note",
        help_text="Optional; needed when you take over from another commander.",
        widget=forms.Textarea(attrs={"rows": 2, "cols": 70}),
    )

    def __init__(self, *args, incident: Incident | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        exclude = incident.commander_id if incident is not None else None
        self.fields["to"].widget.choices = [("", "---------")] + [
            (user.pk, user.get_username()) for user in commander_candidates(exclude=exclude)
        ]


class VendorForm(forms.Form):
    vendor = forms.CharField(required=False, max_length=200, label="Vendor")


class DisclosureForm(forms.Form):
    decision = forms.CharField(
        required=False, label="Disclosure decision", help_text="What may be said about the vendor.",
        widget=forms.Textarea(attrs={"rows": 3, "cols": 70}),
    )


class BlackoutForm(forms.Form):
    ends_at = UTCDateTimeField(label="Ends at (UTC)")
    reason = forms.CharField(required=False, max_length=500, label="Reason")
    waive_cadence = forms.BooleanField(
        required=False, label="Waive the customer update cadence",
        help_text="Customer updates then wait until the blackout ends; the waiver is recorded for the review.",
    )
    waiver_reason = forms.CharField(required=False, max_length=500, label="Waiver reason")


def _prefixed_ids(form_class: type[forms.Form], name: str, *args, **kwargs) -> forms.Form:
    # The main change form owns ids such as id_name and id_eta; keep ours apart.
    return form_class(*args, auto_id=f"id_log_{name}_%s", **kwargs)


def _label(form: forms.Form, field: str) -> str:
    if field in form.fields and form.fields[field].label:
        return str(form.fields[field].label)
    return field.replace("_", " ").capitalize()


def _report_errors(request: HttpRequest, form: forms.Form, errors: dict[str, list[str]]) -> None:
    for field, texts in errors.items():
        for text in texts:
            prefix = "" if field == NON_FIELD_ERRORS else f"{_label(form, field)}: "
            messages.error(request, f"{prefix}{text}")


def _service_errors(error: ValidationError) -> dict[str, list[str]]:
    return error.message_dict if hasattr(error, "error_dict") else {NON_FIELD_ERRORS: error.messages}


# --- the mixin ----------------------------------------------------------------------------------


class IncidentCoordinationMixin:
    """For IncidentAdmin: the internal log panel, its action views, and the internal fields."""

    def get_urls(self):
        info = self.opts.app_label, self.opts.model_name

        def post_only(view):
            return self.admin_site.admin_view(require_POST(view))

        return [
            path("<path:object_id>/log/note/", post_only(self.log_note_view), name="%s_%s_log_note" % info),
            path("<path:object_id>/log/hand-off/", post_only(self.log_hand_off_view), name="%s_%s_log_hand_off" % info),
            path("<path:object_id>/log/vendor/", post_only(self.log_vendor_view), name="%s_%s_log_vendor" % info),
            path(
                "<path:object_id>/log/disclosure-review/", post_only(self.log_disclosure_view),
                name="%s_%s_log_disclosure" % info,
            ),
            path("<path:object_id>/log/blackout/", post_only(self.log_blackout_view), name="%s_%s_log_blackout" % info),
            *super().get_urls(),
        ]

    def get_form(self, request, obj=None, change=False, **kwargs):
        form_class = super().get_form(request, obj, change, **kwargs)
        if obj is None or "category" not in form_class.base_fields:
            return form_class

        class KeepsUnpostedCategory(form_class):
            """A POST without the category (an older client, or a test written before it was on
            the form) keeps the stored one: Django leaves a model default's field alone when
            its widget was omitted, once the form does not demand it."""

            def __init__(self, *args, **kwargs) -> None:
                super().__init__(*args, **kwargs)
                field = self.fields.get("category")
                if field is not None and self.is_bound and field.widget.value_omitted_from_data(
                    self.data, self.files, self.add_prefix("category")
                ):
                    field.required = False

        KeepsUnpostedCategory.__name__ = form_class.__name__
        return KeepsUnpostedCategory

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = dict(extra_context or {})
        incident = self.get_object(request, unquote(object_id))
        if incident is not None and self.has_view_permission(request, incident):
            extra_context["internal"] = self.internal_panel(request, incident)
        return super().change_view(request, object_id, form_url, extra_context)

    # --- what the panel shows -------------------------------------------------------------------

    def _log_url(self, name: str, incident: Incident) -> str:
        return reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_{name}", args=[incident.pk])

    def internal_panel(self, request: HttpRequest, incident: Incident) -> dict | None:
        user = request.user
        if not user.has_perm("incidents.view_incidentnote"):
            return None
        panel: dict = {
            "notes": list(
                IncidentNote.objects.filter(incident=incident).select_related("author", "handed_to").order_by("created", "id")
            ),
            "blackout": coordination.blackout_active(incident),
            "forms": self._action_forms(user, incident),
        }
        if user.has_perm("incidents.view_updatedraft"):
            panel["drafts"] = [
                {"draft": draft, "url": reverse("admin:incidents_updatedraft_change", args=[draft.pk])}
                for draft in UpdateDraft.objects.filter(incident=incident).select_related("author").order_by("created", "id")
            ]
        if user.has_perm("incidents.add_updatedraft"):
            # The add form takes initial values from the query string (ModelAdmin.get_changeform_initial_data).
            add_url = reverse("admin:incidents_updatedraft_add")
            about = {"incident": incident.pk, "page": incident.page_id}
            panel["new_draft_url"] = f"{add_url}?{urlencode(about)}"
            panel["suggested"] = [
                {"label": template.get_kind_display(), "url": f"{add_url}?{urlencode({**about, 'kind': template.kind})}"}
                for template in editorial.suggested_templates(incident=incident)
            ]
        return panel

    def _action_forms(self, user, incident: Incident) -> dict:
        """The forms this user's permissions allow (the services check again). An executive
        has none of these permissions, so reads the panel without forms."""
        found: dict = {}
        if user.has_perm("incidents.add_incidentnote"):
            found["note"] = {"form": _prefixed_ids(NoteForm, "note"), "url": self._log_url("log_note", incident)}
        if user.has_perm("incidents.change_incident"):
            found["hand_off"] = {
                "form": _prefixed_ids(HandOffForm, "hand_off", incident=incident), "url": self._log_url("log_hand_off", incident),
            }
            found["vendor"] = {"form": _prefixed_ids(VendorForm, "vendor"), "url": self._log_url("log_vendor", incident)}
            found["blackout"] = {"form": _prefixed_ids(BlackoutForm, "blackout"), "url": self._log_url("log_blackout", incident)}
        if user.has_perm("incidents.approve_legal") and incident.vendor_caused and incident.disclosure_reviewed_at is None:
            found["disclosure"] = {"form": _prefixed_ids(DisclosureForm, "disclosure"), "url": self._log_url("log_disclosure", incident)}
        return found

    # --- the actions ----------------------------------------------------------------------------

    def _act(
        self, request: HttpRequest, object_id: str, form: forms.Form, perform: Callable[[Incident, dict], str],
    ) -> HttpResponse:
        """Run one action: parse, call the service (Forbidden passes through as a 403), report,
        and go back to the incident's log."""
        incident = self.get_object(request, unquote(object_id))
        if incident is None:
            raise Http404("No such incident.")
        if not self.has_view_permission(request, incident):
            raise PermissionDenied
        if not form.is_valid():
            _report_errors(request, form, form.errors)
        else:
            try:
                done = perform(incident, form.cleaned_data)
            except ValidationError as exc:
                _report_errors(request, form, _service_errors(exc))
            else:
                self.log_change(request, incident, done)
                self.message_user(request, done, messages.SUCCESS)
        return HttpResponseRedirect(self._log_url("change", incident) + "#internal-log")

    def log_note_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        def perform(incident: Incident, data: dict) -> str:
            coordination.incident_note_add(incident=incident, actor=request.user, body=data["body"], kind=data["kind"])
            return "Decision logged." if data["kind"] == NoteKind.DECISION else "Note added to the internal log."

        return self._act(request, object_id, NoteForm(request.POST), perform)

    def log_hand_off_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        def perform(incident: Incident, data: dict) -> str:
            # Anyone active may be named; the service refuses whoever cannot command.
            to = get_user_model().objects.filter(pk=data["to"], is_active=True).first() if data["to"] else None
            coordination.commander_hand_off(incident=incident, actor=request.user, to=to, note=data["note"])
            return f"{to.get_username()} now commands this incident."

        return self._act(request, object_id, HandOffForm(request.POST), perform)

    def log_vendor_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        def perform(incident: Incident, data: dict) -> str:
            coordination.vendor_flag(incident=incident, actor=request.user, vendor=data["vendor"])
            return "Flagged as vendor-caused: legal reviews what may be said about the vendor."

        return self._act(request, object_id, VendorForm(request.POST), perform)

    def log_disclosure_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        def perform(incident: Incident, data: dict) -> str:
            coordination.disclosure_review(incident=incident, actor=request.user, decision=data["decision"])
            return "Disclosure review recorded."

        return self._act(request, object_id, DisclosureForm(request.POST), perform)

    def log_blackout_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        def perform(incident: Incident, data: dict) -> str:
            window = coordination.blackout_start(
                incident=incident, actor=request.user, ends_at=data["ends_at"], reason=data["reason"],
                waive_cadence=data["waive_cadence"], waiver_reason=data["waiver_reason"],
            )
            return f"Communication blackout until {window.ends_at.astimezone(dt_timezone.utc):%Y-%m-%d %H:%M} UTC."

        return self._act(request, object_id, BlackoutForm(request.POST), perform)
