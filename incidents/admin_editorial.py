"""The editorial workflow in the desk: drafts and their review, the severity policy, message
templates, near misses, post-mortems and staff reminders.

Every write with business meaning goes through incidents.editorial, which also checks the
permissions: a refused action answers 403 and the service has already recorded the near
miss. The workflow steps (submit, approve, publish) are POST-only admin views, so the admin's
CSRF protection covers them, and they are called outside any transaction of ours so that a
refusal's NearMiss row is never rolled back with the refused write.
"""
from __future__ import annotations

import difflib
import json
from datetime import timezone as dt_timezone

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.views.decorators.http import require_POST

from incidents import editorial, message_templates, redaction
from incidents.admin import ServiceAdmin, adopt, call_service, status_badge
from incidents.message_templates import IncidentCategory, MessageKind
from incidents.models import (
    Approval,
    ApprovalRole,
    Component,
    ComponentStatus,
    DraftRevision,
    DraftState,
    MessageTemplate,
    NearMiss,
    PolicyVersion,
    Postmortem,
    Severity,
    SeverityPolicy,
    StaffReminder,
    UpdateDraft,
)
from statuspage.lib.admin import ReadOnlyAdminMixin
from subscribers.models import Tier


def _when(value) -> str:
    return f"{value.astimezone(dt_timezone.utc):%Y-%m-%d %H:%M} UTC" if value else "-"


def _who(user) -> str:
    return user.get_username() if user is not None else "the system"


class MarkdownField(forms.CharField):
    """A text area for Markdown whose line breaks are stored as LF.

    Browsers send a textarea's lines as CRLF and CharField strips the final newline; either
    would make an untouched text differ from what is stored, so a plain "Save" would write a
    new revision and an unchanged legal-approved template use would count as edited.
    """

    def __init__(self, **kwargs) -> None:
        kwargs.setdefault("strip", False)
        kwargs.setdefault("widget", forms.Textarea(attrs={"rows": 16, "cols": 90}))
        super().__init__(**kwargs)

    def to_python(self, value):
        value = super().to_python(value)
        return value.replace("\r\n", "\n").replace("\r", "\n") if value else value


# --- update drafts ------------------------------------------------------------------------------

# A proposed incident starts with one of these on every selected component.
PROPOSAL_STATUSES = [
    (value, label) for value, label in ComponentStatus.choices
    if value in (ComponentStatus.MAJOR_OUTAGE, ComponentStatus.PARTIAL_OUTAGE, ComponentStatus.DEGRADED_PERFORMANCE)
]
CLOSED_STATES = (DraftState.PUBLISHED, DraftState.DISCARDED)


class DraftCreateForm(forms.ModelForm):
    """A new draft: about an incident, or the initial alert of one not yet open (its proposal)."""

    language = forms.ChoiceField(
        choices=[(code, code) for code in message_templates.LANGUAGES], initial="en",
        help_text="The template's language (English when there is none in this language).",
    )
    name = forms.CharField(required=False, max_length=200, label="Incident name")
    severity = forms.ChoiceField(choices=Severity.choices, initial=Severity.P3, required=False)
    category = forms.ChoiceField(choices=IncidentCategory.choices, initial=IncidentCategory.OUTAGE, required=False)
    components = forms.ModelMultipleChoiceField(
        queryset=Component.objects.filter(is_group=False).select_related("group", "page").order_by("page__name", "position", "name"),
        required=False, widget=forms.CheckboxSelectMultiple,
    )
    component_status = forms.ChoiceField(
        choices=PROPOSAL_STATUSES, initial=ComponentStatus.MAJOR_OUTAGE, required=False,
        help_text="Set on every selected component when the incident opens.",
    )

    class Meta:
        model = UpdateDraft
        fields = ["page", "incident", "kind", "status", "body", "talking_points", "deliver_notifications"]
        field_classes = {"body": MarkdownField}

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if "status" in self.fields:
            self.fields["status"].required = False
            self.fields["status"].help_text = "Leave empty for the kind's usual status (or the incident's current one)."
        if "body" in self.fields:
            self.fields["body"].required = False
            self.fields["body"].help_text = "Leave empty to start from the current template of this kind and language."
        if "incident" in self.fields:
            self.fields["incident"].required = False
            self.fields["incident"].help_text = "Empty for the initial alert of a new incident: describe it below."

    def clean(self):
        data = super().clean()
        if not data.get("incident") and data.get("kind") and data["kind"] != MessageKind.INITIAL_ALERT:
            self.add_error("incident", "Choose the incident this update is about, or choose the kind Initial alert to open a new one.")
        return data

    def proposal(self) -> dict:
        data = self.cleaned_data
        status = data.get("component_status") or ComponentStatus.MAJOR_OUTAGE
        return {
            "name": data.get("name") or "", "severity": data.get("severity") or Severity.P3,
            "category": data.get("category") or IncidentCategory.OUTAGE,
            "components": {str(component.pk): status for component in data.get("components") or []},
        }


