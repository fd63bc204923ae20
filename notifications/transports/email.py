"""Email through Django's mail API, which is django-anymail (any of its ESPs) in production.

Batches: messages whose subject and bodies are the same template (they differ only in
`{{name}}` merge fields such as the unsubscribe link) go to the ESP as ONE call carrying
per-recipient merge data, headers and metadata. Anymail then tells the ESP to send a
separate copy to each address, so nobody sees anyone else's address or links (a plain
multi-recipient message would show every address in To).

Merge fields are written `{{name}}` by the renderer. ESPs spell them differently (Mailgun
`%recipient.name%`, Mandrill `*|name|*`, SendGrid any literal), so the transport rewrites
them with settings.EMAIL_MERGE_FIELD_FORMAT before handing a batch to the ESP, and fills
them in itself whenever a message goes out alone (a single send, a backend without batch
support such as console or SMTP, or an ESP that refuses a feature the batch needs).
"""
from __future__ import annotations

import html as html_lib
import re
import smtplib
from collections.abc import Iterable
from typing import Any

from anymail.backends.base import AnymailBaseBackend
from anymail.exceptions import (
    AnymailAPIError,
    AnymailError,
    AnymailInvalidAddress,
    AnymailRecipientsRefused,
    AnymailUnsupportedFeature,
)
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.mail import EmailMultiAlternatives, get_connection

from notifications.transports.base import (
    FailureCode,
    OutboundMessage,
    SendResult,
    Transport,
    TransportError,
)
from statuspage.lib.http import parse_retry_after

_FIELD = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
# anymail_status.recipients[...].status values that mean "this address will not get it".
_REFUSED_STATUSES = {"invalid", "rejected", "failed"}


def fill_merge_fields(template: str, data: dict[str, str], *, html: bool) -> str:
    """Replace the {{name}} fields named in `data`; other braces are left as written."""
    if not data:
        return template

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in data:
            return match.group(0)
        text = str(data[name])
        return html_lib.escape(text) if html else text

    return _FIELD.sub(value, template)


def _esp_fields(template: str, names: Iterable[str], field_format: str) -> str:
    """Respell the {{name}} fields named in `names` the way the ESP expects (NAME = the field)."""
    wanted = set(names)
    return _FIELD.sub(lambda m: field_format.replace("NAME", m.group(1)) if m.group(1) in wanted else m.group(0), template)


