"""The public subscribe page: what it shows, what each channel's happy path does, and field errors."""
from __future__ import annotations

import logging
import re
import socket
from pathlib import Path

import pytest
from django.core import mail

from incidents.models import Region
from statuspage.lib import http
from subscribers import services
from subscribers.models import ConfirmationSend, ConsentAction, ConsentEvent, Subscriber, SubscriberStatus
from tests import factories


def form(**fields) -> dict:
    data = {
        "channel": "email", "email": "ann@example.com", "scope": "all",
        "notify_incidents": "on", "notify_maintenance": "on", "consent": "on",
    }
    data.update(fields)
    return {key: value for key, value in data.items() if value is not None}


def field_error(html: str, field: str) -> str:
    match = re.search(rf'<p class="field-error" id="{field}-error">(.*?)</p>', html, re.S)
    return match.group(1) if match else ""


@pytest.fixture
def fake_dns(monkeypatch):
    """Host names the test says resolve somewhere; IP literals still go to the real resolver (no network)."""
    real = socket.getaddrinfo
    names: dict[str, str] = {}

    def getaddrinfo(host, port, *args, **kwargs):
        if host in names:
            ip = names[host]
            if ":" in ip:
                return [(socket.AF_INET6, socket.SOCK_STREAM, 6, "", (ip, port or 443, 0, 0))]
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, port or 443))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return names


@pytest.fixture
def http_posts(monkeypatch):
    """The outbound HTTP seam: records each POST and answers 200."""
    posts: list[dict] = []

    def post(url, *, body, headers, timeout=None, max_response_bytes=None):
        posts.append({"url": url, "body": body, "headers": headers})
        return http.Response(status=200, body=b"ok")

    monkeypatch.setattr(http, "post", post)
    return posts


# --- what the page shows ------------------------------------------------------------------------


def test_subscribe_page_has_a_csrf_token_and_a_hidden_honeypot(client, page):
    html = client.get("/subscribe").content.decode()

    assert 'name="csrfmiddlewaretoken"' in html
    honeypot = re.search(r'<div class="hp" aria-hidden="true">.*?</div>', html, re.S).group(0)
    assert re.search(r'<input type="text" name="website" id="id_website" value="" tabindex="-1" autocomplete="off">', honeypot)
    css = (Path(__file__).resolve().parents[2] / "static/css/status.css").read_text()
    assert re.search(r"\.hp \{[^}]*left: -10000px", css)


def test_subscribe_page_is_not_cached_by_shared_caches(client, page):
    response = client.get("/subscribe")

    assert "no-store" in response["Cache-Control"] and "private" in response["Cache-Control"]


def test_subscribe_page_lists_groups_with_their_components(client, page, rest_api, webhooks, dashboard, api_group):
    html = client.get("/subscribe").content.decode()

    for component in (api_group, rest_api, webhooks, dashboard):
        assert f'value="{component.public_id}"' in html
    group_item = re.search(rf'value="{api_group.public_id}">.*?</ul>', html, re.S).group(0)
    assert rest_api.public_id in group_item and webhooks.public_id in group_item


def test_subscribe_page_offers_regions_only_when_the_page_has_some(client, page):
    assert 'name="regions"' not in client.get("/subscribe").content.decode()

    Region.objects.create(page=page, code="eu", name="Europe")

    assert re.search(r'<input type="checkbox" name="regions" value="eu"', client.get("/subscribe").content.decode())


def test_subscribe_page_shows_the_consent_text_and_its_version(client, page):
    html = client.get("/subscribe").content.decode()

    assert 'name="consent"' in html and "required" in re.search(r'<input type="checkbox" name="consent"[^>]*>', html).group(0)
    assert "I agree that Acme may send status updates" in html
    assert services.CONSENT_TEXT_VERSION in html


def test_status_page_links_to_the_subscribe_page_without_a_form(client, page):
    html = client.get("/").content.decode()

    assert 'href="/subscribe"' in html
    assert "csrfmiddlewaretoken" not in html  # the page is cached and shared


def test_subscribe_page_follows_the_host_to_its_page(client, page):
    factories.make_page(name="Globex", url="https://status.globex.example.org")

    html = client.get("/subscribe", HTTP_HOST="status.globex.example.org").content.decode()

    assert "Globex may send status updates" in html