class DraftChangeForm(forms.ModelForm):
    class Meta:
        model = UpdateDraft
        fields = ["status", "body", "talking_points"]
        field_classes = {"body": MarkdownField}


def _diff_html(old: str, new: str, *, old_label: str, new_label: str) -> str:
    # Each line is escaped by format_html; only our own spans are markup.
    styles = {"+": "background:#e6ffed;color:#1b5e20", "-": "background:#ffeef0;color:#b71c1c", "@": "color:#6a1b9a"}
    lines = difflib.unified_diff(old.splitlines(), new.splitlines(), old_label, new_label, lineterm="", n=2)
    rows = []
    for line in lines:
        style = "color:#555" if line.startswith(("+++", "---")) else styles.get(line[:1], "")
        rows.append((style, line))
    if not rows:
        return format_html("<p>{}</p>", "Same text; only the status changed.")
    return format_html(
        '<pre class="draft-diff" style="white-space:pre-wrap;margin:0">{}</pre>',
        format_html_join("\n", '<span style="{}">{}</span>', rows),
    )


def _lines(items: list[str]) -> str:
    return format_html("<ul>{}</ul>", format_html_join("", "<li>{}</li>", ((item,) for item in items)))


@admin.register(UpdateDraft)
class UpdateDraftAdmin(ServiceAdmin):
    form = DraftChangeForm
    add_form = DraftCreateForm
    change_form_template = "admin/incidents/updatedraft/change_form.html"
    list_display = ("about", "kind", "state", "revision", "author", "updated", "page")
    list_filter = ("state", "kind", "page")
    list_select_related = ("incident", "author", "page")
    search_fields = ("body", "incident__name", "public_id")
    date_hierarchy = "created"
    add_fieldsets = [
        (None, {"fields": ["page", "incident", "kind", "language"]}),
        ("New incident", {
            "fields": ["name", "severity", "category", "components", "component_status"],
            "description": "Only for an initial alert without an incident: the incident opens when the alert is published.",
        }),
        ("Text", {"fields": ["status", "body", "deliver_notifications"]}),
        ("For the support team", {"fields": ["talking_points"]}),
    ]
    change_fieldsets = [
        (None, {"fields": ["public_id", "page", "about", "kind", "state", "revision", "author", "updated"]}),
        ("Text", {"fields": ["status", "body"], "description": "Saving writes a new revision and withdraws its approvals."}),
        ("For the support team", {"fields": ["talking_points"], "description": "Approved with the text; never public."}),
        ("Review", {"fields": ["approvals_panel", "redaction_panel", "template_used"]}),
        ("Publication", {"fields": [
            "published_update", "published_by", "published_at", "policy_version", "emergency_reason", "redaction_override",
        ]}),
        ("Revision history", {"fields": ["history"]}),
    ]
    _change_readonly = [
        "public_id", "page", "about", "kind", "state", "revision", "author", "updated", "approvals_panel", "redaction_panel",
        "template_used", "published_update", "published_by", "published_at", "policy_version", "emergency_reason",
        "redaction_override", "history",
    ]

    def get_readonly_fields(self, request, obj=None):
        return self._change_readonly if obj is not None else ()

    def get_fieldsets(self, request, obj=None):
        fieldsets = super().get_fieldsets(request, obj)
        if obj is not None and obj.state != DraftState.PUBLISHED:
            fieldsets = [fieldset for fieldset in fieldsets if fieldset[0] != "Publication"]
        return fieldsets

    def has_change_permission(self, request, obj=None) -> bool:
        # A published text is frozen in its IncidentUpdate; a fix is a new correcting draft.
        if obj is not None and obj.state in CLOSED_STATES:
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # drafts and their approvals are the review's record

    # --- display ------------------------------------------------------------------------------

    @admin.display(description="about")
    def about(self, obj: UpdateDraft) -> str:
        if obj.incident_id:
            return obj.incident.name
        return f"{obj.proposal.get('name') or 'a new incident'} (new incident)"

    @admin.display(description="approvals")
    def approvals_panel(self, obj: UpdateDraft) -> str:
        required = editorial.required_approvals(obj)
        given = editorial.approvals_given(obj)
        items = []
        for role in dict.fromkeys([*required, *given]):
            label = ApprovalRole(role).label
            approval = given.get(role)
            needed = "" if role in required else " (not required)"
            if approval is None:
                items.append(format_html("<strong>{}</strong>: missing", label))
            else:
                items.append(format_html(
                    "<strong>{}</strong>{}: given by {} for revision {} at {}{}", label, needed, _who(approval.approver),
                    approval.revision, _when(approval.created), f" - {approval.note}" if approval.note else "",
                ))
        withdrawn = Approval.objects.filter(draft=obj, withdrawn_at__isnull=False).select_related("approver")
        for approval in withdrawn:
            items.append(format_html(
                "{} by {} for revision {}: withdrawn at {} ({})", approval.get_role_display(), _who(approval.approver),
                approval.revision, _when(approval.withdrawn_at), approval.withdrawn_reason or "no reason recorded",
            ))
        if not required:
            items.insert(0, format_html("{}", "No approval required by the current severity policy."))
        return format_html(
            "<p>Required: {}</p>{}",
            ", ".join(ApprovalRole(role).label for role in required) or "none", _lines(items),
        )

    @admin.display(description="redaction findings")
    def redaction_panel(self, obj: UpdateDraft) -> str:
        findings = editorial.redaction_findings(obj)
        if not findings:
            return "None."
        # The masked text only: the finding itself must not be shown again on a staff page.
        return _lines([f"Line {f.line}, column {f.column}: {f.label} '{f.masked}'" for f in findings])

    @admin.display(description="template")
    def template_used(self, obj: UpdateDraft) -> str:
        if not obj.template_id:
            return "Written without a template."
        unchanged = obj.template_text and obj.body == obj.template_text
        return format_html(
            "{} ({}){}", str(obj.template), obj.template.label,
            "; the text is unchanged from the template" if unchanged else "; edited since it was filled in",
        )

    @admin.display(description="revisions, latest first")
    def history(self, obj: UpdateDraft) -> str:
        revisions = list(DraftRevision.objects.filter(draft=obj).select_related("author").order_by("number"))
        blocks = []
        for previous, revision in reversed(list(zip([None, *revisions], revisions))):
            heading = format_html(
                "<h3>Revision {} by {} at {}: {}</h3>", revision.number, _who(revision.author), _when(revision.created),
                status_badge(revision.status),
            )
            if previous is None:
                content = format_html('<pre style="white-space:pre-wrap;margin:0">{}</pre>', revision.body)
            else:
                content = _diff_html(
                    previous.body, revision.body,
                    old_label=f"revision {previous.number}", new_label=f"revision {revision.number}",
                )
            blocks.append((heading, content))
        if not blocks:
            return "-"
        return format_html_join("", '<div class="draft-revision">{}{}</div>', blocks)

    # --- saving -------------------------------------------------------------------------------

    def save_model(self, request, obj, form, change) -> None:
        data = form.cleaned_data
        if change:
            call_service(
                editorial.draft_edit, draft=obj, actor=request.user, body=data["body"], status=data["status"],
                talking_points=data.get("talking_points", ""),
            )
            obj.refresh_from_db()
            return
        incident = data.get("incident")
        draft = call_service(
            editorial.draft_create, rename={"template": "body"},
            page=data["page"], actor=request.user, kind=data["kind"], incident=incident,
            proposal=None if incident else form.proposal(), status=data.get("status") or None,
            body=data.get("body") or None, language=data["language"], deliver_notifications=data["deliver_notifications"],
            talking_points=data.get("talking_points", ""),
        )
        adopt(obj, draft)

    # --- the workflow -------------------------------------------------------------------------

    def get_urls(self):
        info = self.opts.app_label, self.opts.model_name

        def view(method):
            return self.admin_site.admin_view(require_POST(method))

        return [
            path("<path:object_id>/submit/", view(self.submit_view), name="%s_%s_submit" % info),
            path("<path:object_id>/approve/<str:role>/", view(self.approve_view), name="%s_%s_approve" % info),
            path("<path:object_id>/publish/", view(self.publish_view), name="%s_%s_publish" % info),
            path("<path:object_id>/emergency-publish/", view(self.emergency_publish_view), name="%s_%s_emergency_publish" % info),
            *super().get_urls(),
        ]

    def _url(self, name: str, *args) -> str:
        return reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_{name}", args=args)

    def _draft(self, request: HttpRequest, object_id: str) -> UpdateDraft:
        draft = self.get_object(request, unquote(object_id))
        if draft is None:
            raise Http404("No such update draft.")
        if not self.has_view_permission(request, draft):
            raise PermissionDenied
        return draft

    def _back(self, draft: UpdateDraft) -> HttpResponseRedirect:
        return HttpResponseRedirect(self._url("change", draft.pk))

    def _refused(self, request: HttpRequest, error: ValidationError) -> None:
        for text in error.messages:
            self.message_user(request, text, messages.ERROR)

    def workflow(self, request: HttpRequest, draft: UpdateDraft) -> dict:
        """The steps this user may take on this draft now; the services decide for real."""
        user = request.user
        if draft.state in CLOSED_STATES:
            return {}
        steps: dict = {}
        if draft.state == DraftState.DRAFT and user.has_perm("incidents.change_updatedraft"):
            steps["submit_url"] = self._url("submit", draft.pk)
        if draft.state in (DraftState.IN_REVIEW, DraftState.APPROVED):
            given = editorial.approvals_given(draft)
            steps["approve"] = [
                {"role": role, "label": label, "url": self._url("approve", draft.pk, role)}
                for role, label in ApprovalRole.choices if role not in given and user.has_perm(f"incidents.approve_{role}")
            ]
        if user.has_perm("incidents.publish_updatedraft"):
            steps["publish_url"] = self._url("publish", draft.pk)
            steps["can_override"] = user.has_perm("incidents.override_redaction_updatedraft")
        if user.has_perm("incidents.emergency_publish_updatedraft"):
            steps["emergency_url"] = self._url("emergency_publish", draft.pk)
        return steps if any(steps.get(k) for k in ("submit_url", "approve", "publish_url", "emergency_url")) else {}

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = dict(extra_context or {})
        if request.method == "GET":
            draft = self.get_object(request, unquote(object_id))
            if draft is not None and self.has_view_permission(request, draft):
                extra_context["workflow"] = self.workflow(request, draft)
                extra_context["missing_approvals"] = [ApprovalRole(r).label for r in editorial.missing_approvals(draft)]
        return super().change_view(request, object_id, form_url, extra_context)

    def submit_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        draft = self._draft(request, object_id)
        try:
            findings = editorial.draft_submit(draft=draft, actor=request.user)
        except ValidationError as exc:
            self._refused(request, exc)
        else:
            self.log_change(request, draft, "Submitted for review.")
            self.message_user(request, "Submitted for review.", messages.SUCCESS)
            if findings:
                self.message_user(request, f"Redaction findings for the reviewers: {redaction.summary(findings)}", messages.WARNING)
        return self._back(draft)

    def approve_view(self, request: HttpRequest, object_id: str, role: str) -> HttpResponse:
        draft = self._draft(request, object_id)
        if role not in ApprovalRole.values:
            raise Http404("No such approval role.")
        try:
            read = request.POST.get("revision", "")
            approval = editorial.draft_approve(
                draft=draft, actor=request.user, role=role, note=request.POST.get("note", ""),
                revision=int(read) if read.isdigit() else None,
            )
        except ValidationError as exc:
            self._refused(request, exc)
        else:
            self.log_change(request, draft, f"Approved as {approval.get_role_display()} (revision {approval.revision}).")
            self.message_user(request, f"Approved as {approval.get_role_display()} for revision {approval.revision}.", messages.SUCCESS)
            draft.refresh_from_db()
            if draft.state == DraftState.APPROVED:
                self.message_user(request, "Every required approval is in: the update can be published.", messages.INFO)
        return self._back(draft)

    def _publish(self, request: HttpRequest, draft: UpdateDraft, *, emergency_reason: str = "") -> HttpResponse:
        try:
            update = editorial.draft_publish(
                draft=draft, actor=request.user, redaction_override=request.POST.get("redaction_override", ""),
                emergency_reason=emergency_reason,
            )
        except editorial.PublishBlocked as blocked:
            for problem in blocked.problems:
                self.message_user(request, problem, messages.ERROR)
        # Forbidden is a PermissionDenied: it passes through and answers 403.
        except ValidationError as exc:
            self._refused(request, exc)
        else:
            how = "Published without approval (emergency)" if emergency_reason else "Published"
            self.log_change(request, draft, f"{how}.")
            if update is None:
                self.message_user(request, "Approved and kept on the incident (an internal post-mortem is not published).", messages.SUCCESS)
            else:
                self.message_user(request, f"{how} on “{update.incident}”.", messages.SUCCESS)
        return self._back(draft)

    def publish_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        return self._publish(request, self._draft(request, object_id))

    def emergency_publish_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        draft = self._draft(request, object_id)
        reason = request.POST.get("emergency_reason", "").strip()
        if not reason:
            # Without a reason the service would take it for an ordinary publish.
            self.message_user(request, "An emergency publish needs a reason; nothing was published.", messages.ERROR)
            return self._back(draft)
        return self._publish(request, draft, emergency_reason=reason)


