"""What confirming subscribers receive, and how an endpoint's answer to its test message counts."""
from __future__ import annotations

import json
import logging
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.core import mail
from django.test import Client

from notifications.transports.sms import sms_segments
from statuspage.lib.signing import verify_standard_webhook
from subscribers import messages, services, tasks, tokens
from subscribers.models import Channel, ConsentAction, ConsentEvent, ConsentSource, Subscriber, SubscriberStatus, SuppressionReason
from tests import factories


class Receiver(ThreadingHTTPServer):
    """A webhook receiver on 127.0.0.1 answering with `status`, remembering what it got."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.status = 200
        self.location = ""
        self.received: list[dict] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hook"


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.received.append({"headers": dict(self.headers), "body": body})
        self.send_response(self.server.status)
        if self.server.location:
            self.send_header("Location", self.server.location)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def receiver(settings):
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def subscribe(page, channel: str, address: str, capture, **kwargs) -> Subscriber:
    with capture(execute=True):
        subscriber = services.subscriber_subscribe(page=page, channel=channel, address=address, **kwargs)
    subscriber.refresh_from_db()
    return subscriber


# --- email ---------------------------------------------------------------------------------------


def test_confirmation_email_carries_confirm_manage_and_unsubscribe_links_in_text_and_html(page, django_capture_on_commit_callbacks):
    ann = subscribe(page, Channel.EMAIL, "ann@example.com", django_capture_on_commit_callbacks)

    email = mail.outbox[0]
    html = email.alternatives[0][0]
    for kind in (tokens.CONFIRM, tokens.MANAGE, tokens.UNSUBSCRIBE):
        found = re.findall(rf"https://status\.example\.com/subscribers/{kind}/([^\s\"<>]+)", email.body)
        assert [tokens.read_token(t, kind) for t in found] == [ann.public_id]
        assert f"https://status.example.com/subscribers/{kind}/" in html


def test_confirmation_email_has_one_click_list_unsubscribe_headers(page, django_capture_on_commit_callbacks):
    ann = subscribe(page, Channel.EMAIL, "ann@example.com", django_capture_on_commit_callbacks)

    headers = mail.outbox[0].extra_headers
    match = re.fullmatch(r"<https://status\.example\.com/subscribers/unsubscribe/([^>]+)>", headers["List-Unsubscribe"])
    assert tokens.read_token(match.group(1), tokens.UNSUBSCRIBE) == ann.public_id
    assert headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


def test_list_unsubscribe_url_works_as_a_one_click_post(page, django_capture_on_commit_callbacks):
    ann = subscribe(page, Channel.EMAIL, "ann@example.com", django_capture_on_commit_callbacks)
    url = mail.outbox[0].extra_headers["List-Unsubscribe"].strip("<>").removeprefix("https://status.example.com")

    Client(enforce_csrf_checks=True).post(url, data="List-Unsubscribe=One-Click", content_type="application/x-www-form-urlencoded")

    ann.refresh_from_db()
    assert ann.status == SubscriberStatus.UNSUBSCRIBED


def test_links_point_at_the_subscribers_own_page(page, django_capture_on_commit_callbacks):
    globex = factories.make_page(name="Globex", url="https://status.globex.example.org/")

    subscribe(globex, Channel.EMAIL, "ann@example.com", django_capture_on_commit_callbacks)

    links = re.findall(r"https?://[^\s/]+/subscribers/", mail.outbox[0].body)
    assert set(links) == {"https://status.globex.example.org/subscribers/"}
    assert "Globex" in mail.outbox[0].subject


# --- SMS -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["Acme", "A" * 100, "Ünïcødé ☃ Cloud Platform Status Centre", "Acme [EU] {prod} €"])
def test_sms_code_text_is_one_segment_with_the_code_and_stop(name):
    text = messages.sms_code_text(name, "123456")

    assert sms_segments(text) == 1
    assert "123456" in text and text.endswith("Reply STOP to opt out.")


def test_sms_confirmation_texts_the_code_that_verifies(page, caplog, django_capture_on_commit_callbacks):
    caplog.set_level(logging.INFO, logger="notifications.sms")

    texter = subscribe(page, Channel.SMS, "+31612345678", django_capture_on_commit_callbacks)

    text = next(r.getMessage() for r in caplog.records if r.name == "notifications.sms")
    code = re.search(r"code is (\d{6})\.", text).group(1)
    assert services.subscriber_verify_sms_code(subscriber=texter, code=code) is True


# --- webhooks, Slack, Teams ----------------------------------------------------------------------


def test_webhook_test_message_is_signed_json_with_meta_page_and_test_flag(page, receiver, django_capture_on_commit_callbacks):
    hook = subscribe(page, Channel.WEBHOOK, receiver.url, django_capture_on_commit_callbacks)

    [request] = receiver.received
    payload = json.loads(request["body"])
    assert payload["test"] is True
    assert payload["subscriber"] == {"id": hook.public_id}
    assert payload["page"] == {"id": page.public_id, "status_indicator": "none", "status_description": "All Systems Operational"}
    unsubscribe_token = payload["meta"]["unsubscribe"].removeprefix("https://status.example.com/subscribers/unsubscribe/")
    assert tokens.read_token(unsubscribe_token, tokens.UNSUBSCRIBE) == hook.public_id
    assert payload["meta"]["documentation"] == "https://status.example.com/subscribe#webhooks"
    from django.conf import settings

    assert verify_standard_webhook(secret=settings.WEBHOOK_SIGNING_SECRET, headers=request["headers"], body=request["body"])


def test_webhook_answering_200_confirms_the_subscriber(page, receiver, django_capture_on_commit_callbacks):
    hook = subscribe(page, Channel.WEBHOOK, receiver.url, django_capture_on_commit_callbacks)

    assert hook.status == SubscriberStatus.CONFIRMED
    assert ConsentEvent.objects.get(action=ConsentAction.CONFIRM).source == ConsentSource.PUBLIC_PAGE


def test_webhook_answering_500_stays_pending(page, receiver, django_capture_on_commit_callbacks):
    receiver.status = 500

    hook = subscribe(page, Channel.WEBHOOK, receiver.url, django_capture_on_commit_callbacks)

    assert len(receiver.received) == 1
    assert hook.status == SubscriberStatus.PENDING
    assert not ConsentEvent.objects.filter(action=ConsentAction.CONFIRM).exists()


def test_webhook_redirecting_to_an_internal_address_is_not_followed_and_stays_pending(page, receiver, django_capture_on_commit_callbacks):
    receiver.status = 302
    receiver.location = "http://169.254.169.254/latest/meta-data/"

    hook = subscribe(page, Channel.WEBHOOK, receiver.url, django_capture_on_commit_callbacks)

    assert len(receiver.received) == 1
    assert hook.status == SubscriberStatus.PENDING


def test_api_created_webhook_is_confirmed_with_the_api_as_source(page, receiver, django_capture_on_commit_callbacks):
    subscribe(page, Channel.WEBHOOK, receiver.url, django_capture_on_commit_callbacks, source=ConsentSource.API)

    assert ConsentEvent.objects.get(action=ConsentAction.CONFIRM).source == ConsentSource.API


def test_slack_test_message_carries_manage_and_unsubscribe_links(page, monkeypatch, django_capture_on_commit_callbacks):
    import socket

    from statuspage.lib import http

    monkeypatch.setattr(socket, "getaddrinfo", lambda host, port, *a, **k: [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("52.89.214.238", 443))])
    posts = []
    monkeypatch.setattr(http, "post", lambda url, *, body, headers, **kw: posts.append(body) or http.Response(status=200, body=b"ok"))

    subscribe(page, Channel.SLACK, "https://hooks.slack.com/services/T0/B0/X", django_capture_on_commit_callbacks)

    text = json.loads(posts[0])["blocks"][1]["text"]["text"]
    assert "https://status.example.com/subscribers/manage/" in text
    assert "https://status.example.com/subscribers/unsubscribe/" in text


# --- the task ------------------------------------------------------------------------------------


def test_task_sends_nothing_to_a_subscriber_confirmed_meanwhile(confirmed_bob):
    assert tasks.send_confirmation(confirmed_bob.pk) == "skipped"
    assert mail.outbox == []


def test_task_sends_nothing_to_an_address_suppressed_meanwhile(pending_ann):
    mail.outbox.clear()
    services.address_suppress(channel=Channel.EMAIL, address="ann@example.com", reason=SuppressionReason.HARD_BOUNCE)

    assert tasks.send_confirmation(pending_ann.pk) == "suppressed"
    assert mail.outbox == []


def test_task_does_nothing_for_a_deleted_subscriber(pending_ann):
    subscriber_id = pending_ann.pk
    services.subscriber_delete(subscriber=pending_ann)

    assert tasks.send_confirmation(subscriber_id) == "skipped"
