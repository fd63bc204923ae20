"""The incident's internal side: log, hand-offs, vendor disclosure review, blackouts."""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from incidents import coordination, editorial
from incidents.models import BlackoutWindow, Incident, IncidentNote, NearMiss, NoteKind
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def incident(page):
    return factories.open_incident(page=page, severity="P1", name="Checkout errors")


def test_a_communicator_logs_a_decision_on_the_incident(incident, communicator):
    note = coordination.incident_note_add(incident=incident, actor=communicator, body="Roll back first, debug later.", kind=NoteKind.DECISION)
    assert (note.kind, note.author, note.body) == (NoteKind.DECISION, communicator, "Roll back first, debug later.")


def test_internal_notes_never_reach_the_public_page(client, incident, communicator):
    coordination.incident_note_add(incident=incident, actor=communicator, body="Suspect the db-03 failover.")
    assert b"db-03" not in client.get(f"/incidents/{incident.public_id}").content
    assert b"db-03" not in client.get("/api/v2/incidents.json").content


def test_an_executive_cannot_write_in_the_log_and_the_attempt_is_recorded(incident, executive):
    with pytest.raises(editorial.Forbidden):
        coordination.incident_note_add(incident=incident, actor=executive, body="Hurry up.")
    assert not IncidentNote.objects.exists()
    assert NearMiss.objects.get().actor == executive


def test_the_commander_hands_off_and_the_log_records_it(incident, commander, django_user_model):
    from django.contrib.auth.models import Group

    Incident.objects.filter(pk=incident.pk).update(commander=commander)
    successor = django_user_model.objects.create_user(username="nia", email="nia@example.com", is_staff=True)
    successor.groups.add(Group.objects.get(name="Incident commanders"))
    note = coordination.commander_hand_off(incident=incident, actor=commander, to=successor, note="Shift change.")
    incident.refresh_from_db()
    assert incident.commander == successor
    assert (note.kind, note.handed_to) == (NoteKind.HANDOFF, successor)
    assert "from cam to nia" in note.body


def test_command_goes_only_to_someone_who_can_command(incident, commander, communicator):
    Incident.objects.filter(pk=incident.pk).update(commander=commander)
    with pytest.raises(ValidationError) as refused:
        coordination.commander_hand_off(incident=incident, actor=commander, to=communicator)
    assert "to" in refused.value.message_dict
    assert Incident.objects.get(pk=incident.pk).commander == commander


def test_taking_over_from_another_commander_needs_a_reason(incident, commander, staff):
    Incident.objects.filter(pk=incident.pk).update(commander=commander)
    with pytest.raises(ValidationError) as refused:
        coordination.commander_hand_off(incident=incident, actor=staff, to=staff)
    assert "note" in refused.value.message_dict
    coordination.commander_hand_off(incident=incident, actor=staff, to=staff, note="Cam went off shift without handing over.")
    assert Incident.objects.get(pk=incident.pk).commander == staff


def test_a_vendor_caused_incident_is_flagged_for_a_disclosure_review(incident, commander, legal):
    incident = coordination.vendor_flag(incident=incident, actor=commander, vendor="Acme Cloud")
    assert incident.vendor_caused and incident.disclosure_reviewed_at is None
    incident = coordination.disclosure_review(incident=incident, actor=legal, decision="Name the provider; no contract details.")
    assert incident.disclosure_reviewed_by == legal
    assert IncidentNote.objects.filter(kind=NoteKind.DECISION, body__startswith="Disclosure review").exists()


def test_only_legal_reviews_a_vendor_disclosure(incident, commander):
    coordination.vendor_flag(incident=incident, actor=commander, vendor="Acme Cloud")
    with pytest.raises(editorial.Forbidden):
        coordination.disclosure_review(incident=incident, actor=commander, decision="Fine by me.")
    assert Incident.objects.get(pk=incident.pk).disclosure_reviewed_at is None


def test_a_blackout_keeps_the_customer_cadence_unless_it_is_waived(incident, commander):
    promised = Incident.objects.get(pk=incident.pk).next_update_at
    coordination.blackout_start(incident=incident, actor=commander, ends_at=timezone.now() + timedelta(hours=2), reason="Database restore")
    assert Incident.objects.get(pk=incident.pk).next_update_at == promised
    assert coordination.blackout_active(incident) is not None


def test_waiving_the_customer_cadence_needs_a_reason_and_moves_the_promise(incident, commander):
    ends = timezone.now() + timedelta(hours=2)
    with pytest.raises(ValidationError) as refused:
        coordination.blackout_start(incident=incident, actor=commander, ends_at=ends, reason="Restore", waive_cadence=True)
    assert "waiver_reason" in refused.value.message_dict
    assert not BlackoutWindow.objects.exists()
    coordination.blackout_start(
        incident=incident, actor=commander, ends_at=ends, reason="Restore", waive_cadence=True,
        waiver_reason="Every engineer is on the restore; customers were told when to expect news.",
    )
    assert Incident.objects.get(pk=incident.pk).next_update_at == ends
    assert "Customer cadence waived" in IncidentNote.objects.get(kind=NoteKind.DECISION).body


def test_a_blackout_that_has_ended_holds_nothing(incident, commander):
    coordination.blackout_start(incident=incident, actor=commander, ends_at=timezone.now() + timedelta(minutes=30), reason="Restore")
    assert coordination.blackout_active(incident, now=timezone.now() + timedelta(minutes=31)) is None
