"""The incident's internal side in the desk: its log, command, vendor disclosure and blackouts.

Each role signs in as itself (tests/conftest.py). The panel offers what the role may do; the
services in incidents.coordination decide, and nothing of it reaches the public page.
"""
from __future__ import annotations

from datetime import timedelta
from datetime import timezone as dt_timezone

import pytest
from django.contrib.auth.models import Group
from django.urls import reverse
from django.utils import timezone

from incidents.message_templates import IncidentCategory, MessageKind
from incidents.models import BlackoutWindow, Incident, IncidentNote, NearMiss, NearMissKind, NoteKind, Severity
from tests import factories

TIMELINE = {"updates-TOTAL_FORMS": "0", "updates-INITIAL_FORMS": "0"}


def _url(name: str, *args) -> str:
    return reverse(f"admin:incidents_{name}", args=args)


def _as(client, user):
    client.force_login(user)
    return client


def _messages(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def _log(response) -> str:
    """The internal log panel of a change page, as HTML."""
    body = response.content.decode()
    assert 'id="internal-log"' in body
    return body[body.index('id="internal-log"'):]


def _in_an_hour_utc() -> str:
    return (timezone.now() + timedelta(hours=1)).astimezone(dt_timezone.utc).strftime("%Y-%m-%dT%H:%M")


@pytest.fixture
def incident(page):
    return factories.open_incident(page=page, name="Checkout errors", severity=Severity.P1)


@pytest.fixture
def successor(db, django_user_model):
    """A second incident commander, to hand over to."""
    user = django_user_model.objects.create_user(username="nia", email="nia@example.com", password="x", is_staff=True)
    user.groups.add(Group.objects.get(name="Incident commanders"))
    return user


def _commanded_by(incident: Incident, user) -> Incident:
    Incident.objects.filter(pk=incident.pk).update(commander=user)
    incident.refresh_from_db()
    return incident


# --- the log ---------------------------------------------------------------------------------------


def test_a_note_added_in_the_desk_shows_in_the_internal_log(client, incident, communicator):
    desk = _as(client, communicator)

    response = desk.post(_url("incident_log_note", incident.pk), {"kind": "note", "body": "Suspect the db-03 failover."}, follow=True)

    assert "Note added to the internal log." in _messages(response)
    log = _log(response)
    assert "internal, never public" in log
    assert "Suspect the db-03 failover." in log and "cora" in log
    assert IncidentNote.objects.get(incident=incident).kind == NoteKind.NOTE


def test_a_decision_is_logged_as_a_decision(client, incident, commander):
    desk = _as(client, commander)

    response = desk.post(_url("incident_log_note", incident.pk), {"kind": "decision", "body": "Roll back before debugging."}, follow=True)

    note = IncidentNote.objects.get(incident=incident)
    assert (note.kind, note.author, note.body) == (NoteKind.DECISION, commander, "Roll back before debugging.")
    assert 'class="internal-note internal-note-decision"' in _log(response)


def test_an_empty_note_is_refused_with_the_field_named(client, incident, communicator):
    response = _as(client, communicator).post(_url("incident_log_note", incident.pk), {"kind": "note", "body": "  "}, follow=True)

    assert "Text: Write the note." in _messages(response)
    assert not IncidentNote.objects.exists()


def test_the_log_lists_entries_oldest_first(client, incident, communicator):
    desk = _as(client, communicator)
    desk.post(_url("incident_log_note", incident.pk), {"kind": "note", "body": "First: paged the database team."})
    desk.post(_url("incident_log_note", incident.pk), {"kind": "note", "body": "Second: failover started."})

    log = _log(desk.get(_url("incident_change", incident.pk)))

    assert log.index("First: paged the database team.") < log.index("Second: failover started.")


# --- command ---------------------------------------------------------------------------------------


def test_the_hand_off_choice_offers_only_people_who_can_command(client, incident, commander, successor, communicator, legal):
    _commanded_by(incident, commander)

    response = _as(client, commander).get(_url("incident_change", incident.pk))

    widget = response.context["internal"]["forms"]["hand_off"]["form"].fields["to"].widget
    offered = [label for _value, label in widget.choices]
    assert "nia" in offered
    assert "cora" not in offered and "lee" not in offered
    assert "cam" not in offered  # already commands


def test_handing_off_changes_the_commander_and_shows_in_the_log(client, incident, commander, successor):
    _commanded_by(incident, commander)

    response = _as(client, commander).post(
        _url("incident_log_hand_off", incident.pk), {"to": successor.pk, "note": "End of my shift."}, follow=True,
    )

    incident.refresh_from_db()
    assert incident.commander == successor
    assert "nia now commands this incident." in _messages(response)
    note = IncidentNote.objects.get(incident=incident, kind=NoteKind.HANDOFF)
    assert note.handed_to == successor
    assert "Command passed from cam to nia. End of my shift." in _log(response)


def test_handing_off_to_someone_who_cannot_command_is_refused_and_changes_nothing(client, incident, commander, communicator):
    _commanded_by(incident, commander)

    response = _as(client, commander).post(_url("incident_log_hand_off", incident.pk), {"to": communicator.pk}, follow=True)

    assert any(text.startswith("Hand command to: Hand over to someone who can command") for text in _messages(response))
    assert Incident.objects.get(pk=incident.pk).commander == commander
    assert not IncidentNote.objects.filter(kind=NoteKind.HANDOFF).exists()


# --- vendor disclosure -----------------------------------------------------------------------------


def test_a_vendor_flag_waits_for_legal_whose_review_is_recorded(client, incident, commander, legal):
    _as(client, commander).post(_url("incident_log_vendor", incident.pk), {"vendor": "Acme Cloud"})
    incident.refresh_from_db()
    assert incident.vendor_caused and incident.disclosure_reviewed_at is None
    assert "disclosure" not in _as(client, commander).get(_url("incident_change", incident.pk)).context["internal"]["forms"]

    page_for_legal = _as(client, legal).get(_url("incident_change", incident.pk))
    assert "disclosure" in page_for_legal.context["internal"]["forms"]
    response = client.post(_url("incident_log_disclosure", incident.pk), {"decision": "Name the provider, nothing more."}, follow=True)

    incident.refresh_from_db()
    assert incident.disclosure_reviewed_by == legal
    assert "Disclosure review: Name the provider, nothing more." in _log(response)
    assert "disclosure" not in response.context["internal"]["forms"]


# --- blackouts -------------------------------------------------------------------------------------


def test_a_cadence_waiver_without_its_reason_shows_the_field_error(client, incident, commander):
    response = _as(client, commander).post(_url("incident_log_blackout", incident.pk), {
        "ends_at": _in_an_hour_utc(), "reason": "Database failover in progress.", "waive_cadence": "on", "waiver_reason": "",
    }, follow=True)

    assert "Waiver reason: Waiving the customer cadence needs its own reason, for the review." in _messages(response)
    assert not BlackoutWindow.objects.exists()


def test_the_blackout_end_is_read_in_utc(client, incident, commander, settings):
    settings.TIME_ZONE = "America/New_York"  # the desk's zone does not change what the field means

    _as(client, commander).post(_url("incident_log_blackout", incident.pk), {"ends_at": "2999-01-02T03:04", "reason": "Failover."})

    assert BlackoutWindow.objects.get().ends_at == timezone.datetime(2999, 1, 2, 3, 4, tzinfo=dt_timezone.utc)


def test_an_active_blackout_shows_a_banner(client, incident, commander):
    desk = _as(client, commander)
    desk.post(_url("incident_log_blackout", incident.pk), {
        "ends_at": _in_an_hour_utc(), "reason": "Database failover in progress", "waive_cadence": "on",
        "waiver_reason": "Nothing new to say until the failover ends",
    })

    body = desk.get(_url("incident_change", incident.pk)).content.decode()

    banner = body[body.index('id="blackout-banner"'):body.index("</ul>", body.index('id="blackout-banner"'))]
    assert "Communication blackout until" in banner and "Database failover in progress" in banner
    assert "Customer cadence waived: Nothing new to say until the failover ends." in banner


# --- executives read, and only read ----------------------------------------------------------------


def test_an_executive_reads_the_log_without_any_form(client, incident, communicator, executive):
    _as(client, communicator).post(_url("incident_log_note", incident.pk), {"kind": "note", "body": "Customer X escalated."})

    response = _as(client, executive).get(_url("incident_change", incident.pk))

    log = _log(response)
    assert "Customer X escalated." in log
    assert response.context["internal"]["forms"] == {}
    assert "<form" not in log


def test_an_executive_posting_to_the_log_is_refused_and_the_attempt_recorded(client, incident, executive):
    response = _as(client, executive).post(_url("incident_log_note", incident.pk), {"kind": "note", "body": "Hurry up."})

    assert response.status_code == 403
    assert not IncidentNote.objects.exists()
    near_miss = NearMiss.objects.get()
    assert (near_miss.kind, near_miss.actor, near_miss.incident_id) == (NearMissKind.FORBIDDEN, executive, incident.pk)


def test_the_log_actions_take_only_posts(client, incident, commander):
    assert _as(client, commander).get(_url("incident_log_note", incident.pk)).status_code == 405


# --- never public ----------------------------------------------------------------------------------


def test_internal_notes_never_appear_on_the_public_incident_page(client, incident, communicator):
    _as(client, communicator).post(_url("incident_log_note", incident.pk), {"kind": "decision", "body": "Blame sits with db-03."})
    assert IncidentNote.objects.exists()
    client.logout()

    public = client.get(f"/incidents/{incident.public_id}")

    assert public.status_code == 200 and b"Checkout errors" in public.content
    assert b"db-03" not in public.content


# --- drafts and the internal fields ----------------------------------------------------------------


def test_the_panel_links_new_drafts_prefilled_with_the_incident(client, incident, communicator):
    desk = _as(client, communicator)
    internal = desk.get(_url("incident_change", incident.pk)).context["internal"]
    assert internal["new_draft_url"] == f"{_url('updatedraft_add')}?incident={incident.pk}&page={incident.page_id}"
    progress = next(s for s in internal["suggested"] if s["label"] == MessageKind.PROGRESS_UPDATE.label)

    form = desk.get(progress["url"]).context["adminform"].form

    assert (str(form.initial["incident"]), str(form.initial["page"]), form.initial["kind"]) == (
        str(incident.pk), str(incident.page_id), MessageKind.PROGRESS_UPDATE,
    )


def test_the_panel_lists_the_incidents_drafts_with_their_state(client, incident, communicator):
    desk = _as(client, communicator)
    desk.post(_url("updatedraft_add"), {
        "page": incident.page_id, "incident": incident.pk, "kind": MessageKind.PROGRESS_UPDATE, "language": "en",
        "status": "identified", "body": "We found the cause.", "deliver_notifications": "on", "severity": "P3",
        "category": "outage", "component_status": "major_outage",
    })

    drafts = desk.get(_url("incident_change", incident.pk)).context["internal"]["drafts"]

    assert [(row["draft"].kind, row["draft"].state) for row in drafts] == [(MessageKind.PROGRESS_UPDATE, "draft")]
    assert drafts[0]["url"] == _url("updatedraft_change", drafts[0]["draft"].pk)


def test_the_change_form_edits_category_eta_and_the_sla_review_flag(desk, incident):
    eta = (timezone.now() + timedelta(hours=2)).replace(second=0, microsecond=0)

    response = desk.post(_url("incident_change", incident.pk), {
        "name": incident.name, "impact": incident.impact, "severity": incident.severity,
        **factories.split_datetime("started_at", incident.started_at), **factories.split_datetime("eta", eta),
        "category": IncidentCategory.DATA_EXPOSURE, "sla_credit_review": "on", **TIMELINE,
    })

    assert response.status_code == 302
    incident.refresh_from_db()
    assert (incident.category, incident.eta, incident.sla_credit_review) == (IncidentCategory.DATA_EXPOSURE, eta, True)


def test_a_change_form_post_without_the_category_keeps_it(desk, incident):
    Incident.objects.filter(pk=incident.pk).update(category=IncidentCategory.DATA_EXPOSURE)

    response = desk.post(_url("incident_change", incident.pk), {
        "name": "Checkout errors (renamed)", "impact": incident.impact, "severity": incident.severity,
        **factories.split_datetime("started_at", incident.started_at), **TIMELINE,
    })

    assert response.status_code == 302
    incident.refresh_from_db()
    assert (incident.name, incident.category) == ("Checkout errors (renamed)", IncidentCategory.DATA_EXPOSURE)
