"""Delivery tracking: anymail events and SMS status callbacks append events and never move back."""
from __future__ import annotations

import base64
import datetime as dt
import json
import uuid

import pytest
from anymail.signals import AnymailTrackingEvent, tracking
from django.urls import reverse

from notifications.models import Delivery, DeliveryEvent, DeliveryStatus, Dispatch, TrackingStatus
from statuspage.lib.signing import twilio_signature
from subscribers.models import Suppression, SuppressionReason
from tests import factories
from tests.notifications.ledger_helpers import confirmed

pytestmark = pytest.mark.django_db

AUTH_TOKEN = "twilio-test-auth-token"
STATUS_URL = "http://testserver/webhooks/sms/status"


def _sent(page, *, channel: str = "email", address: str | None = None, provider_id: str | None = None) -> Delivery:
    """A delivery the provider accepted (the publish's own send tasks never run inside a test)."""
    subscriber = confirmed(page, channel=channel, address=address)
    factories.open_incident(page=page, severity="P1")
    return Delivery.objects.create(
        dispatch=Dispatch.objects.latest("id"), subscriber=subscriber, channel=channel, address=subscriber.address,
        status=DeliveryStatus.SENT, idempotency_key=uuid.uuid4().hex, provider_id=provider_id or uuid.uuid4().hex,
    )


def _event(delivery: Delivery, event_type: str, *, event_id: str | None = "evt-1", minute: int = 0) -> None:
    tracking.send(sender=object, esp_name="Test", event=AnymailTrackingEvent(
        event_type=event_type, event_id=event_id, message_id=delivery.provider_id, recipient=delivery.address,
        timestamp=dt.datetime(2026, 11, 23, 12, minute, tzinfo=dt.timezone.utc),
    ))


def _status_callback(client, sms_auth, **fields):
    params = {"AccountSid": "AC123", "To": "+31612340001", **fields}
    signature = twilio_signature(STATUS_URL, params, AUTH_TOKEN)
    return client.post("/webhooks/sms/status", params, HTTP_X_TWILIO_SIGNATURE=signature)


@pytest.fixture
def sms_auth(settings):
    settings.SMS_AUTH_TOKEN = AUTH_TOKEN


# --- anymail tracking ------------------------------------------------------------------------


def test_a_tracking_event_is_appended_once_and_its_replay_ignored(page):
    delivery = _sent(page)
    _event(delivery, "delivered", event_id="evt-42")
    _event(delivery, "delivered", event_id="evt-42")
    [event] = DeliveryEvent.objects.filter(delivery=delivery)
    assert event.kind == "delivered" and event.provider_event_id == "email:evt-42"
    delivery.refresh_from_db()
    assert delivery.provider_status == TrackingStatus.DELIVERED


def test_an_event_without_an_esp_event_id_gets_a_stable_derived_one(page):
    delivery = _sent(page)
    _event(delivery, "delivered", event_id=None, minute=5)
    _event(delivery, "delivered", event_id=None, minute=5)
    assert DeliveryEvent.objects.filter(delivery=delivery).count() == 1


def test_an_event_for_an_unknown_message_id_is_ignored_without_raising(page):
    tracking.send(sender=object, esp_name="Test", event=AnymailTrackingEvent(
        event_type="bounced", event_id="evt-9", message_id="not-one-of-ours", recipient="ann@example.org",
    ))
    assert not DeliveryEvent.objects.exists()
    assert not Suppression.objects.exists()


def test_a_delivered_after_a_bounce_does_not_move_the_delivery_back(page):
    delivery = _sent(page)
    _event(delivery, "bounced", event_id="evt-1", minute=1)
    _event(delivery, "delivered", event_id="evt-2", minute=0)
    delivery.refresh_from_db()
    assert delivery.provider_status == TrackingStatus.BOUNCED
    assert DeliveryEvent.objects.filter(delivery=delivery).count() == 2  # kept as evidence, not applied


def test_a_bounce_suppresses_the_address(page):
    delivery = _sent(page, address="gone@example.org")
    _event(delivery, "bounced")
    suppression = Suppression.objects.get(channel="email", address="gone@example.org")
    assert suppression.reason == SuppressionReason.HARD_BOUNCE and suppression.source == "provider"


def test_a_complaint_suppresses_the_address(page):
    delivery = _sent(page, address="annoyed@example.org")
    _event(delivery, "complained")
    assert Suppression.objects.get(channel="email", address="annoyed@example.org").reason == SuppressionReason.COMPLAINT


