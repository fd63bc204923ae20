"""The editorial workflow (incidents.editorial): an update goes draft -> in review -> approved ->
published, with the approvals the severity policy asks for, never approved by its own authors,
checked for redaction findings, and published with a record of what it went out under."""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.core import mail
from django.core.exceptions import ValidationError

from incidents import editorial
from incidents.message_templates import IncidentCategory, MessageKind
from incidents.models import (
    Approval,
    ComponentStatus,
    DraftRevision,
    DraftState,
    Incident,
    IncidentStatus,
    IncidentUpdate,
    MessageTemplate,
    NearMiss,
    NearMissKind,
    Postmortem,
    SeverityPolicy,
    UpdateDraft,
)
from notifications.models import ArchivedMessage, Delivery, Dispatch
from notifications.services import deliveries_send, dispatch_expand
from tests import factories
from tests.notifications.ledger_helpers import confirmed

pytestmark = pytest.mark.django_db

BODY = "Card payments are failing for some customers. We are investigating and will post again within 30 minutes."
# An internal address in the second line: one redaction finding at a known position.
LEAKY_BODY = "Card payments are failing for some customers.\nWrite to oncall@db-03.internal for details."
LEAK_COLUMN = LEAKY_BODY.split("\n")[1].index("oncall") + 1


def _member(django_user_model, username: str, *groups: str):
    user = django_user_model.objects.create_user(
        username=username, email=f"{username}@example.com", password="correct horse battery", is_staff=True,
    )
    user.groups.add(*Group.objects.filter(name__in=groups))
    return user


@pytest.fixture
def administrator(django_user_model):
    return _member(django_user_model, "ada", "Status administrators")


def _incident(page, *, severity: str = "P1", category: str = IncidentCategory.OUTAGE, components=None) -> Incident:
    incident = factories.open_incident(page=page, severity=severity, components=components or {})
    Incident.objects.filter(pk=incident.pk).update(category=category)
    incident.refresh_from_db()
    return incident


def _draft(incident: Incident, author, *, body: str | None = BODY, **kwargs) -> UpdateDraft:
    kwargs.setdefault("status", IncidentStatus.IDENTIFIED)
    return editorial.draft_create(page=incident.page, incident=incident, actor=author, body=body, **kwargs)


def _submitted(draft: UpdateDraft, actor) -> UpdateDraft:
    editorial.draft_submit(draft=draft, actor=actor)
    return UpdateDraft.objects.get(pk=draft.pk)


def _approved(draft: UpdateDraft, **approvers) -> UpdateDraft:
    for role, approver in approvers.items():
        editorial.draft_approve(draft=draft, actor=approver, role=role)
    return UpdateDraft.objects.get(pk=draft.pk)


def _state(draft: UpdateDraft) -> str:
    return UpdateDraft.objects.values_list("state", flat=True).get(pk=draft.pk)


def _policy_change(actor, severity: str, **rules) -> None:
    policy = SeverityPolicy.objects.get(severity=severity)
    for name, value in rules.items():
        setattr(policy, name, value)
    editorial.policy_save(policy=policy, actor=actor)


def _pre_approve_template(actor, kind: str) -> MessageTemplate:
    current = editorial.template_current(kind)
    return editorial.template_save(
        template=MessageTemplate(kind=kind, language="en", subject=current.subject, body=current.body, pre_approved_legal=True),
        actor=actor,
    )


# --- templates ---------------------------------------------------------------------------------


def test_a_draft_without_a_body_starts_from_the_current_template_filled_with_what_is_known(page, rest_api, communicator):
    incident = _incident(page, components={rest_api: ComponentStatus.MAJOR_OUTAGE})
    draft = editorial.draft_create(page=page, incident=incident, actor=communicator, kind=MessageKind.PROGRESS_UPDATE)

    assert draft.template == editorial.template_current(MessageKind.PROGRESS_UPDATE)
    assert "REST API" in draft.body
    assert f"https://status.example.com/incidents/{incident.public_id}" in draft.body
    # What only staff can know is left as a visible marker to write over.
    assert "[[what_changed]]" in draft.body and "[[what_to_do]]" in draft.body
    assert "{" not in draft.body
    assert draft.template_text == draft.body


def test_an_initial_alert_template_is_filled_from_the_proposal(page, rest_api, communicator):
    draft = editorial.draft_create(
        page=page, actor=communicator,
        proposal={"name": "Checkout failures", "severity": "P2", "components": {str(rest_api.pk): "partial_outage"}},
    )
    assert draft.kind == MessageKind.INITIAL_ALERT
    assert "**REST API**" in draft.body
    assert "https://status.example.com/" in draft.body
    # Known from the proposal: the impact its component statuses imply, the promised next update.
    assert "**Impact:** Major" in draft.body
    assert "[[next_update_at]]" not in draft.body
    # Only people know what customers should do.
    assert "[[what_to_do]]" in draft.body


