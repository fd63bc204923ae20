"""Editorial control: the severity policy, staff roles and the update workflow.

An update goes draft -> in review -> approved -> published. What approvals it needs comes from
the severity policy (severity, category, audience size); an approver is never one of its
authors; any edit after an approval withdraws it. Publishing checks approvals and redaction
findings and names whatever is missing. A commander may publish without approval in an
emergency, with a reason, and that is recorded as a near miss for the review.

Permission checks run before any write and outside the write's transaction: a refused action
changes nothing, yet its NearMiss record stays.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta

from django.contrib.auth.models import Group, Permission
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from incidents import message_templates, redaction
from incidents.message_templates import CATEGORY_REQUIRES_LEGAL, MessageKind
from statuspage.lib.times import local_text
from incidents.models import (
    Approval,
    ApprovalRole,
    Component,
    DraftRevision,
    DraftState,
    Incident,
    IncidentStatus,
    IncidentUpdate,
    MessageTemplate,
    NearMiss,
    NearMissKind,
    Page,
    PolicyVersion,
    PostmortemVisibility,
    Region,
    Severity,
    SeverityPolicy,
    UpdateDraft,
)

# --- the severity policy -----------------------------------------------------------------------

SUBSCRIBER_CHANNELS = ("email", "sms", "webhook", "slack", "teams")
_ENDPOINTS = ["webhook", "slack", "teams"]

# The defaults of REQUIREMENTS.md. Webhooks and chat are integrations that follow the page and
# in-app column (P1-P3); email is P1/P2; SMS reaches enterprise accounts on P1 only.
DEFAULT_POLICY: dict[str, dict] = {
    Severity.P1: {
        "criteria": "Complete outage, risk of data loss, security breach, or more than 25% of customers affected.",
        "channels": ["email", "sms", *_ENDPOINTS], "sms_tiers": ["enterprise"],
        "update_cadence_minutes": 30, "target_resolution_minutes": 120,
        "escalation": "War room within 15 minutes; CEO and CTO notified; hourly executive updates.",
        "approvals": [ApprovalRole.LEGAL, ApprovalRole.PR], "large_audience": None,
        "postmortem_visibility": PostmortemVisibility.PUBLIC, "postmortem_deadline_hours": 48,
    },
    Severity.P2: {
        "criteria": "A major feature down or badly degraded; 10-25% of customers affected.",
        "channels": ["email", *_ENDPOINTS], "sms_tiers": [],
        "update_cadence_minutes": 60, "target_resolution_minutes": 240,
        "escalation": "On-call engineer within 30 minutes; the VP is notified.",
        "approvals": [ApprovalRole.PR], "large_audience": 10000,
        "postmortem_visibility": PostmortemVisibility.PUBLIC, "postmortem_deadline_hours": 72,
    },
    Severity.P3: {
        "criteria": "A minor feature affected; fewer than 10% of customers.",
        "channels": list(_ENDPOINTS), "sms_tiers": [],
        "update_cadence_minutes": 120, "target_resolution_minutes": 480,
        "escalation": "Triage within 2 hours.",
        "approvals": [], "large_audience": None,
        "postmortem_visibility": PostmortemVisibility.INTERNAL, "postmortem_deadline_hours": 168,
    },
    Severity.P4: {
        "criteria": "Cosmetic, or a workaround exists.",
        "channels": [], "sms_tiers": [],
        "update_cadence_minutes": None, "target_resolution_minutes": None,
        "escalation": "Normal triage.",
        "approvals": [], "large_audience": None,
        "postmortem_visibility": PostmortemVisibility.NONE, "postmortem_deadline_hours": None,
    },
}
RULE_FIELDS = (
    "criteria", "channels", "sms_tiers", "update_cadence_minutes", "target_resolution_minutes", "escalation",
    "escalation_contacts", "approvals", "large_audience", "postmortem_visibility", "postmortem_deadline_hours",
)


def _rules_of(policy: SeverityPolicy) -> dict:
    return {name: getattr(policy, name) for name in RULE_FIELDS}


def policy_validate(policy: SeverityPolicy) -> None:
    """Field errors for rules that cannot work (unknown channel or role)."""
    errors: dict[str, str] = {}
    unknown = [c for c in policy.channels or [] if c not in SUBSCRIBER_CHANNELS]
    if unknown:
        errors["channels"] = f"Unknown channel {', '.join(unknown)}; use {', '.join(SUBSCRIBER_CHANNELS)}."
    roles = [r for r in policy.approvals or [] if r not in ApprovalRole.values]
    if roles:
        errors["approvals"] = f"Unknown approval role {', '.join(roles)}; use {', '.join(ApprovalRole.values)}."
    if errors:
        raise ValidationError(errors)


@transaction.atomic
def policy_seed() -> PolicyVersion:
    """Create the default policy rows and version 1 when there are none (idempotent)."""
    for severity, rules in DEFAULT_POLICY.items():
        SeverityPolicy.objects.get_or_create(severity=severity, defaults=dict(rules))
    current = PolicyVersion.objects.order_by("-number").first()
    return current or _snapshot(actor=None, note="Defaults")


def _snapshot(*, actor, note: str) -> PolicyVersion:
    # The rows are locked by the caller (or just created), so max+1 is ours alone.
    number = (PolicyVersion.objects.aggregate(n=Max("number"))["n"] or 0) + 1
    rules = {policy.severity: _rules_of(policy) for policy in SeverityPolicy.objects.order_by("severity")}
    return PolicyVersion.objects.create(number=number, rules=rules, created_by=actor, note=note[:200])


def policy_save(*, policy: SeverityPolicy, actor, note: str = "") -> PolicyVersion:
    """Save one severity's rules and freeze the whole policy as a new version."""
    require(actor, "incidents.change_severitypolicy", action="edit the severity policy")
    with transaction.atomic():
        list(SeverityPolicy.objects.select_for_update().order_by("pk"))
        policy_validate(policy)
        policy.full_clean()
        policy.updated = timezone.now()
        policy.save()
        return _snapshot(actor=actor, note=note or f"{policy.severity} edited")


