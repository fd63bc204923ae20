"""Cadence discipline: remind staff before a promise to customers is broken, escalate once it is.

`reminders_check` runs every minute (incidents.tasks.check_reminders) and looks at:

* open incidents with a promised next update: a reminder REMINDER_LEAD_MINUTES before it is
  due, an escalation (with the severity policy's escalation contacts) once it is overdue;
* open incidents older than EXTENDED_AFTER with no ETA: they become extended outages (the
  cadence tightens to 15 minutes, an SLA credit review is flagged, executives are told);
* unpublished post-mortems: a reminder 24 hours before their deadline, an escalation after it;
* maintenances still in progress 30 minutes before their window ends.

Each reminder is claimed by a StaffReminder row (unique per incident, kind and due time) in the
same transaction that decides to send it, and sent when that transaction commits: a second run,
or a second worker, finds the row and sends nothing. A promise that moves (a new update sets a
new next_update_at, a maintenance gets a new end) is a new due time and so a new reminder.

These are internal messages to staff: plain email and an optional chat post, not archived.
A failed send is logged and never stops the loop.
"""
from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import EmailMessage
from django.db import IntegrityError, transaction
from django.db.models import Exists, Max, OuterRef, Q
from django.urls import reverse
from django.utils import timezone

from incidents import cache, editorial
from incidents.message_templates import MessageKind
from incidents.models import (
    ACTIVE_MAINTENANCE_STATUSES,
    OPEN_INCIDENT_STATUSES,
    BlackoutWindow,
    Component,
    DraftRevision,
    DraftState,
    Incident,
    Postmortem,
    StaffReminder,
    StaffReminderKind,
    UpdateDraft,
)
from statuspage.lib import http
from statuspage.lib.times import local_text

logger = logging.getLogger("incidents.reminders")

POSTMORTEM_LEAD = timedelta(hours=24)
MAINTENANCE_LEAD = timedelta(minutes=30)
# Who hears of an extended outage besides the responders (incidents.editorial.ROLE_GROUPS).
EXECUTIVE_GROUPS = ("Executives", "Executive approvers")


@dataclass(frozen=True)
class _Message:
    subject: str
    text: str


# --- who is told ----------------------------------------------------------------------------------


def _unique(addresses: Iterable[str]) -> list[str]:
    """Addresses in first-seen order, each once whatever its case."""
    seen: set[str] = set()
    result = []
    for address in addresses:
        address = (address or "").strip()
        if address and address.lower() not in seen:
            seen.add(address.lower())
            result.append(address)
    return result


def _commander(incident: Incident) -> list[str]:
    user = incident.commander
    return [user.email] if user is not None and user.is_active and user.email else []


def _communicators(incident: Incident) -> list[str]:
    """Everyone who writes for the incident: draft authors, whoever edited a draft since, and
    the communications owners of the component groups it affects."""
    authors = UpdateDraft.objects.filter(incident=incident, author__is_active=True).values_list("author__email", flat=True)
    editors = DraftRevision.objects.filter(draft__incident=incident, author__is_active=True).values_list("author__email", flat=True)
    owners = Component.objects.filter(
        is_group=True, comms_owner__is_active=True, children__in=incident.affected.values("component"),
    ).values_list("comms_owner__email", flat=True)
    return sorted({email for email in [*authors, *editors, *owners] if email})


def _escalation_contacts(incident: Incident) -> list[str]:
    lines = editorial.rules_for(incident.severity).get("escalation_contacts") or ""
    return [line.strip() for line in lines.splitlines() if line.strip()]


def _executives() -> list[str]:
    users = get_user_model().objects.filter(groups__name__in=EXECUTIVE_GROUPS, is_active=True).exclude(email="")
    return sorted(set(users.values_list("email", flat=True)))


def _staff_alerts() -> list[str]:
    return list(getattr(settings, "STAFF_ALERT_EMAILS", []) or [])


# --- what they are told ---------------------------------------------------------------------------


def _when(value: datetime, incident: Incident) -> str:
    # Staff read the page's own clock: that is the time customers were promised.
    return local_text(value, incident.page.time_zone)


def admin_link(incident: Incident) -> str:
    # The incident admin lists incidents only; a maintenance is edited in its own admin.
    name = "admin:incidents_maintenance_change" if incident.is_maintenance else "admin:incidents_incident_change"
    return f"{settings.SITE_URL}{reverse(name, args=[incident.pk])}"


