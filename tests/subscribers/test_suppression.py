"""The suppression list wins over every subscription; staff block and lift addresses, never edit them."""
from __future__ import annotations

import pytest
from django.urls import reverse

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
    address_digest,
)


def _url(name: str, *args) -> str:
    return reverse(f"admin:subscribers_{name}", args=args)


def _block(address: str = "ann@example.com", channel: str = Channel.EMAIL, reason: str = SuppressionReason.HARD_BOUNCE) -> Suppression:
    return services.address_suppress(channel=channel, address=address, reason=reason, source=ConsentSource.PROVIDER)


# --- suppression wins -------------------------------------------------------------------------


def test_a_suppressed_address_is_not_resubscribed_without_explicit_consent(page, pending_ann, django_capture_on_commit_callbacks):
    services.subscriber_unsubscribe(subscriber=pending_ann)
    _block()
    ConfirmationSend.objects.all().delete()

    with django_capture_on_commit_callbacks() as callbacks:
        result = services.subscriber_subscribe(page=page, channel=Channel.EMAIL, address="ann@example.com")

    assert result is None
    assert Subscriber.objects.get(pk=pending_ann.pk).status == SubscriberStatus.UNSUBSCRIBED
    assert callbacks == []
    assert Suppression.objects.filter(address="ann@example.com").exists()


def test_a_fresh_explicit_consent_lifts_the_suppression_and_the_ledger_says_so(page, pending_ann):
    services.subscriber_unsubscribe(subscriber=pending_ann)
    _block()

    result = services.subscriber_subscribe(
        page=page, channel=Channel.EMAIL, address="ann@example.com", explicit_consent=True, ip="198.51.100.7"
    )

    assert result == pending_ann and result.status == SubscriberStatus.PENDING
    assert not Suppression.objects.exists()
    lifted = ConsentEvent.objects.get(action=ConsentAction.UNSUPPRESS)
    assert (lifted.ip_address, lifted.details["by"]) == ("198.51.100.7", "fresh explicit consent")


def test_suppression_wins_over_a_confirmed_subscription(confirmed_bob):
    _block("bob@example.com", reason=SuppressionReason.COMPLAINT)

    assert Subscriber.objects.get(pk=confirmed_bob.pk).status == SubscriberStatus.CONFIRMED
    assert services.is_suppressed(confirmed_bob.channel, confirmed_bob.address)


def test_a_suppressed_pending_subscriber_cannot_confirm(pending_ann):
    _block()

    assert services.subscriber_confirm(subscriber=pending_ann) is False
    assert Subscriber.objects.get(pk=pending_ann.pk).status == SubscriberStatus.PENDING


def test_no_confirmation_is_resent_to_a_suppressed_address(pending_ann, django_capture_on_commit_callbacks):
    _block()
    ConfirmationSend.objects.all().delete()

    with django_capture_on_commit_callbacks() as callbacks:
        sent = services.subscriber_resend_confirmation(subscriber=pending_ann)

    assert sent is False and callbacks == []


def test_suppressing_records_an_event_for_each_subscription_of_the_address(page, pending_ann, dashboard):
    from tests import factories

    other_page = factories.make_page(name="Beta", url="https://beta.example.org")
    elsewhere = services.subscriber_create(page=other_page, channel=Channel.EMAIL, address="ann@example.com")

    _block()

    events = ConsentEvent.objects.filter(action=ConsentAction.SUPPRESS)
    assert {e.subscriber for e in events} == {pending_ann, elsewhere}
    assert {(e.source, e.details["reason"]) for e in events} == {(ConsentSource.PROVIDER, SuppressionReason.HARD_BOUNCE)}


def test_suppressing_an_address_nobody_subscribed_is_still_in_the_ledger(db):
    _block("stranger@example.com")

    event = ConsentEvent.objects.get(action=ConsentAction.SUPPRESS)
    assert (event.subscriber, event.address_digest) == (None, address_digest(Channel.EMAIL, "stranger@example.com"))