def policy_current() -> PolicyVersion:
    return PolicyVersion.objects.order_by("-number").first() or policy_seed()


def rules_for(severity: str, version: PolicyVersion | None = None) -> dict:
    version = version or policy_current()
    return dict(version.rules.get(severity) or DEFAULT_POLICY.get(severity) or {})


def cadence(severity: str, *, extended: bool = False, version: PolicyVersion | None = None) -> timedelta | None:
    """How long until the next public update is due; an extended outage tightens it to 15 minutes."""
    minutes = rules_for(severity, version).get("update_cadence_minutes")
    if extended and minutes:
        minutes = min(minutes, EXTENDED_CADENCE_MINUTES)
    return timedelta(minutes=minutes) if minutes else None


EXTENDED_CADENCE_MINUTES = 15
EXTENDED_AFTER = timedelta(hours=4)


# --- roles -------------------------------------------------------------------------------------

_VIEW = [
    "incidents.view_incident", "incidents.view_incidentupdate", "incidents.view_updatedraft", "incidents.view_draftrevision",
    "incidents.view_approval", "incidents.view_component", "incidents.view_page", "incidents.view_severitypolicy",
    "incidents.view_policyversion", "incidents.view_messagetemplate", "incidents.view_incidentnote",
    "incidents.view_postmortem", "incidents.view_maintenance", "incidents.view_componentgroup",
]
_DRAFTING = ["incidents.add_updatedraft", "incidents.change_updatedraft", "incidents.add_incidentnote", "incidents.change_postmortem", "incidents.add_postmortem"]
ROLE_GROUPS: dict[str, list[str]] = {
    "Communicators": _VIEW + _DRAFTING,
    "Legal approvers": _VIEW + ["incidents.approve_legal"],
    "PR approvers": _VIEW + ["incidents.approve_pr"],
    "Executive approvers": _VIEW + ["incidents.approve_executive"],
    "Incident commanders": _VIEW + _DRAFTING + [
        "incidents.publish_updatedraft", "incidents.emergency_publish_updatedraft", "incidents.override_redaction_updatedraft",
        "incidents.change_incident", "incidents.view_nearmiss",
    ],
    "Executives": _VIEW + ["incidents.view_nearmiss"],
    "Status administrators": _VIEW + _DRAFTING + [
        "incidents.publish_updatedraft", "incidents.change_severitypolicy", "incidents.add_messagetemplate",
        "incidents.change_messagetemplate", "incidents.view_nearmiss", "incidents.change_nearmiss",
        "incidents.change_incident", "incidents.add_incident", "incidents.change_component",
    ],
}


def roles_sync() -> None:
    """Create the role groups with their permissions (idempotent; runs after every migrate)."""
    for name, perms in ROLE_GROUPS.items():
        group, _created = Group.objects.get_or_create(name=name)
        wanted = []
        for perm in perms:
            app_label, codename = perm.split(".", 1)
            found = Permission.objects.filter(content_type__app_label=app_label, codename=codename).first()
            if found is not None:
                wanted.append(found)
        group.permissions.add(*wanted)


class Forbidden(PermissionDenied):
    """A refused action; the message says which permission was missing."""


