"""What a delivery says, per channel: subject, text and HTML bodies, or the webhook JSON.

The per-dispatch part (incident, update, page status, wire object) is built once into a
`DispatchContext`; the per-recipient part (manage and unsubscribe links, times in the
subscriber's zone) is filled in per delivery. Email keeps those as {{merge}} fields so the
transport can send a batch of identical templates with per-recipient merge data.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from django.conf import settings
from django.utils import translation
from django.utils.html import escape, linebreaks
from django.utils.translation import gettext as _

from incidents import cache, wire
from incidents.models import Incident, IncidentUpdate, Page
from incidents.selectors import incident_by_id
from incidents.serving import snapshot_for
from notifications.transports import OutboundMessage
from notifications.transports.email import fill_merge_fields
from notifications.transports.sms import sms_segments
from statuspage.lib.markdown import plain_body
from statuspage.lib.times import local_text
from subscribers.messages import links_for
from subscribers.models import Channel, Subscriber

TEMPLATE_VERSION = "notification-v1"
SMS_MAX_SEGMENTS = 2


@dataclass(frozen=True)
class DispatchContext:
    page: Page
    incident: Incident
    update: IncidentUpdate
    incident_url: str
    status_label: str
    impact_label: str
    body_text: str
    components: tuple[str, ...]
    page_status: dict
    incident_wire: dict | None
    # Rendered email templates of this dispatch, by (locale, coalesced updates, time zone): a
    # send batch renders the subject and bodies once and varies only the merge data per recipient.
    templates: dict = field(default_factory=dict, compare=False, hash=False, repr=False)


def tracked(url: str, *, channel: str, ctx: "DispatchContext") -> str:
    """A status page link with campaign parameters, so page analytics can tell which message
    brought a reader (utm_* as every analytics tool reads them)."""
    from urllib.parse import urlencode, urlsplit, urlunsplit

    parts = urlsplit(url)
    params = urlencode({"utm_source": "statuspage", "utm_medium": channel, "utm_campaign": f"incident-{ctx.incident.public_id}"})
    query = f"{parts.query}&{params}" if parts.query else params
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


def dispatch_context(*, page: Page, incident: Incident, update: IncidentUpdate) -> DispatchContext:
    snap = snapshot_for(page.public_id, version=cache.current_version()) or {}
    status = snap.get("status") or {}
    incident_dict = incident_by_id(page.public_id, incident.public_id)
    incident_wire = wire.incident_json(incident_dict, snap) if (incident_dict and snap) else None
    names = tuple(entry["name"] for entry in (update.affected_components or []) if isinstance(entry, dict) and entry.get("name"))
    if not names:
        names = tuple(str(link.component) for link in incident.affected.select_related("component", "component__group"))
    return DispatchContext(
        page=page,
        incident=incident,
        update=update,
        incident_url=f"{page.base_url}/incidents/{incident.public_id}",
        status_label=update.get_status_display(),
        impact_label=incident.get_impact_display(),
        body_text=plain_body(update.body),
        components=names,
        page_status={
            "id": page.public_id,
            "status_indicator": status.get("indicator", "none"),
            "status_description": status.get("description", ""),
        },
        incident_wire=incident_wire,
    )


def _local(value: datetime | None, subscriber: Subscriber | None, page: Page) -> str:
    if value is None:
        return ""
    return local_text(value, (subscriber.time_zone if subscriber else "") or page.time_zone)


def message_locale(subscriber: Subscriber | None, page: Page) -> str:
    """The subscriber's language, else the page's, else the site's; only languages Django can load.

    Pages carry no language of their own yet, so "the page's" is the site default
    (settings.LANGUAGE_CODE) unless a page grows a `locale` attribute.
    """
    for candidate in ((subscriber.locale if subscriber else ""), getattr(page, "locale", ""), settings.LANGUAGE_CODE):
        candidate = (candidate or "").strip()
        if candidate and translation.check_for_language(candidate):
            return candidate
    return settings.LANGUAGE_CODE


def _next_update_line(ctx: DispatchContext) -> str:
    if ctx.incident.is_maintenance:
        return _("Window: %(window)s") % {"window": "{{window}}"}
    if ctx.incident.is_open:
        if ctx.incident.next_update_at:
            return _("Next update: %(when)s") % {"when": "{{next_update}}"}
        return _("Next update: as soon as we know more.")
    return ""


def _earlier_lines(earlier, subscriber: Subscriber | None, page: Page) -> list[str]:
    """Updates folded into this message by coalescing, newest first (the latest leads the message)."""
    if not earlier:
        return []
    lines = ["", _("Earlier updates:")]
    for update in earlier:
        lines += ["", f"{update.get_status_display()} ({_local(update.display_at, subscriber, page)})", plain_body(update.body)]
    return lines


def _earlier_html(earlier, subscriber: Subscriber | None, page: Page) -> str:
    if not earlier:
        return ""
    items = "".join(
        f"<li><strong>{escape(update.get_status_display())}</strong> "
        f"({escape(_local(update.display_at, subscriber, page))}){update.body_html or linebreaks(escape(plain_body(update.body)))}</li>"
        for update in earlier
    )
    return f"<h2>{escape(_('Earlier updates'))}</h2><ul>{items}</ul>"


def _merge_data(ctx: DispatchContext, subscriber: Subscriber | None) -> dict[str, str]:
    links = links_for(subscriber) if subscriber else None
    incident = ctx.incident
    return {
        "manage_url": links.manage if links else "",
        "unsubscribe_url": links.unsubscribe if links else "",
        "next_update": _local(incident.next_update_at, subscriber, ctx.page),
        "window": f"{_local(incident.scheduled_for, subscriber, ctx.page)} to {_local(incident.scheduled_until, subscriber, ctx.page)}"
        if incident.is_maintenance else "",
    }


def _subject(ctx: DispatchContext, *, updates: int = 1) -> str:
    subject = f"[{ctx.page.name}] {ctx.incident.name}: {ctx.status_label}"
    if updates > 1:
        subject += " " + _("(%(count)d updates)") % {"count": updates}
    return subject


def _email_template(ctx: DispatchContext, subscriber: Subscriber | None, earlier=()) -> tuple[str, str, str]:
    """Subject, text and HTML of a dispatch's email in the active language, {{merge}} fields unfilled."""
    impact = _("Impact: %(impact)s") % {"impact": ctx.impact_label}
    affected = _("Affected: %(components)s") % {"components": ", ".join(ctx.components)}
    subscribed = _("You subscribed to %(page)s status updates.") % {"page": ctx.page.name}
    lines = [
        f"{ctx.incident.name} - {ctx.status_label}",
        "",
        ctx.body_text,
        "",
    ]
    if not ctx.incident.is_maintenance:
        lines.append(impact)
    if ctx.components:
        lines.append(affected)
    next_line = _next_update_line(ctx)
    if next_line:
        lines.append(next_line)
    lines += [
        _("Details: %(url)s") % {"url": tracked(ctx.incident_url, channel="email", ctx=ctx)},
        *_earlier_lines(earlier, subscriber, ctx.page),
        "",
        "--",
        subscribed,
        _("Manage what you receive: %(url)s") % {"url": "{{manage_url}}"},
        _("Unsubscribe: %(url)s") % {"url": "{{unsubscribe_url}}"},
    ]
    facts = []
    if not ctx.incident.is_maintenance:
        facts.append(f"<li>{escape(impact)}</li>")
    if ctx.components:
        facts.append(f"<li>{escape(affected)}</li>")
    if next_line:
        facts.append(f"<li>{escape(next_line)}</li>")
    html = (
        f"<h1>{escape(ctx.incident.name)} &ndash; {escape(ctx.status_label)}</h1>"
        f"{ctx.update.body_html or linebreaks(escape(ctx.body_text))}"
        f"<ul>{''.join(facts)}</ul>"
        f'<p><a href="{escape(tracked(ctx.incident_url, channel="email", ctx=ctx))}">{escape(_("View this incident on the status page"))}</a></p>'
        f"{_earlier_html(earlier, subscriber, ctx.page)}"
        f"<hr><p>{escape(subscribed)} "
        f'<a href="{{{{manage_url}}}}">{escape(_("Manage what you receive"))}</a> &middot; '
        f'<a href="{{{{unsubscribe_url}}}}">{escape(_("Unsubscribe"))}</a></p>'
    )
    return _subject(ctx, updates=1 + len(earlier)), "\n".join(lines), html


