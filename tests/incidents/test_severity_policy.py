"""The severity policy and the staff roles (incidents.editorial): who may do what, which rules
an update goes out under, and that an edited policy is a new version, never a rewrite."""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied, ValidationError

from incidents import editorial
from incidents.models import (
    Approval,
    ComponentStatus,
    DraftRevision,
    DraftState,
    IncidentUpdate,
    NearMiss,
    NearMissKind,
    PolicyVersion,
    SeverityPolicy,
    UpdateDraft,
)
from notifications.models import Delivery, Dispatch
from notifications.services import dispatch_expand
from tests import factories
from tests.notifications.ledger_helpers import confirmed

pytestmark = pytest.mark.django_db

BODY = "Card payments are failing for some customers. We are investigating and will post again within 30 minutes."


@pytest.fixture
def administrator(django_user_model):
    user = django_user_model.objects.create_user(
        username="ada", email="ada@example.com", password="correct horse battery", is_staff=True,
    )
    user.groups.add(Group.objects.get(name="Status administrators"))
    return user


def _policy(severity: str) -> SeverityPolicy:
    return SeverityPolicy.objects.get(severity=severity)


def _in_review_draft(page, author, *, severity: str = "P1") -> UpdateDraft:
    incident = factories.open_incident(page=page, severity=severity)
    draft = editorial.draft_create(page=page, incident=incident, actor=author, body=BODY, status="identified")
    editorial.draft_submit(draft=draft, actor=author)
    return UpdateDraft.objects.get(pk=draft.pk)


def _near_misses(kind: str = NearMissKind.FORBIDDEN) -> list[NearMiss]:
    return list(NearMiss.objects.filter(kind=kind))


# --- roles -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(editorial.ROLE_GROUPS))
def test_every_role_group_exists_after_migrate_with_all_its_permissions(name):
    group = Group.objects.get(name=name)
    granted = {f"{p.content_type.app_label}.{p.codename}" for p in group.permissions.select_related("content_type")}
    # Equality, not a subset: a permission name that matches nothing would be skipped silently.
    assert granted == set(editorial.ROLE_GROUPS[name])


def test_syncing_the_roles_again_changes_nothing():
    before = {g.name: set(g.permissions.values_list("pk", flat=True)) for g in Group.objects.all()}
    editorial.roles_sync()
    assert {g.name: set(g.permissions.values_list("pk", flat=True)) for g in Group.objects.all()} == before


def test_a_communicator_can_draft_an_update(page, communicator):
    incident = factories.open_incident(page=page, severity="P1")
    draft = editorial.draft_create(page=page, incident=incident, actor=communicator, body=BODY)
    assert (draft.state, draft.author, draft.body) == (DraftState.DRAFT, communicator, BODY)


def test_a_communicator_cannot_approve_and_the_refusal_changes_nothing_but_leaves_a_near_miss(page, communicator, staff):
    draft = _in_review_draft(page, staff)
    with pytest.raises(editorial.Forbidden) as refused:
        editorial.draft_approve(draft=draft, actor=communicator, role="legal")
    assert isinstance(refused.value, PermissionDenied)
    assert "approve_legal" in str(refused.value)
    assert not Approval.objects.exists()
    assert UpdateDraft.objects.get(pk=draft.pk).state == DraftState.IN_REVIEW
    [miss] = _near_misses()
    assert (miss.actor, miss.draft, miss.incident) == (communicator, draft, draft.incident)
    assert miss.action == "approve for Legal"
    assert "incidents.approve_legal" in miss.reason


def test_a_communicator_cannot_publish_and_the_refusal_changes_nothing_but_leaves_a_near_miss(page, communicator, staff):
    draft = _in_review_draft(page, staff, severity="P3")  # P3 needs no approval: only the permission stops it
    updates = IncidentUpdate.objects.count()
    with pytest.raises(editorial.Forbidden):
        editorial.draft_publish(draft=draft, actor=communicator)
    assert IncidentUpdate.objects.count() == updates
    draft.refresh_from_db()
    assert (draft.state, draft.published_update) == (DraftState.IN_REVIEW, None)
    [miss] = _near_misses()
    assert (miss.actor, miss.action) == (communicator, "publish an update")
    assert "incidents.publish_updatedraft" in miss.reason


def test_a_refused_submit_keeps_its_near_miss_and_leaves_the_draft_as_it_was(page, communicator, legal):
    incident = factories.open_incident(page=page, severity="P1")
    draft = editorial.draft_create(page=page, incident=incident, actor=communicator, body=BODY)
    with pytest.raises(editorial.Forbidden):
        editorial.draft_submit(draft=draft, actor=legal)
    assert UpdateDraft.objects.get(pk=draft.pk).state == DraftState.DRAFT
    [miss] = _near_misses()
    assert (miss.actor, miss.action, miss.draft) == (legal, "submit an update for review", draft)


def test_a_refused_edit_writes_no_revision_and_leaves_a_near_miss(page, communicator, pr):
    incident = factories.open_incident(page=page, severity="P1")
    draft = editorial.draft_create(page=page, incident=incident, actor=communicator, body=BODY)
    with pytest.raises(editorial.Forbidden):
        editorial.draft_edit(draft=draft, actor=pr, body="Something else entirely.")
    draft.refresh_from_db()
    assert (draft.body, draft.revision) == (BODY, 1)
    assert DraftRevision.objects.filter(draft=draft).count() == 1
    [miss] = _near_misses()
    assert (miss.actor, miss.action) == (pr, "edit an update")