def require(actor, perm: str, *, action: str, incident: Incident | None = None, draft: UpdateDraft | None = None) -> None:
    """Refuse (Forbidden) unless `actor` holds `perm`; a refusal is recorded as a near miss.

    Call it before opening the transaction of the write it guards: the record must survive
    the refusal.
    """
    if actor is not None and actor.is_active and actor.has_perm(perm):
        return
    NearMiss.objects.create(
        kind=NearMissKind.FORBIDDEN, incident=incident, draft=draft,
        actor=actor if getattr(actor, "pk", None) else None, action=action[:64],
        reason=f"Refused: {action} needs the permission {perm}.",
    )
    raise Forbidden(f"You may not {action}: it needs the permission {perm.split('.', 1)[1]}.")


# --- drafting -----------------------------------------------------------------------------------


def template_current(kind: str, language: str = "en") -> MessageTemplate | None:
    found = MessageTemplate.objects.filter(kind=kind, language=language, is_current=True).first()
    if found is None and language != "en":
        found = MessageTemplate.objects.filter(kind=kind, language="en", is_current=True).first()
    return found


@transaction.atomic
def templates_seed() -> int:
    """Create version 1 of every shipped default template that has no version yet."""
    created = 0
    for (kind, language), (subject, body) in message_templates.DEFAULT_TEMPLATES.items():
        if not MessageTemplate.objects.filter(kind=kind, language=language).exists():
            MessageTemplate.objects.create(kind=kind, language=language, version=1, subject=subject, body=body, is_current=True)
            created += 1
    return created


def template_save(*, template: MessageTemplate, actor) -> MessageTemplate:
    """Save an edited template as a new current version; earlier versions stay as they were used."""
    require(actor, "incidents.change_messagetemplate", action="edit a message template")
    message_templates.validate_template(template.subject, template.body)
    with transaction.atomic():
        previous = list(
            MessageTemplate.objects.select_for_update().filter(kind=template.kind, language=template.language).order_by("-version")
        )
        MessageTemplate.objects.filter(kind=template.kind, language=template.language, is_current=True).update(is_current=False)
        fresh = MessageTemplate(
            kind=template.kind, language=template.language, version=(previous[0].version + 1) if previous else 1,
            subject=template.subject, body=template.body, pre_approved_legal=template.pre_approved_legal,
            is_current=True, created_by=actor,
        )
        fresh.full_clean()
        fresh.save()
        return fresh


def template_values(*, page: Page, incident: Incident | None, proposal: dict | None = None) -> dict[str, str]:
    """What the system knows for a template's placeholders; the rest is written by staff."""
    proposal = proposal or {}
    values = {"page_name": page.name, "status_link": f"{page.base_url}/"}
    no_eta = "We do not have an estimate yet."
    if incident is None:
        from incidents.models import Impact, IncidentStatus
        from incidents.policy import impact_from_component_statuses

        now = timezone.now()
        statuses = dict(proposal.get("components") or {})
        values["incident_name"] = proposal.get("name", "")
        names = [Component.objects.filter(pk=pk).values_list("name", flat=True).first() or "" for pk in statuses]
        values["service"] = ", ".join(n for n in names if n)
        values["started_at"] = local_text(now, page.time_zone)
        values["status"] = IncidentStatus.INVESTIGATING.label
        impact = proposal.get("impact") or impact_from_component_statuses(statuses.values())
        values["impact"] = Impact(impact).label if impact in Impact.values else ""
        step = cadence(proposal.get("severity", Severity.P3))
        values["next_update_at"] = local_text(now + step, page.time_zone) if step else ""
        values["eta"] = no_eta
        return {k: v for k, v in values.items() if v}
    zone = page.time_zone
    values.update({
        "incident_name": incident.name,
        "service": ", ".join(str(link.component) for link in incident.affected.select_related("component", "component__group")),
        "started_at": local_text(incident.started_at, zone),
        "status": incident.get_status_display(),
        "impact": incident.get_impact_display(),
        "eta": local_text(incident.eta, zone) or no_eta,
        "next_update_at": local_text(incident.next_update_at, zone),
        "resolved_at": local_text(incident.resolved_at, zone),
        "status_link": f"{page.base_url}/incidents/{incident.public_id}",
        "details_link": f"{page.base_url}/incidents/{incident.public_id}",
    })
    if incident.is_maintenance:
        values["window"] = f"{local_text(incident.scheduled_for, zone)} - {local_text(incident.scheduled_until, zone)}"
    return {k: v for k, v in values.items() if v}


def suggested_templates(*, incident: Incident | None = None, category: str = "outage", language: str = "en") -> list[MessageTemplate]:
    """The current templates to offer for the next message, best first: the incident's
    category and state decide (an extended outage suggests its own note)."""
    if incident is None:
        kinds = message_templates.suggested_kinds(category, status=None, is_maintenance=False)
    else:
        kinds = message_templates.suggested_kinds(
            incident.category, status=incident.status, is_maintenance=incident.is_maintenance,
            extended=incident.extended_at is not None, false_alarm=incident.false_alarm,
        )
    found = [template_current(kind, language) for kind in kinds]
    return [template for template in found if template is not None]


