"""Webhooks: the JSON payload POSTed to a subscriber's URL, signed with Standard Webhooks headers.

`webhook-id` is the delivery's idempotency key, the same on every retry, so receivers can
drop repeats; `webhook-timestamp` is the time of this attempt, so receivers can refuse
replays (the spec's verifiers allow five minutes of skew).
"""
from __future__ import annotations

import json
import time

from django.conf import settings

from notifications.transports.base import (
    OutboundMessage,
    SendResult,
    Transport,
    from_outbound_error,
)
from statuspage.lib import http
from statuspage.lib.signing import standard_webhook_headers

USER_AGENT = "StatusPage-Webhooks/1"


def encode_json(payload: dict) -> bytes:
    # Compact and UTF-8: the bytes signed are exactly the bytes sent.
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False, default=str).encode("utf-8")


def post_json(url: str, body: bytes, *, extra_headers: dict[str, str] | None = None) -> http.Response:
    """POST a JSON body through the seam, mapping its errors to TransportError."""
    headers = {"Content-Type": "application/json", "Accept": "application/json, text/plain;q=0.9, */*;q=0.1"}
    headers.update(extra_headers or {})
    try:
        return http.post(url, body=body, headers=headers)
    except http.OutboundError as exc:
        raise from_outbound_error(exc) from None


class WebhookTransport(Transport):
    channel = "webhook"

    def send(self, message: OutboundMessage) -> SendResult:
        if message.payload is None:
            raise ValueError("A webhook message needs a JSON payload")
        body = encode_json(message.payload)
        signed = standard_webhook_headers(
            secret=settings.WEBHOOK_SIGNING_SECRET,
            msg_id=message.idempotency_key,
            timestamp=int(time.time()),
            body=body,
        )
        post_json(message.to, body, extra_headers={"User-Agent": USER_AGENT, **message.headers, **signed})
        # Receivers return no id of their own; the webhook-id is what both sides can quote.
        return SendResult(provider_id=message.idempotency_key)
