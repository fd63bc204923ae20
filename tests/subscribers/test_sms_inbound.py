"""The SMS provider's inbound webhook: signed STOP / START / HELP replies."""
from __future__ import annotations

import pytest

from statuspage.lib.signing import twilio_signature
from subscribers import services
from subscribers.models import Channel, ConsentSource, Subscriber, SubscriberStatus, Suppression, SuppressionReason

AUTH_TOKEN = "twilio-test-auth-token"
URL = "http://testserver/webhooks/sms/inbound"  # SITE_URL in the test settings + the path


@pytest.fixture(autouse=True)
def _auth_token(settings):
    settings.SMS_AUTH_TOKEN = AUTH_TOKEN


@pytest.fixture
def texter(page):
    """A confirmed SMS subscriber."""
    return services.subscriber_create(page=page, channel=Channel.SMS, address="+31612345678", skip_confirmation_reason="Imported")


def inbound(client, body: str, *, sender: str = "+31612345678", signature: str | None = None):
    params = {"From": sender, "To": "+15005550006", "Body": body, "MessageSid": "SM123", "AccountSid": "AC123"}
    signature = twilio_signature(URL, params, AUTH_TOKEN) if signature is None else signature
    return client.post("/webhooks/sms/inbound", params, HTTP_X_TWILIO_SIGNATURE=signature)


def test_stop_suppresses_the_number_and_unsubscribes_it(client, texter):
    response = inbound(client, "STOP")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/xml")
    assert "<Response><Message>" in response.content.decode() and "START" in response.content.decode()
    texter.refresh_from_db()
    assert texter.status == SubscriberStatus.UNSUBSCRIBED
    suppression = Suppression.objects.get(channel=Channel.SMS, address="+31612345678")
    assert (suppression.reason, suppression.source) == (SuppressionReason.SMS_STOP, ConsentSource.PROVIDER)


@pytest.mark.parametrize("body", ["stop please", "Stop.", "  stop  ", "UNSUBSCRIBE", "Stop all", "cancel"])
def test_usual_wordings_of_stop_are_honoured(client, texter, body):
    inbound(client, body)

    texter.refresh_from_db()
    assert texter.status == SubscriberStatus.UNSUBSCRIBED


def test_start_after_stop_subscribes_the_number_again(client, texter):
    inbound(client, "STOP")

    response = inbound(client, "Start")

    assert "subscribed" in response.content.decode()
    texter.refresh_from_db()
    assert texter.status == SubscriberStatus.CONFIRMED
    assert not Suppression.objects.filter(address="+31612345678").exists()


def test_help_answers_with_help_text_and_changes_nothing(client, texter):
    response = inbound(client, "help")

    text = response.content.decode()
    assert "<Message>" in text and "Reply STOP" in text and "https://status.example.com/" in text
    texter.refresh_from_db()
    assert texter.status == SubscriberStatus.CONFIRMED


def test_other_texts_get_an_empty_answer(client, texter):
    response = inbound(client, "is the API down?")

    assert response.status_code == 200
    assert "<Message>" not in response.content.decode()
    texter.refresh_from_db()
    assert texter.status == SubscriberStatus.CONFIRMED


def test_bad_signature_is_refused_and_changes_nothing(client, texter):
    response = inbound(client, "STOP", signature="bm90IGEgc2lnbmF0dXJl")

    assert response.status_code == 403
    texter.refresh_from_db()
    assert texter.status == SubscriberStatus.CONFIRMED
    assert not Suppression.objects.exists()


def test_missing_signature_is_refused(client, texter):
    params = {"From": "+31612345678", "Body": "STOP"}

    response = client.post("/webhooks/sms/inbound", params)

    assert response.status_code == 403
    assert not Suppression.objects.exists()


def test_signature_over_another_body_is_refused(client, texter):
    params = {"From": "+31612345678", "Body": "HELP"}
    signature = twilio_signature(URL, params, AUTH_TOKEN)

    response = client.post("/webhooks/sms/inbound", {**params, "Body": "STOP"}, HTTP_X_TWILIO_SIGNATURE=signature)

    assert response.status_code == 403
    assert not Suppression.objects.exists()


def test_without_an_auth_token_every_request_is_refused(client, texter, settings):
    settings.SMS_AUTH_TOKEN = ""

    assert inbound(client, "STOP", signature=twilio_signature(URL, {"Body": "STOP"}, "")).status_code == 403


def test_signature_covers_the_public_site_url_not_the_request_host(client, texter, settings):
    settings.SITE_URL = "https://status.example.com"
    params = {"From": "+31612345678", "Body": "STOP"}
    signature = twilio_signature("https://status.example.com/webhooks/sms/inbound", params, AUTH_TOKEN)

    response = client.post("/webhooks/sms/inbound", params, HTTP_X_TWILIO_SIGNATURE=signature)

    assert response.status_code == 200
    assert Subscriber.objects.get().status == SubscriberStatus.UNSUBSCRIBED


def test_get_is_not_allowed(client, page):
    assert client.get("/webhooks/sms/inbound").status_code == 405
