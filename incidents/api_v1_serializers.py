"""Input and output shapes of the management API v1 (incidents/api_v1.py).

Inputs follow Statuspage's v1: a body wrapped in the resource name (`{"incident": {...}}`) or
the same fields form-encoded (`incident[name]=...`, `incident[component_ids][]=...`,
`incident[components][<id>]=major_outage`). Inputs only parse; the services decide.

Outputs reuse the v2 wire shapes (incidents/wire.py: the same keys, ids are public ids,
timestamps ISO 8601 in the page's time zone) and add the v1 and editorial fields. The
*Out serializers below only describe those dicts for the OpenAPI schema.
"""
from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import Prefetch
from django.http import QueryDict
from rest_framework import serializers

from incidents import editorial, wire
from incidents.models import (
    ALL_STATUS_CHOICES,
    Component,
    ComponentStatus,
    DraftState,
    Impact,
    Incident,
    IncidentComponent,
    IncidentUpdate,
    MessageTemplate,
    Page,
    PolicyVersion,
    Postmortem,
    Severity,
    UpdateDraft,
)
from incidents.message_templates import IncidentCategory
from incidents.policy import worst_component_status
from incidents.redaction import Finding

# --- request bodies -----------------------------------------------------------------------------

_BRACKETS = re.compile(r"^(\w+)((?:\[[^\]]*\])+)$")
_PART = re.compile(r"\[([^\]]*)\]")


def unwrap(data: object, resource: str) -> dict:
    """A request body -> the resource's fields as a plain dict.

    `{"incident": {...}}`, form fields `incident[name]`, `incident[component_ids][]` and
    `incident[components][<id>]`, or the bracketed keys in a flat JSON object. Top-level keys
    that are not the resource (e.g. `redaction_override`) are left to the caller.
    """
    if not isinstance(data, Mapping):
        return {}
    fields: dict = {}
    nested = data.get(resource)
    if isinstance(nested, Mapping):
        fields.update(nested)
    for key in data:
        match = _BRACKETS.match(str(key))
        if not match or match.group(1) != resource:
            continue
        parts = _PART.findall(match.group(2))
        values = data.getlist(key) if isinstance(data, QueryDict) else [data[key]]
        name = parts[0]
        if len(parts) == 1:
            fields[name] = values[-1] if isinstance(data, QueryDict) else values[0]
        elif parts[1] == "":
            # `incident[component_ids][]`: a list, however many times it was sent.
            flat = [v for value in values for v in (value if isinstance(value, list) else [value])]
            fields.setdefault(name, [])
            fields[name] = [*fields[name], *flat] if isinstance(fields[name], list) else flat
        else:
            # `incident[components][<id>]`: a map.
            target = fields.setdefault(name, {})
            if isinstance(target, dict):
                target[parts[1]] = values[-1]
    return fields


def top_level(data: object, name: str, fields: Mapping) -> str:
    """An option sent beside the resource (or inside it): e.g. `redaction_override`."""
    value = data.get(name) if isinstance(data, Mapping) else None
    if value in (None, ""):
        value = fields.get(name)
    return value.strip() if isinstance(value, str) else ""


def errors_body(errors: Mapping, resource: str) -> dict:
    """Field errors keyed the way Statuspage names its parameters: `incident[name]`."""
    out: dict[str, list[str]] = {}
    for name, value in errors.items():
        key = resource if name in ("non_field_errors", "__all__") else f"{resource}[{name}]"
        out.setdefault(key, []).extend(_messages(value))
    return {"errors": out}


def _messages(value: object) -> list[str]:
    if isinstance(value, Mapping):
        return [m for item in value.values() for m in _messages(item)]
    if isinstance(value, (list, tuple)):
        return [m for item in value for m in _messages(item)]
    return [str(value)]


