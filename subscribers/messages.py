"""What a subscriber receives while confirming: an email link, an SMS code, or an endpoint test message.

Every link is absolute and built from the subscriber's own page URL, so a message of one page
never points at another page's host.
"""
from __future__ import annotations

from dataclasses import dataclass

from django.template.loader import render_to_string

from incidents import cache
from incidents.serving import snapshot_for
from notifications.transports import OutboundMessage
from notifications.transports.sms import sms_segments
from subscribers import tokens
from subscribers.models import Channel, ConfirmationSend, Subscriber, address_digest

# The page name in a code text is cut to this, so the text stays one SMS segment.
SMS_NAME_MAX = 30


@dataclass(frozen=True)
class Links:
    confirm: str
    manage: str
    unsubscribe: str
    documentation: str
    page: str


def links_for(subscriber: Subscriber) -> Links:
    base = subscriber.page.base_url
    return Links(
        confirm=f"{base}/subscribers/confirm/{tokens.make_token(subscriber.public_id, tokens.CONFIRM)}",
        manage=f"{base}/subscribers/manage/{tokens.make_token(subscriber.public_id, tokens.MANAGE)}",
        unsubscribe=f"{base}/subscribers/unsubscribe/{tokens.make_token(subscriber.public_id, tokens.UNSUBSCRIBE)}",
        documentation=f"{base}/subscribe#webhooks",
        page=f"{base}/",
    )


def fits_one_sms_segment(text: str) -> bool:
    return sms_segments(text) == 1


def sms_code_text(page_name: str, code: str) -> str:
    """The code message, always one segment: the page name is shortened (or dropped) to fit."""
    name = " ".join(page_name.split())[:SMS_NAME_MAX].strip()
    candidates = [f"Your confirmation code is {code}. Reply STOP to opt out."]
    if name:
        short = name[:12].strip()
        candidates[:0] = [f"{name}: your confirmation code is {code}. Reply STOP to opt out.", f"{short} code: {code}. Reply STOP to opt out."]
    return next(text for text in candidates if fits_one_sms_segment(text))


def _idempotency_key(subscriber: Subscriber) -> str:
    # One key per claimed confirmation: a retried task sends the same message, a new day's claim a new one.
    send = ConfirmationSend.objects.filter(
        channel=subscriber.channel, address_digest=address_digest(subscriber.channel, subscriber.address)
    ).first()
    stamp = f"{send.sent_at:%Y%m%dT%H%M%S}" if send else "none"
    return f"confirmation:{subscriber.public_id}:{stamp}"


def _metadata(subscriber: Subscriber) -> dict:
    return {"kind": "confirmation", "subscriber": subscriber.public_id, "page": subscriber.page.public_id}


def confirmation_email(subscriber: Subscriber) -> OutboundMessage:
    links = links_for(subscriber)
    context = {"page_name": subscriber.page.name, "links": links, "address": subscriber.address}
    return OutboundMessage(
        channel=Channel.EMAIL,
        to=subscriber.address,
        subject=f"Confirm your subscription to {subscriber.page.name} status updates",
        text=render_to_string("subscribers/email/confirm.txt", context),
        html=render_to_string("subscribers/email/confirm.html", context),
        headers={
            # RFC 2369 + RFC 8058: mail clients offer "unsubscribe" and POST to it in one click.
            "List-Unsubscribe": f"<{links.unsubscribe}>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        },
        metadata=_metadata(subscriber),
        idempotency_key=_idempotency_key(subscriber),
    )


def sms_code_message(subscriber: Subscriber, code: str) -> OutboundMessage:
    return OutboundMessage(
        channel=Channel.SMS,
        to=subscriber.address,
        text=sms_code_text(subscriber.page.name, code),
        metadata=_metadata(subscriber),
        idempotency_key=_idempotency_key(subscriber),
    )


def _page_status(subscriber: Subscriber) -> dict:
    snap = snapshot_for(subscriber.page.public_id, version=cache.current_version()) or {}
    status = snap.get("status") or {}
    return {
        "id": subscriber.page.public_id,
        "status_indicator": status.get("indicator", "none"),
        "status_description": status.get("description", ""),
    }


def webhook_test_payload(subscriber: Subscriber) -> dict:
    """The shape of every later webhook notification (meta + page), marked as a test."""
    links = links_for(subscriber)
    return {
        "meta": {"unsubscribe": links.unsubscribe, "documentation": links.documentation},
        "page": _page_status(subscriber),
        "test": True,
        "subscriber": {"id": subscriber.public_id},
    }


def endpoint_test_text(subscriber: Subscriber) -> str:
    links = links_for(subscriber)
    name = subscriber.page.name
    return (
        f"This is a test message from the {name} status page ({links.page}). "
        f"Incident and maintenance updates will be posted here from now on.\n"
        f"Manage what you receive: {links.manage}\n"
        f"Unsubscribe: {links.unsubscribe}"
    )


def endpoint_test_message(subscriber: Subscriber) -> OutboundMessage:
    links = links_for(subscriber)
    # Webhooks get the JSON every later notification has; Slack and Teams get the text in
    # their transport's own card, with a button to the page (metadata "url").
    payload = webhook_test_payload(subscriber) if subscriber.channel == Channel.WEBHOOK else None
    return OutboundMessage(
        channel=subscriber.channel,
        to=subscriber.address,
        subject=f"{subscriber.page.name} status: test message",
        text=endpoint_test_text(subscriber),
        payload=payload,
        metadata={**_metadata(subscriber), "url": links.page},
        idempotency_key=_idempotency_key(subscriber),
    )


def confirmation_message(subscriber: Subscriber, *, sms_code: str | None = None) -> OutboundMessage:
    if subscriber.channel == Channel.EMAIL:
        return confirmation_email(subscriber)
    if subscriber.channel == Channel.SMS:
        if not sms_code:
            raise ValueError("an SMS confirmation needs a code")
        return sms_code_message(subscriber, sms_code)
    return endpoint_test_message(subscriber)
