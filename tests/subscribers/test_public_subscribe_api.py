"""Statuspage's public subscribe API: POST /api/v2/subscribers.json, DELETE by signed token, resend."""
from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from incidents.wire import timestamp
from subscribers import services, tokens
from subscribers.models import (
    Channel,
    ConfirmationSend,
    ConsentAction,
    ConsentEvent,
    ConsentSource,
    Subscriber,
    SubscriberStatus,
    SuppressionReason,
)
from tests import factories

URL = "/api/v2/subscribers.json"
PUBLIC_ENDPOINT = "https://93.184.216.34/hooks/status"
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}(Z|[+-]\d\d:\d\d)$")


def _subscribe(client, **fields):
    """A form-encoded subscribe, as Statuspage's embed library sends it."""
    data = {}
    for name, value in fields.items():
        key = f"subscriber[{name}][]" if name == "component_ids" else f"subscriber[{name}]"
        data[key] = value
    return client.post(URL, data)


def _unsubscribe_url(subscriber: Subscriber, token: str | None = None) -> str:
    url = f"/api/v2/subscribers/{subscriber.public_id}.json"
    return url if token is None else f"{url}?token={token}"


# --- subscribing ----------------------------------------------------------------------------------


def test_form_encoded_subscribe_creates_a_pending_subscriber_and_sends_one_confirmation(
    client, page, mailoutbox, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = _subscribe(client, email="Ann@Example.com")

    assert response.status_code == 201
    subscriber = Subscriber.objects.get()
    assert (subscriber.channel, subscriber.address, subscriber.status) == (Channel.EMAIL, "ann@example.com", SubscriberStatus.PENDING)
    assert response.json()["subscriber"]["id"] == subscriber.public_id
    assert [m.to for m in mailoutbox] == [["ann@example.com"]]


def test_json_body_subscribe_is_accepted(client, page):
    response = client.post(URL, json.dumps({"subscriber": {"email": "ann@example.com"}}), content_type="application/json")

    assert response.status_code == 201
    assert Subscriber.objects.get().address == "ann@example.com"


def test_reply_has_the_keys_of_statuspages_reply_in_order(client, page):
    body = _subscribe(client, email="ann@example.com").json()

    assert list(body) == ["subscriber"]
    assert list(body["subscriber"]) == [
        "created_at", "skip_confirmation_notification", "quarantined_at", "id", "mode", "purge_at", "email",
    ]
    assert body["subscriber"]["mode"] == "email"
    assert body["subscriber"]["skip_confirmation_notification"] is False
    assert TIMESTAMP.match(body["subscriber"]["created_at"])


def test_reply_timestamps_are_in_the_page_time_zone(client, db):
    factories.make_page(name="West", url="https://status.example.com", time_zone="America/Los_Angeles", is_default=True)

    body = _subscribe(client, email="ann@example.com").json()

    subscriber = Subscriber.objects.get()
    assert body["subscriber"]["created_at"] == timestamp(subscriber.created, "America/Los_Angeles")
    assert body["subscriber"]["created_at"][-6:] in ("-07:00", "-08:00")


def test_phone_number_and_country_are_normalised_to_e164(client, page):
    response = _subscribe(client, phone_number="020 7946 0958", phone_country="gb")

    assert response.status_code == 201
    subscriber = Subscriber.objects.get()
    assert (subscriber.channel, subscriber.address, subscriber.phone_country) == (Channel.SMS, "+442079460958", "GB")
    reply = response.json()["subscriber"]
    assert (reply["mode"], reply["phone_number"], reply["phone_country"]) == ("sms", "+442079460958", "GB")


def test_malformed_email_is_a_field_error(client, page):
    response = _subscribe(client, email="not-an-address")

    assert response.status_code == 400
    assert response.json() == {"errors": {"subscriber[email]": ["Enter a valid email address."]}}
    assert not Subscriber.objects.exists()


def test_malformed_phone_number_is_a_field_error(client, page):
    response = _subscribe(client, phone_number="12", phone_country="US")

    assert response.status_code == 400
    assert list(response.json()["errors"]) == ["subscriber[phone_number]"]


def test_unknown_phone_country_is_a_field_error(client, page):
    response = _subscribe(client, phone_number="020 7946 0958", phone_country="QQ")

    assert response.status_code == 400
    assert list(response.json()["errors"]) == ["subscriber[phone_country]"]


def test_request_without_an_address_is_a_field_error(client, page):
    response = client.post(URL, {})

    assert response.status_code == 400
    assert list(response.json()["errors"]) == ["subscriber[email]"]


def test_email_and_phone_number_together_are_refused(client, page):
    response = _subscribe(client, email="ann@example.com", phone_number="+442079460958")

    assert response.status_code == 400
    assert list(response.json()["errors"]) == ["subscriber[phone_number]"]


@pytest.mark.parametrize(
    "endpoint",
    [
        "https://127.0.0.1/hook",  # loopback
        "https://10.1.2.3/hook",  # private
        "https://169.254.169.254/latest/meta-data",  # link-local, cloud metadata
        "https://[::ffff:127.0.0.1]/hook",  # IPv4-mapped IPv6
    ],
)
def test_endpoint_on_a_non_public_address_is_refused_naming_the_field(client, page, endpoint):
    response = _subscribe(client, endpoint=endpoint)

    assert response.status_code == 400
    assert list(response.json()["errors"]) == ["subscriber[endpoint]"]
    assert not Subscriber.objects.exists()


def test_endpoint_creates_a_webhook_subscriber(client, page, django_capture_on_commit_callbacks):
    # Callbacks are not run: the confirmation would POST a test message to the endpoint.
    with django_capture_on_commit_callbacks(execute=False):
        response = _subscribe(client, endpoint=PUBLIC_ENDPOINT)

    assert response.status_code == 201
    assert response.json()["subscriber"]["endpoint"] == PUBLIC_ENDPOINT
    subscriber = Subscriber.objects.get()
    assert (subscriber.channel, subscriber.address) == (Channel.WEBHOOK, PUBLIC_ENDPOINT)


def test_endpoint_wins_over_an_email_given_with_it(client, page, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        response = _subscribe(client, endpoint=PUBLIC_ENDPOINT, email="owner@example.com")

    assert response.status_code == 201
    assert response.json()["subscriber"]["mode"] == "webhook"
    assert list(Subscriber.objects.values_list("channel", flat=True)) == [Channel.WEBHOOK]


def test_email_given_with_an_endpoint_is_still_validated(client, page):
    response = _subscribe(client, endpoint=PUBLIC_ENDPOINT, email="nonsense")

    assert response.status_code == 400
    assert list(response.json()["errors"]) == ["subscriber[email]"]


def test_unknown_component_id_is_a_field_error(client, page, rest_api):
    response = _subscribe(client, email="ann@example.com", component_ids=[rest_api.public_id, "nosuchthing1"])

    assert response.status_code == 400
    errors = response.json()["errors"]
    assert list(errors) == ["subscriber[component_ids][]"]
    assert "nosuchthing1" in errors["subscriber[component_ids][]"][0]
    assert not Subscriber.objects.exists()


def test_component_ids_limit_the_subscription_to_those_components(client, page, rest_api, webhooks, dashboard):
    _subscribe(client, email="ann@example.com", component_ids=[rest_api.public_id, dashboard.public_id])

    subscriber = Subscriber.objects.get()
    assert subscriber.all_components is False
    assert set(subscriber.components.all()) == {rest_api, dashboard}


def test_incident_subscribes_to_that_one_incident(client, page):
    incident = factories.open_incident(page=page)

    response = _subscribe(client, email="ann@example.com", incident=incident.public_id)

    assert response.status_code == 201
    subscriber = Subscriber.objects.get()
    assert subscriber.incident == incident
    assert subscriber.all_components is False


def test_unknown_incident_is_a_field_error(client, page):
    response = _subscribe(client, email="ann@example.com", incident="nosuchthing1")

    assert response.status_code == 400
    assert list(response.json()["errors"]) == ["subscriber[incident]"]


def test_subscribe_is_recorded_in_the_ledger_with_the_api_source_and_ip(client, page):
    _subscribe(client, email="ann@example.com")

    event = ConsentEvent.objects.get(action=ConsentAction.SUBSCRIBE)
    assert (event.source, event.ip_address) == (ConsentSource.API, "127.0.0.1")
    assert event.consent_text_version == services.CONSENT_TEXT_VERSION


def test_subscribe_needs_no_csrf_token(page):
    strict = Client(enforce_csrf_checks=True)

    response = _subscribe(strict, email="ann@example.com")

    assert response.status_code == 201


# --- no enumeration -------------------------------------------------------------------------------


def _shape(response) -> tuple:
    body = response.json()
    return response.status_code, list(body), list(body["subscriber"]), body["subscriber"]["mode"]


def test_reply_is_the_same_for_new_confirmed_and_suppressed_addresses(client, page, confirmed_bob):
    services.address_suppress(channel=Channel.EMAIL, address="eve@example.com", reason=SuppressionReason.COMPLAINT)

    new = _subscribe(client, email="NEW@example.com")
    confirmed = _subscribe(client, email="bob@example.com")
    suppressed = _subscribe(client, email="eve@example.com")

    assert _shape(new) == _shape(confirmed) == _shape(suppressed) == (
        201, ["subscriber"], ["created_at", "skip_confirmation_notification", "quarantined_at", "id", "mode", "purge_at", "email"], "email",
    )
    ids = {r.json()["subscriber"]["id"] for r in (new, confirmed, suppressed)}
    assert len(ids) == 3
    assert confirmed.json()["subscriber"]["id"] != confirmed_bob.public_id


def test_existing_subscriber_is_answered_with_an_id_that_belongs_to_no_one(client, page, pending_ann):
    body = _subscribe(client, email="ann@example.com").json()

    assert body["subscriber"]["id"] != pending_ann.public_id
    assert not Subscriber.objects.filter(public_id=body["subscriber"]["id"]).exists()


def test_suppressed_address_is_not_subscribed(client, page):
    services.address_suppress(channel=Channel.EMAIL, address="eve@example.com", reason=SuppressionReason.HARD_BOUNCE)

    _subscribe(client, email="eve@example.com")

    assert not Subscriber.objects.exists()
    assert not ConfirmationSend.objects.exists()


def test_over_the_ip_cap_the_reply_is_the_same_and_nothing_is_written(client, page, settings):
    settings.SUBSCRIBE_MAX_PER_IP_PER_HOUR = 1
    first = _subscribe(client, email="ann@example.com")

    capped = _subscribe(client, email="cat@example.com")

    assert _shape(capped) == _shape(first)
    assert list(Subscriber.objects.values_list("address", flat=True)) == ["ann@example.com"]


def test_bombing_one_address_yields_one_confirmation_message(client, page, mailoutbox, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        for i in range(15):
            _subscribe(client, email="victim@example.com" if i % 2 else "Victim@Example.com")

    assert ConfirmationSend.objects.count() == 1
    assert len(mailoutbox) == 1
    assert Subscriber.objects.count() == 1


# --- CORS and methods -----------------------------------------------------------------------------


def test_replies_and_errors_carry_the_open_cors_header(client, page):
    ok = _subscribe(client, email="ann@example.com")
    bad = _subscribe(client, email="nope")

    assert ok["Access-Control-Allow-Origin"] == bad["Access-Control-Allow-Origin"] == "*"


def test_preflight_answers_the_cors_headers(client, page):
    response = client.options(URL, HTTP_ORIGIN="https://shop.example.org", HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST")

    assert response.status_code == 204
    assert response["Access-Control-Allow-Origin"] == "*"
    assert "POST" in response["Access-Control-Allow-Methods"]
    assert "Content-Type" in response["Access-Control-Allow-Headers"]


@pytest.mark.parametrize("method", ["get", "head"])
def test_get_and_head_are_not_allowed(client, page, method):
    response = getattr(client, method)(URL)

    assert response.status_code == 405
    assert response["Content-Type"].startswith("application/json")


def test_an_html_accept_header_still_gets_json(client, page):
    response = client.post(URL, {"subscriber[email]": "ann@example.com"}, HTTP_ACCEPT="text/html")

    assert response.status_code == 201
    assert response["Content-Type"] == "application/json; charset=utf-8"


# --- unsubscribing by signed token ----------------------------------------------------------------


def test_delete_with_a_valid_token_unsubscribes(client, page, confirmed_bob):
    response = client.delete(_unsubscribe_url(confirmed_bob, tokens.make_token(confirmed_bob.public_id, tokens.UNSUBSCRIBE)))

    assert response.status_code == 200
    assert response.json() == {"subscriber": {"id": confirmed_bob.public_id, "state": "unsubscribed"}}
    confirmed_bob.refresh_from_db()
    assert confirmed_bob.status == SubscriberStatus.UNSUBSCRIBED
    assert ConsentEvent.objects.filter(subscriber=confirmed_bob, action=ConsentAction.UNSUBSCRIBE, source=ConsentSource.API).count() == 1


def test_delete_accepts_the_token_in_the_body(client, page, confirmed_bob):
    token = tokens.make_token(confirmed_bob.public_id, tokens.UNSUBSCRIBE)

    response = client.delete(_unsubscribe_url(confirmed_bob), f"token={token}", content_type="application/x-www-form-urlencoded")

    assert response.status_code == 200
    confirmed_bob.refresh_from_db()
    assert confirmed_bob.status == SubscriberStatus.UNSUBSCRIBED


def test_delete_twice_is_harmless(client, page, confirmed_bob):
    url = _unsubscribe_url(confirmed_bob, tokens.make_token(confirmed_bob.public_id, tokens.UNSUBSCRIBE))
    client.delete(url)

    again = client.delete(url)

    assert again.status_code == 200
    assert ConsentEvent.objects.filter(subscriber=confirmed_bob, action=ConsentAction.UNSUBSCRIBE).count() == 1


def test_delete_without_a_token_is_refused_and_changes_nothing(client, page, confirmed_bob):
    response = client.delete(_unsubscribe_url(confirmed_bob))

    assert response.status_code == 403
    assert "detail" in response.json()
    confirmed_bob.refresh_from_db()
    assert confirmed_bob.status == SubscriberStatus.CONFIRMED


def test_delete_with_a_tampered_token_is_refused_and_changes_nothing(client, page, confirmed_bob):
    token = tokens.make_token(confirmed_bob.public_id, tokens.UNSUBSCRIBE)
    tampered = token[:-2] + ("aa" if not token.endswith("aa") else "bb")

    response = client.delete(_unsubscribe_url(confirmed_bob, tampered))

    assert response.status_code == 403
    confirmed_bob.refresh_from_db()
    assert confirmed_bob.status == SubscriberStatus.CONFIRMED


def test_delete_with_another_subscribers_token_is_refused(client, page, confirmed_bob, pending_ann):
    response = client.delete(_unsubscribe_url(confirmed_bob, tokens.make_token(pending_ann.public_id, tokens.UNSUBSCRIBE)))

    assert response.status_code == 403
    confirmed_bob.refresh_from_db()
    assert confirmed_bob.status == SubscriberStatus.CONFIRMED


def test_delete_with_a_manage_token_is_refused(client, page, confirmed_bob):
    response = client.delete(_unsubscribe_url(confirmed_bob, tokens.make_token(confirmed_bob.public_id, tokens.MANAGE)))

    assert response.status_code == 403


# --- resending the confirmation -------------------------------------------------------------------


def test_resend_answers_the_same_for_unknown_pending_and_confirmed_ids(client, page, pending_ann, confirmed_bob):
    replies = [
        client.post(f"/api/v2/subscribers/{public_id}/resend_confirmation")
        for public_id in ("nosuchthing1", pending_ann.public_id, confirmed_bob.public_id)
    ]

    assert {r.status_code for r in replies} == {200}
    assert replies[0].json() == replies[1].json() == replies[2].json()


def test_resend_sends_a_pending_subscribers_confirmation_after_a_day(client, page, pending_ann, mailoutbox, django_capture_on_commit_callbacks):
    ConfirmationSend.objects.update(sent_at=timezone.now() - timedelta(days=2))

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/api/v2/subscribers/{pending_ann.public_id}/resend_confirmation.json")

    assert response.status_code == 200
    assert [m.to for m in mailoutbox] == [["ann@example.com"]]


def test_resend_within_a_day_sends_nothing(client, page, pending_ann, mailoutbox, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/api/v2/subscribers/{pending_ann.public_id}/resend_confirmation")

    assert response.status_code == 200
    assert mailoutbox == []