def service_errors(exc: DjangoValidationError, resource: str, *, rename: Mapping[str, str] | None = None) -> dict:
    if not hasattr(exc, "error_dict"):
        return {"errors": {resource: exc.messages}}
    rename = rename or {}
    return errors_body({rename.get(name, name): messages for name, messages in exc.message_dict.items()}, resource)


class ComponentInput(serializers.Serializer):
    name = serializers.CharField(max_length=100, required=False)
    description = serializers.CharField(required=False, allow_blank=True, allow_null=True)
    status = serializers.ChoiceField(choices=ComponentStatus.choices, required=False)
    group_id = serializers.CharField(required=False, allow_null=True, allow_blank=True, max_length=12)
    only_show_if_degraded = serializers.BooleanField(required=False)
    showcase = serializers.BooleanField(required=False)
    position = serializers.IntegerField(required=False, min_value=1)
    start_date = serializers.DateField(required=False, allow_null=True)


class ComponentGroupInput(serializers.Serializer):
    name = serializers.CharField(max_length=100, required=False)
    description = serializers.CharField(required=False, allow_blank=True, allow_null=True)
    position = serializers.IntegerField(required=False, min_value=1)
    components = serializers.ListField(child=serializers.CharField(max_length=12), required=False, max_length=500)


class PageInput(serializers.Serializer):
    name = serializers.CharField(max_length=100, required=False)
    url = serializers.URLField(required=False)
    time_zone = serializers.CharField(max_length=64, required=False)
    page_description = serializers.CharField(required=False, allow_blank=True)
    support_url = serializers.URLField(required=False, allow_blank=True)


_COMPONENT_KEY = re.compile(r"^[a-z0-9]{1,12}$")
_PLACEHOLDER_KEY = re.compile(r"^[a-z_][a-z0-9_]{0,39}$")


def _checked_keys(value: dict, pattern: re.Pattern[str], what: str, *, most: int) -> dict:
    """Dictionary keys are data too: a stray surrogate or NUL must be a 400, never a 500."""
    if len(value) > most:
        raise serializers.ValidationError(f"At most {most} {what}s.")
    bad = [key for key in value if not isinstance(key, str) or not pattern.match(key)]
    if bad:
        shown = ", ".join(repr(key)[:40] for key in bad[:5])
        raise serializers.ValidationError(f"Not a {what}: {shown}{' …' if len(bad) > 5 else ''}.")
    return value


class IncidentInput(serializers.Serializer):
    """POST and PATCH /incidents: Statuspage's fields, and ours (severity, category, template_values)."""

    name = serializers.CharField(max_length=200, required=False)
    status = serializers.ChoiceField(choices=ALL_STATUS_CHOICES, required=False)
    impact_override = serializers.ChoiceField(choices=Impact.choices, required=False, allow_null=True, allow_blank=True)
    body = serializers.CharField(required=False, allow_blank=True, allow_null=True, trim_whitespace=False)
    component_ids = serializers.ListField(child=serializers.CharField(max_length=12), required=False, max_length=500)
    components = serializers.DictField(child=serializers.ChoiceField(choices=ComponentStatus.choices), required=False)
    deliver_notifications = serializers.BooleanField(required=False, default=True)
    scheduled_for = serializers.DateTimeField(required=False, allow_null=True)
    scheduled_until = serializers.DateTimeField(required=False, allow_null=True)
    scheduled_auto_in_progress = serializers.BooleanField(required=False, default=True)
    scheduled_auto_completed = serializers.BooleanField(required=False, default=True)
    severity = serializers.ChoiceField(
        choices=Severity.values, required=False,
        help_text="Ours (internal): P1-P4. Without it: critical impact P1, major P2, minor P3, none P4.",
    )
    category = serializers.ChoiceField(choices=IncidentCategory.values, required=False, help_text="Ours (internal).")
    template_values = serializers.DictField(
        child=serializers.CharField(allow_blank=True), required=False,
        help_text="Without a body: values for the current template's placeholders (GET /api/v1/templates).",
    )
    redaction_override = serializers.CharField(
        required=False, allow_blank=True, help_text="Publish despite redaction findings; the reason is recorded.",
    )

    def validate_components(self, value: dict) -> dict:
        return _checked_keys(value, _COMPONENT_KEY, "component id", most=500)

    def validate_template_values(self, value: dict) -> dict:
        return _checked_keys(value, _PLACEHOLDER_KEY, "placeholder name", most=100)


