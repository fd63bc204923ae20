"""anymail's tracking signal -> the delivery ledger (connected in NotificationsConfig.ready)."""
from __future__ import annotations

import logging

from notifications import services

logger = logging.getLogger("notifications.tracking")


def anymail_tracking_received(sender, event, esp_name: str = "", **kwargs) -> None:
    """Record one tracking event from any ESP's webhook.

    Runs inside the ESP's webhook request, so it is a few indexed queries, and it returns
    quietly for events about messages we do not know (a raise means HTTP 500, which makes the
    ESP resend the whole batch). Database errors do propagate: then a resend is what we want.
    """
    services.email_tracking_event_handle(event=event, esp_name=esp_name)