# --- happy paths, one per channel ----------------------------------------------------------------


def test_email_subscription_sends_one_confirmation_email(client, page, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/subscribe", form(email="Ann@Example.com"))

    assert response.status_code == 200
    assert "Check your inbox" in response.content.decode()
    subscriber = Subscriber.objects.get()
    assert (subscriber.address, subscriber.status) == ("ann@example.com", SubscriberStatus.PENDING)
    assert [m.to for m in mail.outbox] == [["ann@example.com"]]


def test_subscription_records_consent_with_the_connection_ip_not_x_forwarded_for(client, page, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        client.post("/subscribe", form(), REMOTE_ADDR="203.0.113.7", HTTP_X_FORWARDED_FOR="198.51.100.1")

    event = ConsentEvent.objects.get(action=ConsentAction.SUBSCRIBE)
    assert (event.ip_address, event.source, event.consent_text_version) == ("203.0.113.7", "public_page", services.CONSENT_TEXT_VERSION)


def test_chosen_components_and_preferences_are_stored(client, page, api_group, rest_api, webhooks, dashboard, django_capture_on_commit_callbacks):
    eu = Region.objects.create(page=page, code="eu", name="Europe")
    data = form(scope="chosen", components=[api_group.public_id], notify_maintenance=None, regions=["eu"],
                locale="de", time_zone="Europe/Berlin")

    with django_capture_on_commit_callbacks(execute=True):
        client.post("/subscribe", data)

    subscriber = Subscriber.objects.get()
    assert subscriber.all_components is False
    assert set(subscriber.components.all()) == {api_group, rest_api, webhooks}
    assert (subscriber.notify_incidents, subscriber.notify_maintenance) == (True, False)
    assert list(subscriber.regions.all()) == [eu]
    assert (subscriber.locale, subscriber.time_zone) == ("de", "Europe/Berlin")


def test_sms_subscription_texts_one_code_and_shows_the_code_form(client, page, caplog, django_capture_on_commit_callbacks):
    caplog.set_level(logging.INFO, logger="notifications.sms")

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/subscribe", form(channel="sms", email=None, phone_number="06 12345678", phone_country="NL"))

    html = response.content.decode()
    assert 'action="/subscribers/sms/verify"' in html and 'name="code"' in html
    assert Subscriber.objects.get().address == "+31612345678"
    texts = [r.getMessage() for r in caplog.records if r.name == "notifications.sms"]
    assert len(texts) == 1 and "+31612345678" in texts[0] and re.search(r"\b\d{6}\b", texts[0])


def test_webhook_subscription_posts_one_test_message(client, page, fake_dns, http_posts, django_capture_on_commit_callbacks):
    fake_dns["hooks.acme-customer.example"] = "93.184.215.14"

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/subscribe", form(channel="webhook", email=None, endpoint="https://hooks.acme-customer.example/status"))

    assert "Check your endpoint" in response.content.decode()
    assert [p["url"] for p in http_posts] == ["https://hooks.acme-customer.example/status"]
    assert b'"test":true' in http_posts[0]["body"]


def test_slack_subscription_posts_one_test_message(client, page, fake_dns, http_posts, django_capture_on_commit_callbacks):
    fake_dns["hooks.slack.com"] = "52.89.214.238"
    url = "https://hooks.slack.com/services/T000/B000/XXXX"

    with django_capture_on_commit_callbacks(execute=True):
        client.post("/subscribe", form(channel="slack", email=None, endpoint=url))

    assert [p["url"] for p in http_posts] == [url]
    assert Subscriber.objects.get().status == SubscriberStatus.CONFIRMED


def test_teams_subscription_posts_one_test_message(client, page, fake_dns, http_posts, django_capture_on_commit_callbacks):
    fake_dns["acme.webhook.office.com"] = "52.96.0.10"
    url = "https://acme.webhook.office.com/webhookb2/abc/IncomingWebhook/def"

    with django_capture_on_commit_callbacks(execute=True):
        client.post("/subscribe", form(channel="teams", email=None, endpoint=url))

    assert [p["url"] for p in http_posts] == [url]
    assert b"AdaptiveCard" in http_posts[0]["body"]


# --- field errors --------------------------------------------------------------------------------


def test_malformed_email_gets_a_field_error_and_writes_nothing(client, page):
    html = client.post("/subscribe", form(email="ann@")).content.decode()

    assert field_error(html, "email") == "Enter a valid email address."
    assert not Subscriber.objects.exists() and not ConfirmationSend.objects.exists()


def test_malformed_phone_number_gets_a_field_error(client, page):
    html = client.post("/subscribe", form(channel="sms", email=None, phone_number="12", phone_country="NL")).content.decode()

    assert field_error(html, "phone_number") == "This is not a valid phone number for its country."
    assert not Subscriber.objects.exists()


def test_national_number_without_a_country_gets_a_field_error(client, page):
    html = client.post("/subscribe", form(channel="sms", email=None, phone_number="0612345678")).content.decode()

    assert "country code" in field_error(html, "phone_number")


def test_missing_consent_gets_a_field_error(client, page):
    html = client.post("/subscribe", form(consent=None)).content.decode()

    assert field_error(html, "consent") == "Tick the box to agree to receive these messages."
    assert not Subscriber.objects.exists()


def test_plain_http_url_gets_a_field_error(client, page):
    html = client.post("/subscribe", form(channel="webhook", email=None, endpoint="http://93.184.215.14/hook")).content.decode()

    assert "https://" in field_error(html, "endpoint")
    assert not Subscriber.objects.exists()


def test_slack_channel_refuses_a_url_that_is_not_slack(client, page):
    html = client.post("/subscribe", form(channel="slack", email=None, endpoint="https://93.184.215.14/hook")).content.decode()

    assert field_error(html, "endpoint") == "This is not a Slack incoming webhook URL."


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("https://127.0.0.1/hook", "loopback"),
        ("https://[::1]/hook", "loopback"),
        ("https://10.20.30.40/hook", "private network"),
        ("https://172.16.5.4/hook", "private network"),
        ("https://172.31.255.1/hook", "private network"),
        ("https://192.168.1.10/hook", "private network"),
        ("https://169.254.10.20/hook", "link-local"),
        ("https://[fe80::1]/hook", "link-local"),
        ("https://169.254.169.254/latest/meta-data", "metadata"),
        ("https://100.64.1.1/hook", "carrier-grade NAT"),
        ("https://[::ffff:127.0.0.1]/hook", "loopback"),
        ("https://[::ffff:10.0.0.1]/hook", "private network"),
    ],
)
def test_private_address_urls_get_a_clear_field_error(client, page, url, kind):
    html = client.post("/subscribe", form(channel="webhook", email=None, endpoint=url)).content.decode()

    error = field_error(html, "endpoint")
    assert kind in error and "only public internet addresses" in error
    assert not Subscriber.objects.exists()


