"""Erasure: personal data leaves the live tables; the ledger keeps proof of consent by digest only."""
from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from subscribers import services
from subscribers.models import Channel, ConsentAction, ConsentEvent, Subscriber, SubscriberStatus, address_digest


def _url(name: str, *args) -> str:
    return reverse(f"admin:subscribers_{name}", args=args)


@pytest.fixture
def carol(page, globex, eu, dashboard):
    """An SMS subscriber with everything filled in, who confirmed from an IP address."""
    carol = services.subscriber_subscribe(
        page=page, channel=Channel.SMS, address="020 7946 0958", phone_country="GB", ip="198.51.100.7",
        preferences=services.Preferences(all_components=False, components=(dashboard,), regions=(eu,), locale="en", time_zone="Europe/London"),
    )
    services.subscriber_confirm(subscriber=carol, ip="198.51.100.7")
    services.subscriber_set_organization(subscriber=carol, organization=globex)
    return Subscriber.objects.get(pk=carol.pk)


def _erase_action(desk, subscriber, **extra):
    data = {"action": "erase_personal_data", "_selected_action": [subscriber.pk], **extra}
    return desk.post(_url("subscriber_changelist"), data)


def test_erasure_removes_the_personal_fields(carol):
    services.subscriber_erase(subscriber=carol)

    carol.refresh_from_db()
    assert "7946" not in carol.address
    assert (carol.phone_country, carol.locale, carol.time_zone, carol.organization) == ("", "", "", None)
    assert list(carol.components.all()) == [] and list(carol.regions.all()) == []
    assert carol.erased_at is not None


def test_an_erased_subscriber_hears_nothing_more(carol):
    services.subscriber_erase(subscriber=carol)

    carol.refresh_from_db()
    assert carol.status == SubscriberStatus.UNSUBSCRIBED


def test_erasure_removes_ip_addresses_from_the_ledger(carol):
    services.subscriber_erase(subscriber=carol)

    assert set(carol.consent_events.values_list("ip_address", flat=True)) == {None}


def test_the_ledger_keeps_its_events_with_the_address_digest_as_proof_of_consent(carol):
    digest = address_digest(Channel.SMS, "+442079460958")
    before = set(carol.consent_events.values_list("action", flat=True))

    services.subscriber_erase(subscriber=carol)

    events = ConsentEvent.objects.filter(subscriber=carol)
    assert set(events.values_list("action", flat=True)) == before | {ConsentAction.ERASE}
    assert set(events.values_list("address_digest", flat=True)) == {digest}


def test_an_erased_subscriber_shows_as_erased(carol):
    services.subscriber_erase(subscriber=carol)

    carol.refresh_from_db()
    assert carol.display_address == "(erased)"


def test_the_export_of_an_erased_subscriber_has_no_address(carol):
    services.subscriber_erase(subscriber=carol)

    data = services.subscriber_export(subscriber=carol)

    assert (data["address"], data["organization"], data["regions"], data["components"]) == (None, None, [], [])
    assert {event["ip"] for event in data["consent_events"]} == {None}


def test_an_erased_subscription_cannot_get_new_preferences(carol):
    services.subscriber_erase(subscriber=carol)

    with pytest.raises(ValidationError):
        services.subscriber_update_preferences(subscriber=carol, preferences=services.Preferences(locale="de"))


def test_the_address_can_subscribe_again_after_an_erasure(page, carol):
    services.subscriber_erase(subscriber=carol)

    again = services.subscriber_subscribe(page=page, channel=Channel.SMS, address="+44 20 7946 0958")

    assert again is not None and again.pk != carol.pk


# --- the admin action -------------------------------------------------------------------------


def test_the_erase_action_asks_for_confirmation_first(desk, carol):
    response = _erase_action(desk, carol)

    assert response.status_code == 200
    assert "Erase personal data?" in response.content.decode()
    carol.refresh_from_db()
    assert carol.erased_at is None


def test_confirming_the_erase_action_erases(desk, carol, staff):
    response = _erase_action(desk, carol, post="yes")

    assert response.status_code == 302
    carol.refresh_from_db()
    assert carol.erased_at is not None
    assert carol.consent_events.get(action=ConsentAction.ERASE).actor == staff


def test_erasing_an_erased_subscriber_again_changes_nothing(desk, carol):
    services.subscriber_erase(subscriber=carol)
    carol.refresh_from_db()
    address = carol.address

    _erase_action(desk, carol, post="yes")

    carol.refresh_from_db()
    assert carol.address == address
    assert carol.consent_events.filter(action=ConsentAction.ERASE).count() == 1


def test_the_erase_action_needs_the_delete_permission(client, django_user_model, carol):
    from django.contrib.auth.models import Permission

    clerk = django_user_model.objects.create_user(username="cal", password="x", is_staff=True)
    clerk.user_permissions.add(*Permission.objects.filter(codename__in=["view_subscriber", "change_subscriber"]))
    client.force_login(clerk)

    _erase_action(client, carol, post="yes")

    carol.refresh_from_db()
    assert carol.erased_at is None
