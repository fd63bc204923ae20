"""Queue tasks for subscribers (django-q2 runs them; they take ids and reload rows)."""
from __future__ import annotations

import logging

from notifications.transports import TransportError, get_transport
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
        get_transport(subscriber.channel).send(message)
    except TransportError as exc:
        # Not retried here: the address has had its one confirmation of the day, and staff can
        # resend from the admin; the subscriber simply stays pending.
        logger.warning("confirmation to subscriber %s (%s) failed: %s", subscriber.public_id, subscriber.channel, exc)
        return "failed"
    if subscriber.channel in URL_CHANNELS:
        confirmed = services.subscriber_confirm(subscriber=subscriber, source=_subscribe_source(subscriber))
        return "confirmed" if confirmed else "sent"
    return "sent"
