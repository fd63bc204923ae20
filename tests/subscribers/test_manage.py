"""The manage page: a signed link, no login, to see the subscription and change what it hears about."""
from __future__ import annotations

import re

from django.test import Client

from incidents.models import Region
from subscribers import services, tokens
from subscribers.models import Channel, ConsentAction, ConsentEvent, Subscriber


def manage_url(subscriber: Subscriber) -> str:
    return f"/subscribers/manage/{tokens.make_token(subscriber.public_id, tokens.MANAGE)}"


def prefs(**fields) -> dict:
    data = {"scope": "all", "notify_incidents": "on", "notify_maintenance": "on", "locale": "", "time_zone": ""}
    data.update(fields)
    return {key: value for key, value in data.items() if value is not None}


def test_manage_page_shows_channel_address_and_current_choices(client, confirmed_bob, rest_api, dashboard):
    services.subscriber_update_preferences(
        subscriber=confirmed_bob, preferences=services.Preferences(all_components=False, components=(rest_api,), notify_maintenance=False)
    )

    html = client.get(manage_url(confirmed_bob)).content.decode()

    assert "Email" in html and "bob@example.com" in html
    assert re.search(rf'value="{rest_api.public_id}" checked', html)
    assert not re.search(rf'value="{dashboard.public_id}" checked', html)
    assert re.search(r'<input type="checkbox" name="notify_maintenance" id="id_notify_maintenance">', html)


def test_manage_page_masks_endpoint_urls(client, page, monkeypatch):
    import socket

    monkeypatch.setattr(socket, "getaddrinfo", lambda host, port, *a, **k: [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("52.89.214.238", 443))])
    slack = services.subscriber_create(
        page=page, channel=Channel.SLACK, address="https://hooks.slack.com/services/T000/B000/SECRETPART", skip_confirmation_reason="Staff"
    )

    html = client.get(manage_url(slack)).content.decode()

    assert "hooks.slack.com/…" in html
    assert "SECRETPART" not in html


def test_saving_preferences_changes_them_and_writes_a_ledger_event(client, confirmed_bob, api_group, rest_api, webhooks, dashboard):
    eu = Region.objects.create(page=confirmed_bob.page, code="eu", name="Europe")

    response = client.post(
        manage_url(confirmed_bob),
        prefs(scope="chosen", components=[dashboard.public_id], notify_incidents=None, regions=["eu"], time_zone="Asia/Tokyo"),
        REMOTE_ADDR="203.0.113.8",
    )

    assert response.status_code == 302 and response["Location"].endswith("?saved=1")
    confirmed_bob.refresh_from_db()
    assert confirmed_bob.all_components is False
    assert list(confirmed_bob.components.all()) == [dashboard]
    assert (confirmed_bob.notify_incidents, confirmed_bob.notify_maintenance, confirmed_bob.time_zone) == (False, True, "Asia/Tokyo")
    assert list(confirmed_bob.regions.all()) == [eu]
    event = ConsentEvent.objects.get(action=ConsentAction.PREFERENCES)
    assert (event.subscriber, event.source, event.ip_address) == (confirmed_bob, "public_page", "203.0.113.8")
    assert event.details["components"] == [dashboard.public_id]


def test_saved_notice_follows_the_redirect(client, confirmed_bob):
    response = client.post(manage_url(confirmed_bob), prefs(), follow=True)

    assert "Your preferences are saved." in response.content.decode()


def test_invalid_preferences_show_an_error_and_change_nothing(client, confirmed_bob, rest_api):
    response = client.post(manage_url(confirmed_bob), prefs(scope="chosen"))

    assert response.status_code == 200
    assert "Choose at least one component, or everything." in response.content.decode()
    assert not ConsentEvent.objects.filter(action=ConsentAction.PREFERENCES).exists()


def test_manage_form_needs_a_csrf_token(confirmed_bob):
    response = Client(enforce_csrf_checks=True).post(manage_url(confirmed_bob), prefs(notify_incidents=None))

    assert response.status_code == 403
    confirmed_bob.refresh_from_db()
    assert confirmed_bob.notify_incidents is True


def test_manage_page_links_to_the_unsubscribe_page(client, confirmed_bob):
    html = client.get(manage_url(confirmed_bob)).content.decode()

    token = re.search(r'href="/subscribers/unsubscribe/([^"]+)"', html).group(1)
    assert tokens.read_token(token, tokens.UNSUBSCRIBE) == confirmed_bob.public_id


def test_manage_page_of_an_unsubscribed_subscriber_changes_nothing(client, confirmed_bob):
    services.subscriber_unsubscribe(subscriber=confirmed_bob)

    response = client.post(manage_url(confirmed_bob), prefs(notify_incidents=None))

    assert "You are unsubscribed" in response.content.decode()
    confirmed_bob.refresh_from_db()
    assert confirmed_bob.notify_incidents is True


def test_manage_page_keeps_a_one_incident_subscription(client, page, rest_api):
    from tests import factories

    incident = factories.open_incident(page=page, name="Slow logins")
    follower = services.subscriber_create(
        page=page, channel=Channel.EMAIL, address="fan@example.com", skip_confirmation_reason="Staff",
        preferences=services.Preferences(incident=incident),
    )

    client.post(manage_url(follower), prefs(scope="incident", notify_maintenance=None))

    follower.refresh_from_db()
    assert (follower.incident, follower.all_components, follower.notify_maintenance) == (incident, False, False)


def test_manage_link_with_a_tampered_token_shows_the_generic_page(client, confirmed_bob):
    response = client.post(manage_url(confirmed_bob)[:-2] + "zz", prefs(notify_incidents=None))

    assert response.status_code == 404
    assert "This link is not valid or has expired" in response.content.decode()
    assert not ConsentEvent.objects.filter(action=ConsentAction.PREFERENCES).exists()


def test_manage_link_of_an_erased_subscriber_shows_the_generic_page(client, confirmed_bob):
    services.subscriber_erase(subscriber=confirmed_bob)

    assert client.get(manage_url(confirmed_bob)).status_code == 404
