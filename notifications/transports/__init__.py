"""One transport class per channel, registered by the channel's kind (subscribers.models.Channel)."""
from __future__ import annotations

from notifications.transports.base import (
    FailureCode,
    OutboundMessage,
    SendResult,
    Transport,
    TransportError,
)
from notifications.transports.email import EmailTransport
from notifications.transports.slack import SlackTransport
from notifications.transports.sms import SmsTransport
from notifications.transports.teams import TeamsTransport
from notifications.transports.webhook import WebhookTransport

TRANSPORTS: dict[str, type[Transport]] = {
    transport.channel: transport
    for transport in (EmailTransport, SmsTransport, WebhookTransport, SlackTransport, TeamsTransport)
}


def get_transport(channel: str) -> Transport:
    try:
        return TRANSPORTS[str(channel)]()
    except KeyError:
        raise ValueError(f"No transport for channel {channel!r}") from None


__all__ = [
    "TRANSPORTS",
    "FailureCode",
    "OutboundMessage",
    "SendResult",
    "Transport",
    "TransportError",
    "get_transport",
]