def test_lifting_a_suppression_does_not_confirm_anyone(pending_ann):
    suppression = _block()

    services.suppression_lift(suppression=suppression)

    assert Subscriber.objects.get(pk=pending_ann.pk).status == SubscriberStatus.PENDING
    assert not Suppression.objects.exists()


# --- the admin -----------------------------------------------------------------------------------


def test_staff_add_a_manual_block_with_the_address_normalised(desk, staff):
    response = desk.post(_url("suppression_add"), {"channel": Channel.EMAIL, "address": "  Mallory@Example.COM ", "note": "Ticket 99"})

    assert response.status_code == 302
    block = Suppression.objects.get()
    assert (block.address, block.reason, block.source, block.note) == ("mallory@example.com", SuppressionReason.MANUAL, ConsentSource.ADMIN, "Ticket 99")
    event = ConsentEvent.objects.get(action=ConsentAction.SUPPRESS)
    assert (event.actor, event.address_digest) == (staff, address_digest(Channel.EMAIL, "mallory@example.com"))


def test_a_phone_number_block_is_stored_in_e164(desk):
    desk.post(_url("suppression_add"), {"channel": Channel.SMS, "address": "020 7946 0958", "phone_country": "gb", "note": ""})

    assert Suppression.objects.get().address == "+442079460958"


def test_a_manual_block_of_a_malformed_address_is_refused(desk):
    response = desk.post(_url("suppression_add"), {"channel": Channel.EMAIL, "address": "mallory@", "note": ""})

    assert response.status_code == 200
    assert response.context["adminform"].form.errors["address"]
    assert not Suppression.objects.exists()


def test_blocking_an_address_twice_is_refused(desk):
    _block("mallory@example.com")

    response = desk.post(_url("suppression_add"), {"channel": Channel.EMAIL, "address": "MALLORY@example.com", "note": ""})

    assert response.context["adminform"].form.errors["address"] == ["This address is already on the suppression list."]


def test_the_list_filters_by_reason(desk):
    _block("a@example.com", reason=SuppressionReason.HARD_BOUNCE)
    complaint = _block("b@example.com", reason=SuppressionReason.COMPLAINT)

    response = desk.get(_url("suppression_changelist"), {"reason__exact": SuppressionReason.COMPLAINT})

    assert list(response.context["cl"].result_list) == [complaint]


def test_the_lift_action_goes_through_the_service(desk, staff):
    suppression = _block()

    response = desk.post(_url("suppression_changelist"), {"action": "lift_selected", "_selected_action": [suppression.pk]})

    assert response.status_code == 302
    assert not Suppression.objects.exists()
    lifted = ConsentEvent.objects.get(action=ConsentAction.UNSUPPRESS)
    assert (lifted.actor, lifted.details["reason"]) == (staff, SuppressionReason.HARD_BOUNCE)


def test_an_existing_suppression_cannot_be_edited(desk):
    suppression = _block()

    desk.post(_url("suppression_change", suppression.pk), {"channel": Channel.EMAIL, "address": "other@example.com", "reason": SuppressionReason.MANUAL})

    suppression.refresh_from_db()
    assert (suppression.address, suppression.reason) == ("ann@example.com", SuppressionReason.HARD_BOUNCE)


@pytest.mark.parametrize("method", ["get", "post"])
def test_a_suppression_cannot_be_deleted_only_lifted(desk, method):
    suppression = _block()

    response = getattr(desk, method)(_url("suppression_delete", suppression.pk), {"post": "yes"} if method == "post" else {})

    assert response.status_code == 403
    assert Suppression.objects.exists()


def test_the_lift_action_needs_the_delete_permission(client, django_user_model):
    from django.contrib.auth.models import Permission

    viewer = django_user_model.objects.create_user(username="val", password="x", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_suppression"))
    client.force_login(viewer)
    suppression = _block()

    client.post(_url("suppression_changelist"), {"action": "lift_selected", "_selected_action": [suppression.pk]})

    assert Suppression.objects.exists()