def test_publishing_is_blocked_while_template_markers_are_unwritten(page, rest_api, communicator, commander):
    draft = editorial.draft_create(
        page=page, actor=communicator,
        proposal={"name": "Checkout failures", "severity": "P3", "components": {str(rest_api.pk): "partial_outage"}},
    )
    editorial.draft_submit(draft=draft, actor=communicator)
    with pytest.raises(editorial.PublishBlocked) as blocked:
        editorial.draft_publish(draft=draft, actor=commander, emergency_reason="Customers are calling already.")
    assert any(problem.startswith("Still to be written: ") and "[[what_to_do]]" in problem for problem in blocked.value.problems)
    assert not Incident.objects.exists()


def test_a_vendor_caused_incident_waits_for_the_disclosure_review(page, communicator, commander, legal):
    from incidents import coordination

    incident = _incident(page, severity="P3")
    coordination.vendor_flag(incident=incident, actor=commander, vendor="Acme Cloud")
    draft = _submitted(_draft(Incident.objects.get(pk=incident.pk), communicator), communicator)
    with pytest.raises(editorial.PublishBlocked) as blocked:
        editorial.draft_publish(draft=draft, actor=commander)
    assert any("disclosure review" in problem for problem in blocked.value.problems)
    coordination.disclosure_review(incident=incident, actor=legal, decision="Name the provider only.")
    assert editorial.draft_publish(draft=draft, actor=commander) is not None


def test_a_draft_in_another_language_uses_that_languages_template(page, communicator):
    draft = _draft(_incident(page), communicator, body=None, kind=MessageKind.INITIAL_ALERT, language="de")
    assert draft.template.label == "initial_alert/de/v1"


def test_a_language_without_templates_falls_back_to_english(page, communicator):
    draft = _draft(_incident(page), communicator, body=None, kind=MessageKind.INITIAL_ALERT, language="fi")
    assert draft.template.label == "initial_alert/en/v1"

def test_saving_a_template_makes_a_new_current_version_and_keeps_the_old_one(page, administrator, communicator):
    first = editorial.template_current(MessageKind.FALSE_ALARM)
    second = editorial.template_save(
        template=MessageTemplate(
            kind=MessageKind.FALSE_ALARM, language="en", subject="Correction: {incident_name}",
            body="Our notice about {service} was sent in error. {correction}",
        ),
        actor=administrator,
    )
    first_again = MessageTemplate.objects.get(pk=first.pk)

    assert (second.version, second.is_current, second.label) == (2, True, "false_alarm/en/v2")
    assert editorial.template_current(MessageKind.FALSE_ALARM) == second
    assert (first_again.version, first_again.is_current, first_again.body) == (1, False, first.body)

    incident = _incident(page, severity="P3")
    draft = editorial.draft_create(page=page, incident=incident, actor=communicator, kind=MessageKind.FALSE_ALARM)
    assert draft.template == second
    assert draft.body.startswith("Our notice about ")


def test_a_template_with_an_unknown_placeholder_is_refused_under_its_body(administrator):
    with pytest.raises(ValidationError) as refused:
        editorial.template_save(
            template=MessageTemplate(
                kind=MessageKind.FALSE_ALARM, language="en", subject="Correction",
                body="Ignore our notice about {service}; {mood}.",
            ),
            actor=administrator,
        )
    assert list(refused.value.message_dict) == ["body"]
    assert "{mood}" in refused.value.message_dict["body"][0]
    assert MessageTemplate.objects.filter(kind=MessageKind.FALSE_ALARM, language="en").count() == 1


def test_a_communicator_may_not_edit_a_template(communicator):
    with pytest.raises(editorial.Forbidden):
        editorial.template_save(
            template=MessageTemplate(kind=MessageKind.FALSE_ALARM, language="en", subject="x", body="{correction}"),
            actor=communicator,
        )
    assert MessageTemplate.objects.filter(kind=MessageKind.FALSE_ALARM, language="en").count() == 1


# --- drafting ----------------------------------------------------------------------------------


def test_every_edit_is_kept_as_a_revision_with_its_author_and_text(page, communicator, commander):
    draft = _draft(_incident(page), communicator, body="First words.")
    draft = editorial.draft_edit(draft=draft, actor=commander, body="Better words.")

    assert draft.revision == 2
    assert [(r.number, r.author, r.body) for r in draft.revisions.order_by("number")] == [
        (1, communicator, "First words."), (2, commander, "Better words."),
    ]