def _about(incident: Incident) -> str:
    return f"{incident.name} ({incident.get_severity_display()}, {incident.get_status_display()}, {incident.page.name})"


def _last_update(incident: Incident) -> str:
    last = incident.updates.order_by("-display_at", "-id").first()
    return _when(last.display_at, incident) if last else "none yet"


def _update_due_message(incident: Incident, due: datetime) -> _Message:
    when = _when(due, incident)
    return _Message(
        subject=f"[{incident.page.name}] Public update due at {when}: {incident.name}",
        text="\n".join([
            f"Incident: {_about(incident)}",
            f"Due: the next public update, promised on the status page for {when}.",
            f"Last public update: {_last_update(incident)}.",
            "Post an update by then, even if there is no news: a missed promise costs more trust than a short update.",
            "",
            f"Admin: {admin_link(incident)}",
        ]),
    )


def _update_overdue_message(incident: Incident, due: datetime) -> _Message:
    when = _when(due, incident)
    return _Message(
        subject=f"[{incident.page.name}] OVERDUE public update (due {when}): {incident.name}",
        text="\n".join([
            f"Incident: {_about(incident)}",
            f"Overdue: the public update promised for {when} has not been posted.",
            f"Last public update: {_last_update(incident)}.",
            f"This escalation goes to the commander, the communicators and the {incident.severity} escalation contacts.",
            "",
            f"Admin: {admin_link(incident)}",
        ]),
    )


def _extended_message(incident: Incident, now: datetime) -> _Message:
    template = editorial.template_current(MessageKind.EXTENDED_OUTAGE)
    suggested = f'"{template.get_kind_display()}" ({template.label})' if template else "(none is set up yet)"
    hours = (now - incident.started_at).total_seconds() / 3600
    step = editorial.cadence(incident.severity, extended=True)
    if incident.next_update_at is None:
        due = f"no public update time is promised ({incident.severity} has no cadence)."
    else:
        due = f"the next public update by {_when(incident.next_update_at, incident)}"
        due += f"; from now on one every {int(step.total_seconds() // 60)} minutes." if step else "."
    return _Message(
        subject=f"[{incident.page.name}] Extended outage: {incident.name}",
        text="\n".join([
            f"Incident: {_about(incident)}",
            f"Open since {_when(incident.started_at, incident)} ({hours:.1f} hours) with no ETA: it is now an extended outage.",
            f"Due: {due}",
            f"Suggested template: the extended-outage template {suggested}: say what we know and what we do not.",
            "An SLA credit review has been flagged for this incident.",
            "",
            f"Admin: {admin_link(incident)}",
        ]),
    )


def _postmortem_message(postmortem: Postmortem, *, overdue: bool) -> _Message:
    incident = postmortem.incident
    when = _when(postmortem.due_at, incident)
    status = f"OVERDUE since {when}" if overdue else f"due at {when}"
    return _Message(
        subject=f"[{incident.page.name}] Post-mortem {status}: {incident.name}",
        text="\n".join([
            f"Incident: {_about(incident)}",
            f"Due: the {postmortem.get_visibility_display().lower()} post-mortem, {status}; "
            f"it is still {postmortem.get_state_display().lower()}.",
            "The severity policy sets this deadline; publish it, or record in the incident notes why it is late.",
            "",
            f"Admin: {admin_link(incident)}",
        ]),
    )


def _maintenance_message(maintenance: Incident, now: datetime) -> _Message:
    when = _when(maintenance.scheduled_until, maintenance)
    ends = "was due to end" if maintenance.scheduled_until <= now else "is due to end"
    status = maintenance.get_status_display().lower()
    return _Message(
        subject=f"[{maintenance.page.name}] Maintenance {ends} at {when}: {maintenance.name}",
        text="\n".join([
            f"Maintenance: {maintenance.name} ({maintenance.page.name})",
            f"Due: the end of its window at {when}; it is still {status}.",
            "Complete it on time, or move its end and tell subscribers that it runs over.",
            "",
            f"Admin: {admin_link(maintenance)}",
        ]),
    )


# --- claiming and sending -------------------------------------------------------------------------