class IncidentUpdateInput(serializers.Serializer):
    body = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False)
    display_at = serializers.DateTimeField(required=False)
    deliver_notifications = serializers.BooleanField(required=False)
    wants_twitter_update = serializers.BooleanField(required=False)
    custom_tweet = serializers.CharField(required=False, allow_blank=True, allow_null=True)
    tweet_id = serializers.CharField(required=False, allow_blank=True, allow_null=True)


class PostmortemInput(serializers.Serializer):
    postmortem_body = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False)
    body_draft = serializers.CharField(
        required=False, allow_blank=True, trim_whitespace=False, help_text="Statuspage's name for postmortem_body.",
    )


class ApproveInput(serializers.Serializer):
    role = serializers.ChoiceField(choices=["legal", "pr", "executive"])
    note = serializers.CharField(required=False, allow_blank=True, max_length=500, default="")
    # The revision the approver read (the draft's "revision"): refused if it was edited since.
    revision = serializers.IntegerField(required=False, min_value=1)


class PublishInput(serializers.Serializer):
    redaction_override = serializers.CharField(required=False, allow_blank=True, default="")


class ListQuery(serializers.Serializer):
    q = serializers.CharField(required=False, allow_blank=True, max_length=200)
    limit = serializers.IntegerField(required=False, min_value=1, max_value=100, default=100)
    # Capped: an offset past a bigint is a database error, not an empty page.
    page = serializers.IntegerField(required=False, min_value=1, max_value=100_000, default=1)


class DraftListQuery(ListQuery):
    state = serializers.ChoiceField(choices=DraftState.choices, required=False)


class ArchiveQuery(ListQuery):
    incident = serializers.CharField(required=False, allow_blank=True, max_length=12)
    channel = serializers.CharField(required=False, allow_blank=True, max_length=16)
    limit = serializers.IntegerField(required=False, min_value=1, max_value=100, default=50)


def _wrapped(resource: str, fields: type[serializers.Serializer]) -> type[serializers.Serializer]:
    """`{"<resource>": {...fields}}` for the schema (the body as Statuspage clients send it)."""
    return type(f"{fields.__name__.removesuffix('Input')}Body", (serializers.Serializer,), {resource: fields()})


PageBody = _wrapped("page", PageInput)
ComponentBody = _wrapped("component", ComponentInput)
ComponentGroupBody = _wrapped("component_group", ComponentGroupInput)
IncidentBody = _wrapped("incident", IncidentInput)
IncidentUpdateBody = _wrapped("incident_update", IncidentUpdateInput)
PostmortemBody = _wrapped("postmortem", PostmortemInput)


# --- response bodies -----------------------------------------------------------------------------


def _iso(value, tz: str) -> str | None:
    return wire.timestamp(value, tz)


def page_json(page: Page) -> dict:
    tz = page.time_zone
    return {
        "id": page.public_id,
        "name": page.name,
        "url": page.base_url,
        "time_zone": tz,
        "page_description": page.description,
        "support_url": page.support_url or None,
        "created_at": _iso(page.created, tz),
        "updated_at": _iso(page.updated, tz),
    }


def _component_row(c: Component) -> dict:
    # The dict incidents.wire.component_json reads (as incidents.selectors builds for the v2 API).
    return {
        "id": c.public_id, "pk": c.pk, "name": c.name, "status": c.status, "created_at": c.created,
        "updated_at": c.updated, "position": c.position, "description": c.description or None,
        "showcase": c.showcase, "start_date": c.start_date, "group_id": None, "group": c.is_group,
        "only_show_if_degraded": c.only_show_if_degraded,
    }