# --- the severity policy ------------------------------------------------------------------------


class PolicyForm(forms.ModelForm):
    channels = forms.MultipleChoiceField(
        choices=[(c, c) for c in editorial.SUBSCRIBER_CHANNELS], required=False, widget=forms.CheckboxSelectMultiple,
        help_text="The subscriber channels messages of this severity go to.",
    )
    sms_tiers = forms.MultipleChoiceField(
        choices=Tier.choices, required=False, widget=forms.CheckboxSelectMultiple,
        help_text="Account tiers that get SMS (when sms is a channel).",
    )
    approvals = forms.MultipleChoiceField(
        choices=ApprovalRole.choices, required=False, widget=forms.CheckboxSelectMultiple,
        help_text="Approvals every update of this severity needs before it is published.",
    )
    note = forms.CharField(required=False, max_length=200, help_text="Why the policy changes; kept with the new version.")

    class Meta:
        model = SeverityPolicy
        fields = [
            "criteria", "channels", "sms_tiers", "update_cadence_minutes", "target_resolution_minutes", "escalation",
            "escalation_contacts", "approvals", "large_audience", "postmortem_visibility", "postmortem_deadline_hours",
        ]


@admin.register(SeverityPolicy)
class SeverityPolicyAdmin(ServiceAdmin):
    form = PolicyForm
    list_display = ("severity", "update_cadence_minutes", "target_resolution_minutes", "approval_roles", "channel_list", "updated")
    ordering = ("severity",)
    readonly_fields = ("severity", "updated")
    fieldsets = [
        (None, {"fields": ["severity", "criteria", "updated"]}),
        ("Communication", {"fields": ["channels", "sms_tiers", "update_cadence_minutes", "target_resolution_minutes"]}),
        ("Review", {"fields": ["approvals", "large_audience"]}),
        ("Escalation", {"fields": ["escalation", "escalation_contacts"]}),
        ("Post-mortem", {"fields": ["postmortem_visibility", "postmortem_deadline_hours"]}),
        ("This change", {"fields": ["note"]}),
    ]

    # One row per severity, created by policy_seed: the set of severities is fixed.
    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="approvals")
    def approval_roles(self, obj: SeverityPolicy) -> str:
        return ", ".join(ApprovalRole(r).label if r in ApprovalRole.values else r for r in obj.approvals or []) or "-"

    @admin.display(description="channels")
    def channel_list(self, obj: SeverityPolicy) -> str:
        return ", ".join(obj.channels or []) or "-"

    def save_model(self, request, obj, form, change) -> None:
        version = call_service(editorial.policy_save, policy=obj, actor=request.user, note=form.cleaned_data.get("note", ""))
        self.message_user(request, f"Saved as policy version {version.number}.", messages.INFO)


