"""What every channel transport takes, returns and raises.

A transport sends one rendered message and reports either the provider's id for it or a
TransportError saying whether trying again can help. It knows nothing of deliveries,
retries or suppression: the caller decides those from `permanent`, `retry_after` and `code`.
"""
from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any, ClassVar

from statuspage.lib.http import OutboundError, UnsafeDestination


@dataclass(kw_only=True)
class OutboundMessage:
    channel: str
    to: str  # email address, E.164 number or receiver URL
    idempotency_key: str  # stable per delivery, reused on every retry
    subject: str = ""
    text: str = ""
    html: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    # Sent to the provider and echoed back in its tracking events (email: anymail metadata).
    metadata: dict[str, Any] = field(default_factory=dict)
    message_id: str | None = None  # email Message-ID, stable across retries
    payload: dict[str, Any] | None = None  # the JSON body for webhook-like channels
    # Email only: values for {{name}} fields in subject/text/html that differ per recipient
    # (manage and unsubscribe links). Messages whose templates are equal then go to the ESP as
    # one batch call; see notifications.transports.email.
    merge_data: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SendResult:
    provider_id: str


# Why a send failed, for the caller's bookkeeping (suppression wants to know "invalid_address"
# or "gone"; the admin wants to tell "misconfigured" apart from a flaky receiver).
class FailureCode:
    INVALID_ADDRESS = "invalid_address"  # the address can never receive (bad number, refused mailbox)
    UNSUBSCRIBED = "unsubscribed"  # the recipient opted out at the provider (SMS STOP)
    GONE = "gone"  # the endpoint says it no longer exists (410, Slack no_service)
    UNSAFE = "unsafe_destination"  # the URL points somewhere we refuse to connect to
    REFUSED = "refused"  # the receiver answered with an error that will not change by itself
    RATE_LIMITED = "rate_limited"
    UNAVAILABLE = "unavailable"  # network trouble, timeouts, 5xx
    MISCONFIGURED = "misconfigured"  # our own credentials or settings are wrong


class TransportError(Exception):
    def __init__(
        self,
        message: str,
        *,
        permanent: bool,
        retry_after: float | None = None,
        code: str = "",
        status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.permanent = permanent
        self.retry_after = retry_after
        self.code = code or (FailureCode.REFUSED if permanent else FailureCode.UNAVAILABLE)
        self.status = status

    def __repr__(self) -> str:
        return f"TransportError({self.message!r}, permanent={self.permanent}, code={self.code!r})"


class Transport(abc.ABC):
    channel: ClassVar[str]

    @abc.abstractmethod
    def send(self, message: OutboundMessage) -> SendResult:
        """Send one message; raise TransportError when it did not go out."""

    def send_batch(self, messages: list[OutboundMessage]) -> list[SendResult | TransportError]:
        """One outcome per message, in order. Channels with a batch API override this."""
        outcomes: list[SendResult | TransportError] = []
        for message in messages:
            try:
                outcomes.append(self.send(message))
            except TransportError as exc:
                outcomes.append(exc)
        return outcomes


def from_outbound_error(exc: OutboundError) -> TransportError:
    """A TransportError for an OutboundError of statuspage.lib.http, keeping its classification."""
    if isinstance(exc, UnsafeDestination):
        code = FailureCode.UNSAFE
    elif exc.status == 410:
        code = FailureCode.GONE
    elif exc.status == 429:
        code = FailureCode.RATE_LIMITED
    elif exc.permanent:
        code = FailureCode.REFUSED
    else:
        code = FailureCode.UNAVAILABLE
    return TransportError(exc.message, permanent=exc.permanent, retry_after=exc.retry_after, code=code, status=exc.status)
