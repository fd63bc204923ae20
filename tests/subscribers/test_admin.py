"""The subscriber desk: lists, filters and counts, adds and edits through the services, actions, the CRM upload."""
from __future__ import annotations

import csv
import io
import json
import socket

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from subscribers import selectors, services
from subscribers.models import (
    AccountContact,
    Channel,
    ConsentAction,
    ConsentEvent,
    ConsentSource,
    Organization,
    Subscriber,
    SubscriberStatus,
    SuppressionReason,
    Tier,
)

SLACK_URL = "https://hooks.slack.com/services/T0001/B0002/s3cr3tTokenValue"
LEDGER_INLINE = {"consent_events-TOTAL_FORMS": "0", "consent_events-INITIAL_FORMS": "0"}


def _url(name: str, *args) -> str:
    return reverse(f"admin:subscribers_{name}", args=args)


def _messages(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def _action(desk, action: str, *subscribers: Subscriber, follow: bool = False, **extra):
    data = {"action": action, "_selected_action": [s.pk for s in subscribers], **extra}
    return desk.post(_url("subscriber_changelist"), data, follow=follow)


def _csv_rows(response) -> list[list[str]]:
    return list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))


@pytest.fixture
def public_dns(monkeypatch):
    """Every host name resolves to one public address (no outside network in tests)."""

    def resolve(host, port, *args, **kwargs):
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("52.1.2.3", port))]

    monkeypatch.setattr(socket, "getaddrinfo", resolve)


@pytest.fixture
def slack(page, public_dns):
    return services.subscriber_create(page=page, channel=Channel.SLACK, address=SLACK_URL, skip_confirmation_reason="Set up by staff")


@pytest.fixture
def initech(page, us):
    return Organization.objects.create(page=page, name="Initech", external_id="CRM-7", tier=Tier.BUSINESS, region=us)


# --- pages render -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "subscriber_changelist", "subscriber_add", "subscriber_import", "organization_changelist", "organization_add",
        "consentevent_changelist", "suppression_changelist", "suppression_add",
    ],
)
def test_every_subscriber_desk_list_and_add_page_renders(desk, pending_ann, confirmed_bob, globex, name):
    assert desk.get(_url(name)).status_code == 200


def test_the_subscriber_change_page_renders(desk, confirmed_bob):
    assert desk.get(_url("subscriber_change", confirmed_bob.pk)).status_code == 200


# --- the subscriber list --------------------------------------------------------------------------


def test_the_list_never_shows_an_endpoint_url_in_full(desk, slack):
    response = desk.get(_url("subscriber_changelist"))

    assert "hooks.slack.com/…" in response.content.decode()
    assert "s3cr3tTokenValue" not in response.content.decode()


def test_the_list_shows_counts_by_state_over_the_filtered_list(desk, pending_ann, confirmed_bob):
    response = desk.get(_url("subscriber_changelist"), {"status": SubscriberStatus.CONFIRMED})

    assert response.context["state_counts"] == {"total": 1, "pending": 0, "confirmed": 1, "unsubscribed": 0, "suppressed": 0}


def test_counts_by_state_take_one_query(page, pending_ann, confirmed_bob, django_assert_num_queries):
    with django_assert_num_queries(1):
        counts = selectors.subscriber_counts(Subscriber.objects.filter(page=page))

    assert (counts["total"], counts["pending"], counts["confirmed"]) == (2, 1, 1)


def test_counts_single_out_confirmed_subscribers_whose_address_is_suppressed(page, confirmed_bob):
    services.address_suppress(channel=Channel.EMAIL, address="bob@example.com", reason=SuppressionReason.COMPLAINT)

    assert selectors.subscriber_counts(Subscriber.objects.all())["suppressed"] == 1


def test_search_finds_a_subscriber_by_organization_name(desk, page, globex, pending_ann):
    in_globex = services.subscriber_create(page=page, channel=Channel.EMAIL, address="it@globex.example", organization=globex)

    response = desk.get(_url("subscriber_changelist"), {"q": "Globex"})

    assert list(response.context["cl"].result_list) == [in_globex]


def test_search_finds_a_subscriber_by_public_id(desk, pending_ann, confirmed_bob):
    response = desk.get(_url("subscriber_changelist"), {"q": confirmed_bob.public_id})

    assert list(response.context["cl"].result_list) == [confirmed_bob]


def test_the_tier_filter_keeps_subscribers_of_accounts_in_that_tier(desk, page, globex, initech, pending_ann):
    enterprise = services.subscriber_create(page=page, channel=Channel.EMAIL, address="it@globex.example", organization=globex)
    services.subscriber_create(page=page, channel=Channel.EMAIL, address="it@initech.example", organization=initech)

    response = desk.get(_url("subscriber_changelist"), {"tier": Tier.ENTERPRISE})

    assert list(response.context["cl"].result_list) == [enterprise]