def test_host_name_that_resolves_to_a_private_address_gets_a_field_error(client, page, fake_dns):
    fake_dns["internal.example.com"] = "10.0.0.5"

    html = client.post("/subscribe", form(channel="webhook", email=None, endpoint="https://internal.example.com/hook")).content.decode()

    assert "internal.example.com points to a private network address" in field_error(html, "endpoint")
    assert not Subscriber.objects.exists()


def test_choosing_components_without_ticking_any_gets_a_field_error(client, page, rest_api):
    html = client.post("/subscribe", form(scope="chosen")).content.decode()

    assert field_error(html, "components") == "Choose at least one component, or everything."


def test_choosing_neither_incidents_nor_maintenance_gets_a_field_error(client, page):
    html = client.post("/subscribe", form(notify_incidents=None, notify_maintenance=None)).content.decode()

    assert field_error(html, "notify") == "Choose incidents, maintenance or both."


def test_components_of_another_page_are_refused(client, page, rest_api):
    other = factories.make_page(name="Globex", url="https://status.globex.example.org")
    foreign = factories.make_component(page=other, name="Globex API")

    html = client.post("/subscribe", form(scope="chosen", components=[foreign.public_id])).content.decode()

    assert "is not one of the available choices" in field_error(html, "components")
    assert not Subscriber.objects.exists()