class PageComponents:
    """A page's components as the v2 wire shows them (a group's status is its worst child's)."""

    def __init__(self, page: Page) -> None:
        self.page = page
        components = list(Component.objects.filter(page=page).order_by("position", "pk"))
        self.rows = {c.pk: _component_row(c) for c in components}
        children: dict[int, list[dict]] = defaultdict(list)
        for c in components:
            if c.group_id and c.group_id in self.rows:
                self.rows[c.pk]["group_id"] = self.rows[c.group_id]["id"]
                children[c.group_id].append(self.rows[c.pk])
        for c in components:
            if c.is_group:
                entry, members = self.rows[c.pk], children.get(c.pk, [])
                entry["components"] = [m["id"] for m in members]
                entry["status"] = worst_component_status(m["status"] for m in members)
                if members:
                    entry["updated_at"] = max([entry["updated_at"], *(m["updated_at"] for m in members)])
        self.snap = {"page": {"id": page.public_id, "time_zone": page.time_zone}, "components": list(self.rows.values())}

    def component(self, pk: int) -> dict:
        return wire.component_json(self.rows[pk], self.snap)

    def all(self, *, groups: bool | None = None) -> list[dict]:
        rows = [r for r in self.rows.values() if groups is None or r["group"] == groups]
        return [wire.component_json(r, self.snap) for r in rows]

    def group(self, pk: int) -> dict:
        row = self.rows[pk]
        tz = self.page.time_zone
        return {
            "id": row["id"],
            "page_id": self.page.public_id,
            "name": row["name"],
            "description": row["description"],
            "components": list(row.get("components", [])),
            "position": row["position"],
            "created_at": _iso(row["created_at"], tz),
            "updated_at": _iso(row["updated_at"], tz),
        }


def incidents_queryset():
    return Incident.objects.select_related("page", "postmortem").prefetch_related(
        Prefetch("updates", queryset=IncidentUpdate.objects.order_by("-display_at", "-id")),
        Prefetch("affected", queryset=IncidentComponent.objects.select_related("component").order_by("component__position", "component__pk")),
    )


def _update_row(u: IncidentUpdate, incident_id: str) -> dict:
    # The body as written (Markdown): the v1 API gives back what the client sent.
    return {
        "id": u.public_id, "status": u.status, "body": u.body, "incident_id": incident_id,
        "created_at": u.created, "updated_at": u.updated, "display_at": u.display_at,
        "affected_components": u.affected_components, "deliver_notifications": u.deliver_notifications,
    }


def update_json(update: IncidentUpdate, page: Page) -> dict:
    return wire.update_json(_update_row(update, update.incident.public_id), page.time_zone)


def _postmortem(incident: Incident) -> Postmortem | None:
    try:
        return incident.postmortem
    except Postmortem.DoesNotExist:
        return None


def incident_json(incident: Incident, components: PageComponents) -> dict:
    """The v2 incident object plus the v1 and internal fields. `incident` from incidents_queryset()."""
    page = components.page
    row = {
        "id": incident.public_id, "kind": incident.kind, "name": incident.name, "status": incident.status,
        "created_at": incident.created, "updated_at": incident.updated, "monitoring_at": incident.monitoring_at,
        "resolved_at": incident.resolved_at, "impact": incident.impact,
        "shortlink": f"{page.base_url}/incidents/{incident.public_id}", "started_at": incident.started_at,
        "incident_updates": [_update_row(u, incident.public_id) for u in incident.updates.all()],
        "component_ids": [link.component.public_id for link in incident.affected.all()],
        "scheduled_for": incident.scheduled_for, "scheduled_until": incident.scheduled_until,
    }
    out = wire.incident_json(row, components.snap)
    postmortem = _postmortem(incident)
    tz = page.time_zone
    out.update({
        "postmortem_body": postmortem.body if postmortem and postmortem.body else None,
        "postmortem_body_last_updated_at": _iso(postmortem.updated, tz) if postmortem else None,
        "postmortem_published_at": _iso(postmortem.published_at, tz) if postmortem else None,
        "severity": incident.severity,
        "category": incident.category,
        "next_update_at": _iso(incident.next_update_at, tz),
    })
    return out


