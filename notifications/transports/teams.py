"""Microsoft Teams incoming webhooks (and Power Automate "Workflows" webhooks): an Adaptive Card.

Workflows answer 202 Accepted; the older Office 365 connectors answer 200 "1" and report
failures inside a 200 as "... Microsoft Teams endpoint returned HTTP error 429 ..." (see
MicrosoftDocs/msteams-docs issues 1810 and 7425), so that text is read as the real status.
"""
from __future__ import annotations

import re
from typing import Any

from notifications.transports.base import (
    FailureCode,
    OutboundMessage,
    SendResult,
    Transport,
    TransportError,
)
from notifications.transports.webhook import encode_json, post_json

_WRAPPED_ERROR = re.compile(rb"returned HTTP error (\d{3})")


def teams_payload(message: OutboundMessage) -> dict[str, Any]:
    subject = message.subject.strip() or "Status update"
    url = str(message.metadata.get("url") or "")
    status = str(message.metadata.get("status") or "")
    body: list[dict[str, Any]] = [
        {"type": "TextBlock", "text": subject, "weight": "Bolder", "size": "Medium", "wrap": True, "style": "heading"},
    ]
    if status:
        body.append({"type": "TextBlock", "text": status, "isSubtle": True, "spacing": "None", "wrap": True})
    if message.text.strip():
        body.append({"type": "TextBlock", "text": message.text.strip(), "wrap": True})
    card: dict[str, Any] = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": body,
        "msteams": {"width": "Full"},
    }
    if url:
        card["actions"] = [{"type": "Action.OpenUrl", "title": "View on the status page", "url": url}]
    return {
        "type": "message",
        "attachments": [{"contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": None, "content": card}],
    }


class TeamsTransport(Transport):
    channel = "teams"

    def send(self, message: OutboundMessage) -> SendResult:
        payload = message.payload if message.payload is not None else teams_payload(message)
        response = post_json(message.to, encode_json(payload))
        wrapped = _WRAPPED_ERROR.search(response.body)
        if wrapped:
            status = int(wrapped.group(1))
            text = response.text.strip()[:300]
            if status == 429 or status >= 500:
                code = FailureCode.RATE_LIMITED if status == 429 else FailureCode.UNAVAILABLE
                raise TransportError(f"Teams failed with {status}: {text}", permanent=False, code=code, status=status)
            code = FailureCode.GONE if status in (404, 410) else FailureCode.REFUSED
            raise TransportError(f"Teams refused the message ({status}): {text}", permanent=True, code=code, status=status)
        return SendResult(provider_id=message.idempotency_key)
