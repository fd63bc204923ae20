"""The incident's internal side: notes, decisions, commander hand-offs, vendor disclosure
reviews and communication blackouts. Nothing here is ever public.

Like incidents.editorial, permission checks come first and a refusal is recorded as a near
miss (editorial.require) before anything is written.
"""
from __future__ import annotations

from datetime import datetime
from datetime import timezone as dt_timezone

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from incidents.editorial import require
from incidents.models import BlackoutWindow, Incident, IncidentNote, NoteKind


def incident_note_add(*, incident: Incident, actor, body: str, kind: str = NoteKind.NOTE) -> IncidentNote:
    """Add an internal note or a decision to the incident's log (hand-offs: commander_hand_off)."""
    require(actor, "incidents.add_incidentnote", action="add to the incident log", incident=incident)
    if kind not in (NoteKind.NOTE, NoteKind.DECISION):
        raise ValidationError({"kind": "Hand the incident over with the hand-off action."})
    if not body.strip():
        raise ValidationError({"body": "Write the note."})
    return IncidentNote.objects.create(incident=incident, kind=kind, body=body.strip(), author=actor)


def commander_hand_off(*, incident: Incident, actor, to, note: str = "") -> IncidentNote:
    """Make `to` the incident's one commander and log the hand-off.

    The current commander hands off; anyone else taking over must say why (a shift that ended
    without a hand-off, say). The new commander must be able to publish.
    """
    require(actor, "incidents.change_incident", action="hand the incident over", incident=incident)
    if to is None or not to.is_active or not to.has_perm("incidents.publish_updatedraft"):
        raise ValidationError({"to": "Hand over to someone who can command an incident (publish updates)."})
    with transaction.atomic():
        incident = Incident.objects.select_for_update().get(pk=incident.pk)
        if incident.commander_id == to.pk:
            raise ValidationError({"to": f"{to.get_username()} already commands this incident."})
        taking_over = incident.commander_id is not None and incident.commander_id != actor.pk
        if taking_over and not note.strip():
            raise ValidationError({"note": "You are not the current commander: say why you are taking over."})
        previous = get_user_model().objects.filter(pk=incident.commander_id).first() if incident.commander_id else None
        Incident.objects.filter(pk=incident.pk).update(commander=to, updated=timezone.now())
        text = f"Command passed from {previous.get_username() if previous else 'nobody'} to {to.get_username()}."
        if note.strip():
            text += f" {note.strip()}"
        return IncidentNote.objects.create(incident=incident, kind=NoteKind.HANDOFF, body=text, author=actor, handed_to=to)


def vendor_flag(*, incident: Incident, actor, vendor: str) -> Incident:
    """Mark the incident as caused by a third party; its updates then wait for a disclosure review."""
    require(actor, "incidents.change_incident", action="flag a vendor-caused incident", incident=incident)
    if not vendor.strip():
        raise ValidationError({"vendor": "Name the vendor."})
    with transaction.atomic():
        Incident.objects.filter(pk=incident.pk).update(
            vendor_caused=True, disclosure_reviewed_at=None, disclosure_reviewed_by=None, updated=timezone.now(),
        )
        IncidentNote.objects.create(
            incident=incident, kind=NoteKind.DECISION, author=actor,
            body=f"Flagged as caused by {vendor.strip()}: what we say about the vendor needs a disclosure review.",
        )
    incident.refresh_from_db()
    return incident


def disclosure_review(*, incident: Incident, actor, decision: str) -> Incident:
    """Legal's review of what may be said about a vendor; recorded as a decision."""
    require(actor, "incidents.approve_legal", action="review a vendor disclosure", incident=incident)
    if not incident.vendor_caused:
        raise ValidationError({"vendor_caused": "This incident is not flagged as vendor-caused."})
    if not decision.strip():
        raise ValidationError({"decision": "Record what may be disclosed about the vendor."})
    now = timezone.now()
    with transaction.atomic():
        Incident.objects.filter(pk=incident.pk).update(disclosure_reviewed_at=now, disclosure_reviewed_by=actor, updated=now)
        IncidentNote.objects.create(incident=incident, kind=NoteKind.DECISION, author=actor, body=f"Disclosure review: {decision.strip()}")
    incident.refresh_from_db()
    return incident


def blackout_start(
    *, incident: Incident, actor, ends_at: datetime, reason: str, waive_cadence: bool = False, waiver_reason: str = "",
) -> BlackoutWindow:
    """Hold internal pings until `ends_at`. Customer updates keep their cadence unless waived;
    a waiver needs its reason and moves the promised next update to the end of the window."""
    require(actor, "incidents.change_incident", action="start a communication blackout", incident=incident)
    now = timezone.now()
    errors = {}
    if ends_at <= now:
        errors["ends_at"] = "A blackout must end in the future."
    if not reason.strip():
        errors["reason"] = "Say why communication is paused."
    if waive_cadence and not waiver_reason.strip():
        errors["waiver_reason"] = "Waiving the customer cadence needs its own reason, for the review."
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        window = BlackoutWindow.objects.create(
            incident=incident, starts_at=now, ends_at=ends_at, reason=reason.strip(), cadence_waived=waive_cadence,
            waiver_reason=waiver_reason.strip(), created_by=actor,
        )
        text = f"Communication blackout until {ends_at.astimezone(dt_timezone.utc):%Y-%m-%d %H:%M} UTC: {reason.strip()}."
        if waive_cadence:
            text += f" Customer cadence waived: {waiver_reason.strip()}."
            from incidents import cache

            Incident.objects.filter(pk=incident.pk, next_update_at__lt=ends_at).update(next_update_at=ends_at, updated=now)
            cache.content_changed()  # the page shows the promised next update
        else:
            text += " Customer updates stay on their cadence."
        IncidentNote.objects.create(incident=incident, kind=NoteKind.DECISION, author=actor, body=text)
        return window


def blackout_active(incident: Incident, *, now: datetime | None = None) -> BlackoutWindow | None:
    """The blackout holding the incident's internal pings at `now`, if any."""
    now = now or timezone.now()
    return BlackoutWindow.objects.filter(incident=incident, starts_at__lte=now, ends_at__gt=now).order_by("-ends_at").first()