def _claim(*, incident: Incident, kind: str, due_at: datetime, recipients: list[str], message: _Message, now: datetime) -> bool:
    """In the caller's transaction: record the reminder and send it on commit. False: sent before,
    or nobody to tell (then it is left unclaimed, so someone added later still hears of it)."""
    recipients = _unique([*recipients, *_staff_alerts()])
    chat_url = getattr(settings, "STAFF_CHAT_WEBHOOK_URL", "")
    if not recipients and not chat_url:
        return False
    if StaffReminder.objects.filter(incident=incident, kind=kind, due_at=due_at).exists():
        return False
    try:
        # A savepoint: a concurrent worker's claim of the same row must not break our transaction.
        with transaction.atomic():
            StaffReminder.objects.create(incident=incident, kind=kind, due_at=due_at, recipients=recipients, created=now)
    except IntegrityError:
        return False
    transaction.on_commit(lambda: _send(message, recipients=recipients, chat_url=chat_url, what=f"{kind} for incident {incident.pk}"))
    return True


def _send(message: _Message, *, recipients: list[str], chat_url: str, what: str) -> None:
    """Email, then chat; each failure is logged and stops neither the other nor the loop."""
    if recipients:
        try:
            EmailMessage(subject=message.subject, body=message.text, to=recipients).send()
        except Exception:  # noqa: BLE001 - a reminder must never break the per-minute check
            logger.exception("Staff reminder email (%s) failed", what)
    if chat_url:
        body = json.dumps({"text": f"{message.subject}\n\n{message.text}"}).encode("utf-8")
        try:
            http.post(chat_url, body=body, headers={"Content-Type": "application/json"})
        except http.OutboundError as exc:
            # The URL is not logged: chat webhook URLs carry their secret in the path.
            logger.warning("Staff chat post (%s) failed: %s", what, exc.message)
        except Exception:  # noqa: BLE001
            logger.exception("Staff chat post (%s) failed", what)


# --- the checks -----------------------------------------------------------------------------------


def _locked_open_incident(pk: int) -> Incident | None:
    """The incident under a row lock, as publishing takes it, so a decision sees the latest update."""
    return (
        Incident.objects.select_for_update(of=("self",)).select_related("page", "commander")
        .filter(pk=pk, status__in=OPEN_INCIDENT_STATUSES, parent__isnull=True).incidents().first()
    )


def _extend(pk: int, now: datetime) -> bool:
    with transaction.atomic():
        incident = _locked_open_incident(pk)
        if incident is None or incident.eta or incident.extended_at or incident.started_at > now - editorial.EXTENDED_AFTER:
            return False
        tightest = now + timedelta(minutes=editorial.EXTENDED_CADENCE_MINUTES)
        # Never later than 15 minutes from now; a promise already sooner (or overdue) stands. A
        # severity without a cadence (P4) gets no promise, as editorial.cadence decides too.
        promised = incident.next_update_at is not None or editorial.cadence(incident.severity, extended=True) is not None
        if promised and (incident.next_update_at is None or incident.next_update_at > tightest):
            incident.next_update_at = tightest
            cache.content_changed()  # the page shows the next update time
        incident.extended_at = now
        incident.sla_credit_review = True
        incident.updated = now
        incident.save(update_fields=["extended_at", "sla_credit_review", "next_update_at", "updated"])
        return _claim(
            incident=incident, kind=StaffReminderKind.EXTENDED_OUTAGE, due_at=incident.started_at + editorial.EXTENDED_AFTER,
            recipients=[*_commander(incident), *_executives(), *_escalation_contacts(incident)],
            message=_extended_message(incident, now), now=now,
        )


def _cadence(pk: int, now: datetime, lead: timedelta) -> str | None:
    with transaction.atomic():
        incident = _locked_open_incident(pk)
        if incident is None or incident.next_update_at is None:
            return None
        due = incident.next_update_at
        if now >= due:
            newest = incident.updates.aggregate(at=Max("created"))["at"]
            if newest is not None and newest >= due:
                return None  # an update went out after the promised time: kept, if late
            kind = StaffReminderKind.UPDATE_OVERDUE
            recipients = [*_commander(incident), *_communicators(incident), *_escalation_contacts(incident)]
            message = _update_overdue_message(incident, due)
        elif now >= due - lead:
            kind = StaffReminderKind.UPDATE_DUE
            recipients = [*_commander(incident), *_communicators(incident)]
            message = _update_due_message(incident, due)
        else:
            return None
        claimed = _claim(incident=incident, kind=kind, due_at=due, recipients=recipients, message=message, now=now)
        return kind if claimed else None