def test_an_edit_that_changes_nothing_writes_no_revision(page, communicator):
    draft = _draft(_incident(page), communicator)
    draft = editorial.draft_edit(draft=draft, actor=communicator, body=BODY)
    assert (draft.revision, draft.revisions.count()) == (1, 1)


def test_a_published_update_cannot_be_edited_and_the_refusal_says_to_write_a_correction(page, communicator, commander):
    draft = _submitted(_draft(_incident(page, severity="P3"), communicator), communicator)
    editorial.draft_publish(draft=draft, actor=commander)

    with pytest.raises(ValidationError) as refused:
        editorial.draft_edit(draft=draft, actor=communicator, body="Quietly changed.")
    assert "correction" in refused.value.message_dict["state"][0]
    draft.refresh_from_db()
    assert (draft.body, draft.revision) == (BODY, 1)


def test_a_correction_names_the_update_it_corrects(page, communicator, commander):
    incident = _incident(page, severity="P3")
    wrong = incident.updates.get()
    correction = _draft(incident, communicator, body="Our earlier update named the wrong region.", corrects=wrong)
    editorial.draft_publish(draft=_submitted(correction, communicator), actor=commander)

    assert list(wrong.corrections.all()) == [correction]


def test_a_correction_must_correct_an_update_of_the_same_incident(page, communicator):
    other_update = _incident(page, severity="P3").updates.get()
    incident = _incident(page, severity="P3")
    with pytest.raises(ValidationError) as refused:
        _draft(incident, communicator, corrects=other_update)
    assert list(refused.value.message_dict) == ["corrects"]
    assert not UpdateDraft.objects.exists()


# --- review and approval -------------------------------------------------------------------------


def test_submitting_moves_a_draft_into_review_and_returns_the_redaction_findings(page, communicator):
    draft = _draft(_incident(page), communicator, body=LEAKY_BODY)
    findings = editorial.draft_submit(draft=draft, actor=communicator)

    assert _state(draft) == DraftState.IN_REVIEW
    assert [(f.kind, f.match, f.line, f.column) for f in findings] == [("email_address", "oncall@db-03.internal", 2, LEAK_COLUMN)]


def test_the_pages_own_address_is_never_a_redaction_finding(communicator):
    # A staff status page on an internal domain: its own links are what readers are meant to follow.
    intranet = factories.make_page(name="Intranet", url="https://status.acme.corp")
    incident = _incident(intranet, severity="P3")
    draft = editorial.draft_create(page=intranet, incident=incident, actor=communicator, kind=MessageKind.PROGRESS_UPDATE)
    assert f"https://status.acme.corp/incidents/{incident.public_id}" in draft.body
    assert editorial.draft_submit(draft=draft, actor=communicator) == []
    # Any other host of that domain still is one.
    draft = editorial.draft_edit(draft=draft, actor=communicator, body=draft.body + "\nWe failed over to api.acme.corp.")
    assert [f.match for f in editorial.redaction_findings(draft)] == ["api.acme.corp"]


def test_only_a_draft_can_be_submitted(page, communicator):
    draft = _submitted(_draft(_incident(page), communicator), communicator)
    with pytest.raises(ValidationError) as refused:
        editorial.draft_submit(draft=draft, actor=communicator)
    assert "state" in refused.value.message_dict


def test_an_approver_who_wrote_any_revision_cannot_approve(page, communicator, django_user_model):
    lawyer_who_drafts = _member(django_user_model, "lena", "Legal approvers", "Communicators")
    draft = _draft(_incident(page), communicator)
    editorial.draft_edit(draft=draft, actor=lawyer_who_drafts, body="Card payments fail for some customers.")
    draft = _submitted(draft, communicator)

    with pytest.raises(ValidationError) as refused:
        editorial.draft_approve(draft=draft, actor=lawyer_who_drafts, role="legal")
    assert list(refused.value.message_dict) == ["approver"]
    assert not Approval.objects.exists()


def test_an_update_is_approved_once_every_required_role_has_approved(page, communicator, legal, pr):
    draft = _submitted(_draft(_incident(page, severity="P1"), communicator), communicator)

    editorial.draft_approve(draft=draft, actor=legal, role="legal")
    assert _state(draft) == DraftState.IN_REVIEW
    editorial.draft_approve(draft=draft, actor=pr, role="pr")
    assert _state(draft) == DraftState.APPROVED
    assert editorial.missing_approvals(draft) == []