@admin.register(PolicyVersion)
class PolicyVersionAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Frozen: messages name the version they went out under."""

    list_display = ("number", "note", "created_by", "created")
    list_select_related = ("created_by",)
    fields = ("number", "note", "created_by", "created", "rules_json")
    readonly_fields = fields

    @admin.display(description="rules")
    def rules_json(self, obj: PolicyVersion) -> str:
        return format_html('<pre style="white-space:pre-wrap">{}</pre>', json.dumps(obj.rules, indent=2, sort_keys=True))


# --- message templates --------------------------------------------------------------------------


def placeholder_help() -> str:
    catalog = format_html_join("", "<li><code>{{{}}}</code>: {}</li>", sorted(message_templates.PLACEHOLDERS.items()))
    required = format_html_join(
        "", "<li>{}: {}</li>",
        ((MessageKind(kind).label, ", ".join(f"{{{name}}}" for name in names)) for kind, names in message_templates.REQUIRED_FACTS.items()),
    )
    return format_html(
        "Markdown with placeholders in braces; write {{{{ and }}}} for a literal brace."
        "<details><summary>Placeholders</summary><ul>{}</ul></details>"
        "<details><summary>Facts each kind must name</summary><ul>{}</ul></details>",
        catalog, required,
    )


class TemplateForm(forms.ModelForm):
    class Meta:
        model = MessageTemplate
        fields = ["kind", "language", "subject", "body", "pre_approved_legal"]
        field_classes = {"body": MarkdownField}

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if "body" in self.fields:
            self.fields["body"].help_text = placeholder_help()


@admin.register(MessageTemplate)
class MessageTemplateAdmin(ServiceAdmin):
    form = TemplateForm
    list_display = ("kind", "language", "version", "is_current", "pre_approved_legal", "created_by", "created")
    list_filter = ("kind", "language", "is_current", "pre_approved_legal")
    list_select_related = ("created_by",)
    search_fields = ("subject", "body")
    add_fieldsets = [(None, {"fields": ["kind", "language", "subject", "body", "pre_approved_legal"]})]
    change_fieldsets = [
        (None, {
            "fields": ["kind", "language", "version", "is_current", "subject", "body", "pre_approved_legal"],
            "description": "Saving writes a new current version; this version stays as it was, for the messages that used it.",
        }),
        ("Record", {"fields": ["created_by", "created"]}),
    ]

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return ()
        return ("kind", "language", "version", "is_current", "created_by", "created")

    def has_add_permission(self, request) -> bool:
        # A new template is saved by template_save, which needs the change permission too: the
        # admin must not let through a save that the service will refuse.
        return super().has_add_permission(request) and request.user.has_perm("incidents.change_messagetemplate")

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # sent messages name the template version they were written from

    def save_model(self, request, obj, form, change) -> None:
        if change and not form.has_changed():
            return  # a plain "Save" is not a new version
        saved = call_service(editorial.template_save, template=obj, actor=request.user)
        adopt(obj, saved)
        if saved.kind in message_templates.REQUIRED_FACTS:
            missing = message_templates.facts_missing(saved.kind, saved.subject, saved.body)
            if missing:
                self.message_user(
                    request,
                    f"Saved, but a {saved.get_kind_display().lower()} should name every required fact; "
                    f"missing: {', '.join('{' + name + '}' for name in missing)}.",
                    messages.WARNING,
                )

    def response_change(self, request, obj):
        response = super().response_change(request, obj)
        if "_continue" in request.POST:
            # The saved text is a new row: continue editing that one, not the old version.
            return HttpResponseRedirect(reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_change", args=[obj.pk]))
        return response


# --- near misses, post-mortems, reminders -------------------------------------------------------


@admin.register(NearMiss)
class NearMissAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """For the post-incident review; marking one reviewed is the only change."""

    list_display = ("created", "kind", "incident", "actor", "action", "reviewed")
    list_filter = ("kind", ("reviewed_at", admin.EmptyFieldListFilter))
    list_select_related = ("incident", "actor")
    search_fields = ("action", "reason", "incident__name")
    date_hierarchy = "created"
    actions = ["mark_reviewed"]
    fields = ("kind", "incident", "draft", "actor", "action", "reason", "created", "reviewed_at")
    readonly_fields = fields

    @admin.display(description="reviewed", boolean=True, ordering="reviewed_at")
    def reviewed(self, obj: NearMiss) -> bool:
        return obj.reviewed_at is not None

    def has_review_permission(self, request) -> bool:
        return request.user.has_perm("incidents.change_nearmiss")

    @admin.action(description="Mark the selected near misses reviewed", permissions=["review"])
    def mark_reviewed(self, request, queryset) -> None:
        count = editorial.near_misses_review(ids=list(queryset.values_list("pk", flat=True)), actor=request.user)
        self.message_user(request, f"{count} near miss(es) marked reviewed.", messages.SUCCESS)


class PostmortemForm(forms.ModelForm):
    class Meta:
        model = Postmortem
        fields = ["body", "visibility", "notify_subscribers"]
        field_classes = {"body": MarkdownField}


@admin.register(Postmortem)
class PostmortemAdmin(ServiceAdmin):
    """Opened by the resolution (editorial.postmortem_schedule); staff write it here."""

    form = PostmortemForm
    list_display = ("incident", "state", "visibility", "due_at", "author", "published_at")
    list_filter = ("state", "visibility")
    list_select_related = ("incident", "author")
    fields = ("incident", "state", "due_at", "visibility", "notify_subscribers", "body", "author", "published_at", "updated")
    readonly_fields = ("incident", "state", "due_at", "author", "published_at", "updated")

    def get_readonly_fields(self, request, obj=None):
        if obj is not None and obj.state == DraftState.PUBLISHED:
            return self.fields  # published: the approved text and its audience stay as they were
        return self.readonly_fields

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def save_model(self, request, obj, form, change) -> None:
        data = form.cleaned_data
        saved = call_service(
            editorial.postmortem_write, incident=obj.incident, actor=request.user, body=data["body"],
            visibility=data["visibility"], notify_subscribers=data["notify_subscribers"],
        )
        adopt(obj, saved)


@admin.register(StaffReminder)
class StaffReminderAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("created", "kind", "incident", "due_at", "recipient_list")
    list_filter = ("kind",)
    list_select_related = ("incident",)
    date_hierarchy = "created"

    @admin.display(description="recipients")
    def recipient_list(self, obj: StaffReminder) -> str:
        return ", ".join(str(r) for r in obj.recipients or []) or "-"