def test_the_component_filter_keeps_whoever_hears_about_it(desk, page, rest_api, webhooks, api_group, pending_ann):
    chose_group = services.subscriber_create(
        page=page, channel=Channel.EMAIL, address="group@example.com",
        preferences=services.Preferences(all_components=False, components=(api_group,)),
    )
    services.subscriber_create(
        page=page, channel=Channel.EMAIL, address="other@example.com",
        preferences=services.Preferences(all_components=False, components=(webhooks,)),
    )

    response = desk.get(_url("subscriber_changelist"), {"component": rest_api.pk})

    assert set(response.context["cl"].result_list) == {pending_ann, chose_group}


def test_the_region_filter_keeps_subscribers_of_that_region_and_of_every_region(desk, page, eu, us, pending_ann):
    in_eu = services.subscriber_create(
        page=page, channel=Channel.EMAIL, address="eu@example.com", preferences=services.Preferences(regions=(eu,))
    )
    services.subscriber_create(page=page, channel=Channel.EMAIL, address="us@example.com", preferences=services.Preferences(regions=(us,)))

    response = desk.get(_url("subscriber_changelist"), {"region": eu.pk})

    assert set(response.context["cl"].result_list) == {pending_ann, in_eu}


# --- add and change through the services ------------------------------------------------------------


def _add_form(page, **fields) -> dict:
    data = {
        "page": page.pk, "channel": Channel.EMAIL, "address": "Dana@Example.com", "phone_country": "", "organization": "",
        "all_components": "on", "notify_incidents": "on", "notify_maintenance": "on", "locale": "", "time_zone": "",
    }
    return {**data, **fields}