_STATUS_BY_KIND = {
    MessageKind.INITIAL_ALERT: IncidentStatus.INVESTIGATING,
    MessageKind.POSTMORTEM: IncidentStatus.POSTMORTEM,
    MessageKind.RESOLUTION: IncidentStatus.RESOLVED,
    MessageKind.FALSE_ALARM: IncidentStatus.RESOLVED,
}


def _proposal_clean(page: Page, proposal: dict) -> dict:
    errors = {}
    if not (proposal.get("name") or "").strip():
        errors["name"] = "Name the incident."
    else:
        # The name goes on the page with the alert: it is checked like the text, and refused
        # outright (a name never needs an internal detail).
        findings = page_findings(page, proposal["name"])
        if findings:
            errors["name"] = f"The name would publish {redaction.summary(findings)}"
    if proposal.get("severity", Severity.P3) not in Severity.values:
        errors["severity"] = f"Unknown severity; use {', '.join(Severity.values)}."
    if proposal.get("category", "outage") not in message_templates.IncidentCategory.values:
        errors["category"] = f"Unknown category; use {', '.join(message_templates.IncidentCategory.values)}."
    components = {str(k): v for k, v in (proposal.get("components") or {}).items()}
    known = set(Component.objects.filter(page=page, pk__in=[int(k) for k in components if k.isdigit()]).values_list("pk", flat=True))
    if any(not k.isdigit() or int(k) not in known for k in components):
        errors["components"] = "Every component must belong to this page."
    if errors:
        raise ValidationError(errors)
    return {
        "name": proposal["name"].strip(), "severity": proposal.get("severity", Severity.P3),
        "category": proposal.get("category", "outage"), "impact": proposal.get("impact") or "",
        "components": components, "regions": [int(r) for r in proposal.get("regions") or []],
    }


def draft_create(
    *, page: Page, actor, kind: str = MessageKind.PROGRESS_UPDATE, incident: Incident | None = None,
    proposal: dict | None = None, status: str | None = None, body: str | None = None, language: str = "en",
    template: MessageTemplate | None = None, corrects: IncidentUpdate | None = None, deliver_notifications: bool = True,
    talking_points: str = "",
) -> UpdateDraft:
    """Start a draft, from the kind's current template unless a body is given (revision 1).

    Without an incident it is the initial alert of a new one, described by `proposal`.
    """
    require(actor, "incidents.add_updatedraft", action="draft an update", incident=incident)
    with transaction.atomic():
        if incident is None:
            proposal = _proposal_clean(page, proposal or {})
            kind = MessageKind.INITIAL_ALERT
        elif incident.page_id != page.pk:
            raise ValidationError({"incident": "The incident belongs to another page."})
        if corrects is not None and (incident is None or corrects.incident_id != incident.pk):
            raise ValidationError({"corrects": "A correction must correct an update of the same incident."})
        template_text = ""
        if body is None and kind == MessageKind.POSTMORTEM and incident is not None:
            # The post-mortem written on the incident is what goes to review.
            from incidents.models import Postmortem

            body = Postmortem.objects.filter(incident=incident).values_list("body", flat=True).first() or None
        if body is None:
            template = template or template_current(kind, language)
            if template is None:
                raise ValidationError({"template": f"No template for {kind} in {language}; write the body yourself."})
            body = message_templates.fill(template.body, template_values(page=page, incident=incident, proposal=proposal))
            template_text = body
        if not body.strip():
            raise ValidationError({"body": "Write what is happening; an update cannot be empty."})
        status = status or _STATUS_BY_KIND.get(kind) or (incident.status if incident else IncidentStatus.INVESTIGATING)
        now = timezone.now()
        draft = UpdateDraft(
            page=page, incident=incident, proposal=proposal or {}, kind=kind, status=status, body=body,
            template=template, template_text=template_text, corrects=corrects,
            deliver_notifications=deliver_notifications, talking_points=talking_points.strip(), author=actor,
            created=now, updated=now,
        )
        draft.full_clean()
        draft.save()
        DraftRevision.objects.create(
            draft=draft, number=1, status=status, body=body, talking_points=draft.talking_points, author=actor, created=now,
        )
        return draft


def _editable(draft: UpdateDraft) -> None:
    if draft.state in (DraftState.PUBLISHED, DraftState.DISCARDED):
        raise ValidationError({"state": f"A {draft.get_state_display().lower()} update cannot change; write a correction instead."})


