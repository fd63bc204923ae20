"""Subscription bombing, enumeration and bots: the public form answers alike and sends little."""
from __future__ import annotations

import logging
import re

import pytest
from django.core import mail

from subscribers import services
from subscribers.models import (
    Channel,
    ConfirmationSend,
    ConsentAction,
    ConsentEvent,
    ConsentSource,
    Subscriber,
    SubscriberStatus,
    Suppression,
    SuppressionReason,
)


def form(**fields) -> dict:
    data = {
        "channel": "email", "email": "ann@example.com", "scope": "all",
        "notify_incidents": "on", "notify_maintenance": "on", "consent": "on",
    }
    data.update(fields)
    return {key: value for key, value in data.items() if value is not None}


def sms_form(number: str) -> dict:
    return form(channel="sms", email=None, phone_number=number, phone_country="NL")


def without_variable_parts(html: str, *addresses: str) -> str:
    """The body with what legitimately differs removed: the typed address, the CSRF and code-form tokens."""
    for address in addresses:
        html = html.replace(address, "ADDRESS")
    html = re.sub(r'name="csrfmiddlewaretoken" value="[^"]*"', 'name="csrfmiddlewaretoken" value=""', html)
    return re.sub(r'name="token" value="[^"]*"', 'name="token" value=""', html)