def _email(ctx: DispatchContext, subscriber: Subscriber | None, delivery_key: str, message_id: str, to: str,
           earlier=()) -> OutboundMessage:
    # Coalesced updates carry their times in the subscriber's zone, so then the zone is part of the key.
    zone = ((subscriber.time_zone if subscriber else "") or ctx.page.time_zone) if earlier else ""
    key = (translation.get_language(), tuple(update.pk for update in earlier), zone)
    template = ctx.templates.get(key)
    if template is None:
        template = ctx.templates[key] = _email_template(ctx, subscriber, earlier)
    subject, text, html = template
    merge = _merge_data(ctx, subscriber)
    headers = {}
    if merge["unsubscribe_url"]:
        # RFC 2369 + RFC 8058, as on the confirmation email (subscribers.messages).
        headers = {"List-Unsubscribe": f"<{merge['unsubscribe_url']}>", "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}
    return OutboundMessage(
        channel=Channel.EMAIL, to=to, idempotency_key=delivery_key, message_id=message_id,
        subject=subject, text=text, html=html, headers=headers, merge_data=merge,
        metadata=_metadata(ctx, subscriber, delivery_key),
    )


def _metadata(ctx: DispatchContext, subscriber: Subscriber | None, delivery_key: str) -> dict:
    return {
        "kind": "notification", "delivery": delivery_key, "page": ctx.page.public_id,
        "incident": ctx.incident.public_id, "update": ctx.update.public_id,
        "subscriber": subscriber.public_id if subscriber else "",
        "url": ctx.incident_url, "status": ctx.status_label,
    }


def sms_text(ctx: DispatchContext, subscriber: Subscriber | None) -> str:
    """Concise: name, status, the start of the update, the link; cut to SMS_MAX_SEGMENTS."""
    head = f"{ctx.page.name}: {ctx.incident.name} - {ctx.status_label}."
    tail = f" {ctx.incident_url} Reply STOP to opt out."
    body = " ".join(ctx.body_text.split())
    text = f"{head} {body}{tail}"
    while sms_segments(text) > SMS_MAX_SEGMENTS and body:
        body = body[: max(0, len(body) - 10)].rstrip()
        text = f"{head} {body}…{tail}" if body else f"{head}{tail}"
    return text


def _endpoint_text(ctx: DispatchContext, subscriber: Subscriber | None) -> str:
    merge = _merge_data(ctx, subscriber)
    parts = [ctx.body_text]
    if ctx.components:
        parts.append(f"Affected: {', '.join(ctx.components)}")
    next_line = fill_merge_fields(_next_update_line(ctx), merge, html=False)
    if next_line:
        parts.append(next_line)
    if merge["unsubscribe_url"]:
        parts.append(f"Unsubscribe: {merge['unsubscribe_url']}")
    return "\n".join(parts)


def webhook_payload(ctx: DispatchContext, subscriber: Subscriber | None) -> dict:
    """Statuspage's incident webhook shape: meta, page, incident (the v2 incident object)."""
    links = links_for(subscriber) if subscriber else None
    return {
        "meta": {
            "unsubscribe": links.unsubscribe if links else "",
            "documentation": links.documentation if links else f"{ctx.page.base_url}/subscribe#webhooks",
        },
        "page": dict(ctx.page_status),
        "incident": ctx.incident_wire,
    }


def render(ctx: DispatchContext, *, channel: str, to: str, subscriber: Subscriber | None, idempotency_key: str,
           message_id: str = "", earlier=()) -> OutboundMessage:
    """The message of one delivery, ready for its channel's transport, in the recipient's language.

    `earlier`: updates coalesced into this email (notifications.coalescing), newest first.
    """
    locale = message_locale(subscriber, ctx.page)
    with translation.override(locale):
        message = _render(ctx, channel=channel, to=to, subscriber=subscriber, idempotency_key=idempotency_key,
                          message_id=message_id, earlier=tuple(earlier))
    message.metadata["locale"] = locale
    return message


def _render(ctx: DispatchContext, *, channel: str, to: str, subscriber: Subscriber | None, idempotency_key: str,
            message_id: str, earlier: tuple) -> OutboundMessage:
    if channel == Channel.EMAIL:
        return _email(ctx, subscriber, idempotency_key, message_id, to, earlier)
    metadata = _metadata(ctx, subscriber, idempotency_key)
    if channel == Channel.SMS:
        return OutboundMessage(channel=channel, to=to, idempotency_key=idempotency_key, text=sms_text(ctx, subscriber), metadata=metadata)
    payload = webhook_payload(ctx, subscriber) if channel == Channel.WEBHOOK else None
    return OutboundMessage(
        channel=channel, to=to, idempotency_key=idempotency_key, subject=_subject(ctx),
        text=_endpoint_text(ctx, subscriber), payload=payload, metadata=metadata,
    )


def as_sent(message: OutboundMessage) -> tuple[str, str, str]:
    """Subject, text and HTML with the recipient's merge fields filled in: what the archive keeps."""
    data = message.merge_data
    return (
        fill_merge_fields(message.subject, data, html=False),
        fill_merge_fields(message.text, data, html=False),
        fill_merge_fields(message.html, data, html=True),
    )
