"""SMS: a provider backend chosen by settings.SMS_BACKEND, and the arithmetic of SMS segments.

Segments (3GPP TS 23.038 / 23.040): a text that fits the GSM 7-bit alphabet travels as
septets, 160 in one message or 153 per part once it has to be split (the user data header
takes 7); anything else goes as UCS-2, 70 code units or 67 per part. Characters of the GSM
extension table (€ [ ] { } ...) cost two septets and are never split across parts; neither
are UTF-16 surrogate pairs. Every part is billed, so texts are cut to a few segments.
"""
from __future__ import annotations

import abc
import base64
import json
import logging
from urllib.parse import quote, urlencode

from django.conf import settings
from django.utils.module_loading import import_string

from notifications.transports.base import (
    FailureCode,
    OutboundMessage,
    SendResult,
    Transport,
    TransportError,
    from_outbound_error,
)
from statuspage.lib import http

logger = logging.getLogger("notifications.sms")

GSM7_BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = "\f^{}\\[~]|€"
_GSM7_SEPTETS = {char: 1 for char in GSM7_BASIC if char != "\x1b"} | {char: 2 for char in GSM7_EXTENSION}

GSM7_SINGLE, GSM7_PART = 160, 153
UCS2_SINGLE, UCS2_PART = 70, 67


def is_gsm7(text: str) -> bool:
    return all(char in _GSM7_SEPTETS for char in text)


def _costs(text: str) -> tuple[list[int], int, int]:
    """Per-character cost in units, and the single-message and per-part capacities."""
    if is_gsm7(text):
        return [_GSM7_SEPTETS[char] for char in text], GSM7_SINGLE, GSM7_PART
    return [2 if ord(char) > 0xFFFF else 1 for char in text], UCS2_SINGLE, UCS2_PART


def sms_segments(text: str) -> int:
    """How many SMS parts `text` is sent as (an empty text still costs one)."""
    costs, single, part = _costs(text)
    if sum(costs) <= single:
        return 1
    segments, used = 1, 0
    for cost in costs:
        if used + cost > part:  # an escape pair or surrogate pair never straddles two parts
            segments += 1
            used = 0
        used += cost
    return segments


def fit_sms(text: str, max_segments: int = 2, *, tail: str = "") -> str:
    """`text` + `tail` cut to at most `max_segments` parts, the cut marked with an ellipsis.

    `tail` (a link, "Reply STOP to opt out") is always kept whole.
    """
    if sms_segments(text + tail) <= max_segments:
        return text + tail
    # "…" is not in the GSM alphabet: adding it to a GSM text would switch the whole message
    # to UCS-2 and halve its room, so such texts get three dots instead.
    ellipsis = "..." if is_gsm7(text + tail) else "…"

    def fits(length: int) -> bool:
        return sms_segments(text[:length].rstrip() + ellipsis + tail) <= max_segments

    if not fits(0):
        return fit_sms(tail, max_segments) if tail else ellipsis
    low, high = 0, len(text)
    while low < high:  # the longest prefix that fits
        middle = (low + high + 1) // 2
        if fits(middle):
            low = middle
        else:
            high = middle - 1
    cut = text[:low]
    # End on a word boundary when one is near, rather than mid-word.
    space = cut.rfind(" ")
    if space >= max(1, len(cut) - 20):
        cut = cut[:space]
    return cut.rstrip() + ellipsis + tail


# --- provider backends ---------------------------------------------------------------------


class SmsBackend(abc.ABC):
    @abc.abstractmethod
    def send_sms(self, *, to: str, body: str, idempotency_key: str, status_callback: str = "") -> str:
        """Send one text; return the provider's id for it or raise TransportError."""


class ConsoleSmsBackend(SmsBackend):
    """Development: writes the text to the log instead of sending it."""

    def send_sms(self, *, to: str, body: str, idempotency_key: str, status_callback: str = "") -> str:
        logger.info("SMS to %s (%d segment(s)):\n%s", to, sms_segments(body), body)
        return f"console-{idempotency_key}"