def _postmortem(postmortem: Postmortem, now: datetime) -> str | None:
    incident = postmortem.incident
    overdue = now >= postmortem.due_at
    kind = StaffReminderKind.POSTMORTEM_OVERDUE if overdue else StaffReminderKind.POSTMORTEM_DUE
    recipients = [*_commander(incident), *_communicators(incident), *_escalation_contacts(incident)]
    if postmortem.author is not None and postmortem.author.is_active and postmortem.author.email:
        recipients.append(postmortem.author.email)
    with transaction.atomic():
        claimed = _claim(
            incident=incident, kind=kind, due_at=postmortem.due_at, recipients=recipients,
            message=_postmortem_message(postmortem, overdue=overdue), now=now,
        )
    return kind if claimed else None


def _maintenance(maintenance: Incident, now: datetime) -> bool:
    with transaction.atomic():
        return _claim(
            incident=maintenance, kind=StaffReminderKind.MAINTENANCE_ENDING, due_at=maintenance.scheduled_until,
            recipients=_commander(maintenance), message=_maintenance_message(maintenance, now), now=now,
        )


def reminders_check(*, now: datetime | None = None) -> dict[str, int]:
    """Send every staff reminder and escalation that has come due and was not sent yet.

    Each one is decided and recorded in its own transaction and sent after its commit; a failure
    with one incident is logged and the others still go. Returns how many of each kind went out.
    """
    now = now or timezone.now()
    lead = timedelta(minutes=settings.REMINDER_LEAD_MINUTES)
    sent = {kind: 0 for kind in StaffReminderKind.values}
    # Children of a cascade speak through their parent, so only parents are held to a cadence.
    open_incidents = Incident.objects.unresolved().filter(parent__isnull=True)
    # A communication blackout holds internal pings: nothing is decided or claimed for the
    # incident until the window ends, so what fell due meanwhile goes out at the next check after it.
    in_blackout = BlackoutWindow.objects.filter(incident=OuterRef("pk"), starts_at__lte=now, ends_at__gt=now)
    open_incidents = open_incidents.exclude(Exists(in_blackout))

    # Extended outages first: they tighten next_update_at, which the cadence check then reads.
    becoming_extended = open_incidents.filter(eta__isnull=True, extended_at__isnull=True, started_at__lte=now - editorial.EXTENDED_AFTER)
    for pk in list(becoming_extended.values_list("pk", flat=True)):
        try:
            if _extend(pk, now):
                sent[StaffReminderKind.EXTENDED_OUTAGE] += 1
        except Exception:  # noqa: BLE001 - one broken incident must not silence the others
            logger.exception("Extended-outage check of incident %s failed", pk)

    for pk in list(open_incidents.filter(next_update_at__isnull=False, next_update_at__lte=now + lead).values_list("pk", flat=True)):
        try:
            kind = _cadence(pk, now, lead)
        except Exception:  # noqa: BLE001
            logger.exception("Cadence check of incident %s failed", pk)
            continue
        if kind:
            sent[kind] += 1

    # Only post-mortems with a reminder still to send: an overdue one already escalated costs
    # nothing more, so the loop does not grow with every review nobody wrote.
    claimed = StaffReminder.objects.filter(incident=OuterRef("incident"), due_at=OuterRef("due_at"))
    postmortems = (
        Postmortem.objects.exclude(state=DraftState.PUBLISHED).filter(due_at__isnull=False, due_at__lte=now + POSTMORTEM_LEAD)
        .exclude(Q(due_at__lte=now) & Exists(claimed.filter(kind=StaffReminderKind.POSTMORTEM_OVERDUE)))
        .exclude(Q(due_at__gt=now) & Exists(claimed.filter(kind=StaffReminderKind.POSTMORTEM_DUE)))
        .select_related("incident", "incident__page", "incident__commander", "author")
    )
    for postmortem in postmortems:
        try:
            kind = _postmortem(postmortem, now)
        except Exception:  # noqa: BLE001
            logger.exception("Post-mortem check of incident %s failed", postmortem.incident_id)
            continue
        if kind:
            sent[kind] += 1

    # Still open near (or past) the end of its window; a completed one has left this status.
    ending = Incident.objects.maintenances().filter(
        status__in=ACTIVE_MAINTENANCE_STATUSES, scheduled_until__lte=now + MAINTENANCE_LEAD,
    ).select_related("page", "commander")
    for maintenance in ending:
        try:
            if _maintenance(maintenance, now):
                sent[StaffReminderKind.MAINTENANCE_ENDING] += 1
        except Exception:  # noqa: BLE001
            logger.exception("Maintenance-ending check of %s failed", maintenance.pk)
    return sent