def draft_edit(
    *, draft: UpdateDraft, actor, body: str | None = None, status: str | None = None, talking_points: str | None = None,
) -> UpdateDraft:
    """Save a new revision; approvals given to earlier revisions are withdrawn.

    The talking points for support are part of what is approved: changing them is an edit too.
    """
    require(actor, "incidents.change_updatedraft", action="edit an update", incident=draft.incident, draft=draft)
    with transaction.atomic():
        draft = UpdateDraft.objects.select_for_update().get(pk=draft.pk)
        _editable(draft)
        body = draft.body if body is None else body
        status = status or draft.status
        talking_points = draft.talking_points if talking_points is None else talking_points.strip()
        if body == draft.body and status == draft.status and talking_points == draft.talking_points:
            return draft
        if not body.strip():
            raise ValidationError({"body": "An update cannot be empty."})
        now = timezone.now()
        draft.revision += 1
        draft.body, draft.status, draft.talking_points, draft.updated = body, status, talking_points, now
        withdrawn = Approval.objects.filter(draft=draft, withdrawn_at__isnull=True).update(
            withdrawn_at=now, withdrawn_reason=f"Edited after approval (revision {draft.revision})",
        )
        if draft.state == DraftState.APPROVED or withdrawn:
            draft.state = DraftState.IN_REVIEW
        draft.full_clean()
        draft.save()
        DraftRevision.objects.create(
            draft=draft, number=draft.revision, status=status, body=body, talking_points=talking_points, author=actor, created=now,
        )
        return draft


def draft_submit(*, draft: UpdateDraft, actor) -> list[redaction.Finding]:
    """Send a draft for review; returns the redaction findings the reviewers will see."""
    # Checked outside the transaction (it was inside @transaction.atomic, whose rollback on the
    # Forbidden also erased the refusal's NearMiss).
    require(actor, "incidents.change_updatedraft", action="submit an update for review", incident=draft.incident, draft=draft)
    with transaction.atomic():
        draft = UpdateDraft.objects.select_for_update().get(pk=draft.pk)
        if draft.state != DraftState.DRAFT:
            raise ValidationError({"state": f"Only a draft goes to review; this one is {draft.get_state_display().lower()}."})
        draft.state, draft.updated = DraftState.IN_REVIEW, timezone.now()
        draft.save(update_fields=["state", "updated"])
    return redaction_findings(draft)


def redaction_findings(draft: UpdateDraft) -> list[redaction.Finding]:
    # The page's own host names are public by definition (they were reported as internal hosts
    # when a page lives on an internal domain, blocking every update that links to it).
    return page_findings(draft.page, draft.body)


def page_findings(page: Page, text: str) -> list[redaction.Finding]:
    """What in `text` must not go on this page; the page's own host names are never findings."""
    return redaction.scan(text, patterns=redaction.patterns_from_settings(public_hosts=page.host_names()))


# --- approvals ----------------------------------------------------------------------------------


def draft_severity(draft: UpdateDraft) -> str:
    return draft.incident.severity if draft.incident else draft.proposal.get("severity", Severity.P3)


def draft_category(draft: UpdateDraft) -> str:
    return draft.incident.category if draft.incident else draft.proposal.get("category", "outage")


def audience_size(page: Page) -> int:
    """How many confirmed subscribers the page has: the reach the large-audience rule weighs."""
    from subscribers.models import Subscriber, SubscriberStatus

    return Subscriber.objects.filter(page=page, status=SubscriberStatus.CONFIRMED, erased_at__isnull=True).count()


def required_approvals(draft: UpdateDraft, *, version: PolicyVersion | None = None, audience: int | None = None) -> list[str]:
    """The approval roles this draft needs before it may be published, in a stable order."""
    rules = rules_for(draft_severity(draft), version)
    roles = set(rules.get("approvals") or [])
    category = draft_category(draft)
    if category in CATEGORY_REQUIRES_LEGAL:
        roles.add(ApprovalRole.LEGAL)  # data exposure: always, pre-approved template or not
    elif (
        draft.template_id and draft.template.pre_approved_legal and draft.template_text and draft.body == draft.template_text
    ):
        roles.discard(ApprovalRole.LEGAL)  # legal already approved this exact text
    threshold = rules.get("large_audience")
    if threshold and draft.deliver_notifications:
        if (audience if audience is not None else audience_size(draft.page)) >= threshold:
            roles.add(ApprovalRole.EXECUTIVE)
    return [role for role in ApprovalRole.values if role in roles]


def approvals_given(draft: UpdateDraft) -> dict[str, Approval]:
    return {
        approval.role: approval
        for approval in Approval.objects.filter(draft=draft, withdrawn_at__isnull=True, revision=draft.revision).select_related("approver")
    }


