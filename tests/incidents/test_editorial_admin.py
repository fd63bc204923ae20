"""The editorial workflow in the desk: drafting, review, publishing, policy and templates.

Each role signs in as itself (tests/conftest.py); the admin only offers what the role may do,
and the services behind it refuse the rest.
"""
from __future__ import annotations

import pytest
from django.contrib.auth.models import Group
from django.urls import reverse

from incidents import editorial
from incidents.message_templates import MessageKind
from incidents.models import (
    ComponentStatus,
    DraftRevision,
    DraftState,
    Incident,
    IncidentStatus,
    MessageTemplate,
    NearMiss,
    NearMissKind,
    PolicyVersion,
    Severity,
    SeverityPolicy,
    UpdateDraft,
)
from tests import factories


def _url(name: str, *args) -> str:
    return reverse(f"admin:incidents_{name}", args=args)


def _messages(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def _as(client, user):
    client.force_login(user)
    return client


@pytest.fixture
def outage(page, rest_api):
    """A P1 incident: its updates need legal and PR approval under the default policy."""
    return factories.open_incident(page=page, severity=Severity.P1, components={rest_api: ComponentStatus.MAJOR_OUTAGE})


@pytest.fixture
def minor(page, rest_api):
    """A P3 incident: its updates need no approval."""
    return factories.open_incident(page=page, name="Slow exports", severity=Severity.P3, components={rest_api: ComponentStatus.DEGRADED_PERFORMANCE})


@pytest.fixture
def administrator(db, django_user_model):
    user = django_user_model.objects.create_user(username="ada", email="ada@example.com", password="x", is_staff=True)
    user.groups.add(Group.objects.get(name="Status administrators"))
    return user


def _draft(incident, author, body="We found the faulty deploy and are rolling it back.", *, submit=True) -> UpdateDraft:
    draft = editorial.draft_create(page=incident.page, actor=author, incident=incident, body=body)
    if submit:
        editorial.draft_submit(draft=draft, actor=author)
    return UpdateDraft.objects.get(pk=draft.pk)


# --- drafting ------------------------------------------------------------------------------------


def test_a_communicator_drafts_from_the_current_template_when_the_body_is_left_empty(client, communicator, outage):
    response = _as(client, communicator).post(_url("updatedraft_add"), {
        "page": outage.page.pk, "incident": outage.pk, "kind": MessageKind.PROGRESS_UPDATE, "language": "en",
        "status": "", "body": "", "deliver_notifications": "on",
        "name": "", "severity": "", "category": "", "component_status": "",
    })

    assert response.status_code == 302, response.context["adminform"].form.errors
    draft = UpdateDraft.objects.get()
    assert draft.template == editorial.template_current(MessageKind.PROGRESS_UPDATE, "en")
    assert draft.body == draft.template_text and "REST API" in draft.body
    assert (draft.author, draft.revision, draft.state) == (communicator, 1, DraftState.DRAFT)


def test_an_initial_alert_drafted_without_an_incident_opens_it_when_published(client, communicator, commander, page, rest_api):
    _as(client, communicator).post(_url("updatedraft_add"), {
        "page": page.pk, "incident": "", "kind": MessageKind.INITIAL_ALERT, "language": "en", "status": "",
        "body": "Logins fail for some customers.", "deliver_notifications": "on",
        "name": "Login failures", "severity": Severity.P3, "category": "outage",
        "components": [rest_api.pk], "component_status": ComponentStatus.PARTIAL_OUTAGE,
    })
    draft = UpdateDraft.objects.get()
    assert Incident.objects.filter(name="Login failures").count() == 0  # nothing public before publishing

    _as(client, communicator).post(_url("updatedraft_submit", draft.pk))
    _as(client, commander).post(_url("updatedraft_publish", draft.pk))

    incident = Incident.objects.get(name="Login failures")
    assert incident.updates.get().body == "Logins fail for some customers."
    assert incident.affected.get().component.status == ComponentStatus.PARTIAL_OUTAGE


def test_editing_writes_a_revision_and_the_history_shows_an_escaped_diff(client, communicator, outage):
    draft = _draft(outage, communicator, "Checkout fails.\nWe are investigating.", submit=False)

    response = _as(client, communicator).post(_url("updatedraft_change", draft.pk), {
        "status": IncidentStatus.IDENTIFIED, "body": "Checkout fails.\r\nA <script> tag broke the release.",
    })

    assert response.status_code == 302
    draft.refresh_from_db()
    assert draft.revision == 2 and draft.body == "Checkout fails.\nA <script> tag broke the release."
    assert list(DraftRevision.objects.filter(draft=draft).values_list("number", flat=True)) == [1, 2]
    page = client.get(_url("updatedraft_change", draft.pk)).content.decode()
    assert "-We are investigating." in page
    assert "+A &lt;script&gt; tag broke the release." in page
    assert "<script> tag" not in page
    assert page.index("Revision 2 by cora") < page.index("Revision 1 by cora")  # latest first


# --- review --------------------------------------------------------------------------------------


def test_submitting_sends_the_draft_to_review(client, communicator, outage):
    draft = _draft(outage, communicator, submit=False)

    response = _as(client, communicator).post(_url("updatedraft_submit", draft.pk), follow=True)

    assert "Submitted for review." in _messages(response)
    assert UpdateDraft.objects.get(pk=draft.pk).state == DraftState.IN_REVIEW


def test_approvals_by_legal_then_pr_make_a_p1_draft_approved(client, communicator, legal, pr, outage):
    draft = _draft(outage, communicator)

    _as(client, legal).post(_url("updatedraft_approve", draft.pk, "legal"))
    assert UpdateDraft.objects.get(pk=draft.pk).state == DraftState.IN_REVIEW  # PR still missing
    _as(client, pr).post(_url("updatedraft_approve", draft.pk, "pr"))

    assert UpdateDraft.objects.get(pk=draft.pk).state == DraftState.APPROVED
    page = client.get(_url("updatedraft_change", draft.pk)).content.decode()
    assert "given by lee for revision 1" in page and "given by pat for revision 1" in page


def test_the_author_cannot_approve_their_own_update(client, legal, outage):
    legal.groups.add(Group.objects.get(name="Communicators"))
    draft = _draft(outage, legal)

    response = _as(client, legal).post(_url("updatedraft_approve", draft.pk, "legal"), follow=True)

    assert "You wrote this update; someone else must approve it." in _messages(response)
    assert not draft.approvals.exists()


def test_the_change_page_shows_redaction_findings_masked_with_their_position(client, communicator, outage):
    draft = _draft(outage, communicator, "Checkout fails.\nThe host 10.20.30.40 is down.")

    page = _as(client, communicator).get(_url("updatedraft_change", draft.pk)).content.decode()

    assert "<li>Line 2, column 10: IP address &#x27;10.**.**.40&#x27;</li>" in page


# --- publishing ----------------------------------------------------------------------------------


def test_publishing_without_approvals_is_blocked_and_names_what_is_missing(client, communicator, commander, outage):
    draft = _draft(outage, communicator)

    response = _as(client, commander).post(_url("updatedraft_publish", draft.pk), follow=True)

    assert "Missing approval: Legal, PR." in _messages(response)
    assert UpdateDraft.objects.get(pk=draft.pk).state == DraftState.IN_REVIEW
    assert outage.updates.count() == 1


def test_a_commander_publishes_and_the_update_appears_on_the_incident(client, communicator, legal, pr, commander, outage):
    draft = _draft(outage, communicator)
    editorial.draft_approve(draft=draft, actor=legal, role="legal")
    editorial.draft_approve(draft=draft, actor=pr, role="pr")

    response = _as(client, commander).post(_url("updatedraft_publish", draft.pk), follow=True)

    assert f"Published on “{outage.name}”." in _messages(response)
    draft.refresh_from_db()
    assert draft.state == DraftState.PUBLISHED and draft.published_by == commander
    assert outage.updates.order_by("-id").first().body == draft.body


def test_an_emergency_publish_without_a_reason_is_refused(client, communicator, commander, outage):
    draft = _draft(outage, communicator)

    response = _as(client, commander).post(_url("updatedraft_emergency_publish", draft.pk), {"emergency_reason": "  "}, follow=True)

    assert "An emergency publish needs a reason; nothing was published." in _messages(response)
    assert UpdateDraft.objects.get(pk=draft.pk).state == DraftState.IN_REVIEW
    assert outage.updates.count() == 1


def test_an_emergency_publish_with_a_reason_skips_approvals_and_is_a_near_miss(client, communicator, commander, outage):
    draft = _draft(outage, communicator)

    _as(client, commander).post(_url("updatedraft_emergency_publish", draft.pk), {"emergency_reason": "Legal unreachable at 3am"})

    draft.refresh_from_db()
    assert draft.state == DraftState.PUBLISHED and draft.emergency_reason == "Legal unreachable at 3am"
    near_miss = NearMiss.objects.get(kind=NearMissKind.EMERGENCY_PUBLISH)
    assert (near_miss.actor, near_miss.draft) == (commander, draft)


def test_workflow_steps_answer_only_post(client, communicator, commander, outage):
    draft = _draft(outage, communicator)

    response = _as(client, commander).get(_url("updatedraft_publish", draft.pk))

    assert response.status_code == 405
    assert UpdateDraft.objects.get(pk=draft.pk).state == DraftState.IN_REVIEW


# --- the executive looks, and changes nothing ----------------------------------------------------


def test_an_executive_sees_a_draft_without_any_workflow_step(client, communicator, executive, outage):
    draft = _draft(outage, communicator)

    response = _as(client, executive).get(_url("updatedraft_change", draft.pk))

    assert response.status_code == 200
    page = response.content.decode()
    assert "Submit for review" not in page and "Emergency publish" not in page and 'value="Publish"' not in page
    assert _url("updatedraft_publish", draft.pk) not in page
    assert 'name="body"' not in page  # read only


def test_an_executive_cannot_publish_and_the_attempt_is_recorded_as_a_near_miss(client, communicator, executive, outage):
    draft = _draft(outage, communicator)

    response = _as(client, executive).post(_url("updatedraft_publish", draft.pk))

    assert response.status_code == 403
    assert UpdateDraft.objects.get(pk=draft.pk).state == DraftState.IN_REVIEW
    refusal = NearMiss.objects.get(kind=NearMissKind.FORBIDDEN)
    assert (refusal.actor, refusal.draft) == (executive, draft)


# --- policy and templates ------------------------------------------------------------------------


def test_editing_the_policy_writes_a_new_policy_version(client, administrator):
    p2 = SeverityPolicy.objects.get(severity=Severity.P2)
    before = PolicyVersion.objects.count()

    response = _as(client, administrator).post(_url("severitypolicy_change", p2.pk), {
        "criteria": p2.criteria, "channels": ["email", "slack"], "update_cadence_minutes": "45",
        "target_resolution_minutes": "240", "escalation": p2.escalation, "escalation_contacts": "",
        "approvals": ["pr", "legal"], "large_audience": "10000", "postmortem_visibility": "public",
        "postmortem_deadline_hours": "72", "note": "Tighter cadence after the March review",
    })

    assert response.status_code == 302
    version = PolicyVersion.objects.order_by("-number").first()
    assert PolicyVersion.objects.count() == before + 1
    assert (version.note, version.created_by) == ("Tighter cadence after the March review", administrator)
    assert version.rules["P2"]["update_cadence_minutes"] == 45 and version.rules["P2"]["channels"] == ["email", "slack"]


def test_editing_a_template_saves_version_2_and_leaves_version_1_as_it_was(client, administrator):
    first = MessageTemplate.objects.get(kind=MessageKind.FALSE_ALARM, language="en", version=1)
    original_body = first.body

    response = _as(client, administrator).post(_url("messagetemplate_change", first.pk), {
        "subject": "Correction: {incident_name}", "body": "Please disregard our notice.\r\n\r\n{correction}\r\n",
    })

    assert response.status_code == 302
    second = MessageTemplate.objects.get(kind=MessageKind.FALSE_ALARM, language="en", is_current=True)
    assert (second.version, second.body, second.created_by) == (2, "Please disregard our notice.\n\n{correction}\n", administrator)
    first.refresh_from_db()
    assert (first.body, first.is_current) == (original_body, False)


def test_an_unknown_placeholder_is_shown_on_the_body_and_nothing_is_saved(client, administrator):
    first = MessageTemplate.objects.get(kind=MessageKind.FALSE_ALARM, language="en", version=1)

    response = _as(client, administrator).post(_url("messagetemplate_change", first.pk), {
        "subject": first.subject, "body": "{correction} Sorry, {custmer}.",
    })

    assert response.status_code == 200
    assert any("Unknown placeholder {custmer}" in error for error in response.context["adminform"].form.errors["body"])
    assert MessageTemplate.objects.filter(kind=MessageKind.FALSE_ALARM, language="en").count() == 1


def test_a_template_without_its_required_facts_is_saved_with_a_warning(client, administrator):
    first = MessageTemplate.objects.get(kind=MessageKind.FALSE_ALARM, language="en", version=1)

    response = _as(client, administrator).post(
        _url("messagetemplate_change", first.pk), {"subject": first.subject, "body": "All is well."}, follow=True,
    )

    assert MessageTemplate.objects.get(kind=MessageKind.FALSE_ALARM, language="en", is_current=True).version == 2
    assert any("missing: {correction}" in text for text in _messages(response))


# --- near misses ---------------------------------------------------------------------------------


def _near_miss(outage) -> NearMiss:
    return NearMiss.objects.create(kind=NearMissKind.EMERGENCY_PUBLISH, incident=outage, action="emergency publish", reason="test")


def test_marking_a_near_miss_reviewed_sets_its_review_time(client, administrator, outage):
    near_miss = _near_miss(outage)

    _as(client, administrator).post(_url("nearmiss_changelist"), {"action": "mark_reviewed", "_selected_action": [near_miss.pk]})

    near_miss.refresh_from_db()
    assert near_miss.reviewed_at is not None


def test_an_executive_reads_near_misses_but_cannot_mark_them_reviewed(client, executive, outage):
    near_miss = _near_miss(outage)

    listing = _as(client, executive).get(_url("nearmiss_changelist"))
    client.post(_url("nearmiss_changelist"), {"action": "mark_reviewed", "_selected_action": [near_miss.pk]})

    assert listing.status_code == 200 and "emergency publish" in listing.content.decode()
    near_miss.refresh_from_db()
    assert near_miss.reviewed_at is None


# --- every page renders --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "updatedraft_changelist", "updatedraft_add", "severitypolicy_changelist", "policyversion_changelist",
        "messagetemplate_changelist", "messagetemplate_add", "nearmiss_changelist", "postmortem_changelist",
        "staffreminder_changelist",
    ],
)
def test_every_editorial_list_and_add_page_renders(desk, communicator, outage, name):
    _draft(outage, communicator)

    assert desk.get(_url(name)).status_code == 200


