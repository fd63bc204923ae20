"""Slack incoming webhooks: a short, readable Block Kit message with a link to the page.

Slack answers 200 "ok"; errors come as 4xx with a word such as invalid_payload, no_service
(the webhook was removed) or channel_is_archived (410), and 429 when a webhook is sent more
than about one message a second.
"""
from __future__ import annotations

from typing import Any

from notifications.transports.base import (
    FailureCode,
    OutboundMessage,
    SendResult,
    Transport,
    TransportError,
)
from notifications.transports.webhook import encode_json, post_json

# Block Kit limits: header text 150 characters, section text 3000.
HEADER_LIMIT = 150
SECTION_LIMIT = 3000


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def escape_mrkdwn(text: str) -> str:
    # Slack's three control characters; everything else is shown as typed.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_payload(message: OutboundMessage) -> dict[str, Any]:
    subject = message.subject.strip() or "Status update"
    text = message.text.strip()
    url = str(message.metadata.get("url") or "")
    status = str(message.metadata.get("status") or "")
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": _clip(subject, HEADER_LIMIT), "emoji": True}},
    ]
    if text:
        # Clip before escaping would be wrong: escaping lengthens the text.
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": _clip(escape_mrkdwn(text), SECTION_LIMIT)}})
    context: list[dict[str, str]] = []
    if status:
        context.append({"type": "mrkdwn", "text": f"*Status:* {escape_mrkdwn(status)}"})
    if url:
        context.append({"type": "mrkdwn", "text": f"<{escape_mrkdwn(url)}|View on the status page>"})
    if context:
        blocks.append({"type": "context", "elements": context})
    # `text` is what notifications and screen readers show when blocks are not rendered.
    fallback = f"{subject}\n{text}" if text else subject
    return {"text": _clip(fallback, SECTION_LIMIT), "blocks": blocks, "unfurl_links": False}


class SlackTransport(Transport):
    channel = "slack"

    def send(self, message: OutboundMessage) -> SendResult:
        payload = message.payload if message.payload is not None else slack_payload(message)
        try:
            post_json(message.to, encode_json(payload))
        except TransportError as exc:
            if exc.status == 404 or (exc.status == 403 and "invalid_token" in exc.message):
                # no_service / invalid_token: the webhook was deleted or revoked for good.
                raise TransportError(exc.message, permanent=True, code=FailureCode.GONE, status=exc.status) from None
            raise
        return SendResult(provider_id=message.idempotency_key)
