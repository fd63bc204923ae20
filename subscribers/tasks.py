"""Queue tasks for subscribers (django-q2 runs them; they take ids and reload rows)."""
from __future__ import annotations

import logging

from django.utils import timezone

from notifications.archive import archive_message
from notifications.models import ArchiveKind
from notifications.transports import OutboundMessage, TransportError, get_transport
from subscribers import messages, services
from subscribers.models import URL_CHANNELS, Channel, ConsentAction, ConsentSource, Subscriber, SubscriberStatus

logger = logging.getLogger(__name__)


def _subscribe_source(subscriber: Subscriber) -> str:
    """Where the subscription came from (public page, API, ...): an accepted test message confirms on its behalf."""
    event = (
        subscriber.consent_events.filter(action__in=(ConsentAction.SUBSCRIBE, ConsentAction.RESUBSCRIBE))
        .order_by("-created", "-pk").first()
    )
    return event.source if event else ConsentSource.PUBLIC_PAGE


def _archive(subscriber: Subscriber, message: OutboundMessage, provider_id: str) -> None:
    """The confirmation left the building: keep it in the compliance archive as sent."""
    archive_message(
        channel=subscriber.channel, kind=ArchiveKind.CONFIRMATION, recipient=message.to, subject=message.subject,
        text_body=message.text, html_body=message.html, headers=message.headers, payload=message.payload,
        page=subscriber.page, subscriber=subscriber, provider_id=provider_id, sent_at=timezone.now(),
        message_id=message.message_id or "",
    )


def send_confirmation(subscriber_id: int) -> str:
    """Send the double opt-in message: email link, SMS code, or endpoint test message.

    Does nothing when the subscriber is gone, no longer pending, erased or suppressed (the
    task may run long after it was queued). An endpoint that accepts the test message (2xx)
    confirms the subscriber at once; a refusal or a network error leaves it pending.
    Returns what happened, for the task log.
    """
    subscriber = Subscriber.objects.select_related("page").filter(pk=subscriber_id).first()
    if subscriber is None or subscriber.status != SubscriberStatus.PENDING or subscriber.erased_at:
        return "skipped"
    if services.is_suppressed(subscriber.channel, subscriber.address):
        return "suppressed"
    code = services.subscriber_issue_sms_code(subscriber=subscriber) if subscriber.channel == Channel.SMS else None
    message = messages.confirmation_message(subscriber, sms_code=code)
    try:
        result = get_transport(subscriber.channel).send(message)
    except TransportError as exc:
        # Not retried here: the address has had its one confirmation of the day, and staff can
        # resend from the admin; the subscriber simply stays pending.
        logger.warning("confirmation to subscriber %s (%s) failed: %s", subscriber.public_id, subscriber.channel, exc)
        return "failed"
    _archive(subscriber, message, result.provider_id)
    if subscriber.channel in URL_CHANNELS:
        confirmed = services.subscriber_confirm(subscriber=subscriber, source=_subscribe_source(subscriber))
        return "confirmed" if confirmed else "sent"
    return "sent"