def test_an_edit_after_approval_withdraws_the_approvals_and_returns_the_update_to_review(page, communicator, legal, pr):
    draft = _approved(_submitted(_draft(_incident(page), communicator), communicator), legal=legal, pr=pr)
    draft = editorial.draft_edit(draft=draft, actor=communicator, body="Card payments fail for one in five customers.")

    assert draft.state == DraftState.IN_REVIEW
    approvals = list(Approval.objects.filter(draft=draft))
    assert len(approvals) == 2
    for approval in approvals:
        assert approval.withdrawn_at is not None
        assert "revision 2" in approval.withdrawn_reason
    assert editorial.missing_approvals(draft) == ["legal", "pr"]


def test_a_fresh_approval_after_an_edit_is_for_the_new_revision(page, communicator, legal):
    draft = _approved(_submitted(_draft(_incident(page), communicator), communicator), legal=legal)
    draft = editorial.draft_edit(draft=draft, actor=communicator, body="Card payments fail for one in five customers.")
    approval = editorial.draft_approve(draft=draft, actor=legal, role="legal")
    assert approval.revision == 2
    assert editorial.missing_approvals(draft) == ["pr"]


def test_a_second_approval_for_the_same_role_and_revision_is_refused(page, communicator, legal, django_user_model):
    second_lawyer = _member(django_user_model, "lou", "Legal approvers")
    draft = _approved(_submitted(_draft(_incident(page), communicator), communicator), legal=legal)

    with pytest.raises(ValidationError) as refused:
        editorial.draft_approve(draft=draft, actor=second_lawyer, role="legal")
    assert list(refused.value.message_dict) == ["role"]
    assert list(Approval.objects.values_list("approver__username", flat=True)) == ["lee"]


def test_a_draft_not_yet_submitted_cannot_be_approved(page, communicator, legal):
    draft = _draft(_incident(page), communicator)
    with pytest.raises(ValidationError) as refused:
        editorial.draft_approve(draft=draft, actor=legal, role="legal")
    assert "state" in refused.value.message_dict
    assert not Approval.objects.exists()


# --- which approvals an update needs -------------------------------------------------------------


def test_a_p1_outage_update_needs_legal_and_pr(page, communicator):
    assert editorial.required_approvals(_draft(_incident(page, severity="P1"), communicator)) == ["legal", "pr"]


def test_a_p3_update_needs_no_approval(page, communicator):
    assert editorial.required_approvals(_draft(_incident(page, severity="P3"), communicator)) == []


def test_a_data_exposure_update_always_needs_legal_even_at_p3(page, communicator):
    incident = _incident(page, severity="P3", category=IncidentCategory.DATA_EXPOSURE)
    assert editorial.required_approvals(_draft(incident, communicator)) == ["legal"]


def test_a_data_exposure_update_needs_legal_even_from_an_unchanged_pre_approved_template(page, administrator, communicator):
    _pre_approve_template(administrator, MessageKind.PROGRESS_UPDATE)
    incident = _incident(page, severity="P3", category=IncidentCategory.DATA_EXPOSURE)
    draft = _draft(incident, communicator, body=None, kind=MessageKind.PROGRESS_UPDATE)
    assert draft.body == draft.template_text
    assert editorial.required_approvals(draft) == ["legal"]


def test_an_unchanged_pre_approved_template_needs_no_legal_approval_for_a_p1_outage(page, administrator, communicator):
    _pre_approve_template(administrator, MessageKind.PROGRESS_UPDATE)
    draft = _draft(_incident(page, severity="P1"), communicator, body=None, kind=MessageKind.PROGRESS_UPDATE)
    assert editorial.required_approvals(draft) == ["pr"]


def test_an_edited_pre_approved_template_needs_legal_again(page, administrator, communicator):
    _pre_approve_template(administrator, MessageKind.PROGRESS_UPDATE)
    draft = _draft(_incident(page, severity="P1"), communicator, body=None, kind=MessageKind.PROGRESS_UPDATE)
    draft = editorial.draft_edit(draft=draft, actor=communicator, body=draft.body.replace("[[what_to_do]]", "Retry later."))
    assert editorial.required_approvals(draft) == ["legal", "pr"]


def test_a_template_not_pre_approved_needs_legal_even_unchanged(page, communicator):
    draft = _draft(_incident(page, severity="P1"), communicator, body=None, kind=MessageKind.PROGRESS_UPDATE)
    assert editorial.required_approvals(draft) == ["legal", "pr"]


def test_a_large_audience_adds_an_executive_approval(page, administrator, communicator):
    _policy_change(administrator, "P2", large_audience=3)
    for _ in range(3):
        confirmed(page)
    draft = _draft(_incident(page, severity="P2"), communicator)
    assert editorial.required_approvals(draft) == ["pr", "executive"]


