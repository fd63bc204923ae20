"""The consent ledger: every consent step recorded with time, source, text version and IP; read only in the admin."""
from __future__ import annotations

import pytest
from django.urls import reverse

from subscribers import services
from subscribers.models import Channel, ConsentAction, ConsentEvent, ConsentSource, SuppressionReason


def _url(name: str, *args) -> str:
    return reverse(f"admin:subscribers_{name}", args=args)


# --- what is recorded ------------------------------------------------------------------------


def test_a_public_subscribe_records_source_ip_and_consent_text_version(page):
    subscriber = services.subscriber_subscribe(page=page, channel=Channel.EMAIL, address="ann@example.com", ip="198.51.100.7")

    event = subscriber.consent_events.get()
    assert (event.action, event.source, event.ip_address, event.consent_text_version) == (
        ConsentAction.SUBSCRIBE, ConsentSource.PUBLIC_PAGE, "198.51.100.7", services.CONSENT_TEXT_VERSION,
    )
    assert event.created is not None


def test_each_consent_step_adds_one_event_in_order(page, dashboard):
    ann = services.subscriber_subscribe(page=page, channel=Channel.EMAIL, address="ann@example.com")
    services.subscriber_confirm(subscriber=ann, ip="198.51.100.7")
    services.subscriber_update_preferences(
        subscriber=ann, preferences=services.Preferences(all_components=False, components=(dashboard,)), source=ConsentSource.API,
    )
    services.subscriber_unsubscribe(subscriber=ann, source=ConsentSource.EMAIL_CLIENT)
    services.address_suppress(channel=Channel.EMAIL, address="ann@example.com", reason=SuppressionReason.COMPLAINT, source=ConsentSource.PROVIDER)

    steps = list(ann.consent_events.order_by("created", "pk").values_list("action", "source"))
    assert steps == [
        (ConsentAction.SUBSCRIBE, ConsentSource.PUBLIC_PAGE),
        (ConsentAction.CONFIRM, ConsentSource.PUBLIC_PAGE),
        (ConsentAction.PREFERENCES, ConsentSource.API),
        (ConsentAction.UNSUBSCRIBE, ConsentSource.EMAIL_CLIENT),
        (ConsentAction.SUPPRESS, ConsentSource.PROVIDER),
    ]


def test_only_consent_steps_carry_the_consent_text_version(pending_ann):
    services.subscriber_unsubscribe(subscriber=pending_ann)

    versions = dict(pending_ann.consent_events.values_list("action", "consent_text_version"))
    assert versions == {ConsentAction.SUBSCRIBE: services.CONSENT_TEXT_VERSION, ConsentAction.UNSUBSCRIBE: ""}


# --- the ledger in the admin ----------------------------------------------------------------------


def test_the_ledger_list_shows_events_to_staff(desk, pending_ann):
    response = desk.get(_url("consentevent_changelist"))

    assert list(response.context["cl"].result_list) == list(ConsentEvent.objects.all())
    assert pending_ann.public_id in response.content.decode()


def test_nobody_may_add_to_the_ledger_in_the_admin_not_even_a_superuser(desk, staff):
    assert staff.is_superuser
    assert desk.get(_url("consentevent_add")).status_code == 403


def test_nobody_may_change_a_ledger_event_in_the_admin(desk, pending_ann):
    event = pending_ann.consent_events.get()

    desk.post(_url("consentevent_change", event.pk), {"action": ConsentAction.CONFIRM, "source": ConsentSource.ADMIN})

    event.refresh_from_db()
    assert (event.action, event.source) == (ConsentAction.SUBSCRIBE, ConsentSource.PUBLIC_PAGE)


@pytest.mark.parametrize("method", ["get", "post"])
def test_nobody_may_delete_a_ledger_event_in_the_admin(desk, pending_ann, method):
    event = pending_ann.consent_events.get()

    response = getattr(desk, method)(_url("consentevent_delete", event.pk), {"post": "yes"} if method == "post" else {})

    assert response.status_code == 403
    assert ConsentEvent.objects.filter(pk=event.pk).exists()


@pytest.mark.parametrize(
    ("parameter", "value", "expected"),
    [
        ("action__exact", ConsentAction.CONFIRMATION_SKIPPED, {ConsentAction.CONFIRMATION_SKIPPED}),
        ("source__exact", ConsentSource.PUBLIC_PAGE, {ConsentAction.SUBSCRIBE}),
        ("channel__exact", Channel.SMS, set()),
    ],
)
def test_the_ledger_filters_by_action_source_and_channel(desk, pending_ann, confirmed_bob, parameter, value, expected):
    response = desk.get(_url("consentevent_changelist"), {parameter: value})

    assert {event.action for event in response.context["cl"].result_list} == expected


def test_the_ledger_is_searchable_by_subscriber_public_id(desk, pending_ann, confirmed_bob):
    response = desk.get(_url("consentevent_changelist"), {"q": confirmed_bob.public_id})

    assert {event.subscriber for event in response.context["cl"].result_list} == {confirmed_bob}


def test_the_subscriber_page_shows_its_ledger(desk, confirmed_bob):
    response = desk.get(_url("subscriber_change", confirmed_bob.pk))

    (ledger,) = response.context["inline_admin_formsets"]
    assert {form.original for form in ledger} == set(confirmed_bob.consent_events.all())
    assert "Imported from the old tool" in response.content.decode()


def test_the_ledger_on_the_subscriber_page_cannot_be_written_to(desk, confirmed_bob):
    before = ConsentEvent.objects.count()
    forged = {
        "consent_events-TOTAL_FORMS": "1", "consent_events-INITIAL_FORMS": "0",
        "consent_events-0-action": ConsentAction.CONFIRM, "consent_events-0-source": ConsentSource.PUBLIC_PAGE,
        "consent_events-0-ip_address": "203.0.113.9",
    }
    data = {"organization": "", "all_components": "on", "notify_incidents": "on", "notify_maintenance": "on", "locale": "", "time_zone": ""}

    desk.post(_url("subscriber_change", confirmed_bob.pk), {**data, **forged})

    assert not ConsentEvent.objects.filter(ip_address="203.0.113.9").exists()
    assert ConsentEvent.objects.count() == before + 1  # the preferences event of the save itself