def test_adding_a_subscriber_goes_through_the_service_and_sends_a_confirmation(desk, page, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        response = desk.post(_url("subscriber_add"), _add_form(page))

    assert response.status_code == 302
    dana = Subscriber.objects.get(address="dana@example.com")
    assert dana.status == SubscriberStatus.PENDING
    assert len(callbacks) == 1
    assert dana.consent_events.get().source == ConsentSource.ADMIN


def test_adding_with_confirmation_skipped_records_the_reason(desk, page, staff):
    desk.post(_url("subscriber_add"), _add_form(page, skip_confirmation="on", skip_confirmation_reason="Asked by phone, ticket 4711"))

    dana = Subscriber.objects.get(address="dana@example.com")
    assert (dana.status, dana.confirmation_skipped_reason) == (SubscriberStatus.CONFIRMED, "Asked by phone, ticket 4711")
    skipped = dana.consent_events.get(action=ConsentAction.CONFIRMATION_SKIPPED)
    assert (skipped.actor, skipped.details["reason"]) == (staff, "Asked by phone, ticket 4711")


def test_skipping_confirmation_without_a_reason_is_refused(desk, page):
    response = desk.post(_url("subscriber_add"), _add_form(page, skip_confirmation="on"))

    assert response.status_code == 200
    assert response.context["adminform"].form.errors["skip_confirmation_reason"]
    assert not Subscriber.objects.exists()


def test_a_refusal_of_the_service_lands_on_the_address_field(desk, page, confirmed_bob):
    response = desk.post(_url("subscriber_add"), _add_form(page, address="BOB@example.com"))

    assert response.status_code == 200
    assert response.context["adminform"].form.errors["address"] == ["This address is already subscribed on this channel."]
    assert Subscriber.objects.count() == 1


def test_changing_preferences_goes_through_the_service_and_the_ledger(desk, confirmed_bob, dashboard, staff):
    data = {"organization": "", "components": [dashboard.pk], "notify_maintenance": "on", "locale": "fr", "time_zone": "Europe/Paris"}

    response = desk.post(_url("subscriber_change", confirmed_bob.pk), {**data, **LEDGER_INLINE})

    assert response.status_code == 302
    confirmed_bob.refresh_from_db()
    assert (confirmed_bob.all_components, confirmed_bob.notify_incidents, confirmed_bob.locale) == (False, False, "fr")
    assert list(confirmed_bob.components.all()) == [dashboard]
    event = confirmed_bob.consent_events.get(action=ConsentAction.PREFERENCES)
    assert (event.source, event.actor, event.details["components"]) == (ConsentSource.ADMIN, staff, [dashboard.public_id])


def test_preferences_the_service_refuses_are_shown_and_nothing_changes(desk, confirmed_bob):
    data = {"organization": "", "all_components": "on", "locale": "", "time_zone": ""}

    response = desk.post(_url("subscriber_change", confirmed_bob.pk), {**data, **LEDGER_INLINE})

    assert response.status_code == 200
    assert response.context["adminform"].form.errors["notify_incidents"] == ["Choose incidents, maintenance or both."]
    assert not confirmed_bob.consent_events.filter(action=ConsentAction.PREFERENCES).exists()


def test_the_change_form_links_a_subscriber_to_a_customer_account(desk, confirmed_bob, globex):
    data = {"organization": globex.pk, "all_components": "on", "notify_incidents": "on", "notify_maintenance": "on"}

    desk.post(_url("subscriber_change", confirmed_bob.pk), {**data, "locale": "", "time_zone": "", **LEDGER_INLINE})

    confirmed_bob.refresh_from_db()
    assert confirmed_bob.organization == globex


def test_deleting_a_subscriber_keeps_its_ledger(desk, confirmed_bob):
    response = desk.post(_url("subscriber_delete", confirmed_bob.pk), {"post": "yes"})

    assert response.status_code == 302
    assert not Subscriber.objects.exists()
    deleted = ConsentEvent.objects.get(action=ConsentAction.UNSUBSCRIBE)
    assert (deleted.subscriber, deleted.details) == (None, {"deleted": True})
    assert ConsentEvent.objects.count() == 3


# --- actions -----------------------------------------------------------------------------------------


def test_resend_confirmation_queues_one_for_a_pending_subscriber(desk, page, confirmed_bob, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks():
        dana = services.subscriber_create(page=page, channel=Channel.EMAIL, address="dana@example.com")
    services.ConfirmationSend.objects.all().delete()  # the first confirmation was sent yesterday

    with django_capture_on_commit_callbacks() as callbacks:
        response = _action(desk, "resend_confirmation", dana, confirmed_bob, follow=True)

    assert len(callbacks) == 1
    assert "Confirmation queued for 1 subscriber(s)." in _messages(response)


def test_resend_confirmation_says_when_the_daily_one_was_already_sent(desk, pending_ann):
    response = _action(desk, "resend_confirmation", pending_ann, follow=True)

    assert any(message.startswith("1 not sent") for message in _messages(response))


def test_the_unsubscribe_action_unsubscribes_through_the_service(desk, confirmed_bob, staff):
    _action(desk, "unsubscribe_selected", confirmed_bob)

    confirmed_bob.refresh_from_db()
    assert confirmed_bob.status == SubscriberStatus.UNSUBSCRIBED
    event = confirmed_bob.consent_events.get(action=ConsentAction.UNSUBSCRIBE)
    assert (event.source, event.actor) == (ConsentSource.ADMIN, staff)


def test_exporting_one_subscriber_downloads_their_data_as_json(desk, confirmed_bob):
    response = _action(desk, "export_personal_data", confirmed_bob)

    assert response["Content-Type"].startswith("application/json")
    assert f'subscriber-{confirmed_bob.public_id}.json' in response["Content-Disposition"]
    data = json.loads(response.content)
    assert (data["id"], data["address"]) == (confirmed_bob.public_id, "bob@example.com")
    assert confirmed_bob.consent_events.filter(action=ConsentAction.EXPORT).exists()


def test_exporting_personal_data_needs_exactly_one_subscriber(desk, pending_ann, confirmed_bob):
    response = _action(desk, "export_personal_data", pending_ann, confirmed_bob, follow=True)

    assert "Select exactly one subscriber to export their data." in _messages(response)
    assert not ConsentEvent.objects.filter(action=ConsentAction.EXPORT).exists()


def test_the_csv_export_streams_the_selection_without_endpoint_secrets(desk, slack, confirmed_bob, pending_ann):
    response = _action(desk, "export_csv", slack, confirmed_bob)

    assert response.streaming
    rows = _csv_rows(response)
    assert rows[0] == list(selectors.SUBSCRIBER_EXPORT_COLUMNS)
    assert sorted(row[2] for row in rows[1:]) == ["bob@example.com", "hooks.slack.com/…"]


def test_the_csv_export_defuses_spreadsheet_formulas(desk, page):
    hostile = Organization.objects.create(page=page, name="=HYPERLINK(\"http://evil\")")
    subscriber = services.subscriber_create(page=page, channel=Channel.EMAIL, address="x@example.com", organization=hostile)

    rows = _csv_rows(_action(desk, "export_csv", subscriber))

    assert rows[1][4] == "'=HYPERLINK(\"http://evil\")"


# --- the CRM upload --------------------------------------------------------------------------------


def _upload(desk, page, text: str, **fields):
    upload = SimpleUploadedFile("crm.csv", text.encode(), content_type="text/csv")
    return desk.post(_url("subscriber_import"), {"page": page.pk, "file": upload, **fields})


def test_the_upload_imports_a_good_file(desk, page, eu, staff):
    text = "organization_name,tier,region,address\nHooli,enterprise,eu,gavin@hooli.example\n"

    response = _upload(desk, page, text, skip_confirmation_reason="Contract clause 9")

    assert response.status_code == 200
    gavin = Subscriber.objects.get(address="gavin@hooli.example")
    assert (gavin.organization.name, gavin.status) == ("Hooli", SubscriberStatus.CONFIRMED)
    assert gavin.consent_events.get(action=ConsentAction.SUBSCRIBE).actor == staff
    assert "1 were created" in response.content.decode()


def test_the_upload_shows_row_errors_and_writes_nothing(desk, page):
    text = "address,tier,organization_name\ngood@example.com,,\nbad@,gold,Hooli\n"

    response = _upload(desk, page, text)

    content = response.content.decode()
    assert "row 3, column address" in content
    assert "row 3, column tier" in content
    assert not Subscriber.objects.exists() and not Organization.objects.exists()


def test_the_upload_dry_run_writes_nothing(desk, page):
    response = _upload(desk, page, "address\ngood@example.com\n", dry_run="on")

    assert "Dry run: nothing was written." in response.content.decode()
    assert not Subscriber.objects.exists()


def test_the_upload_needs_permission_to_add_subscribers(client, page, django_user_model):
    viewer = django_user_model.objects.create_user(username="val", password="x", is_staff=True)
    client.force_login(viewer)

    assert client.get(_url("subscriber_import")).status_code == 403


# --- customer accounts --------------------------------------------------------------------------------


def _organization_form(page, **fields) -> dict:
    data = {
        "page": page.pk, "name": "Hooli", "external_id": "CRM-9", "tier": Tier.ENTERPRISE, "region": "", "sla": "99.9%",
        "contacts-TOTAL_FORMS": "1", "contacts-INITIAL_FORMS": "0",
        "contacts-0-name": "Gavin Belson", "contacts-0-role": "CEO", "contacts-0-phone": "+1 650 253 0000", "contacts-0-email": "",
    }
    return {**data, **fields}


def test_an_account_is_added_with_its_contacts_phone_in_e164(desk, page):
    response = desk.post(_url("organization_add"), _organization_form(page))

    assert response.status_code == 302
    assert list(AccountContact.objects.values_list("organization__name", "phone")) == [("Hooli", "+16502530000")]


def test_an_invalid_contact_phone_is_refused_on_its_field(desk, page):
    response = desk.post(_url("organization_add"), _organization_form(page, **{"contacts-0-phone": "12345"}))

    assert response.status_code == 200
    assert response.context["inline_admin_formsets"][0].formset.errors[0]["phone"]
    assert not Organization.objects.exists()


def test_the_account_list_counts_subscribers_per_account(desk, page, globex):
    services.subscriber_create(page=page, channel=Channel.EMAIL, address="a@globex.example", organization=globex, skip_confirmation_reason="CRM")
    services.subscriber_create(page=page, channel=Channel.EMAIL, address="b@globex.example", organization=globex)

    response = desk.get(_url("organization_changelist"))

    (row,) = response.context["cl"].result_list
    assert (row.subscriber_count, row.confirmed_count) == (2, 1)


def test_the_tier_filter_of_the_account_list(desk, globex, initech):
    response = desk.get(_url("organization_changelist"), {"tier__exact": Tier.ENTERPRISE})

    assert list(response.context["cl"].result_list) == [globex]


def test_the_outreach_list_gives_enterprise_contacts_as_csv(desk, page, globex, initech):
    services.account_contact_upsert(organization=globex, name="Hank Scorpio", role="CEO", phone="+44 20 7946 0958")
    services.account_contact_upsert(organization=initech, name="Bill Lumbergh", phone="+44 20 7946 0959")

    response = desk.get(_url("organization_outreach"), {"page": page.pk})

    assert response["Content-Type"].startswith("text/csv")
    assert _csv_rows(response) == [list(selectors.OUTREACH_COLUMNS), ["Globex", "CRM-1", "eu", "99.95%", "Hank Scorpio", "CEO", "+442079460958", ""]]


def test_the_outreach_list_can_be_narrowed_to_a_region(desk, page, globex, us):
    services.account_contact_upsert(organization=globex, name="Hank Scorpio", phone="+44 20 7946 0958")

    response = desk.get(_url("organization_outreach"), {"page": page.pk, "region": us.pk})

    assert _csv_rows(response) == [list(selectors.OUTREACH_COLUMNS)]


def test_the_account_list_links_the_outreach_list(desk, page):
    response = desk.get(_url("organization_changelist"))

    assert f'{_url("organization_outreach")}?page={page.pk}' in response.content.decode()