def test_every_editorial_change_page_renders(desk, communicator, outage):
    draft = _draft(outage, communicator)
    pages = [
        _url("updatedraft_change", draft.pk), _url("severitypolicy_change", SeverityPolicy.objects.first().pk),
        _url("policyversion_change", PolicyVersion.objects.first().pk), _url("messagetemplate_change", MessageTemplate.objects.first().pk),
        _url("nearmiss_change", _near_miss(outage).pk),
    ]

    assert [desk.get(url).status_code for url in pages] == [200] * len(pages)


def test_publishing_an_internal_post_mortem_in_the_desk_says_it_was_kept(client, page, communicator, commander):
    from incidents import services
    from incidents.message_templates import MessageKind
    from tests import factories

    incident = factories.open_incident(page=page, severity="P3")
    services.incident_resolve(incident=incident, body="Fixed.")
    draft = editorial.draft_create(page=page, incident=incident, actor=communicator, kind=MessageKind.POSTMORTEM,
                                   body="**What happened:** a full disk.")
    editorial.draft_submit(draft=draft, actor=communicator)

    response = _as(client, commander).post(_url("updatedraft_publish", draft.pk), follow=True)

    assert response.status_code == 200
    assert "Approved and kept on the incident (an internal post-mortem is not published)." in _messages(response)


def test_the_approve_button_carries_the_revision_it_shows(client, communicator, legal, outage):
    draft = _draft(outage, communicator)

    page_html = _as(client, legal).get(_url("updatedraft_change", draft.pk)).content.decode()

    assert f'name="revision" value="{draft.revision}"' in page_html


def test_a_post_mortem_written_in_the_desk_records_its_writer(client, page, communicator):
    from incidents import services
    from incidents.models import Postmortem
    from tests import factories

    incident = factories.open_incident(page=page, severity="P1")
    services.incident_resolve(incident=incident, body="Fixed.")
    postmortem = Postmortem.objects.get(incident=incident)

    response = _as(client, communicator).post(_url("postmortem_change", postmortem.pk), {
        "body": "**What happened:** a certificate expired.", "visibility": "public",
    })

    assert response.status_code == 302
    postmortem.refresh_from_db()
    assert (postmortem.body, postmortem.author, postmortem.notify_subscribers) == (
        "**What happened:** a certificate expired.", communicator, False,
    )
