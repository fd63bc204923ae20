"""Support coordination: tell the support team, and the helpdesk, what customers were just told.

On every published incident update (after the commit, as a task with the update's id; during
a communication blackout, when it ends):
- the support team's addresses (SUPPORT_ALERT_EMAILS) get an email with the public text and
  the approved talking points from the draft it was published from;
- the support chat (SUPPORT_CHAT_WEBHOOK_URL, Slack- or Teams-compatible) gets a short post;
- the helpdesk (HELPDESK_WEBHOOK_URL) gets a generic JSON event signed with the Standard
  Webhooks headers: the first update announces a known issue, later ones update it, and the
  resolution says linked tickets can be closed.

These are internal messages, so they are not archived. The helpdesk event's `webhook-id` is
stable per update, so a helpdesk can drop a repeat. A failed channel is logged and does not
stop the others.
"""
from __future__ import annotations

import json
import logging
import time

from django.conf import settings
from django.core.mail import EmailMessage
from django.db import transaction

from incidents.models import Incident, IncidentStatus, IncidentUpdate
from statuspage.lib import http
from statuspage.lib.markdown import plain_body
from statuspage.lib.signing import standard_webhook_headers

logger = logging.getLogger("incidents.support")


def configured() -> bool:
    return bool(settings.SUPPORT_ALERT_EMAILS or settings.SUPPORT_CHAT_WEBHOOK_URL or settings.HELPDESK_WEBHOOK_URL)


def support_notify_on_commit(*, update: IncidentUpdate) -> None:
    """Queue the briefing once the publishing transaction commits (nothing when none is set up).

    Children of a cascade brief through their parent, like subscribers.
    """
    if not configured() or update.incident.parent_id:
        return
    update_id = update.pk

    def enqueue() -> None:
        from django_q.tasks import async_task

        async_task("incidents.tasks.support_notify", update_id)

    transaction.on_commit(enqueue)


def _event(incident: Incident, update: IncidentUpdate) -> str:
    if incident.is_maintenance:
        return "maintenance.updated"
    if update.status in (IncidentStatus.RESOLVED, IncidentStatus.POSTMORTEM):
        return "incident.resolved"
    first = not incident.updates.filter(display_at__lt=update.display_at).exclude(pk=update.pk).exists()
    return "incident.known_issue" if first else "incident.updated"


def _talking_points(update: IncidentUpdate) -> str:
    draft = getattr(update, "draft", None)  # the UpdateDraft it was published from, if any
    return (getattr(draft, "talking_points", "") or "").strip()


def briefing(update: IncidentUpdate) -> dict:
    """Everything the support channels say about one update."""
    incident = update.incident
    page = incident.page
    url = f"{page.base_url}/incidents/{incident.public_id}"
    event = _event(incident, update)
    points = _talking_points(update)
    components = [str(link.component) for link in incident.affected.select_related("component", "component__group")]
    lines = [
        f"{incident.name}: {update.get_status_display()} ({incident.get_severity_display()})",
        "",
        "What customers were told:",
        plain_body(update.body),
        "",
        "Talking points:" if points else "No talking points were given: answer with the public text above.",
    ]
    if points:
        lines.append(points)
    if components:
        lines += ["", f"Affected: {', '.join(components)}"]
    if incident.next_update_at and incident.is_open:
        lines.append(f"Next public update by {incident.next_update_at:%Y-%m-%d %H:%M} UTC")
    if event == "incident.resolved":
        lines += ["", "Resolved: tickets linked to this incident can be closed."]
    lines += ["", f"Public page: {url}"]
    text = "\n".join(lines)
    payload = {
        "event": event,
        "incident": {
            "id": incident.public_id, "name": incident.name, "status": incident.status, "severity": incident.severity,
            "impact": incident.impact, "url": url, "started_at": incident.started_at.isoformat(),
            "resolved_at": incident.resolved_at.isoformat() if incident.resolved_at else None,
            "components": components,
        },
        "update": {"id": update.public_id, "status": update.status, "body": update.body, "display_at": update.display_at.isoformat()},
        "talking_points": points,
        "known_issue": event != "incident.resolved",
        "tickets_can_be_closed": event == "incident.resolved",
    }
    return {"subject": f"[{page.name} support] {incident.name}: {update.get_status_display()}", "text": text, "payload": payload}


def support_notify(*, update_id: int) -> dict[str, str]:
    """Send one update's briefing on every configured channel; returns each channel's outcome."""
    update = IncidentUpdate.objects.select_related("incident", "incident__page").filter(pk=update_id).first()
    if update is None:
        return {}
    from incidents.coordination import blackout_active

    blackout = blackout_active(update.incident)
    if blackout is not None:
        # Internal pings wait for the end of a communication blackout; customers already have the update.
        from django_q.models import Schedule
        from django_q.tasks import schedule

        schedule("incidents.tasks.support_notify", update_id, schedule_type=Schedule.ONCE, repeats=1, next_run=blackout.ends_at)
        return {"held_until": blackout.ends_at.isoformat()}
    brief = briefing(update)
    outcomes: dict[str, str] = {}
    if settings.SUPPORT_ALERT_EMAILS:
        try:
            EmailMessage(subject=brief["subject"], body=brief["text"], to=list(settings.SUPPORT_ALERT_EMAILS)).send()
            outcomes["email"] = "sent"
        except Exception as exc:  # noqa: BLE001 - one channel's failure must not stop the others
            logger.warning("Support email for update %s failed: %s", update.public_id, exc)
            outcomes["email"] = f"failed: {exc}"
    if settings.SUPPORT_CHAT_WEBHOOK_URL:
        outcomes["chat"] = _post(settings.SUPPORT_CHAT_WEBHOOK_URL, {"text": brief["text"]}, update=update)
    if settings.HELPDESK_WEBHOOK_URL:
        body = json.dumps(brief["payload"], separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        signed = standard_webhook_headers(
            secret=settings.WEBHOOK_SIGNING_SECRET, msg_id=f"helpdesk-{update.public_id}", timestamp=int(time.time()), body=body,
        )
        outcomes["helpdesk"] = _post(settings.HELPDESK_WEBHOOK_URL, body, update=update, headers=signed)
    return outcomes


def _post(url: str, payload: dict | bytes, *, update: IncidentUpdate, headers: dict[str, str] | None = None) -> str:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode("utf-8")
    try:
        http.post(url, body=body, headers={"Content-Type": "application/json", **(headers or {})})
    except http.OutboundError as exc:
        # Not the URL: Slack and Teams webhook URLs carry their secret in the path.
        logger.warning("Support post for update %s failed: %s", update.public_id, exc.message)
        return f"failed: {exc.message}"
    return "sent"
