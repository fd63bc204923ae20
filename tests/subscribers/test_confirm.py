"""Double opt-in: the email link (GET asks, POST confirms), bad links, and the SMS code."""
from __future__ import annotations

import logging
import re
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from subscribers import services, tokens
from subscribers.models import Channel, ConsentAction, ConsentEvent, Subscriber, SubscriberStatus, SuppressionReason

INVALID = "This link is not valid or has expired"


def confirm_url(subscriber: Subscriber, kind: str = tokens.CONFIRM) -> str:
    return f"/subscribers/confirm/{tokens.make_token(subscriber.public_id, kind)}"


def state(subscriber: Subscriber) -> tuple:
    subscriber.refresh_from_db()
    return subscriber.status, subscriber.confirmed_at, ConsentEvent.objects.count()


# --- the email link -----------------------------------------------------------------------------


def test_get_on_the_confirm_link_shows_a_button_and_confirms_nothing(client, pending_ann):
    response = client.get(confirm_url(pending_ann))

    html = response.content.decode()
    assert response.status_code == 200
    assert "Confirm subscription" in html and 'name="csrfmiddlewaretoken"' in html
    pending_ann.refresh_from_db()
    assert pending_ann.status == SubscriberStatus.PENDING


def test_post_on_the_confirm_link_confirms_and_records_the_ip(client, pending_ann):
    response = client.post(confirm_url(pending_ann), REMOTE_ADDR="203.0.113.4")

    assert response.status_code == 200
    assert "You are subscribed" in response.content.decode()
    pending_ann.refresh_from_db()
    assert pending_ann.status == SubscriberStatus.CONFIRMED
    event = ConsentEvent.objects.get(action=ConsentAction.CONFIRM)
    assert (event.source, event.ip_address) == ("public_page", "203.0.113.4")


def test_confirm_button_needs_a_csrf_token(pending_ann):
    response = Client(enforce_csrf_checks=True).post(confirm_url(pending_ann))

    assert response.status_code == 403
    pending_ann.refresh_from_db()
    assert pending_ann.status == SubscriberStatus.PENDING


def test_confirmed_page_links_to_the_manage_page(client, pending_ann):
    html = client.post(confirm_url(pending_ann)).content.decode()

    token = re.search(r'href="/subscribers/manage/([^"]+)"', html).group(1)
    assert tokens.read_token(token, tokens.MANAGE) == pending_ann.public_id


def test_posting_the_confirm_link_twice_is_harmless(client, pending_ann):
    client.post(confirm_url(pending_ann))
    response = client.post(confirm_url(pending_ann))

    assert response.status_code == 200
    assert ConsentEvent.objects.filter(action=ConsentAction.CONFIRM).count() == 1


def test_tampered_token_shows_the_generic_page_and_changes_nothing(client, pending_ann):
    url = confirm_url(pending_ann)
    tampered = url[:-3] + ("AAA" if not url.endswith("AAA") else "BBB")
    before = state(pending_ann)

    response = client.post(tampered)

    assert response.status_code == 404
    assert INVALID in response.content.decode()
    assert state(pending_ann) == before


def test_expired_token_shows_the_generic_page_and_changes_nothing(client, pending_ann, time_machine):
    url = confirm_url(pending_ann)
    time_machine.move_to(timezone.now() + timedelta(days=8))
    before = state(pending_ann)

    response = client.post(url)

    assert response.status_code == 404
    assert INVALID in response.content.decode()
    assert state(pending_ann) == before


@pytest.mark.parametrize("kind", [tokens.MANAGE, tokens.UNSUBSCRIBE])
def test_token_of_another_kind_shows_the_generic_page_and_changes_nothing(client, pending_ann, kind):
    before = state(pending_ann)

    response = client.post(confirm_url(pending_ann, kind))

    assert response.status_code == 404
    assert state(pending_ann) == before


def test_every_bad_link_shows_the_same_page(client, pending_ann, time_machine):
    good = confirm_url(pending_ann)
    bad_urls = [
        good[:-2] + "xx",
        confirm_url(pending_ann, tokens.MANAGE),
        f"/subscribers/confirm/{tokens.make_token('nosuchsubscr', tokens.CONFIRM)}",
        "/subscribers/confirm/garbage",
        f"/subscribers/manage/{tokens.make_token(pending_ann.public_id, tokens.CONFIRM)}",
        f"/subscribers/unsubscribe/{tokens.make_token(pending_ann.public_id, tokens.MANAGE)}",
    ]
    time_machine.move_to(timezone.now() + timedelta(days=8))
    bad_urls.append(good)

    responses = [client.get(url) for url in bad_urls]

    assert {r.status_code for r in responses} == {404}
    assert len({r.content for r in responses}) == 1


def test_confirm_link_of_an_unsubscribed_subscriber_is_no_longer_valid(client, pending_ann):
    url = confirm_url(pending_ann)
    services.subscriber_unsubscribe(subscriber=pending_ann)

    response = client.post(url)

    assert response.status_code == 404
    pending_ann.refresh_from_db()
    assert pending_ann.status == SubscriberStatus.UNSUBSCRIBED