def finding_json(finding: Finding) -> dict:
    # Never the match itself: a 400 body is logged and shown, and the secret must not spread.
    return {"kind": finding.kind, "label": finding.label, "line": finding.line, "column": finding.column, "masked": finding.masked}


def draft_json(draft: UpdateDraft, *, findings: Iterable[Finding] | None = None) -> dict:
    tz = draft.page.time_zone
    open_states = (DraftState.DRAFT, DraftState.IN_REVIEW, DraftState.APPROVED)
    required = editorial.required_approvals(draft) if draft.state in open_states else []
    given = editorial.approvals_given(draft)
    if findings is None:
        findings = editorial.redaction_findings(draft) if draft.state in open_states else []
    proposal = draft.proposal or {}
    component_ids = dict(Component.objects.filter(pk__in=[int(k) for k in proposal.get("components", {}) if str(k).isdigit()])
                         .values_list("pk", "public_id"))
    return {
        "id": draft.public_id,
        "state": draft.state,
        "kind": draft.kind,
        "status": draft.status,
        "body": draft.body,
        "revision": draft.revision,
        "incident_id": draft.incident.public_id if draft.incident_id else None,
        "proposal": None if draft.incident_id and not proposal else {
            "name": proposal.get("name"), "severity": proposal.get("severity"), "category": proposal.get("category"),
            "impact": proposal.get("impact") or None,
            "components": {component_ids.get(int(k), k): v for k, v in proposal.get("components", {}).items()},
        },
        "deliver_notifications": draft.deliver_notifications,
        "required_approvals": required,
        "missing_approvals": [role for role in required if role not in given],
        "approvals": [
            {"role": role, "approver": a.approver.get_username(), "revision": a.revision, "created_at": _iso(a.created, tz)}
            for role, a in sorted(given.items())
        ],
        "redaction_findings": [finding_json(f) for f in findings],
        "template": draft.template.label if draft.template_id else None,
        "published_update_id": draft.published_update.public_id if draft.published_update_id else None,
        "published_at": _iso(draft.published_at, tz),
        "created_at": _iso(draft.created, tz),
        "updated_at": _iso(draft.updated, tz),
    }


def postmortem_json(incident: Incident, postmortem: Postmortem | None) -> dict:
    tz = incident.page.time_zone
    if postmortem is None:
        return {
            "incident_id": incident.public_id, "postmortem_body": None, "postmortem_body_last_updated_at": None,
            "postmortem_published_at": None, "state": None, "visibility": None, "due_at": None,
        }
    return {
        "incident_id": incident.public_id,
        "postmortem_body": postmortem.body or None,
        "postmortem_body_last_updated_at": _iso(postmortem.updated, tz),
        "postmortem_published_at": _iso(postmortem.published_at, tz),
        "state": postmortem.state,
        "visibility": postmortem.visibility,
        "due_at": _iso(postmortem.due_at, tz),
    }


def policy_json(version: PolicyVersion) -> dict:
    return {
        "version": version.number,
        "label": f"policy-v{version.number}",
        "note": version.note,
        "created_at": version.created.isoformat(),
        "rules": version.rules,
    }


def template_json(template: MessageTemplate) -> dict:
    return {
        "kind": template.kind, "language": template.language, "version": template.version, "label": template.label,
        "subject": template.subject, "body": template.body, "pre_approved_legal": template.pre_approved_legal,
        "created_at": template.created.isoformat(),
    }


