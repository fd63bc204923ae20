"""Leaving: a GET only asks; a POST unsubscribes, including RFC 8058 one-click POSTs from mail clients."""
from __future__ import annotations

from django.test import Client

from subscribers import services, tokens
from subscribers.models import ConsentAction, ConsentEvent, ConsentSource, Subscriber, SubscriberStatus


def unsubscribe_url(subscriber: Subscriber, kind: str = tokens.UNSUBSCRIBE) -> str:
    return f"/subscribers/unsubscribe/{tokens.make_token(subscriber.public_id, kind)}"


def one_click(url: str):
    """What a mail client sends: a form POST with only this body, no cookies, no CSRF token."""
    return Client(enforce_csrf_checks=True).post(
        url, data="List-Unsubscribe=One-Click", content_type="application/x-www-form-urlencoded"
    )


def test_get_shows_a_button_and_does_not_unsubscribe(client, confirmed_bob):
    response = client.get(unsubscribe_url(confirmed_bob))

    assert response.status_code == 200
    assert '<button type="submit" class="button">Unsubscribe</button>' in response.content.decode()
    confirmed_bob.refresh_from_db()
    assert confirmed_bob.status == SubscriberStatus.CONFIRMED


def test_one_click_post_without_cookies_or_csrf_token_unsubscribes(confirmed_bob):
    response = one_click(unsubscribe_url(confirmed_bob))

    assert response.status_code == 200
    confirmed_bob.refresh_from_db()
    assert confirmed_bob.status == SubscriberStatus.UNSUBSCRIBED
    assert ConsentEvent.objects.get(action=ConsentAction.UNSUBSCRIBE).source == ConsentSource.EMAIL_CLIENT


def test_repeating_the_one_click_post_is_harmless(confirmed_bob):
    url = unsubscribe_url(confirmed_bob)

    first, second = one_click(url), one_click(url)

    assert first.status_code == second.status_code == 200
    assert ConsentEvent.objects.filter(action=ConsentAction.UNSUBSCRIBE).count() == 1


def test_one_click_post_as_multipart_form_data_unsubscribes(confirmed_bob):
    Client(enforce_csrf_checks=True).post(unsubscribe_url(confirmed_bob), {"List-Unsubscribe": "One-Click"})

    confirmed_bob.refresh_from_db()
    assert confirmed_bob.status == SubscriberStatus.UNSUBSCRIBED


def test_button_post_unsubscribes_with_the_public_page_as_source(client, confirmed_bob):
    response = client.post(unsubscribe_url(confirmed_bob), REMOTE_ADDR="203.0.113.3")

    assert "You are unsubscribed" in response.content.decode()
    event = ConsentEvent.objects.get(action=ConsentAction.UNSUBSCRIBE)
    assert (event.source, event.ip_address) == (ConsentSource.PUBLIC_PAGE, "203.0.113.3")


def test_pending_subscriber_can_unsubscribe(pending_ann):
    one_click(unsubscribe_url(pending_ann))

    pending_ann.refresh_from_db()
    assert pending_ann.status == SubscriberStatus.UNSUBSCRIBED


def test_get_after_unsubscribing_says_so(client, confirmed_bob):
    services.subscriber_unsubscribe(subscriber=confirmed_bob)

    html = client.get(unsubscribe_url(confirmed_bob)).content.decode()

    assert "You are unsubscribed" in html and "<button" not in html


def test_tampered_unsubscribe_token_changes_nothing(confirmed_bob):
    response = one_click(unsubscribe_url(confirmed_bob)[:-2] + "zz")

    assert response.status_code == 404
    confirmed_bob.refresh_from_db()
    assert confirmed_bob.status == SubscriberStatus.CONFIRMED


def test_manage_token_does_not_unsubscribe(confirmed_bob):
    response = one_click(unsubscribe_url(confirmed_bob, tokens.MANAGE))

    assert response.status_code == 404
    confirmed_bob.refresh_from_db()
    assert confirmed_bob.status == SubscriberStatus.CONFIRMED


def test_one_click_of_an_erased_subscriber_is_answered_and_harmless(confirmed_bob):
    services.subscriber_erase(subscriber=confirmed_bob)

    assert one_click(unsubscribe_url(confirmed_bob)).status_code == 200