def _authors(draft: UpdateDraft) -> set[int]:
    """Whoever wrote any of the draft's text, including, for a post-mortem, its writer (the
    draft is made from the post-mortem's body by whoever asks to publish it)."""
    ids = set(DraftRevision.objects.filter(draft=draft).exclude(author=None).values_list("author_id", flat=True))
    if draft.author_id:
        ids.add(draft.author_id)
    if draft.kind == MessageKind.POSTMORTEM and draft.incident_id:
        from incidents.models import Postmortem

        ids |= set(Postmortem.objects.filter(incident_id=draft.incident_id).exclude(author=None).values_list("author_id", flat=True))
    return ids


def draft_approve(*, draft: UpdateDraft, actor, role: str, note: str = "", revision: int | None = None) -> Approval:
    """Approve the draft's current revision for one role; never by one of its authors.

    revision: the revision the approver read. When the draft has been edited since, the
    approval is refused: nobody approves text they have not seen.
    """
    if role not in ApprovalRole.values:
        raise ValidationError({"role": f"Unknown approval role {role!r}."})
    require(actor, f"incidents.approve_{role}", action=f"approve for {ApprovalRole(role).label}", incident=draft.incident, draft=draft)
    with transaction.atomic():
        draft = UpdateDraft.objects.select_for_update().get(pk=draft.pk)
        if draft.state not in (DraftState.IN_REVIEW, DraftState.APPROVED):
            raise ValidationError({"state": f"Only an update in review can be approved; this one is {draft.get_state_display().lower()}."})
        if revision is not None and revision != draft.revision:
            raise ValidationError({"revision": (
                f"The draft was edited while you read it: you read revision {revision}, it is now at revision "
                f"{draft.revision}. Read it again before approving."
            )})
        if actor.pk in _authors(draft):
            raise ValidationError({"approver": "You wrote this update; someone else must approve it."})
        if role in approvals_given(draft):
            raise ValidationError({"role": f"Revision {draft.revision} already has a {ApprovalRole(role).label} approval."})
        approval = Approval.objects.create(draft=draft, role=role, approver=actor, revision=draft.revision, note=note[:500])
        if not missing_approvals(draft):
            draft.state, draft.updated = DraftState.APPROVED, timezone.now()
            draft.save(update_fields=["state", "updated"])
        return approval


def missing_approvals(draft: UpdateDraft, **kwargs) -> list[str]:
    given = approvals_given(draft)
    return [role for role in required_approvals(draft, **kwargs) if role not in given]


# --- publishing ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class PublishCheck:
    missing_approvals: list[str]
    findings: list[redaction.Finding]
    state_error: str = ""
    unfilled: tuple[str, ...] = ()  # [[name]] markers a template left for staff to write
    disclosure_pending: bool = False  # vendor-caused, and legal has not reviewed the disclosure

    def problems(self, *, override: bool) -> list[str]:
        problems = [self.state_error] if self.state_error else []
        if self.missing_approvals:
            labels = ", ".join(ApprovalRole(role).label for role in self.missing_approvals)
            problems.append(f"Missing approval: {labels}.")
        if self.disclosure_pending:
            # Worded as an approval: it is legal's, so an emergency publish may go without it.
            problems.append("Missing approval: the disclosure review of this vendor-caused incident (legal).")
        if self.unfilled:
            problems.append(f"Still to be written: {', '.join(f'[[{name}]]' for name in self.unfilled)}.")
        if self.findings and not override:
            problems.append(f"Redaction findings: {redaction.summary(self.findings)} Remove them, or override with a reason.")
        return problems


_MARKER = re.compile(r"\[\[([a-z_]+)\]\]")


def publish_check(draft: UpdateDraft) -> PublishCheck:
    state_error = ""
    if draft.state in (DraftState.PUBLISHED, DraftState.DISCARDED):
        state_error = f"This update is already {draft.get_state_display().lower()}."
    elif draft.state == DraftState.DRAFT:
        state_error = "Submit the draft for review first."
    unfilled = tuple(dict.fromkeys(
        name for name in _MARKER.findall(draft.body) if name in message_templates.PLACEHOLDERS
    ))
    incident = draft.incident
    if not state_error and incident is not None and draft.status == IncidentStatus.RESOLVED and not incident.is_open:
        # A second resolution (two commanders, or a stale draft) would notify everyone again.
        state_error = "This incident is already resolved; post a correction or a post-mortem instead."
    return PublishCheck(
        missing_approvals=missing_approvals(draft), findings=redaction_findings(draft), state_error=state_error,
        unfilled=unfilled, disclosure_pending=bool(incident and incident.vendor_caused and not incident.disclosure_reviewed_at),
    )