def test_a_deactivated_commander_is_refused_although_the_group_allows_it(page, commander, staff):
    draft = _in_review_draft(page, staff, severity="P3")
    commander.is_active = False
    commander.save(update_fields=["is_active"])
    with pytest.raises(editorial.Forbidden):
        editorial.draft_publish(draft=draft, actor=commander)
    assert UpdateDraft.objects.get(pk=draft.pk).state == DraftState.IN_REVIEW


# --- the policy and its versions -----------------------------------------------------------------


def test_version_one_holds_the_default_policy_of_the_requirements():
    version = editorial.policy_current()
    assert version.number == 1
    assert list(PolicyVersion.objects.values_list("number", flat=True)) == [1]
    p1, p3, p4 = version.rules["P1"], version.rules["P3"], version.rules["P4"]
    assert (p1["update_cadence_minutes"], p1["target_resolution_minutes"]) == (30, 120)
    assert p1["approvals"] == ["legal", "pr"]
    assert (p1["postmortem_visibility"], p1["postmortem_deadline_hours"]) == ("public", 48)
    assert (p3["postmortem_visibility"], p3["postmortem_deadline_hours"]) == ("internal", 7 * 24)
    assert (p4["postmortem_visibility"], p4["postmortem_deadline_hours"]) == ("none", None)
    assert p4["channels"] == []


def test_the_cadence_follows_the_policy_and_tightens_to_fifteen_minutes_in_an_extended_outage():
    assert editorial.cadence("P1") == timedelta(minutes=30)
    assert editorial.cadence("P3") == timedelta(hours=2)
    assert editorial.cadence("P3", extended=True) == timedelta(minutes=15)
    assert editorial.cadence("P4") is None


def test_an_administrator_saving_the_policy_creates_version_two_and_keeps_version_one(administrator):
    policy = _policy("P1")
    policy.update_cadence_minutes = 20
    policy.approvals = ["legal", "pr", "executive"]

    version = editorial.policy_save(policy=policy, actor=administrator, note="Tighter P1 cadence")

    assert (version.number, version.created_by, version.note) == (2, administrator, "Tighter P1 cadence")
    assert version.rules["P1"]["update_cadence_minutes"] == 20
    assert version.rules["P1"]["approvals"] == ["legal", "pr", "executive"]
    assert editorial.policy_current() == version
    first = PolicyVersion.objects.get(number=1)
    assert first.rules["P1"]["update_cadence_minutes"] == 30
    assert first.rules["P1"]["approvals"] == ["legal", "pr"]


def test_an_unknown_channel_is_refused_naming_the_channels_field(administrator):
    policy = _policy("P2")
    policy.channels = ["email", "carrier_pigeon"]
    with pytest.raises(ValidationError) as refused:
        editorial.policy_save(policy=policy, actor=administrator)
    assert list(refused.value.message_dict) == ["channels"]
    assert "carrier_pigeon" in refused.value.message_dict["channels"][0]
    assert PolicyVersion.objects.count() == 1
    assert _policy("P2").channels == ["email", "webhook", "slack", "teams"]


def test_an_unknown_approval_role_is_refused_naming_the_approvals_field(administrator):
    policy = _policy("P2")
    policy.approvals = ["pr", "board"]
    with pytest.raises(ValidationError) as refused:
        editorial.policy_save(policy=policy, actor=administrator)
    assert list(refused.value.message_dict) == ["approvals"]
    assert "board" in refused.value.message_dict["approvals"][0]
    assert PolicyVersion.objects.count() == 1


def test_a_communicator_may_not_edit_the_policy(communicator):
    policy = _policy("P1")
    policy.update_cadence_minutes = 240
    with pytest.raises(editorial.Forbidden):
        editorial.policy_save(policy=policy, actor=communicator)
    assert PolicyVersion.objects.count() == 1
    assert _policy("P1").update_cadence_minutes == 30
    [miss] = _near_misses()
    assert (miss.actor, miss.action) == (communicator, "edit the severity policy")


# --- the channel matrix follows the policy version an update went out under ----------------------


def test_a_channel_removed_from_the_policy_stops_new_updates_but_not_earlier_dispatches(
    page, rest_api, administrator, communicator, legal, pr, commander,
):
    confirmed(page, channel="email")
    confirmed(page, channel="webhook")
    incident = factories.open_incident(page=page, severity="P1", components={rest_api: ComponentStatus.MAJOR_OUTAGE})
    earlier = Dispatch.objects.get()

    policy = _policy("P1")
    policy.channels = ["sms", "webhook", "slack", "teams"]
    editorial.policy_save(policy=policy, actor=administrator, note="Email too slow for P1")

    draft = editorial.draft_create(page=page, incident=incident, actor=communicator, body=BODY, status="identified")
    editorial.draft_submit(draft=draft, actor=communicator)
    editorial.draft_approve(draft=draft, actor=legal, role="legal")
    editorial.draft_approve(draft=draft, actor=pr, role="pr")
    update = editorial.draft_publish(draft=draft, actor=commander)
    later = Dispatch.objects.get(update=update)

    dispatch_expand(dispatch_id=later.pk)
    assert set(Delivery.objects.filter(dispatch=later).values_list("channel", flat=True)) == {"webhook"}
    assert (later.policy_version, "email" in later.policy_rules["channels"]) == ("policy-v2", False)

    earlier.refresh_from_db()
    assert (earlier.policy_version, "email" in earlier.policy_rules["channels"]) == ("policy-v1", True)
    dispatch_expand(dispatch_id=earlier.pk)
    assert set(Delivery.objects.filter(dispatch=earlier).values_list("channel", flat=True)) == {"email", "webhook"}