# A subscriber's signed links act on their subscription: reading the archive must not hand them out.
_SIGNED_LINK = re.compile(r"(/subscribers/(?:manage|unsubscribe|confirm)/)[^\s<>\"')]+")


def without_signed_links(text: str) -> str:
    return _SIGNED_LINK.sub(r"\1[link withheld]", text)


def archived_message_json(row, *, recipient: str) -> dict:
    """An archive row without its HTML (the text body is the same message), its headers, or the
    recipient's signed links (the full record stays in the archive and its exports)."""
    return {
        "sequence": row.sequence, "created_at": row.created.isoformat(), "sent_at": row.sent_at.isoformat() if row.sent_at else None,
        "channel": row.channel, "kind": row.kind, "recipient": recipient, "subject": row.subject,
        "text_body": without_signed_links(row.text_body),
        "page_id": row.page_public_id or None, "incident_id": row.incident_public_id or None,
        "update_id": row.update_public_id or None, "subscriber_id": row.subscriber_public_id or None,
        "policy_version": row.policy_version, "template_version": row.template_version, "approvals": row.approvals,
        "revision": row.revision, "attempts": row.attempts, "provider_id": row.provider_id, "message_id": row.message_id,
        "hash": row.hash,
    }


# --- schema-only descriptions of the dicts above ------------------------------------------------


class ErrorOut(serializers.Serializer):
    errors = serializers.DictField(child=serializers.ListField(child=serializers.CharField()), required=False)
    detail = serializers.CharField(required=False)
    missing_scope = serializers.CharField(required=False)
    missing_permission = serializers.CharField(required=False)


class PageOut(serializers.Serializer):
    id = serializers.CharField()
    name = serializers.CharField()
    url = serializers.URLField()
    time_zone = serializers.CharField()
    page_description = serializers.CharField()
    support_url = serializers.URLField(allow_null=True)
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class ComponentOut(serializers.Serializer):
    id = serializers.CharField()
    name = serializers.CharField()
    status = serializers.ChoiceField(choices=ComponentStatus.choices)
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    position = serializers.IntegerField()
    description = serializers.CharField(allow_null=True)
    showcase = serializers.BooleanField()
    start_date = serializers.DateField(allow_null=True)
    group_id = serializers.CharField(allow_null=True)
    page_id = serializers.CharField()
    group = serializers.BooleanField()
    only_show_if_degraded = serializers.BooleanField()
    components = serializers.ListField(child=serializers.CharField(), required=False, help_text="Groups only.")


class ComponentGroupOut(serializers.Serializer):
    id = serializers.CharField()
    page_id = serializers.CharField()
    name = serializers.CharField()
    description = serializers.CharField(allow_null=True)
    components = serializers.ListField(child=serializers.CharField())
    position = serializers.IntegerField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class AffectedComponentOut(serializers.Serializer):
    code = serializers.CharField()
    name = serializers.CharField()
    old_status = serializers.CharField()
    new_status = serializers.CharField()


class IncidentUpdateOut(serializers.Serializer):
    id = serializers.CharField()
    status = serializers.CharField()
    body = serializers.CharField()
    incident_id = serializers.CharField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    display_at = serializers.DateTimeField()
    affected_components = AffectedComponentOut(many=True, allow_null=True)
    deliver_notifications = serializers.BooleanField()
    custom_tweet = serializers.CharField(allow_null=True)
    tweet_id = serializers.CharField(allow_null=True)