class EmailTransport(Transport):
    channel = "email"

    # --- one message ----------------------------------------------------------------------

    def send(self, message: OutboundMessage) -> SendResult:
        try:
            connection = get_connection()
        except ImproperlyConfigured as exc:
            raise TransportError(f"The email backend is misconfigured: {exc}", permanent=False, code=FailureCode.MISCONFIGURED) from None
        email = self._email(
            message,
            subject=fill_merge_fields(message.subject, message.merge_data, html=False),
            text=fill_merge_fields(message.text, message.merge_data, html=False),
            html=fill_merge_fields(message.html, message.merge_data, html=True),
            connection=connection,
        )
        email.extra_headers.update(self._headers(message))
        if message.metadata:
            email.metadata = _metadata(message.metadata)  # type: ignore[attr-defined]
        try:
            email.send()
        except Exception as exc:  # noqa: BLE001 - mapped, or re-raised when it is not ours to map
            raise _classify(exc) from exc
        status = getattr(email, "anymail_status", None)
        if status is None:
            # console / SMTP: no provider id; the Message-ID is how the message is found later.
            return SendResult(provider_id=message.message_id or message.idempotency_key)
        recipient = _recipient_status(status, message.to)
        if recipient is not None and recipient.status in _REFUSED_STATUSES:
            raise TransportError(
                f"The email provider refused {message.to} ({recipient.status}).",
                permanent=True,
                code=FailureCode.INVALID_ADDRESS,
            )
        message_id = recipient.message_id if recipient is not None else status.message_id
        return SendResult(provider_id=str(message_id) if message_id is not None else message.idempotency_key)

    # --- batches --------------------------------------------------------------------------

    def send_batch(self, messages: list[OutboundMessage]) -> list[SendResult | TransportError]:
        """One outcome per message, in order, using as few ESP calls as the templates allow."""
        if not messages:
            return []
        try:
            connection = get_connection()
        except ImproperlyConfigured:
            return super().send_batch(messages)  # each send reports the misconfiguration
        if not isinstance(connection, AnymailBaseBackend) or connection.ignore_unsupported_features:
            # Console, SMTP, locmem: no batch API, so no merge data either. And an anymail
            # backend told to ignore unsupported features could silently drop the batch
            # options and send ONE message showing every address: never batch with it.
            return super().send_batch(messages)
        outcomes: list[SendResult | TransportError | None] = [None] * len(messages)
        for chunk in _chunks(messages, size=int(getattr(settings, "EMAIL_BATCH_SIZE", 100))):
            if len(chunk) == 1:
                index = chunk[0]
                outcomes[index] = self._send_one(messages[index])
                continue
            try:
                results = self._send_chunk([messages[i] for i in chunk], connection)
            except AnymailUnsupportedFeature:
                # Raised while building the ESP payload, so nothing was sent: go one by one.
                results = [self._send_one(messages[i]) for i in chunk]
            for index, result in zip(chunk, results):
                outcomes[index] = result
        return [outcome for outcome in outcomes if outcome is not None]

    def _send_one(self, message: OutboundMessage) -> SendResult | TransportError:
        try:
            return self.send(message)
        except TransportError as exc:
            return exc

    def _send_chunk(self, chunk: list[OutboundMessage], connection: AnymailBaseBackend) -> list[SendResult | TransportError]:
        first = chunk[0]
        names = sorted(first.merge_data)
        field_format = getattr(settings, "EMAIL_MERGE_FIELD_FORMAT", "{{NAME}}")
        email = self._email(
            first,
            subject=_esp_fields(first.subject, names, field_format),
            text=_esp_fields(first.text, names, field_format),
            html=_esp_fields(first.html, names, field_format),
            connection=connection,
            to=[message.to for message in chunk],
        )
        if names:
            email.merge_data = {message.to: dict(message.merge_data) for message in chunk}  # type: ignore[attr-defined]

        headers = [self._headers(message) for message in chunk]
        common = _common_items(headers)
        email.extra_headers.update(common)
        if any(len(h) != len(common) for h in headers):
            email.merge_headers = {  # type: ignore[attr-defined]
                message.to: {k: v for k, v in h.items() if k not in common} for message, h in zip(chunk, headers)
            }
        metadata = [_metadata(message.metadata) for message in chunk]
        common_metadata = _common_items(metadata)
        if common_metadata:
            email.metadata = common_metadata  # type: ignore[attr-defined]
        if any(len(m) != len(common_metadata) for m in metadata):
            email.merge_metadata = {  # type: ignore[attr-defined]
                message.to: {k: v for k, v in m.items() if k not in common_metadata} for message, m in zip(chunk, metadata)
            }
        if not any(hasattr(email, attr) for attr in ("merge_data", "merge_headers", "merge_metadata")):
            # One of these is what makes anymail send a separate copy to each recipient instead
            # of one message showing every address in To; empty merge data is the lightest.
            email.merge_data = {message.to: {} for message in chunk}  # type: ignore[attr-defined]

        try:
            email.send()
        except AnymailUnsupportedFeature:
            raise
        except Exception as exc:  # noqa: BLE001 - one failed API call fails the whole chunk
            error = _classify(exc)
            return [error for _ in chunk]

        status = email.anymail_status  # type: ignore[attr-defined]
        results: list[SendResult | TransportError] = []
        for message in chunk:
            recipient = _recipient_status(status, message.to)
            if recipient is not None and recipient.status in _REFUSED_STATUSES:
                results.append(
                    TransportError(
                        f"The email provider refused {message.to} ({recipient.status}).",
                        permanent=True,
                        code=FailureCode.INVALID_ADDRESS,
                    )
                )
                continue
            message_id = recipient.message_id if recipient is not None else None
            results.append(SendResult(provider_id=str(message_id) if message_id is not None else message.idempotency_key))
        return results

    # --- building -------------------------------------------------------------------------

    def _email(
        self,
        message: OutboundMessage,
        *,
        subject: str,
        text: str,
        html: str,
        connection: Any,
        to: list[str] | None = None,
    ) -> EmailMultiAlternatives:
        email = EmailMultiAlternatives(
            subject=" ".join(subject.split()),  # a header: no line breaks
            body=text,
            from_email=settings.DEFAULT_FROM_EMAIL,
            to=to or [message.to],
            connection=connection,
        )
        if html:
            email.attach_alternative(html, "text/html")
        return email

    def _headers(self, message: OutboundMessage) -> dict[str, str]:
        headers = dict(message.headers)
        if message.message_id:
            # Stable across retries, so a receiving server or the archive can tell a resend
            # of the same delivery from a new message.
            headers["Message-ID"] = message.message_id
        return headers