# Twilio error codes (https://www.twilio.com/docs/api/errors) that say the number itself is the
# problem, that the recipient opted out, or that our account is set up wrong.
TWILIO_INVALID_NUMBER = {21211, 21217, 21401, 21614}
TWILIO_UNSUBSCRIBED = {21610}
TWILIO_MISCONFIGURED = {20003, 21408, 21606}
TWILIO_RATE_LIMITED = {20429}


class TwilioSmsBackend(SmsBackend):
    """The Twilio Messages API, or anything speaking it, at settings.SMS_BASE_URL."""

    def send_sms(self, *, to: str, body: str, idempotency_key: str, status_callback: str = "") -> str:
        sid = settings.SMS_ACCOUNT_SID
        url = f"{settings.SMS_BASE_URL}/2010-04-01/Accounts/{quote(sid, safe='')}/Messages.json"
        form = {"To": to, "From": settings.SMS_FROM_NUMBER, "Body": body}
        if status_callback:
            form["StatusCallback"] = status_callback
        credentials = base64.b64encode(f"{sid}:{settings.SMS_AUTH_TOKEN}".encode()).decode("ascii")
        try:
            # The base URL is the operator's, not a subscriber's, but it still takes the one
            # door: the same address checks, timeouts and size caps apply.
            response = http.post(
                url,
                body=urlencode(form).encode("utf-8"),
                headers={
                    "Content-Type": "application/x-www-form-urlencoded",
                    "Accept": "application/json",
                    "Authorization": f"Basic {credentials}",
                },
            )
        except http.UnsafeDestination as exc:
            # The operator's SMS_BASE_URL is not allowed; no recipient is at fault.
            raise TransportError(f"SMS_BASE_URL is refused: {exc.message}", permanent=False, code=FailureCode.MISCONFIGURED) from None
        except http.OutboundError as exc:
            raise _twilio_error(exc) from None
        try:
            provider_id = str(response.json().get("sid") or "")
        except (ValueError, AttributeError):
            provider_id = ""
        if not provider_id:
            # Accepted (2xx) but unreadable: it was sent, so it must not be sent again.
            logger.warning("SMS provider accepted a message without returning its sid")
        return provider_id


def _twilio_error(exc: http.OutboundError) -> TransportError:
    try:
        detail = json.loads(exc.body or b"{}")
    except ValueError:
        detail = {}
    code = detail.get("code") if isinstance(detail, dict) else None
    text = detail.get("message") if isinstance(detail, dict) else None
    summary = f"SMS provider error {code}: {text}" if code else exc.message
    if code in TWILIO_INVALID_NUMBER:
        return TransportError(summary, permanent=True, code=FailureCode.INVALID_ADDRESS, status=exc.status)
    if code in TWILIO_UNSUBSCRIBED:
        return TransportError(summary, permanent=True, code=FailureCode.UNSUBSCRIBED, status=exc.status)
    if code in TWILIO_MISCONFIGURED or exc.status in (401, 403):
        # Our credentials or sender are wrong: not the subscriber's fault, and every retry
        # succeeds once the operator fixes it, so it is not permanent.
        return TransportError(summary, permanent=False, code=FailureCode.MISCONFIGURED, status=exc.status)
    if code in TWILIO_RATE_LIMITED:
        return TransportError(summary, permanent=False, retry_after=exc.retry_after, code=FailureCode.RATE_LIMITED, status=exc.status)
    base = from_outbound_error(exc)
    return TransportError(summary, permanent=base.permanent, retry_after=base.retry_after, code=base.code, status=base.status)


def get_sms_backend() -> SmsBackend:
    return import_string(settings.SMS_BACKEND)()


class SmsTransport(Transport):
    channel = "sms"

    def send(self, message: OutboundMessage) -> SendResult:
        body = fit_sms(message.text, int(getattr(settings, "SMS_MAX_SEGMENTS", 2)))
        status_callback = str(message.metadata.get("status_callback") or getattr(settings, "SMS_STATUS_CALLBACK_URL", ""))
        provider_id = get_sms_backend().send_sms(
            to=message.to, body=body, idempotency_key=message.idempotency_key, status_callback=status_callback
        )
        return SendResult(provider_id=provider_id)