class IncidentOut(serializers.Serializer):
    id = serializers.CharField()
    name = serializers.CharField()
    status = serializers.CharField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    monitoring_at = serializers.DateTimeField(allow_null=True)
    resolved_at = serializers.DateTimeField(allow_null=True)
    impact = serializers.ChoiceField(choices=Impact.choices)
    shortlink = serializers.URLField()
    started_at = serializers.DateTimeField()
    page_id = serializers.CharField()
    incident_updates = IncidentUpdateOut(many=True)
    components = ComponentOut(many=True)
    reminder_intervals = serializers.CharField(allow_null=True, required=False, help_text="Incidents only; always null.")
    scheduled_for = serializers.DateTimeField(required=False, help_text="Maintenances only.")
    scheduled_until = serializers.DateTimeField(required=False, help_text="Maintenances only.")
    postmortem_body = serializers.CharField(allow_null=True)
    postmortem_body_last_updated_at = serializers.DateTimeField(allow_null=True)
    postmortem_published_at = serializers.DateTimeField(allow_null=True)
    severity = serializers.ChoiceField(choices=Severity.values, help_text="Ours (internal).")
    category = serializers.ChoiceField(choices=IncidentCategory.values, help_text="Ours (internal).")
    next_update_at = serializers.DateTimeField(allow_null=True, help_text="Ours: when the next update is promised.")


class FindingOut(serializers.Serializer):
    kind = serializers.CharField()
    label = serializers.CharField()
    line = serializers.IntegerField()
    column = serializers.IntegerField()
    masked = serializers.CharField()


class ApprovalOut(serializers.Serializer):
    role = serializers.CharField()
    approver = serializers.CharField()
    revision = serializers.IntegerField()
    created_at = serializers.DateTimeField()


class DraftOut(serializers.Serializer):
    id = serializers.CharField()
    state = serializers.ChoiceField(choices=DraftState.choices)
    kind = serializers.CharField()
    status = serializers.CharField()
    body = serializers.CharField()
    revision = serializers.IntegerField()
    incident_id = serializers.CharField(allow_null=True)
    proposal = serializers.DictField(allow_null=True, help_text="For a new incident: what opens when it is published.")
    deliver_notifications = serializers.BooleanField()
    required_approvals = serializers.ListField(child=serializers.CharField())
    missing_approvals = serializers.ListField(child=serializers.CharField())
    approvals = ApprovalOut(many=True)
    redaction_findings = FindingOut(many=True)
    template = serializers.CharField(allow_null=True)
    published_update_id = serializers.CharField(allow_null=True)
    published_at = serializers.DateTimeField(allow_null=True)
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class DraftAcceptedOut(serializers.Serializer):
    draft = DraftOut()
    message = serializers.CharField()


class DraftPublishedOut(serializers.Serializer):
    draft = DraftOut()
    incident = IncidentOut()


class PostmortemOut(serializers.Serializer):
    incident_id = serializers.CharField()
    postmortem_body = serializers.CharField(allow_null=True)
    postmortem_body_last_updated_at = serializers.DateTimeField(allow_null=True)
    postmortem_published_at = serializers.DateTimeField(allow_null=True)
    state = serializers.ChoiceField(choices=DraftState.choices, allow_null=True)
    visibility = serializers.CharField(allow_null=True)
    due_at = serializers.DateTimeField(allow_null=True)


class PolicyOut(serializers.Serializer):
    version = serializers.IntegerField()
    label = serializers.CharField()
    note = serializers.CharField()
    created_at = serializers.DateTimeField()
    rules = serializers.DictField(help_text="Per severity (P1-P4): channels, approvals, cadence, escalation, post-mortem.")


class TemplateOut(serializers.Serializer):
    kind = serializers.CharField()
    language = serializers.CharField()
    version = serializers.IntegerField()
    label = serializers.CharField()
    subject = serializers.CharField()
    body = serializers.CharField()
    pre_approved_legal = serializers.BooleanField()
    created_at = serializers.DateTimeField()