def test_an_audience_below_the_threshold_needs_no_executive(page, administrator, communicator):
    _policy_change(administrator, "P2", large_audience=3)
    for _ in range(2):
        confirmed(page)
    assert editorial.required_approvals(_draft(_incident(page, severity="P2"), communicator)) == ["pr"]


def test_an_update_sent_to_nobody_needs_no_executive_whatever_the_audience(page, administrator, communicator):
    _policy_change(administrator, "P2", large_audience=3)
    for _ in range(3):
        confirmed(page)
    draft = _draft(_incident(page, severity="P2"), communicator, deliver_notifications=False)
    assert editorial.required_approvals(draft) == ["pr"]


# --- publishing ----------------------------------------------------------------------------------


def test_a_blocked_publish_lists_every_missing_piece_and_writes_nothing(page, communicator, commander):
    incident = _incident(page, severity="P1")
    draft = _draft(incident, communicator, body=LEAKY_BODY)
    updates, archived, dispatches = IncidentUpdate.objects.count(), ArchivedMessage.objects.count(), Dispatch.objects.count()

    with pytest.raises(editorial.PublishBlocked) as blocked:
        editorial.draft_publish(draft=draft, actor=commander)

    state, approvals, findings = blocked.value.problems
    assert state == "Submit the draft for review first."
    assert approvals == "Missing approval: Legal, PR."
    assert "email address" in findings and f"line 2, column {LEAK_COLUMN}" in findings
    assert "oncall@db-03.internal" not in findings  # the summary masks what it found
    assert (IncidentUpdate.objects.count(), ArchivedMessage.objects.count(), Dispatch.objects.count()) == (updates, archived, dispatches)
    draft.refresh_from_db()
    assert (draft.state, draft.published_update) == (DraftState.DRAFT, None)


def test_a_publish_missing_one_approval_names_only_that_role(page, communicator, commander, legal):
    draft = _approved(_submitted(_draft(_incident(page), communicator), communicator), legal=legal)
    with pytest.raises(editorial.PublishBlocked) as blocked:
        editorial.draft_publish(draft=draft, actor=commander)
    assert blocked.value.problems == ["Missing approval: PR."]


def test_an_approved_update_is_published_to_the_page(page, communicator, commander, legal, pr):
    incident = _incident(page, severity="P1")
    draft = _approved(_submitted(_draft(incident, communicator), communicator), legal=legal, pr=pr)

    update = editorial.draft_publish(draft=draft, actor=commander)

    assert (update.incident, update.body, update.status) == (incident, BODY, IncidentStatus.IDENTIFIED)
    assert Incident.objects.get(pk=incident.pk).status == IncidentStatus.IDENTIFIED
    draft.refresh_from_db()
    assert (draft.state, draft.published_update, draft.published_by) == (DraftState.PUBLISHED, update, commander)
    assert draft.policy_version == editorial.policy_current()


def test_a_published_update_cannot_be_published_twice(page, communicator, commander):
    draft = _submitted(_draft(_incident(page, severity="P3"), communicator), communicator)
    editorial.draft_publish(draft=draft, actor=commander)
    with pytest.raises(editorial.PublishBlocked) as blocked:
        editorial.draft_publish(draft=draft, actor=commander)
    assert blocked.value.problems == ["This update is already published."]


def test_redaction_findings_block_a_publish_without_an_override(page, communicator, commander):
    draft = _submitted(_draft(_incident(page, severity="P3"), communicator, body=LEAKY_BODY), communicator)
    with pytest.raises(editorial.PublishBlocked) as blocked:
        editorial.draft_publish(draft=draft, actor=commander)
    [problem] = blocked.value.problems
    assert problem.startswith("Redaction findings:") and "override with a reason" in problem
    assert _state(draft) == DraftState.IN_REVIEW


def test_a_redaction_override_needs_its_own_permission(page, communicator, administrator):
    # An administrator may publish, but not past redaction findings.
    draft = _submitted(_draft(_incident(page, severity="P3"), communicator, body=LEAKY_BODY), communicator)
    updates = IncidentUpdate.objects.count()
    with pytest.raises(editorial.Forbidden):
        editorial.draft_publish(draft=draft, actor=administrator, redaction_override="It is a public alias.")
    assert IncidentUpdate.objects.count() == updates
    assert _state(draft) == DraftState.IN_REVIEW
    [miss] = NearMiss.objects.all()
    assert (miss.kind, miss.actor, miss.action) == (NearMissKind.FORBIDDEN, administrator, "override redaction findings")