def _metadata(metadata: dict[str, Any]) -> dict[str, str]:
    # Several ESPs accept only string metadata values; they come back in tracking events.
    return {str(key): str(value) for key, value in metadata.items()}


def _common_items(dicts: list[dict[str, str]]) -> dict[str, str]:
    if not dicts:
        return {}
    first = dicts[0]
    return {key: value for key, value in first.items() if all(d.get(key) == value for d in dicts[1:])}


def _chunks(messages: list[OutboundMessage], *, size: int) -> list[list[int]]:
    """Indexes grouped by identical template, at most `size` per group, each address once per group.

    An address appears once per ESP call because merge data is keyed by address.
    """
    groups: dict[tuple[Any, ...], list[tuple[list[int], set[str]]]] = {}
    for index, message in enumerate(messages):
        key = (message.subject, message.text, message.html, tuple(sorted(message.merge_data)))
        chunks = groups.setdefault(key, [])
        address = message.to.lower()
        for chunk, addresses in chunks:
            if len(chunk) < size and address not in addresses:
                chunk.append(index)
                addresses.add(address)
                break
        else:
            chunks.append(([index], {address}))
    return [chunk for chunks in groups.values() for chunk, _addresses in chunks]


def _recipient_status(status: Any, address: str) -> Any:
    recipients = getattr(status, "recipients", None) or {}
    if address in recipients:
        return recipients[address]
    lowered = address.lower()
    for key, value in recipients.items():
        if key.lower() == lowered:
            return value
    return None


def _classify(exc: Exception) -> TransportError:
    if isinstance(exc, TransportError):
        return exc
    if isinstance(exc, AnymailRecipientsRefused):
        return TransportError(f"The email provider refused the recipient: {exc}", permanent=True, code=FailureCode.INVALID_ADDRESS)
    if isinstance(exc, AnymailInvalidAddress):
        return TransportError(f"Not a usable email address: {exc}", permanent=True, code=FailureCode.INVALID_ADDRESS)
    if isinstance(exc, AnymailAPIError):
        status = exc.status_code
        response = getattr(exc, "response", None)
        retry_after = parse_retry_after(response.headers.get("Retry-After")) if response is not None and getattr(response, "headers", None) else None
        summary = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if status is None or status >= 500 or status in (408, 429):
            # No status: the ESP was not reached (DNS, timeout, reset) - anymail does not retry.
            code = FailureCode.RATE_LIMITED if status == 429 else FailureCode.UNAVAILABLE
            return TransportError(summary, permanent=False, retry_after=retry_after, code=code, status=status)
        if status in (401, 403):
            # Our API key is wrong or lacks a permission: every message would fail alike. Not
            # permanent, so nobody is suppressed for it and the sends succeed once it is fixed.
            return TransportError(summary, permanent=False, code=FailureCode.MISCONFIGURED, status=status)
        return TransportError(summary, permanent=True, code=FailureCode.REFUSED, status=status)
    if isinstance(exc, AnymailError):
        # Unsupported features, serialization problems: our message, not the recipient.
        return TransportError(str(exc).splitlines()[0], permanent=True, code=FailureCode.MISCONFIGURED)
    if isinstance(exc, ImproperlyConfigured):
        return TransportError(f"The email backend is misconfigured: {exc}", permanent=False, code=FailureCode.MISCONFIGURED)
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in exc.recipients.values()]
        if codes and all(500 <= code < 600 for code in codes):
            return TransportError(f"The mail server refused the recipient: {exc.recipients}", permanent=True, code=FailureCode.INVALID_ADDRESS)
        return TransportError(f"The mail server deferred the recipient: {exc.recipients}", permanent=False)
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        return TransportError("The mail server refused our credentials.", permanent=False, code=FailureCode.MISCONFIGURED)
    if isinstance(exc, smtplib.SMTPResponseException):
        permanent = 500 <= exc.smtp_code < 600
        return TransportError(f"The mail server answered {exc.smtp_code}: {exc.smtp_error!r}", permanent=permanent, status=exc.smtp_code)
    if isinstance(exc, (smtplib.SMTPException, OSError)):
        return TransportError(f"The mail server could not be reached: {exc}", permanent=False)
    raise exc
