"""Each channel's transport: what reaches the receiver, the provider id, and how failures are classed."""
from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
import requests
from anymail.backends.test import EmailBackend as AnymailTestBackend
from anymail.exceptions import AnymailAPIError
from anymail.message import AnymailRecipientStatus
from django.conf import settings as django_settings
from django.core import mail

from notifications.transports import TRANSPORTS, FailureCode, OutboundMessage, SendResult, TransportError, get_transport
from notifications.transports.email import EmailTransport, fill_merge_fields
from notifications.transports.slack import SlackTransport
from notifications.transports.sms import SmsTransport, fit_sms, sms_segments
from notifications.transports.teams import TeamsTransport
from notifications.transports.webhook import WebhookTransport
from statuspage.lib.signing import verify_standard_webhook
from subscribers.models import Channel

REPO = Path(__file__).resolve().parents[2]


def email(to: str = "ann@example.com", **fields: Any) -> OutboundMessage:
    values: dict[str, Any] = {
        "channel": "email",
        "to": to,
        "idempotency_key": f"d1-{to}",
        "subject": "Degraded performance: API",
        "text": "We are investigating.\nManage: {{manage_url}}",
        "html": "<p>We are investigating.</p><p><a href=\"{{manage_url}}\">Manage</a></p>",
        "merge_data": {"manage_url": f"https://status.example.com/manage/{to.split('@')[0]}"},
        "headers": {
            "List-Unsubscribe": f"<https://status.example.com/unsubscribe/{to.split('@')[0]}>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        },
    }
    values.update(fields)
    return OutboundMessage(**values)


@pytest.fixture(autouse=True)
def anymail_test_backend(settings):
    # Django's test set-up swaps EMAIL_BACKEND for locmem whatever the settings module says;
    # anymail's test backend is what gives messages their anymail_status.
    settings.EMAIL_BACKEND = "anymail.backends.test.EmailBackend"


class ScriptedEmailBackend(AnymailTestBackend):
    """anymail's test backend answering what the test scripted: an API error or per-address statuses."""

    answer: Any = None

    def post_to_esp(self, payload, message):
        answer = type(self).answer
        if isinstance(answer, AnymailAPIError):
            message.anymail_test_response = answer
        elif isinstance(answer, dict):
            message.anymail_test_response = {
                "recipient_status": {
                    address: AnymailRecipientStatus(message_id=f"esp-{address}", status=answer.get(address, "sent"))
                    for address in payload.recipient_emails
                }
            }
        return super().post_to_esp(payload, message)


@pytest.fixture
def scripted_esp(settings):
    settings.EMAIL_BACKEND = f"{__name__}.ScriptedEmailBackend"
    yield ScriptedEmailBackend
    ScriptedEmailBackend.answer = None


def api_error(status: int | None, retry_after: str | None = None) -> AnymailAPIError:
    if status is None:
        return AnymailAPIError("Connection refused")
    response = requests.Response()
    response.status_code = status
    response.reason = "Reason"
    response._content = b'{"errors": [{"message": "no"}]}'
    if retry_after:
        response.headers["Retry-After"] = retry_after
    return AnymailAPIError("ESP said no", status_code=status, response=response)


# --- the registry ---------------------------------------------------------------------------


def test_every_subscriber_channel_has_a_transport():
    assert set(TRANSPORTS) == set(Channel.values)


def test_get_transport_builds_the_channel_class():
    assert isinstance(get_transport(Channel.SMS), SmsTransport)
    with pytest.raises(ValueError, match="pigeon"):
        get_transport("pigeon")


# --- email ----------------------------------------------------------------------------------


def test_email_carries_text_html_and_one_click_unsubscribe_headers():
    result = EmailTransport().send(email(message_id="<d1.ann@status.example.com>"))
    [sent] = mail.outbox
    assert sent.to == ["ann@example.com"]
    assert sent.from_email == django_settings.DEFAULT_FROM_EMAIL
    assert sent.subject == "Degraded performance: API"
    assert "Manage: https://status.example.com/manage/ann" in sent.body
    [(html, mimetype)] = sent.alternatives
    assert mimetype == "text/html"
    assert 'href="https://status.example.com/manage/ann"' in html
    assert sent.extra_headers["List-Unsubscribe"] == "<https://status.example.com/unsubscribe/ann>"
    assert sent.extra_headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert sent.extra_headers["Message-ID"] == "<d1.ann@status.example.com>"
    assert result == SendResult(provider_id=str(sent.anymail_status.message_id))


def test_email_metadata_reaches_the_esp_as_strings():
    EmailTransport().send(email(metadata={"delivery": 42, "dispatch": "ds_1"}))
    assert mail.outbox[0].anymail_test_params["metadata"] == {"delivery": "42", "dispatch": "ds_1"}


def test_merge_values_are_escaped_in_html_only():
    message = email(merge_data={"manage_url": "https://s.example/m?a=1&b=2"})
    EmailTransport().send(message)
    sent = mail.outbox[0]
    assert "https://s.example/m?a=1&b=2" in sent.body
    assert 'href="https://s.example/m?a=1&amp;b=2"' in sent.alternatives[0][0]


def test_braces_not_named_in_merge_data_are_left_alone():
    assert fill_merge_fields("{{ manage_url }} and {{other}}", {"manage_url": "M"}, html=False) == "M and {{other}}"


def test_a_refused_recipient_is_a_permanent_invalid_address(scripted_esp):
    scripted_esp.answer = {"ann@example.com": "rejected"}
    with pytest.raises(TransportError) as failed:
        EmailTransport().send(email())
    assert failed.value.permanent is True
    assert failed.value.code == FailureCode.INVALID_ADDRESS


@pytest.mark.parametrize("status", [None, 500, 503, 408])
def test_esp_outages_are_transient(scripted_esp, status):
    scripted_esp.answer = api_error(status)
    with pytest.raises(TransportError) as failed:
        EmailTransport().send(email())
    assert failed.value.permanent is False


def test_esp_rate_limiting_is_transient_with_its_retry_after(scripted_esp):
    scripted_esp.answer = api_error(429, retry_after="30")
    with pytest.raises(TransportError) as failed:
        EmailTransport().send(email())
    assert (failed.value.permanent, failed.value.retry_after, failed.value.code) == (False, 30.0, FailureCode.RATE_LIMITED)


def test_an_esp_refusing_the_message_is_permanent(scripted_esp):
    scripted_esp.answer = api_error(400)
    with pytest.raises(TransportError) as failed:
        EmailTransport().send(email())
    assert (failed.value.permanent, failed.value.code) == (True, FailureCode.REFUSED)


def test_a_wrong_esp_api_key_is_not_blamed_on_the_recipient(scripted_esp):
    scripted_esp.answer = api_error(401)
    with pytest.raises(TransportError) as failed:
        EmailTransport().send(email())
    assert (failed.value.permanent, failed.value.code) == (False, FailureCode.MISCONFIGURED)


def test_console_style_backends_report_the_message_id_as_provider_id(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    result = EmailTransport().send(email(message_id="<d1.ann@status.example.com>"))
    assert result.provider_id == "<d1.ann@status.example.com>"
    assert mail.outbox[0].extra_headers["Message-ID"] == "<d1.ann@status.example.com>"


# --- email batches --------------------------------------------------------------------------

TRIO = ("ann@example.com", "bob@example.com", "cem@example.com")


def test_a_batch_of_one_template_is_one_esp_call_with_each_recipients_own_data():
    outcomes = EmailTransport().send_batch([email(to) for to in TRIO])
    [sent] = mail.outbox
    params = sent.anymail_test_params
    assert params["is_batch_send"] is True
    assert [address.addr_spec for address in params["to"]] == list(TRIO)
    assert params["merge_data"] == {to: {"manage_url": f"https://status.example.com/manage/{to.split('@')[0]}"} for to in TRIO}
    assert params["merge_headers"] == {
        to: {"List-Unsubscribe": f"<https://status.example.com/unsubscribe/{to.split('@')[0]}>"} for to in TRIO
    }
    # Shared headers are sent once; the merge fields are left for the ESP to fill.
    assert params["extra_headers"] == {"List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}
    assert "{{manage_url}}" in params["text_body"]
    assert all(isinstance(outcome, SendResult) for outcome in outcomes)


def test_a_batch_without_per_recipient_values_still_goes_one_copy_per_recipient():
    shared = {"List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}
    EmailTransport().send_batch([email(to, merge_data={}, headers=shared) for to in TRIO])
    params = mail.outbox[0].anymail_test_params
    assert params["is_batch_send"] is True
    assert params["merge_data"] == {to: {} for to in TRIO}


def test_no_batch_when_anymail_may_drop_unsupported_batch_options(settings):
    # With IGNORE_UNSUPPORTED_FEATURES an ESP without batch support would send one message
    # showing every address; the transport sends one message per recipient instead.
    settings.ANYMAIL = {"IGNORE_UNSUPPORTED_FEATURES": True}
    EmailTransport().send_batch([email(to) for to in TRIO])
    assert [m.to for m in mail.outbox] == [[to] for to in TRIO]
    assert all("merge_data" not in m.anymail_test_params for m in mail.outbox)


def test_per_recipient_metadata_goes_as_merge_metadata():
    messages = [email(to, metadata={"dispatch": "ds_1", "delivery": str(n)}) for n, to in enumerate(TRIO)]
    EmailTransport().send_batch(messages)
    params = mail.outbox[0].anymail_test_params
    assert params["metadata"] == {"dispatch": "ds_1"}
    assert params["merge_metadata"] == {to: {"delivery": str(n)} for n, to in enumerate(TRIO)}


def test_different_templates_go_in_different_calls():
    messages = [email("ann@example.com"), email("bob@example.com", subject="Resolved: API")]
    EmailTransport().send_batch(messages)
    assert sorted(m.subject for m in mail.outbox) == ["Degraded performance: API", "Resolved: API"]


def test_one_address_twice_goes_in_separate_calls():
    messages = [email("ann@example.com"), email("ann@example.com", idempotency_key="d2"), email("bob@example.com")]
    outcomes = EmailTransport().send_batch(messages)
    assert len(outcomes) == 3
    assert sorted(len(m.to) for m in mail.outbox) == [1, 2]


def test_batches_are_cut_at_the_batch_size(settings):
    settings.EMAIL_BATCH_SIZE = 2
    outcomes = EmailTransport().send_batch([email(f"user{n}@example.com") for n in range(5)])
    assert [len(m.to) for m in mail.outbox] == [2, 2, 1]
    assert len(outcomes) == 5


def test_a_refused_recipient_in_a_batch_fails_alone(scripted_esp):
    scripted_esp.answer = {"bob@example.com": "invalid"}
    ann, bob, cem = EmailTransport().send_batch([email(to) for to in TRIO])
    assert ann == SendResult("esp-ann@example.com")
    assert cem == SendResult("esp-cem@example.com")
    assert isinstance(bob, TransportError)
    assert (bob.permanent, bob.code) == (True, FailureCode.INVALID_ADDRESS)


def test_a_failed_batch_call_fails_each_message_transiently(scripted_esp):
    scripted_esp.answer = api_error(503)
    outcomes = EmailTransport().send_batch([email(to) for to in TRIO])
    assert len(outcomes) == 3
    assert all(isinstance(o, TransportError) and not o.permanent for o in outcomes)


def test_without_a_batch_api_each_recipient_gets_a_message_of_their_own(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    EmailTransport().send_batch([email(to) for to in TRIO])
    assert [m.to for m in mail.outbox] == [[to] for to in TRIO]
    for sent, to in zip(mail.outbox, TRIO):
        name = to.split("@")[0]
        assert f"/manage/{name}" in sent.body
        assert sent.extra_headers["List-Unsubscribe"] == f"<https://status.example.com/unsubscribe/{name}>"
        others = [other for other in TRIO if other != to]
        assert not any(other.split("@")[0] in sent.body for other in others)


def test_a_real_esp_api_receives_each_recipient_separately_with_only_their_data(settings, receiver):
    # SparkPost's transmissions API served by the local receiver: anymail gives every
    # recipient an entry of its own, carrying only that recipient's values and headers.
    settings.EMAIL_BACKEND = "anymail.backends.sparkpost.EmailBackend"
    settings.ANYMAIL = {"SPARKPOST_API_KEY": "sp-test", "SPARKPOST_API_URL": f"{receiver.url}/api/v1/"}
    receiver.reply(200, json.dumps({"results": {"total_rejected_recipients": 0, "total_accepted_recipients": 3, "id": "tx-1"}}))
    outcomes = EmailTransport().send_batch([email(to) for to in TRIO])

    [call] = receiver.requests
    assert call.path == "/api/v1/transmissions/"
    sent = json.loads(call.body)
    assert "{{manage_url}}" in sent["content"]["text"]
    recipients = sent["recipients"]
    assert [r["address"]["email"] for r in recipients] == list(TRIO)
    for recipient, to in zip(recipients, TRIO):
        name = to.split("@")[0]
        assert recipient["substitution_data"]["manage_url"] == f"https://status.example.com/manage/{name}"
        assert f"/unsubscribe/{name}>" in json.dumps(recipient["substitution_data"])
        assert not any(other.split("@")[0] in json.dumps(recipient) for other in TRIO if other != to)
    assert outcomes == [SendResult("tx-1")] * 3


def test_an_esp_without_merge_data_support_gets_one_filled_in_message_each(settings, receiver):
    # Postmark takes merge data only with its stored templates, so anymail refuses the batch
    # before sending anything; the transport then sends each message with its values filled in.
    settings.EMAIL_BACKEND = "anymail.backends.postmark.EmailBackend"
    settings.ANYMAIL = {"POSTMARK_SERVER_TOKEN": "pm-test", "POSTMARK_API_URL": f"{receiver.url}/"}
    for n, to in enumerate(TRIO):
        receiver.then(200, json.dumps({"ErrorCode": 0, "Message": "OK", "MessageID": f"pm-{n}", "To": to}))
    outcomes = EmailTransport().send_batch([email(to) for to in TRIO])

    assert [r.path for r in receiver.requests] == ["/email"] * 3
    for call, to in zip(receiver.requests, TRIO):
        sent = json.loads(call.body)
        assert sent["To"] == to
        assert f"https://status.example.com/manage/{to.split('@')[0]}" in sent["TextBody"]
        assert "{{manage_url}}" not in sent["TextBody"]
    assert outcomes == [SendResult("pm-0"), SendResult("pm-1"), SendResult("pm-2")]


# --- SMS ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, segments",
    [
        ("a" * 160, 1),
        ("a" * 161, 2),
        ("a" * 306, 2),
        ("a" * 307, 3),
        ("€" * 80, 1),  # extension characters cost two septets
        ("€" * 81, 2),
        ("a" * 152 + "€" + "a" * 152, 3),  # the escape pair does not straddle two parts
        ("ł" * 70, 1),  # outside GSM: UCS-2
        ("ł" * 71, 2),
        ("ł" * 134, 2),
        ("ł" * 135, 3),
        ("🔥" * 35, 1),  # astral characters take two UTF-16 units
        ("🔥" * 36, 2),
    ],
)
def test_sms_segments_follow_the_gsm_and_ucs2_limits(text, segments):
    assert sms_segments(text) == segments


def test_fit_sms_cuts_a_long_gsm_text_with_three_dots_and_keeps_the_tail():
    tail = " https://s.example/i/abc"
    fitted = fit_sms("Elevated error rates on the API. " * 20, 2, tail=tail)
    assert sms_segments(fitted) == 2
    assert fitted.endswith("..." + tail)


def test_fit_sms_uses_an_ellipsis_character_when_the_text_is_ucs2_anyway():
    fitted = fit_sms("Zwiększona liczba błędów API. " * 10, 1)
    assert sms_segments(fitted) == 1
    assert fitted.endswith("…")


def test_fit_sms_leaves_a_short_text_alone():
    assert fit_sms("API degraded.", 1) == "API degraded."


def sms(text: str = "Acme: API degraded. Details https://s.example/i/1", **fields: Any) -> OutboundMessage:
    return OutboundMessage(channel="sms", to="+31201234567", idempotency_key="d1-s1", text=text, **fields)


def test_the_console_sms_backend_logs_the_text(caplog):
    caplog.set_level("INFO", logger="notifications.sms")
    result = SmsTransport().send(sms())
    assert result == SendResult("console-d1-s1")
    assert "+31201234567" in caplog.text
    assert "API degraded" in caplog.text


@pytest.fixture
def twilio(settings, receiver, allow_local):
    settings.SMS_BACKEND = "notifications.transports.sms.TwilioSmsBackend"
    settings.SMS_BASE_URL = receiver.url
    settings.SMS_ACCOUNT_SID = "AC0123"
    settings.SMS_AUTH_TOKEN = "tok-secret"
    settings.SMS_FROM_NUMBER = "+15005550006"
    settings.SMS_STATUS_CALLBACK_URL = "https://status.example.com/hooks/sms/status"
    return receiver


def test_twilio_gets_the_form_with_basic_auth_and_returns_the_sid(twilio):
    twilio.reply(201, json.dumps({"sid": "SM42", "status": "queued"}), {"Content-Type": "application/json"})
    result = SmsTransport().send(sms())
    got = twilio.last
    assert got.path == "/2010-04-01/Accounts/AC0123/Messages.json"
    assert got.headers["content-type"] == "application/x-www-form-urlencoded"
    assert base64.b64decode(got.headers["authorization"].removeprefix("Basic ")) == b"AC0123:tok-secret"
    form = {key: values[0] for key, values in parse_qs(got.body.decode()).items()}
    assert form == {
        "To": "+31201234567",
        "From": "+15005550006",
        "Body": "Acme: API degraded. Details https://s.example/i/1",
        "StatusCallback": "https://status.example.com/hooks/sms/status",
    }
    assert result == SendResult("SM42")


def test_a_long_sms_is_cut_to_the_segment_limit_before_sending(twilio, settings):
    settings.SMS_MAX_SEGMENTS = 2
    twilio.reply(201, json.dumps({"sid": "SM43"}))
    SmsTransport().send(sms(text="Elevated latency in every region. " * 30))
    body = parse_qs(twilio.last.body.decode())["Body"][0]
    assert sms_segments(body) == 2
    assert body.endswith("...")


@pytest.mark.parametrize(
    "code, failure",
    [(21211, FailureCode.INVALID_ADDRESS), (21614, FailureCode.INVALID_ADDRESS), (21610, FailureCode.UNSUBSCRIBED)],
)
def test_twilio_number_errors_are_permanent(twilio, code, failure):
    twilio.reply(400, json.dumps({"code": code, "message": "The 'To' number is not valid", "status": 400}))
    with pytest.raises(TransportError) as failed:
        SmsTransport().send(sms())
    assert (failed.value.permanent, failed.value.code) == (True, failure)
    assert str(code) in failed.value.message


def test_twilio_rate_limiting_is_transient(twilio):
    twilio.reply(429, json.dumps({"code": 20429, "message": "Too Many Requests"}), {"Retry-After": "5"})
    with pytest.raises(TransportError) as failed:
        SmsTransport().send(sms())
    assert (failed.value.permanent, failed.value.retry_after) == (False, 5.0)


def test_twilio_server_errors_are_transient(twilio):
    twilio.reply(500, "oops")
    with pytest.raises(TransportError) as failed:
        SmsTransport().send(sms())
    assert failed.value.permanent is False


def test_wrong_twilio_credentials_are_not_blamed_on_the_subscriber(twilio):
    twilio.reply(401, json.dumps({"code": 20003, "message": "Authenticate"}))
    with pytest.raises(TransportError) as failed:
        SmsTransport().send(sms())
    assert (failed.value.permanent, failed.value.code) == (False, FailureCode.MISCONFIGURED)


def test_an_sms_base_url_on_a_private_address_is_a_configuration_error(settings, receiver):
    settings.SMS_BACKEND = "notifications.transports.sms.TwilioSmsBackend"
    settings.SMS_BASE_URL = receiver.url  # not allow-listed
    with pytest.raises(TransportError) as failed:
        SmsTransport().send(sms())
    assert (failed.value.permanent, failed.value.code) == (False, FailureCode.MISCONFIGURED)
    assert receiver.requests == []


# --- webhooks -------------------------------------------------------------------------------

PAYLOAD = {
    "meta": {"unsubscribe": "https://status.example.com/unsubscribe/x", "documentation": "https://status.example.com/docs"},
    "page": {"id": "p1", "status_indicator": "minor", "status_description": "Minor Service Outage"},
    "incident": {"id": "i1", "name": "Elevated errors", "status": "investigating", "impact": "minor"},
}


def webhook(url: str, **fields: Any) -> OutboundMessage:
    return OutboundMessage(channel="webhook", to=url, idempotency_key="dlv_01HX", payload=PAYLOAD, **fields)


def test_a_webhook_posts_the_payload_signed_with_standard_webhooks_headers(receiver, allow_local, settings):
    result = WebhookTransport().send(webhook(f"{receiver.url}/hooks/status"))
    got = receiver.last
    assert json.loads(got.body) == PAYLOAD
    assert got.headers["content-type"] == "application/json"
    assert got.headers["user-agent"] == "StatusPage-Webhooks/1"
    assert got.headers["webhook-id"] == "dlv_01HX"
    assert verify_standard_webhook(secret=settings.WEBHOOK_SIGNING_SECRET, headers=got.headers, body=got.body)
    assert result == SendResult("dlv_01HX")


def test_a_retried_webhook_keeps_its_webhook_id(receiver, allow_local):
    WebhookTransport().send(webhook(receiver.url))
    WebhookTransport().send(webhook(receiver.url))
    assert {r.headers["webhook-id"] for r in receiver.requests} == {"dlv_01HX"}


def test_a_webhook_signed_with_another_secret_does_not_verify(receiver, allow_local):
    WebhookTransport().send(webhook(receiver.url))
    other = "whsec_" + base64.b64encode(b"another-secret-of-enough-bytes!!").decode()
    assert not verify_standard_webhook(secret=other, headers=receiver.last.headers, body=receiver.last.body)


@pytest.mark.parametrize(
    "status, permanent, code",
    [
        (410, True, FailureCode.GONE),
        (404, True, FailureCode.REFUSED),
        (500, False, FailureCode.UNAVAILABLE),
        (429, False, FailureCode.RATE_LIMITED),
        (302, True, FailureCode.REFUSED),
    ],
)
def test_webhook_failures_are_classified(receiver, allow_local, status, permanent, code):
    receiver.reply(status, headers={"Location": "https://elsewhere.example/"} if status == 302 else {})
    with pytest.raises(TransportError) as failed:
        WebhookTransport().send(webhook(receiver.url))
    assert (failed.value.permanent, failed.value.code) == (permanent, code)


def test_a_webhook_to_a_private_address_is_refused_without_a_request(receiver):
    with pytest.raises(TransportError) as failed:
        WebhookTransport().send(webhook(receiver.url))
    assert (failed.value.permanent, failed.value.code) == (True, FailureCode.UNSAFE)
    assert receiver.requests == []


def test_a_webhook_without_payload_is_a_programming_error():
    with pytest.raises(ValueError, match="payload"):
        WebhookTransport().send(OutboundMessage(channel="webhook", to="https://x.example/", idempotency_key="k"))


# --- Slack ----------------------------------------------------------------------------------


def chat(channel: str, url: str, **fields: Any) -> OutboundMessage:
    values: dict[str, Any] = {
        "channel": channel,
        "to": url,
        "idempotency_key": "dlv_chat",
        "subject": "Elevated errors on the API",
        "text": "We are investigating <reports> of errors & timeouts.",
        "metadata": {"url": "https://status.example.com/incidents/i1", "status": "Investigating"},
    }
    values.update(fields)
    return OutboundMessage(**values)


def test_slack_gets_a_readable_block_message_with_the_link(receiver, allow_local):
    receiver.reply(200, "ok")
    result = SlackTransport().send(chat("slack", f"{receiver.url}/services/T0/B0/XYZ"))
    sent = json.loads(receiver.last.body)
    assert sent["text"].startswith("Elevated errors on the API")
    header, section, context = sent["blocks"]
    assert header == {"type": "header", "text": {"type": "plain_text", "text": "Elevated errors on the API", "emoji": True}}
    assert section["text"] == {"type": "mrkdwn", "text": "We are investigating &lt;reports&gt; of errors &amp; timeouts."}
    assert context["type"] == "context"
    assert {"type": "mrkdwn", "text": "*Status:* Investigating"} in context["elements"]
    assert {"type": "mrkdwn", "text": "<https://status.example.com/incidents/i1|View on the status page>"} in context["elements"]
    assert result == SendResult("dlv_chat")


def test_slack_sends_a_given_payload_as_is(receiver, allow_local):
    receiver.reply(200, "ok")
    SlackTransport().send(chat("slack", receiver.url, payload={"text": "custom"}))
    assert json.loads(receiver.last.body) == {"text": "custom"}


@pytest.mark.parametrize(
    "status, body, permanent, code",
    [
        (404, "no_service", True, FailureCode.GONE),
        (410, "channel_is_archived", True, FailureCode.GONE),
        (400, "invalid_payload", True, FailureCode.REFUSED),
        (429, "rate_limited", False, FailureCode.RATE_LIMITED),
        (500, "rollup_error", False, FailureCode.UNAVAILABLE),
    ],
)
def test_slack_failures_are_classified(receiver, allow_local, status, body, permanent, code):
    receiver.reply(status, body)
    with pytest.raises(TransportError) as failed:
        SlackTransport().send(chat("slack", receiver.url))
    assert (failed.value.permanent, failed.value.code) == (permanent, code)


# --- Teams ----------------------------------------------------------------------------------


def test_teams_gets_an_adaptive_card_with_the_link(receiver, allow_local):
    receiver.reply(202)
    result = TeamsTransport().send(chat("teams", f"{receiver.url}/workflows/abc"))
    sent = json.loads(receiver.last.body)
    assert sent["type"] == "message"
    [attachment] = sent["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    card = attachment["content"]
    assert (card["type"], card["version"]) == ("AdaptiveCard", "1.4")
    texts = [block["text"] for block in card["body"]]
    assert texts == ["Elevated errors on the API", "Investigating", "We are investigating <reports> of errors & timeouts."]
    assert card["actions"] == [
        {"type": "Action.OpenUrl", "title": "View on the status page", "url": "https://status.example.com/incidents/i1"}
    ]
    assert result == SendResult("dlv_chat")


def test_a_legacy_teams_connector_answering_1_is_a_success(receiver, allow_local):
    receiver.reply(200, "1")
    assert TeamsTransport().send(chat("teams", receiver.url)) == SendResult("dlv_chat")


def test_a_rate_limit_wrapped_in_a_teams_200_is_transient(receiver, allow_local):
    receiver.reply(200, "Webhook message delivery failed with error: Microsoft Teams endpoint returned HTTP error 429 with ContextId x")
    with pytest.raises(TransportError) as failed:
        TeamsTransport().send(chat("teams", receiver.url))
    assert (failed.value.permanent, failed.value.code) == (False, FailureCode.RATE_LIMITED)


def test_a_refusal_wrapped_in_a_teams_200_is_permanent(receiver, allow_local):
    receiver.reply(200, "Webhook message delivery failed with error: Microsoft Teams endpoint returned HTTP error 400 with ContextId x")
    with pytest.raises(TransportError) as failed:
        TeamsTransport().send(chat("teams", receiver.url))
    assert failed.value.permanent is True


# --- settings -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "variable, value",
    [
        ("SMS_FROM_NUMBER", "0612345678"),
        ("WEBHOOK_SIGNING_SECRET", "whsec_c2hvcnQ="),
        ("EMAIL_MERGE_FIELD_FORMAT", "{{field}}"),
        ("SMS_BACKEND", "notifications.transports.sms.TwilioSmsBackend"),
    ],
)
def test_bad_provider_settings_stop_start_up(tmp_path, variable, value):
    env = {key: os.environ[key] for key in ("PATH", "HOME", "LANG") if key in os.environ}
    env.update(DEBUG="1", VAR_DIR=str(tmp_path), DATABASE_URL=f"sqlite:///{tmp_path / 'x.sqlite3'}", **{variable: value})
    result = subprocess.run(
        [sys.executable, "-c", "import statuspage.settings"], cwd=REPO, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    assert variable in result.stderr
