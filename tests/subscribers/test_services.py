"""The subscriber services on their own: creating, confirming, preferences, leaving, exporting, SMS replies."""
from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from incidents.models import Region
from subscribers import services
from subscribers.models import (
    AccountContact,
    Channel,
    ConfirmationSend,
    ConsentAction,
    ConsentSource,
    Organization,
    Subscriber,
    SubscriberStatus,
    SuppressionReason,
    Tier,
)
from tests import factories

# --- subscriber_create ------------------------------------------------------------------------


def test_create_without_a_reason_leaves_the_subscriber_pending_and_queues_a_confirmation(page, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        dana = services.subscriber_create(page=page, channel=Channel.EMAIL, address="dana@example.com")

    assert (dana.status, dana.confirmed_at, dana.confirmation_skipped_reason) == (SubscriberStatus.PENDING, None, "")
    assert len(callbacks) == 1 and ConfirmationSend.objects.count() == 1


def test_create_with_a_reason_confirms_without_a_message_and_records_why(page, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        dana = services.subscriber_create(page=page, channel=Channel.EMAIL, address="dana@example.com", skip_confirmation_reason="  Signed form  ")

    assert (dana.status, dana.confirmation_skipped_reason) == (SubscriberStatus.CONFIRMED, "Signed form")
    assert dana.confirmed_at is not None and callbacks == []
    assert dana.consent_events.get(action=ConsentAction.CONFIRMATION_SKIPPED).details == {"reason": "Signed form"}


def test_create_normalises_the_address(page):
    dana = services.subscriber_create(page=page, channel=Channel.SMS, address="020 7946 0958", phone_country="gb")

    assert (dana.address, dana.phone_country) == ("+442079460958", "GB")


def test_create_refuses_an_address_already_subscribed(page, confirmed_bob):
    with pytest.raises(ValidationError) as refused:
        services.subscriber_create(page=page, channel=Channel.EMAIL, address="Bob@Example.com")

    assert "address" in refused.value.message_dict


def test_create_refuses_a_suppressed_address(page):
    services.address_suppress(channel=Channel.EMAIL, address="dana@example.com", reason=SuppressionReason.HARD_BOUNCE)

    with pytest.raises(ValidationError) as refused:
        services.subscriber_create(page=page, channel=Channel.EMAIL, address="dana@example.com", skip_confirmation_reason="Staff")

    assert "suppression list" in refused.value.message_dict["address"][0]


def test_create_refuses_an_account_of_another_page(page, globex):
    other = factories.make_page(name="Beta", url="https://beta.example.org")

    with pytest.raises(ValidationError) as refused:
        services.subscriber_create(page=other, channel=Channel.EMAIL, address="dana@example.com", organization=globex)

    assert "organization" in refused.value.message_dict


# --- confirm ------------------------------------------------------------------------------------


def test_confirm_confirms_a_pending_subscriber_and_records_the_ip(pending_ann):
    assert services.subscriber_confirm(subscriber=pending_ann, ip="198.51.100.7") is True

    pending_ann.refresh_from_db()
    assert pending_ann.status == SubscriberStatus.CONFIRMED and pending_ann.confirmed_at is not None
    assert pending_ann.consent_events.get(action=ConsentAction.CONFIRM).ip_address == "198.51.100.7"


def test_confirming_twice_changes_nothing_the_second_time(pending_ann):
    services.subscriber_confirm(subscriber=pending_ann)

    assert services.subscriber_confirm(subscriber=pending_ann) is False
    assert pending_ann.consent_events.filter(action=ConsentAction.CONFIRM).count() == 1


def test_an_unsubscribed_subscriber_cannot_be_confirmed(pending_ann):
    services.subscriber_unsubscribe(subscriber=pending_ann)

    assert services.subscriber_confirm(subscriber=pending_ann) is False


# --- preferences ------------------------------------------------------------------------------------


@pytest.fixture
def elsewhere():
    """Another page, with a component and a region of its own."""
    other = factories.make_page(name="Beta", url="https://beta.example.org")
    return {
        "component": factories.make_component(page=other, name="Billing"),
        "region": Region.objects.create(page=other, code="ap", name="Asia Pacific"),
    }


@pytest.mark.parametrize(
    ("preferences", "field"),
    [
        (lambda other: services.Preferences(all_components=False), "components"),
        (lambda other: services.Preferences(all_components=False, components=(other["component"],)), "components"),
        (lambda other: services.Preferences(regions=(other["region"],)), "regions"),
        (lambda other: services.Preferences(notify_incidents=False, notify_maintenance=False), "notify_incidents"),
        (lambda other: services.Preferences(time_zone="Mars/Olympus"), "time_zone"),
    ],
)
def test_preferences_that_make_no_sense_are_refused_on_their_field(confirmed_bob, elsewhere, preferences, field):
    with pytest.raises(ValidationError) as refused:
        services.subscriber_update_preferences(subscriber=confirmed_bob, preferences=preferences(elsewhere))

    assert field in refused.value.message_dict
    assert not confirmed_bob.consent_events.filter(action=ConsentAction.PREFERENCES).exists()


def test_choosing_components_replaces_the_whole_page(confirmed_bob, rest_api, eu):
    services.subscriber_update_preferences(
        subscriber=confirmed_bob, preferences=services.Preferences(all_components=False, components=(rest_api,), regions=(eu,)),
        source=ConsentSource.API,
    )

    confirmed_bob.refresh_from_db()
    assert (confirmed_bob.all_components, list(confirmed_bob.components.all()), list(confirmed_bob.regions.all())) == (False, [rest_api], [eu])
    event = confirmed_bob.consent_events.get(action=ConsentAction.PREFERENCES)
    assert (event.source, event.details["components"], event.details["regions"]) == (ConsentSource.API, [rest_api.public_id], ["eu"])


# --- leaving --------------------------------------------------------------------------------------


def test_unsubscribing_twice_is_harmless(confirmed_bob):
    assert services.subscriber_unsubscribe(subscriber=confirmed_bob) is True
    assert services.subscriber_unsubscribe(subscriber=confirmed_bob) is False

    assert Subscriber.objects.get(pk=confirmed_bob.pk).status == SubscriberStatus.UNSUBSCRIBED
    assert confirmed_bob.consent_events.filter(action=ConsentAction.UNSUBSCRIBE).count() == 1


def test_suppression_wins_over_everything_the_subscriber_did(confirmed_bob):
    services.address_suppress(channel=Channel.EMAIL, address="bob@example.com", reason=SuppressionReason.COMPLAINT)

    assert services.is_suppressed(Channel.EMAIL, "bob@example.com")
    assert services.subscriber_resend_confirmation(subscriber=confirmed_bob) is False


def test_suppressing_an_address_twice_keeps_the_first_reason(db):
    services.address_suppress(channel=Channel.EMAIL, address="x@example.com", reason=SuppressionReason.HARD_BOUNCE)
    again = services.address_suppress(channel=Channel.EMAIL, address="x@example.com", reason=SuppressionReason.MANUAL)

    assert again.reason == SuppressionReason.HARD_BOUNCE


def test_an_unknown_suppression_reason_is_refused(db):
    with pytest.raises(ValidationError):
        services.address_suppress(channel=Channel.EMAIL, address="x@example.com", reason="boredom")


# --- export -----------------------------------------------------------------------------------------


def test_export_gives_everything_held_about_the_subscriber(confirmed_bob, globex, dashboard):
    services.subscriber_set_organization(subscriber=confirmed_bob, organization=globex)
    services.subscriber_update_preferences(subscriber=confirmed_bob, preferences=services.Preferences(all_components=False, components=(dashboard,)))

    data = services.subscriber_export(subscriber=confirmed_bob)

    assert (data["id"], data["address"], data["status"], data["organization"]) == (
        confirmed_bob.public_id, "bob@example.com", SubscriberStatus.CONFIRMED, "Globex",
    )
    assert data["components"] == ["Dashboard"]
    assert [event["action"] for event in data["consent_events"]] == [
        ConsentAction.SUBSCRIBE, ConsentAction.CONFIRMATION_SKIPPED, ConsentAction.PREFERENCES, ConsentAction.EXPORT,
    ]


def test_an_export_is_itself_recorded_in_the_ledger(confirmed_bob, staff):
    services.subscriber_export(subscriber=confirmed_bob, actor=staff)

    assert confirmed_bob.consent_events.get(action=ConsentAction.EXPORT).actor == staff


# --- SMS replies ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "keyword"),
    [
        ("STOP", "stop"), ("stop", "stop"), ("  Stop. ", "stop"), ("stop all", "stop"), ("STOP please now", "stop"),
        ("unsubscribe", "stop"), ("Cancel", "stop"), ("opt-out", "stop"), ("QUIT", "stop"),
        ("START", "start"), ("unstop", "start"), ("Yes", "start"), ("start again please", "start"),
        ("HELP", "help"), ("help me", "help"), ("info", "help"),
        ("", None), ("   ", None), ("thanks!", None), ("please stop sending these", None), ("stop it right now please", None),
    ],
)
def test_classify_sms_reply(body, keyword):
    assert services.classify_sms_reply(body) == keyword


# --- admin and import helpers -------------------------------------------------------------------------


def test_organization_upsert_creates_a_missing_account(page, eu):
    account, outcome = services.organization_upsert(page=page, name="Hooli", external_id="CRM-9", region=eu)

    assert outcome == "created"
    assert (account.name, account.external_id, account.tier, account.region) == ("Hooli", "CRM-9", Tier.STANDARD, eu)


def test_organization_upsert_leaves_an_account_alone_when_nothing_changed(page, globex):
    account, outcome = services.organization_upsert(page=page, name="Globex", external_id="CRM-1", tier=Tier.ENTERPRISE)

    assert (account, outcome) == (globex, "unchanged")


def test_organization_upsert_adopts_an_account_entered_by_hand(page):
    manual = Organization.objects.create(page=page, name="Hooli")

    account, outcome = services.organization_upsert(page=page, name="HOOLI", external_id="CRM-9")

    assert (account, outcome, account.external_id) == (manual, "updated", "CRM-9")


def test_organization_upsert_needs_a_name_for_a_new_account(page):
    with pytest.raises(ValidationError) as refused:
        services.organization_upsert(page=page, external_id="CRM-404")

    assert "name" in refused.value.message_dict


def test_an_account_region_must_be_of_its_page(page, elsewhere):
    with pytest.raises(ValidationError) as refused:
        services.organization_save(organization=Organization(page=page, name="Hooli", region=elsewhere["region"]))

    assert "region" in refused.value.message_dict


def test_account_contact_upsert_finds_the_contact_by_phone(globex):
    services.account_contact_upsert(organization=globex, name="Hank", phone="+44 20 7946 0958")

    contact, outcome = services.account_contact_upsert(organization=globex, name="Hank Scorpio", role="CEO", phone="020 7946 0958", phone_country="GB")

    assert outcome == "updated"
    assert list(AccountContact.objects.values_list("name", "role", "phone")) == [("Hank Scorpio", "CEO", "+442079460958")]


def test_account_contact_save_refuses_a_number_that_is_not_one(globex):
    with pytest.raises(ValidationError) as refused:
        services.account_contact_save(contact=AccountContact(organization=globex, name="Hank", phone="12345"))

    assert "phone" in refused.value.message_dict


def test_a_subscriber_cannot_join_an_account_of_another_page(confirmed_bob, elsewhere):
    beta = elsewhere["component"].page
    other_account = Organization.objects.create(page=beta, name="Initech")

    with pytest.raises(ValidationError):
        services.subscriber_set_organization(subscriber=confirmed_bob, organization=other_account)