def test_confirm_link_of_a_suppressed_address_confirms_nothing(client, pending_ann):
    url = confirm_url(pending_ann)
    services.address_suppress(channel=Channel.EMAIL, address="ann@example.com", reason=SuppressionReason.COMPLAINT)

    response = client.post(url)

    assert response.status_code == 404
    pending_ann.refresh_from_db()
    assert pending_ann.status == SubscriberStatus.PENDING


# --- the SMS code --------------------------------------------------------------------------------


@pytest.fixture
def sms_log(caplog):
    caplog.set_level(logging.INFO, logger="notifications.sms")
    return caplog


def sms_subscribe(client, number: str, capture) -> str:
    """Subscribe by SMS through the form; returns the code-form token the answer page holds."""
    with capture(execute=True):
        html = client.post("/subscribe", {
            "channel": "sms", "phone_number": number, "scope": "all",
            "notify_incidents": "on", "notify_maintenance": "on", "consent": "on",
        }).content.decode()
    return re.search(r'name="token" value="([^"]+)"', html).group(1)


def texted_code(caplog, number: str) -> str:
    texts = [r.getMessage() for r in caplog.records if r.name == "notifications.sms" and number in r.getMessage()]
    return re.search(r"\b(\d{6})\b", texts[-1]).group(1)


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


def test_right_sms_code_confirms(client, page, sms_log, django_capture_on_commit_callbacks):
    token = sms_subscribe(client, "+31612345678", django_capture_on_commit_callbacks)

    response = client.post("/subscribers/sms/verify", {"token": token, "code": texted_code(sms_log, "+31612345678")})

    assert "You are subscribed" in response.content.decode()
    assert Subscriber.objects.get().status == SubscriberStatus.CONFIRMED


def test_wrong_sms_code_is_refused_and_the_form_shown_again(client, page, sms_log, django_capture_on_commit_callbacks):
    token = sms_subscribe(client, "+31612345678", django_capture_on_commit_callbacks)

    response = client.post("/subscribers/sms/verify", {"token": token, "code": wrong(texted_code(sms_log, "+31612345678"))})

    html = response.content.decode()
    assert response.status_code == 200
    assert "That code is not right or has expired" in html and 'name="code"' in html
    assert Subscriber.objects.get().status == SubscriberStatus.PENDING


def test_five_wrong_sms_codes_lock_the_code(client, page, sms_log, django_capture_on_commit_callbacks):
    token = sms_subscribe(client, "+31612345678", django_capture_on_commit_callbacks)
    code = texted_code(sms_log, "+31612345678")
    for _ in range(5):
        client.post("/subscribers/sms/verify", {"token": token, "code": wrong(code)})

    response = client.post("/subscribers/sms/verify", {"token": token, "code": code})

    assert "That code is not right or has expired" in response.content.decode()
    assert Subscriber.objects.get().status == SubscriberStatus.PENDING


def test_expired_sms_code_is_refused(client, page, sms_log, time_machine, django_capture_on_commit_callbacks):
    token = sms_subscribe(client, "+31612345678", django_capture_on_commit_callbacks)
    code = texted_code(sms_log, "+31612345678")
    time_machine.move_to(timezone.now() + services.SMS_CODE_TTL + timedelta(seconds=1))

    response = client.post("/subscribers/sms/verify", {"token": token, "code": code})

    assert "That code is not right or has expired" in response.content.decode()
    assert Subscriber.objects.get().status == SubscriberStatus.PENDING


def test_sms_code_with_spaces_is_accepted(client, page, sms_log, django_capture_on_commit_callbacks):
    token = sms_subscribe(client, "+31612345678", django_capture_on_commit_callbacks)
    code = texted_code(sms_log, "+31612345678")

    client.post("/subscribers/sms/verify", {"token": token, "code": f"{code[:3]} {code[3:]}"})

    assert Subscriber.objects.get().status == SubscriberStatus.CONFIRMED


def test_code_form_for_a_number_never_texted_answers_like_a_wrong_code(client, page, sms_log, django_capture_on_commit_callbacks):
    services.subscriber_create(page=page, channel=Channel.SMS, address="+31612345679", skip_confirmation_reason="Imported")
    real = sms_subscribe(client, "+31612345678", django_capture_on_commit_callbacks)
    never_texted = sms_subscribe(client, "+31612345679", django_capture_on_commit_callbacks)
    code = wrong(texted_code(sms_log, "+31612345678"))

    answers = [client.post("/subscribers/sms/verify", {"token": t, "code": code}) for t in (real, never_texted, "forged")]

    def strip(html: str) -> str:
        return re.sub(r'value="[^"]*"', 'value=""', html)

    assert {r.status_code for r in answers} == {200}
    assert len({strip(r.content.decode()) for r in answers}) == 1


def test_sms_verify_needs_a_csrf_token(page):
    response = Client(enforce_csrf_checks=True).post("/subscribers/sms/verify", {"token": "x", "code": "123456"})

    assert response.status_code == 403