def test_a_redaction_override_with_a_reason_publishes_and_leaves_a_near_miss(page, communicator, commander):
    draft = _submitted(_draft(_incident(page, severity="P3"), communicator, body=LEAKY_BODY), communicator)

    update = editorial.draft_publish(draft=draft, actor=commander, redaction_override="The address is a public alias.")

    assert update.body == LEAKY_BODY
    draft.refresh_from_db()
    assert draft.redaction_override == "The address is a public alias."
    [miss] = NearMiss.objects.all()
    assert (miss.kind, miss.actor, miss.draft, miss.incident) == (NearMissKind.REDACTION_OVERRIDE, commander, draft, update.incident)
    assert miss.reason.startswith("The address is a public alias.")
    assert "email address" in miss.reason


def test_a_commander_may_publish_without_approvals_in_an_emergency_and_it_is_recorded(page, communicator, commander):
    draft = _submitted(_draft(_incident(page, severity="P1"), communicator), communicator)

    update = editorial.draft_publish(draft=draft, actor=commander, emergency_reason="Customers are charged twice; no approver reachable.")

    draft.refresh_from_db()
    assert (draft.state, draft.published_update) == (DraftState.PUBLISHED, update)
    assert draft.emergency_reason == "Customers are charged twice; no approver reachable."
    [miss] = NearMiss.objects.all()
    assert (miss.kind, miss.actor, miss.draft, miss.incident) == (NearMissKind.EMERGENCY_PUBLISH, commander, draft, update.incident)
    assert miss.reason == "Customers are charged twice; no approver reachable."


def test_an_emergency_publish_needs_a_reason(page, communicator, commander):
    draft = _submitted(_draft(_incident(page, severity="P1"), communicator), communicator)
    with pytest.raises(editorial.PublishBlocked) as blocked:
        editorial.draft_publish(draft=draft, actor=commander, emergency_reason="   ")
    assert blocked.value.problems == ["Missing approval: Legal, PR."]
    assert not NearMiss.objects.exists()
    assert _state(draft) == DraftState.IN_REVIEW


def test_an_emergency_publish_still_stops_at_redaction_findings(page, communicator, commander):
    draft = _submitted(_draft(_incident(page, severity="P1"), communicator, body=LEAKY_BODY), communicator)
    with pytest.raises(editorial.PublishBlocked) as blocked:
        editorial.draft_publish(draft=draft, actor=commander, emergency_reason="No approver reachable.")
    [problem] = blocked.value.problems
    assert problem.startswith("Redaction findings:")
    assert not NearMiss.objects.exists()


def test_a_communicator_may_not_publish_in_an_emergency(page, communicator):
    draft = _submitted(_draft(_incident(page, severity="P1"), communicator), communicator)
    updates = IncidentUpdate.objects.count()
    with pytest.raises(editorial.Forbidden):
        editorial.draft_publish(draft=draft, actor=communicator, emergency_reason="It is urgent.")
    assert IncidentUpdate.objects.count() == updates
    assert _state(draft) == DraftState.IN_REVIEW
    [miss] = NearMiss.objects.all()
    assert (miss.kind, miss.actor, miss.action) == (NearMissKind.FORBIDDEN, communicator, "publish without approval")


def test_an_initial_alert_opens_its_incident_only_when_published(page, rest_api, communicator, pr, commander):
    draft = editorial.draft_create(
        page=page, actor=communicator, body="Checkout is slow for some customers. We are looking into it.",
        proposal={
            "name": "Slow checkout", "severity": "P2", "category": IncidentCategory.PERFORMANCE,
            "components": {str(rest_api.pk): ComponentStatus.DEGRADED_PERFORMANCE},
        },
    )
    draft = _approved(_submitted(draft, communicator), pr=pr)
    assert not Incident.objects.exists()

    update = editorial.draft_publish(draft=draft, actor=commander)

    incident = Incident.objects.get()
    assert (incident.name, incident.severity, incident.category) == ("Slow checkout", "P2", IncidentCategory.PERFORMANCE)
    assert incident.commander == commander
    assert {link.component: link.status for link in incident.affected.all()} == {rest_api: ComponentStatus.DEGRADED_PERFORMANCE}
    assert list(incident.updates.all()) == [update]
    draft.refresh_from_db()
    assert draft.incident == incident


def test_an_initial_alert_refused_for_approvals_opens_nothing(page, rest_api, communicator, commander):
    draft = editorial.draft_create(
        page=page, actor=communicator, body="Checkout is down.",
        proposal={"name": "Checkout down", "severity": "P1", "components": {str(rest_api.pk): ComponentStatus.MAJOR_OUTAGE}},
    )
    draft = _submitted(draft, communicator)
    with pytest.raises(editorial.PublishBlocked):
        editorial.draft_publish(draft=draft, actor=commander)
    assert not Incident.objects.exists()
    assert not ArchivedMessage.objects.exists()