class PublishBlocked(ValidationError):
    """Publishing refused; `problems` lists everything that is missing."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__({"__all__": problems})
        self.problems = problems


def draft_publish(
    *, draft: UpdateDraft, actor, redaction_override: str = "", emergency_reason: str = "",
) -> IncidentUpdate | None:
    """Publish an approved draft: the page, the policy's channels and the archive, in one commit.

    Returns the update it became (None for an internal post-mortem, which is kept, not published).

    emergency_reason: a commander publishes without (all) approvals; recorded as a near miss.
    redaction_override: publish despite redaction findings; needs its own permission.
    """
    emergency = bool(emergency_reason.strip())
    if emergency:
        require(actor, "incidents.emergency_publish_updatedraft", action="publish without approval", incident=draft.incident, draft=draft)
    else:
        require(actor, "incidents.publish_updatedraft", action="publish an update", incident=draft.incident, draft=draft)
    if redaction_override.strip():
        require(actor, "incidents.override_redaction_updatedraft", action="override redaction findings", incident=draft.incident, draft=draft)
    with transaction.atomic():
        draft = UpdateDraft.objects.select_for_update().get(pk=draft.pk)
        if draft.incident_id:
            # Under the incident's lock, so two drafts resolving it at once cannot both pass the check.
            draft.incident = Incident.objects.select_for_update().get(pk=draft.incident_id)
        check = publish_check(draft)
        problems = check.problems(override=bool(redaction_override.strip()))
        if emergency:
            # The emergency path skips review and approvals, never the other checks.
            problems = [p for p in problems if not p.startswith(("Missing approval", "Submit the draft"))]
        if problems:
            raise PublishBlocked(problems)
        version = policy_current()
        given = approvals_given(draft)
        provenance = {
            "policy_version": f"policy-v{version.number}",
            "template_version": draft.template.label if draft.template_id else "",
            "approvals": [
                {"role": role, "approver": approval.approver.get_username(), "at": approval.created.isoformat(), "revision": approval.revision}
                for role, approval in sorted(given.items())
            ],
            "revision": str(draft.revision),
            # A false alarm is corrected only where it was heard.
            "notified_only": draft.kind == MessageKind.FALSE_ALARM,
        }
        update = _publish(draft, actor=actor, provenance=provenance)
        now = timezone.now()
        draft.state, draft.published_update, draft.policy_version = DraftState.PUBLISHED, update, version
        draft.published_by, draft.published_at, draft.updated = actor, now, now
        draft.redaction_override = redaction_override.strip() if check.findings else ""
        draft.emergency_reason = emergency_reason.strip()
        if draft.incident_id is None:
            draft.incident = update.incident
        draft.save()
        if emergency:
            NearMiss.objects.create(
                kind=NearMissKind.EMERGENCY_PUBLISH, incident=draft.incident, draft=draft, actor=actor,
                action="emergency publish", reason=emergency_reason.strip(),
            )
        if check.findings and redaction_override.strip():
            NearMiss.objects.create(
                kind=NearMissKind.REDACTION_OVERRIDE, incident=draft.incident, draft=draft, actor=actor,
                action="redaction override", reason=f"{redaction_override.strip()} ({redaction.summary(check.findings)})",
            )
        return update


def _publish(draft: UpdateDraft, *, actor, provenance: dict) -> IncidentUpdate | None:
    from incidents import services

    if draft.incident_id is None:
        proposal = draft.proposal
        components = {Component.objects.get(pk=int(pk)): status for pk, status in proposal["components"].items()}
        incident = services.incident_open(
            page=draft.page, name=proposal["name"], body=draft.body, status=draft.status, impact=proposal["impact"] or None,
            severity=proposal["severity"], components=components, regions=Region.objects.filter(pk__in=proposal["regions"]),
            deliver_notifications=draft.deliver_notifications, actor=actor, provenance=provenance,
        )
        Incident.objects.filter(pk=incident.pk).update(category=proposal["category"], commander=actor)
        incident.refresh_from_db(fields=["category", "commander"])  # update.incident is this instance
        return incident.updates.get()
    incident = draft.incident
    if draft.kind == MessageKind.POSTMORTEM:
        return _publish_postmortem(draft, actor=actor, provenance=provenance)
    if draft.status == IncidentStatus.RESOLVED and incident.is_open:
        if draft.kind == MessageKind.FALSE_ALARM:
            Incident.objects.filter(pk=incident.pk).update(false_alarm=True)
        return services.incident_resolve(
            incident=incident, body=draft.body, deliver_notifications=draft.deliver_notifications, actor=actor,
            provenance=provenance,
        )
    return services.incident_post_update(
        incident=incident, status=draft.status, body=draft.body, deliver_notifications=draft.deliver_notifications,
        actor=actor, provenance=provenance,
    )


# --- post-mortems ---------------------------------------------------------------------------------


def _publish_postmortem(draft: UpdateDraft, *, actor, provenance: dict) -> IncidentUpdate | None:
    """A post-mortem is drafted and approved like an update. Public: it goes on the incident page
    as a "postmortem" update, notifying subscribers only if the post-mortem says so. Internal:
    it is kept, approved, on the incident and nothing is published."""
    from incidents import services
    from incidents.models import Postmortem

    incident = draft.incident
    if incident.is_open:
        raise PublishBlocked(["Resolve the incident before publishing its post-mortem."])
    postmortem, _created = Postmortem.objects.select_for_update().get_or_create(
        incident=incident, defaults={"visibility": rules_for(incident.severity).get("postmortem_visibility") or PostmortemVisibility.INTERNAL},
    )
    now = timezone.now()
    Postmortem.objects.filter(pk=postmortem.pk).update(body=draft.body, state=DraftState.PUBLISHED, published_at=now, updated=now, author=draft.author)
    if postmortem.visibility != PostmortemVisibility.PUBLIC:
        return None
    return services.incident_post_update(
        incident=incident, status=IncidentStatus.POSTMORTEM, body=draft.body,
        deliver_notifications=postmortem.notify_subscribers, actor=actor, provenance=provenance,
    )


def postmortem_schedule(*, incident: Incident, version: PolicyVersion | None = None):
    """At resolution: open the incident's post-mortem with the policy's deadline and visibility.

    Nothing for a severity whose policy wants none, for a child of a cascade (the parent's
    review covers it), or for a false alarm. Idempotent: a reopened and re-resolved incident
    keeps its post-mortem and first deadline.
    """
    from incidents.models import Postmortem

    if incident.is_maintenance or incident.parent_id or incident.false_alarm:
        return None
    rules = rules_for(incident.severity, version)
    visibility = rules.get("postmortem_visibility") or PostmortemVisibility.NONE
    hours = rules.get("postmortem_deadline_hours")
    if visibility == PostmortemVisibility.NONE or not hours:
        return None
    resolved = incident.resolved_at or timezone.now()
    postmortem, _created = Postmortem.objects.get_or_create(
        incident=incident, defaults={"visibility": visibility, "due_at": resolved + timedelta(hours=hours)},
    )
    return postmortem


def postmortem_write(
    *, incident: Incident, actor, body: str | None = None, visibility: str | None = None,
    notify_subscribers: bool | None = None,
):
    """Write (or set up) the incident's post-mortem before it goes to review; refused once published.

    Without one opened by the resolution, it is internal unless the policy says public.
    """
    from incidents.models import Postmortem

    with transaction.atomic():
        postmortem = Postmortem.objects.select_for_update().filter(incident=incident).first()
        if postmortem is None:
            visibility_default = rules_for(incident.severity).get("postmortem_visibility")
            if visibility_default not in (PostmortemVisibility.PUBLIC, PostmortemVisibility.INTERNAL):
                visibility_default = PostmortemVisibility.INTERNAL
            postmortem = Postmortem(incident=incident, visibility=visibility_default)
        elif postmortem.state == DraftState.PUBLISHED:
            raise ValidationError({"state": "A published post-mortem cannot change; revert it to a draft first."})
        if body is not None:
            postmortem.body = body
        if visibility is not None:
            postmortem.visibility = visibility
        if notify_subscribers is not None:
            postmortem.notify_subscribers = notify_subscribers
        postmortem.author = postmortem.author or actor
        postmortem.updated = timezone.now()
        postmortem.full_clean()
        postmortem.save()
        return postmortem


@transaction.atomic
def postmortem_revert(*, incident: Incident, actor):
    """Take an internal post-mortem back to draft; one on the incident page stays (published text never changes)."""
    from incidents.models import Postmortem

    postmortem = Postmortem.objects.select_for_update().filter(incident=incident).first()
    if postmortem is None or postmortem.state != DraftState.PUBLISHED:
        state = postmortem.get_state_display().lower() if postmortem else "not written"
        raise ValidationError({"state": f"Only a published post-mortem can be reverted; this one is {state}."})
    if incident.updates.filter(status=IncidentStatus.POSTMORTEM).exists():
        raise ValidationError({"state": "This post-mortem is on the incident page; publish a correction instead of reverting it."})
    postmortem.state, postmortem.published_at, postmortem.updated = DraftState.DRAFT, None, timezone.now()
    postmortem.save(update_fields=["state", "published_at", "updated"])
    return postmortem


def near_misses_review(*, ids: list[int], actor) -> int:
    """Mark near misses reviewed (the only change they ever take); returns how many were open."""
    require(actor, "incidents.change_nearmiss", action="review near misses")
    return NearMiss.objects.filter(pk__in=ids, reviewed_at__isnull=True).update(reviewed_at=timezone.now())