def test_filled_honeypot_answers_like_success_and_writes_nothing(client, page, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        bot = client.post("/subscribe", form(website="http://spam.example"))
        person = client.post("/subscribe", form(email="bob@example.com"))

    assert bot.status_code == person.status_code == 200
    assert without_variable_parts(bot.content.decode(), "ann@example.com") == without_variable_parts(
        person.content.decode(), "bob@example.com"
    )
    assert list(Subscriber.objects.values_list("address", flat=True)) == ["bob@example.com"]
    assert [m.to for m in mail.outbox] == [["bob@example.com"]]


def test_filled_honeypot_with_an_invalid_address_still_answers_like_success(client, page):
    response = client.post("/subscribe", form(email="not an address", consent=None, website="x"))

    assert "Check your inbox" in response.content.decode()
    assert not Subscriber.objects.exists()


def test_answers_are_identical_for_new_confirmed_suppressed_and_unknown_addresses(client, page, confirmed_bob, django_capture_on_commit_callbacks):
    services.address_suppress(channel=Channel.EMAIL, address="carol@example.com", reason=SuppressionReason.HARD_BOUNCE)
    addresses = ["new@example.com", "bob@example.com", "carol@example.com", "nobody@no-such-domain.example"]

    with django_capture_on_commit_callbacks(execute=True):
        responses = [client.post("/subscribe", form(email=address)) for address in addresses]

    assert {r.status_code for r in responses} == {200}
    bodies = {without_variable_parts(r.content.decode(), a) for r, a in zip(responses, addresses)}
    assert len(bodies) == 1
    assert {tuple(r.headers.keys()) for r in responses} == {tuple(responses[0].headers.keys())}


def test_sms_answers_are_identical_for_a_new_and_an_already_confirmed_number(client, page, caplog, django_capture_on_commit_callbacks):
    caplog.set_level(logging.INFO, logger="notifications.sms")
    services.subscriber_create(page=page, channel=Channel.SMS, address="+31612345679", skip_confirmation_reason="Imported")

    with django_capture_on_commit_callbacks(execute=True):
        new = client.post("/subscribe", sms_form("+31612345678"))
        known = client.post("/subscribe", sms_form("+31612345679"))

    assert new.status_code == known.status_code == 200
    assert without_variable_parts(new.content.decode(), "+31612345678") == without_variable_parts(
        known.content.decode(), "+31612345679"
    )
    assert 'name="code"' in known.content.decode()
    assert [r.getMessage() for r in caplog.records if "+31612345679" in r.getMessage()] == []


def test_sms_code_page_never_carries_a_subscriber_id(client, page, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        html = client.post("/subscribe", sms_form("+31612345678")).content.decode()

    assert Subscriber.objects.get().public_id not in html


def test_bombing_one_address_sends_one_message(client, page, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        for n in range(30):
            response = client.post("/subscribe", form(email="victim@example.com"), REMOTE_ADDR=f"198.51.100.{n + 1}")
            assert response.status_code == 200

    assert len(mail.outbox) == 1
    assert Subscriber.objects.count() == 1
    assert ConfirmationSend.objects.count() == 1


def test_bombing_in_different_spellings_of_one_address_sends_one_message(client, page, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        for n, spelling in enumerate(["victim@example.com", "VICTIM@example.com", " Victim@Example.COM "]):
            client.post("/subscribe", form(email=spelling), REMOTE_ADDR=f"198.51.100.{n + 1}")

    assert len(mail.outbox) == 1


def test_per_ip_cap_stops_writing_and_answers_the_same(client, page, settings, django_capture_on_commit_callbacks):
    settings.SUBSCRIBE_MAX_PER_IP_PER_HOUR = 3
    with django_capture_on_commit_callbacks(execute=True):
        allowed = [client.post("/subscribe", form(email=f"person{n}@example.com"), REMOTE_ADDR="203.0.113.9") for n in range(3)]
        capped = client.post("/subscribe", form(email="late@example.com"), REMOTE_ADDR="203.0.113.9")

    assert Subscriber.objects.count() == 3 and not Subscriber.objects.filter(address="late@example.com").exists()
    assert len(mail.outbox) == 3
    assert capped.status_code == allowed[0].status_code
    assert without_variable_parts(capped.content.decode(), "late@example.com") == without_variable_parts(
        allowed[0].content.decode(), "person0@example.com"
    )


def test_per_ip_cap_leaves_other_addresses_free(client, page, settings, django_capture_on_commit_callbacks):
    settings.SUBSCRIBE_MAX_PER_IP_PER_HOUR = 1
    with django_capture_on_commit_callbacks(execute=True):
        client.post("/subscribe", form(email="one@example.com"), REMOTE_ADDR="203.0.113.9")
        client.post("/subscribe", form(email="two@example.com"), REMOTE_ADDR="203.0.113.10")

    assert Subscriber.objects.count() == 2


def test_form_requires_a_csrf_token(page):
    from django.test import Client

    response = Client(enforce_csrf_checks=True).post("/subscribe", form())

    assert response.status_code == 403
    assert not Subscriber.objects.exists()


def test_suppressed_address_is_not_resubscribed_without_explicit_consent(page, django_capture_on_commit_callbacks):
    services.address_suppress(channel=Channel.EMAIL, address="carol@example.com", reason=SuppressionReason.COMPLAINT)

    with django_capture_on_commit_callbacks(execute=True):
        result = services.subscriber_subscribe(page=page, channel=Channel.EMAIL, address="carol@example.com", explicit_consent=False)

    assert result is None
    assert Suppression.objects.filter(address="carol@example.com").exists()
    assert not Subscriber.objects.exists() and not mail.outbox


def test_suppressed_address_is_resubscribed_by_the_form_with_its_explicit_consent(client, page, django_capture_on_commit_callbacks):
    services.address_suppress(channel=Channel.EMAIL, address="carol@example.com", reason=SuppressionReason.MANUAL)

    with django_capture_on_commit_callbacks(execute=True):
        client.post("/subscribe", form(email="carol@example.com"), REMOTE_ADDR="203.0.113.5")

    assert not Suppression.objects.filter(address="carol@example.com").exists()
    lifted = ConsentEvent.objects.get(action=ConsentAction.UNSUPPRESS)
    assert (lifted.source, lifted.ip_address) == (ConsentSource.PUBLIC_PAGE, "203.0.113.5")
    assert Subscriber.objects.get().status == SubscriberStatus.PENDING
    assert len(mail.outbox) == 1


@pytest.mark.parametrize("method", ["put", "delete", "patch"])
def test_subscribe_page_refuses_other_methods(client, page, method):
    assert getattr(client, method)("/subscribe").status_code == 405