def test_a_resolution_resolves_the_incident_and_schedules_the_postmortem_by_the_policy_deadline(page, communicator, commander, legal, pr):
    incident = _incident(page, severity="P1")
    draft = _draft(incident, communicator, body="Payments work again. A faulty release was rolled back.", kind=MessageKind.RESOLUTION, status=None)
    assert draft.status == IncidentStatus.RESOLVED
    draft = _approved(_submitted(draft, communicator), legal=legal, pr=pr)

    editorial.draft_publish(draft=draft, actor=commander)

    incident.refresh_from_db()
    assert incident.status == IncidentStatus.RESOLVED
    postmortem = Postmortem.objects.get(incident=incident)
    assert postmortem.visibility == "public"
    assert postmortem.due_at == incident.resolved_at + timedelta(hours=48)


def test_a_false_alarm_resolves_the_incident_as_a_false_alarm_without_a_postmortem(page, communicator, commander, legal, pr):
    incident = _incident(page, severity="P1")
    draft = _draft(incident, communicator, body="Please ignore our earlier notice: payments were never affected.",
                   kind=MessageKind.FALSE_ALARM, status=None)
    draft = _approved(_submitted(draft, communicator), legal=legal, pr=pr)

    editorial.draft_publish(draft=draft, actor=commander)

    incident.refresh_from_db()
    assert (incident.status, incident.false_alarm) == (IncidentStatus.RESOLVED, True)
    assert not Postmortem.objects.filter(incident=incident).exists()


def test_a_false_alarm_notice_goes_only_to_those_who_were_notified(page, communicator, commander, legal, pr):
    incident = _incident(page, severity="P1")
    draft = _draft(incident, communicator, body="Please ignore our earlier notice: payments were never affected.",
                   kind=MessageKind.FALSE_ALARM, status=None)
    update = editorial.draft_publish(draft=_approved(_submitted(draft, communicator), legal=legal, pr=pr), actor=commander)
    # The audience filter itself is proven in tests/notifications/test_audience.py.
    assert Dispatch.objects.get(update=update).notified_only
    assert not Dispatch.objects.get(update=incident.updates.order_by("display_at", "pk").first()).notified_only


# --- provenance: what every published message records -------------------------------------------


@pytest.fixture
def published_from_template(page, rest_api, communicator, legal, pr, commander):
    """A P1 initial alert drafted from the current template, edited once, approved and published."""
    confirmed(page, channel="email")
    confirmed(page, channel="email")
    draft = editorial.draft_create(
        page=page, actor=communicator,
        proposal={"name": "Payments down", "severity": "P1", "components": {str(rest_api.pk): ComponentStatus.MAJOR_OUTAGE}},
    )
    draft = editorial.draft_edit(draft=draft, actor=communicator, body=_written(draft.body))
    draft = _approved(_submitted(draft, communicator), legal=legal, pr=pr)
    return editorial.draft_publish(draft=draft, actor=commander)


def _written(body: str) -> str:
    """What the communicator writes in place of the template's [[markers]]."""
    import re

    return re.sub(r"\[\[(\w+)\]\]", lambda m: f"(our {m.group(1).replace('_', ' ')})", body)


def _provenance(record) -> tuple:
    return record.policy_version, [(a["role"], a["approver"], a["revision"]) for a in record.approvals], record.revision


def test_the_page_archive_row_records_policy_template_approvals_and_revision(published_from_template):
    row = ArchivedMessage.objects.get(channel="page", update=published_from_template)
    assert _provenance(row) == ("policy-v1", [("legal", "lee", 2), ("pr", "pat", 2)], "2")
    assert row.template_version == "initial_alert/en/v1"


def test_the_dispatch_records_policy_template_approvals_and_revision(published_from_template):
    dispatch = Dispatch.objects.get(update=published_from_template)
    assert _provenance(dispatch) == ("policy-v1", [("legal", "lee", 2), ("pr", "pat", 2)], "2")
    assert dispatch.template_version == "initial_alert/en/v1"
    assert dispatch.policy_rules["approvals"] == ["legal", "pr"]


def test_the_provenance_names_the_policy_version_in_force_at_the_publish(page, administrator, communicator, commander):
    _policy_change(administrator, "P3", update_cadence_minutes=90)
    draft = _submitted(_draft(_incident(page, severity="P3"), communicator), communicator)
    update = editorial.draft_publish(draft=draft, actor=commander)
    assert ArchivedMessage.objects.get(channel="page", update=update).policy_version == "policy-v2"
    assert Dispatch.objects.get(update=update).policy_version == "policy-v2"