def test_a_postmark_bounce_through_anymails_webhook_with_basic_auth_suppresses(page, client, settings):
    settings.ANYMAIL = {"WEBHOOK_SECRET": "hooks:s3cret-value"}
    delivery = _sent(page, address="bounced@example.org", provider_id="883953f4-6105-42a2-a16a-77a8eac79483")
    bounce = {
        "RecordType": "Bounce", "ID": 4323372036854775807, "Type": "HardBounce", "TypeCode": 1,
        "Name": "Hard bounce", "Tag": "", "MessageID": delivery.provider_id, "ServerID": 23,
        "Description": "The server was unable to deliver your message (ex: unknown user, mailbox not found).",
        "Details": "smtp;550 5.1.1 The email account that you tried to reach does not exist.",
        "Email": "bounced@example.org", "From": "status@example.com", "BouncedAt": "2026-11-23T12:00:00Z",
        "DumpAvailable": False, "Inactive": True, "CanActivate": True, "Subject": "Elevated error rates",
        "MessageStream": "outbound", "Metadata": {},
    }
    credentials = base64.b64encode(b"hooks:s3cret-value").decode()
    response = client.post(
        "/webhooks/anymail/postmark/tracking/", json.dumps(bounce), content_type="application/json",
        HTTP_AUTHORIZATION=f"Basic {credentials}",
    )
    assert response.status_code == 200
    delivery.refresh_from_db()
    assert delivery.provider_status == TrackingStatus.BOUNCED
    assert Suppression.objects.filter(channel="email", address="bounced@example.org").exists()


def test_anymails_webhook_refuses_a_wrong_basic_auth_and_records_nothing(page, client, settings):
    settings.ANYMAIL = {"WEBHOOK_SECRET": "hooks:s3cret-value"}
    delivery = _sent(page)
    credentials = base64.b64encode(b"hooks:guess").decode()
    response = client.post(
        "/webhooks/anymail/postmark/tracking/",
        json.dumps({"RecordType": "Delivery", "MessageID": delivery.provider_id, "Recipient": delivery.address,
                    "DeliveredAt": "2026-11-23T12:00:00Z", "Details": "", "Tag": "", "ServerID": 23, "Metadata": {}}),
        content_type="application/json", HTTP_AUTHORIZATION=f"Basic {credentials}",
    )
    assert response.status_code == 400
    assert not DeliveryEvent.objects.exists()


# --- SMS status callbacks ------------------------------------------------------------------------


def test_an_sms_status_callback_with_a_bad_signature_is_refused_and_changes_nothing(page, client, sms_auth):
    delivery = _sent(page, channel="sms", provider_id="SM0001")
    params = {"MessageSid": "SM0001", "MessageStatus": "delivered"}
    response = client.post("/webhooks/sms/status", params, HTTP_X_TWILIO_SIGNATURE=twilio_signature(STATUS_URL, params, "wrong"))
    assert response.status_code == 403
    delivery.refresh_from_db()
    assert delivery.provider_status == "" and not DeliveryEvent.objects.exists()


def test_a_signed_sms_status_callback_updates_the_delivery_once(page, client, sms_auth):
    delivery = _sent(page, channel="sms", provider_id="SM0002")
    for _ in range(2):
        assert _status_callback(client, sms_auth, MessageSid="SM0002", MessageStatus="delivered").status_code == 204
    delivery.refresh_from_db()
    assert delivery.provider_status == TrackingStatus.DELIVERED
    assert list(DeliveryEvent.objects.values_list("provider_event_id", flat=True)) == ["sms:SM0002:delivered"]


def test_a_late_sent_status_does_not_move_a_delivered_sms_back(page, client, sms_auth):
    delivery = _sent(page, channel="sms", provider_id="SM0003")
    _status_callback(client, sms_auth, MessageSid="SM0003", MessageStatus="delivered")
    _status_callback(client, sms_auth, MessageSid="SM0003", MessageStatus="sent")
    delivery.refresh_from_db()
    assert delivery.provider_status == TrackingStatus.DELIVERED


def test_an_undelivered_sms_to_an_unknown_destination_suppresses_the_number(page, client, sms_auth):
    delivery = _sent(page, channel="sms", address="+31612349999", provider_id="SM0004")
    _status_callback(client, sms_auth, MessageSid="SM0004", MessageStatus="undelivered", ErrorCode="30005")
    delivery.refresh_from_db()
    assert delivery.provider_status == TrackingStatus.FAILED
    assert Suppression.objects.get(channel="sms", address="+31612349999").reason == SuppressionReason.INVALID_NUMBER


def test_a_blocked_sms_counts_as_an_opt_out(page, client, sms_auth):
    _sent(page, channel="sms", address="+31612348888", provider_id="SM0005")
    _status_callback(client, sms_auth, MessageSid="SM0005", MessageStatus="failed", ErrorCode="30004")
    assert Suppression.objects.get(channel="sms", address="+31612348888").reason == SuppressionReason.SMS_STOP


def test_an_undelivered_sms_with_a_passing_error_keeps_the_number(page, client, sms_auth):
    _sent(page, channel="sms", address="+31612347777", provider_id="SM0006")
    _status_callback(client, sms_auth, MessageSid="SM0006", MessageStatus="undelivered", ErrorCode="30003")
    assert not Suppression.objects.exists()


def test_a_status_callback_for_an_unknown_message_is_accepted_and_ignored(page, client, sms_auth):
    response = _status_callback(client, sms_auth, MessageSid="SM-unknown", MessageStatus="delivered")
    assert response.status_code == 204
    assert not DeliveryEvent.objects.exists()