class ArchivedMessageOut(serializers.Serializer):
    sequence = serializers.IntegerField()
    created_at = serializers.DateTimeField()
    sent_at = serializers.DateTimeField(allow_null=True)
    channel = serializers.CharField()
    kind = serializers.CharField()
    recipient = serializers.CharField(help_text="Webhook, Slack and Teams URLs show their host only.")
    subject = serializers.CharField()
    text_body = serializers.CharField()
    page_id = serializers.CharField(allow_null=True)
    incident_id = serializers.CharField(allow_null=True)
    update_id = serializers.CharField(allow_null=True)
    subscriber_id = serializers.CharField(allow_null=True)
    policy_version = serializers.CharField()
    template_version = serializers.CharField()
    approvals = serializers.ListField(child=serializers.DictField())
    revision = serializers.CharField()
    attempts = serializers.IntegerField()
    provider_id = serializers.CharField()
    message_id = serializers.CharField()
    hash = serializers.CharField()


# --- schema-only: the subscriber endpoints (subscribers/api.py), described from here ------------


class SubscriberOut(serializers.Serializer):
    """The v1 subscriber object of subscribers.serializers.SubscriberOutput, plus our fields."""

    id = serializers.CharField()
    mode = serializers.ChoiceField(choices=["email", "sms", "webhook", "slack", "teams"])
    email = serializers.CharField(allow_null=True)
    endpoint = serializers.CharField(allow_null=True)
    phone_number = serializers.CharField(allow_null=True)
    phone_country = serializers.CharField(allow_null=True)
    display_phone_number = serializers.CharField(allow_null=True)
    skip_confirmation_notification = serializers.BooleanField()
    quarantined_at = serializers.DateTimeField(allow_null=True)
    purge_at = serializers.DateTimeField(allow_null=True)
    components = serializers.ListField(child=serializers.CharField())
    page_access_user_id = serializers.CharField(allow_null=True)
    created_at = serializers.DateTimeField()
    state = serializers.CharField()
    organization = serializers.DictField(allow_null=True)
    regions = serializers.ListField(child=serializers.CharField())
    all_components = serializers.BooleanField()
    incident = serializers.CharField(allow_null=True)
    notify_incidents = serializers.BooleanField()
    notify_maintenance = serializers.BooleanField()
    locale = serializers.CharField()
    time_zone = serializers.CharField()
    confirmed_at = serializers.DateTimeField(allow_null=True)
    unsubscribed_at = serializers.DateTimeField(allow_null=True)


class PublicSubscriberOut(serializers.Serializer):
    created_at = serializers.DateTimeField()
    skip_confirmation_notification = serializers.BooleanField()
    quarantined_at = serializers.DateTimeField(allow_null=True)
    id = serializers.CharField()
    mode = serializers.CharField()
    purge_at = serializers.DateTimeField(allow_null=True)
    email = serializers.CharField(required=False)
    endpoint = serializers.CharField(required=False)
    phone_number = serializers.CharField(required=False)
    phone_country = serializers.CharField(required=False, allow_null=True)


class SubscriberFieldsIn(serializers.Serializer):
    email = serializers.CharField(required=False)
    phone_number = serializers.CharField(required=False)
    phone_country = serializers.CharField(required=False)
    endpoint = serializers.CharField(required=False)
    mode = serializers.ChoiceField(choices=["email", "sms", "webhook", "slack", "teams"], required=False)
    component_ids = serializers.ListField(child=serializers.CharField(), required=False)
    incident = serializers.CharField(required=False)
    regions = serializers.ListField(child=serializers.CharField(), required=False)
    all_components = serializers.BooleanField(required=False)
    notify_incidents = serializers.BooleanField(required=False)
    notify_maintenance = serializers.BooleanField(required=False)
    locale = serializers.CharField(required=False)
    time_zone = serializers.CharField(required=False)
    organization = serializers.CharField(required=False)
    skip_confirmation_notification = serializers.BooleanField(required=False)
    skip_confirmation_reason = serializers.CharField(required=False)


SubscriberBody = type("SubscriberBody", (serializers.Serializer,), {"subscriber": SubscriberFieldsIn()})