def test_every_sent_email_is_archived_with_the_same_provenance(published_from_template):
    dispatch = Dispatch.objects.get(update=published_from_template)
    dispatch_expand(dispatch_id=dispatch.pk)
    ids = list(Delivery.objects.filter(dispatch=dispatch, channel="email").values_list("pk", flat=True))
    assert len(ids) == 2

    deliveries_send(ids=ids)

    rows = list(ArchivedMessage.objects.filter(channel="email", update=published_from_template))
    assert sorted(row.recipient for row in rows) == sorted(recipient for message in mail.outbox for recipient in message.to)
    assert len(rows) == 2
    for row in rows:
        assert _provenance(row) == ("policy-v1", [("legal", "lee", 2), ("pr", "pat", 2)], "2")
        assert "initial_alert/en/v1" in row.template_version



def test_the_incident_suggests_its_next_template(page):
    from django.utils import timezone

    incident = _incident(page, severity="P1")
    assert editorial.suggested_templates(incident=None)[0].kind == MessageKind.INITIAL_ALERT
    assert editorial.suggested_templates(incident=incident)[0].kind == MessageKind.PROGRESS_UPDATE
    Incident.objects.filter(pk=incident.pk).update(extended_at=timezone.now())
    incident.refresh_from_db()
    assert editorial.suggested_templates(incident=incident)[0].kind == MessageKind.EXTENDED_OUTAGE
    assert editorial.suggested_templates(incident=incident, language="de")[0].language == "de"


def test_an_incident_name_that_would_leak_is_refused_when_drafted(page, communicator):
    with pytest.raises(ValidationError) as refused:
        editorial.draft_create(page=page, actor=communicator, proposal={"name": "db-03.prod.internal down", "severity": "P3"}, body="Down.")
    assert "name" in refused.value.message_dict
    assert not UpdateDraft.objects.exists()


def test_an_approval_of_a_revision_edited_meanwhile_is_refused(page, communicator, legal):
    draft = _submitted(_draft(_incident(page, severity="P1"), communicator), communicator)
    read = draft.revision
    editorial.draft_edit(draft=draft, actor=communicator, body="A different text, written after legal opened the page.")
    with pytest.raises(ValidationError) as refused:
        editorial.draft_approve(draft=draft, actor=legal, role="legal", revision=read)
    assert "revision" in refused.value.message_dict
    assert not Approval.objects.exists()


def test_a_second_resolution_of_a_resolved_incident_is_blocked(page, communicator, commander):
    incident = _incident(page, severity="P3")
    first = _submitted(_draft(incident, communicator, kind=MessageKind.RESOLUTION, status=None, body="Fixed."), communicator)
    second = _submitted(_draft(incident, communicator, kind=MessageKind.RESOLUTION, status=None, body="Fixed, really."), communicator)
    editorial.draft_publish(draft=first, actor=commander)
    with pytest.raises(editorial.PublishBlocked) as blocked:
        editorial.draft_publish(draft=second, actor=commander)
    assert any("already resolved" in problem for problem in blocked.value.problems)
    assert incident.updates.filter(status=IncidentStatus.RESOLVED).count() == 1


def test_changing_the_talking_points_is_an_edit_that_withdraws_approvals(page, communicator, legal, pr):
    draft = _approved(_submitted(_draft(_incident(page, severity="P1"), communicator, talking_points="No data was lost."), communicator),
                      legal=legal, pr=pr)
    assert draft.state == DraftState.APPROVED
    edited = editorial.draft_edit(draft=draft, actor=communicator, talking_points="Offer a 10% credit to anyone who asks.")
    assert (edited.state, edited.revision) == (DraftState.IN_REVIEW, 2)
    assert DraftRevision.objects.get(draft=draft, number=2).talking_points == "Offer a 10% credit to anyone who asks."
    assert not Approval.objects.filter(draft=draft, withdrawn_at__isnull=True).exists()


def test_a_post_mortem_draft_starts_from_the_post_mortem_written_on_the_incident(page, communicator):
    from incidents import services
    from incidents.models import Postmortem

    incident = _incident(page, severity="P1")
    services.incident_resolve(incident=incident, body="Fixed.")
    Postmortem.objects.filter(incident=incident).update(body="**What happened:** an expired certificate.")
    draft = editorial.draft_create(page=page, incident=incident, actor=communicator, kind=MessageKind.POSTMORTEM)
    assert draft.body == "**What happened:** an expired certificate."
