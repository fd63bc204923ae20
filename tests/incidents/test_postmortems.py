"""Post-mortems: scheduled at resolution by the policy, drafted and approved like updates, published by visibility."""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError

from incidents import editorial, services
from incidents.message_templates import MessageKind
from incidents.models import DraftState, IncidentStatus, Postmortem, PostmortemVisibility
from notifications.models import Dispatch
from tests import factories

pytestmark = pytest.mark.django_db

REVIEW = "**What happened:** a bad deploy.\n\n**Timeline:** 10:02 alert, 10:20 rollback.\n\n**Prevention:** canary deploys."


def _resolved(page, severity: str):
    incident = factories.open_incident(page=page, severity=severity)
    services.incident_resolve(incident=incident, body="Fixed.")
    incident.refresh_from_db()
    return incident


def _postmortem_draft(incident, author):
    draft = editorial.draft_create(page=incident.page, incident=incident, actor=author, kind=MessageKind.POSTMORTEM, body=REVIEW)
    editorial.draft_submit(draft=draft, actor=author)
    return draft


def test_the_policy_sets_the_post_mortem_deadline_and_visibility_at_resolution(page):
    incident = _resolved(page, "P3")
    postmortem = Postmortem.objects.get(incident=incident)
    assert postmortem.visibility == PostmortemVisibility.INTERNAL
    assert postmortem.due_at == incident.resolved_at + timedelta(weeks=1)


def test_a_p4_incident_owes_no_post_mortem(page):
    assert not Postmortem.objects.filter(incident=_resolved(page, "P4")).exists()


def test_a_public_post_mortem_needs_the_approvals_of_its_severity(page, communicator, commander):
    draft = _postmortem_draft(_resolved(page, "P1"), communicator)
    with pytest.raises(editorial.PublishBlocked) as blocked:
        editorial.draft_publish(draft=draft, actor=commander)
    assert "Missing approval: Legal, PR." in blocked.value.problems


def test_an_approved_public_post_mortem_goes_on_the_incident_page(page, communicator, legal, pr, commander):
    incident = _resolved(page, "P1")
    draft = _postmortem_draft(incident, communicator)
    editorial.draft_approve(draft=draft, actor=legal, role="legal")
    editorial.draft_approve(draft=draft, actor=pr, role="pr")
    update = editorial.draft_publish(draft=draft, actor=commander)
    postmortem = Postmortem.objects.get(incident=incident)
    assert (postmortem.state, postmortem.body) == (DraftState.PUBLISHED, REVIEW)
    assert update.status == IncidentStatus.POSTMORTEM
    # Subscribers are told only when the post-mortem asks for it (it does not by default).
    assert not Dispatch.objects.filter(update=update).exists()


def test_a_post_mortem_can_notify_subscribers(page, communicator, commander):
    incident = _resolved(page, "P3")
    Postmortem.objects.filter(incident=incident).update(visibility=PostmortemVisibility.PUBLIC, notify_subscribers=True)
    update = editorial.draft_publish(draft=_postmortem_draft(incident, communicator), actor=commander)
    assert Dispatch.objects.filter(update=update).exists()


def test_an_internal_post_mortem_is_kept_and_never_published(page, communicator, commander):
    incident = _resolved(page, "P3")
    draft = _postmortem_draft(incident, communicator)
    assert editorial.draft_publish(draft=draft, actor=commander) is None
    assert Postmortem.objects.get(incident=incident).state == DraftState.PUBLISHED
    assert not incident.updates.filter(status=IncidentStatus.POSTMORTEM).exists()


def test_a_post_mortem_waits_for_the_resolution(page, communicator, commander):
    incident = factories.open_incident(page=page, severity="P3")
    draft = _postmortem_draft(incident, communicator)
    with pytest.raises(ValidationError):
        editorial.draft_publish(draft=draft, actor=commander)
    assert not Postmortem.objects.exists()


def test_the_writer_of_a_post_mortem_cannot_approve_it(page, communicator, commander, django_user_model):
    from django.contrib.auth.models import Group

    writer = django_user_model.objects.create_user(username="wri", email="wri@example.com", is_staff=True)
    writer.groups.add(Group.objects.get(name="Communicators"), Group.objects.get(name="PR approvers"))
    incident = factories.open_incident(page=page, severity="P2")
    services.incident_resolve(incident=incident, body="Fixed.")
    Postmortem.objects.filter(incident=incident).update(body=REVIEW, author=writer)
    # Someone else asks for it to be published: the writer is still its author.
    draft = _postmortem_draft(incident, communicator)
    with pytest.raises(ValidationError) as refused:
        editorial.draft_approve(draft=draft, actor=writer, role="pr")
    assert "approver" in refused.value.message_dict
