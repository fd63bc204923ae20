"""The management API for subscribers: /api/v1/pages/<page>/subscribers with read/write API keys."""
from __future__ import annotations

import json

import pytest
from django.utils import timezone

from subscribers import services
from subscribers.models import (
    ApiToken,
    Channel,
    ConfirmationSend,
    ConsentAction,
    ConsentEvent,
    ConsentSource,
    Subscriber,
    SubscriberStatus,
)
from tests import factories

V1_KEYS = [
    "id", "mode", "email", "endpoint", "phone_number", "phone_country", "display_phone_number",
    "skip_confirmation_notification", "quarantined_at", "purge_at", "components", "page_access_user_id", "created_at",
]


def _key(user, scope: str) -> str:
    token, key = services.api_token_create(user=user, name=f"{scope} key", scopes=scope)
    # Marked as just used, so requests skip the once-a-minute bookkeeping write (query counts stay exact).
    ApiToken.objects.filter(pk=token.pk).update(last_used_at=timezone.now())
    return key


@pytest.fixture
def write_key(staff) -> str:
    return _key(staff, ApiToken.Scope.WRITE)


@pytest.fixture
def read_key(staff) -> str:
    return _key(staff, ApiToken.Scope.READ)


@pytest.fixture
def base(page) -> str:
    return f"/api/v1/pages/{page.public_id}/subscribers"


def _auth(key: str) -> dict:
    return {"HTTP_AUTHORIZATION": f"OAuth {key}"}


def _post(client, url: str, key: str, body: dict):
    return client.post(url, json.dumps(body), content_type="application/json", **_auth(key))


def _patch(client, url: str, key: str, body: dict):
    return client.patch(url, json.dumps(body), content_type="application/json", **_auth(key))


def _email(page, address: str, *, skip: str = "Signed the enterprise contract", **kwargs) -> Subscriber:
    return services.subscriber_create(page=page, channel=Channel.EMAIL, address=address, skip_confirmation_reason=skip, **kwargs)


# --- access ---------------------------------------------------------------------------------------


def test_no_key_is_401_with_www_authenticate(client, base):
    response = client.get(base)

    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert "detail" in response.json()


def test_read_key_lists_subscribers(client, base, read_key, confirmed_bob):
    response = client.get(base, **_auth(read_key))

    assert response.status_code == 200
    assert [s["id"] for s in response.json()] == [confirmed_bob.public_id]


def test_read_key_cannot_create(client, base, read_key):
    response = _post(client, base, read_key, {"subscriber": {"email": "ann@example.com"}})

    assert response.status_code == 403
    assert "write" in response.json()["detail"]
    assert not Subscriber.objects.exists()


def test_a_signed_in_staff_session_does_not_open_the_api(client, base, staff):
    client.force_login(staff)

    response = client.get(base)

    assert response.status_code == 401


def test_unknown_page_is_404_json(client, read_key, page):
    response = client.get("/api/v1/pages/nosuchpage12/subscribers", **_auth(read_key))

    assert response.status_code == 404
    assert "detail" in response.json()


@pytest.mark.parametrize("suffix", ["", ".json"])
def test_paths_work_with_and_without_the_json_suffix(client, base, read_key, confirmed_bob, suffix):
    listing = client.get(f"{base}{suffix}", **_auth(read_key))
    detail = client.get(f"{base}/{confirmed_bob.public_id}{suffix}", **_auth(read_key))

    assert (listing.status_code, detail.status_code) == (200, 200)


# --- create ---------------------------------------------------------------------------------------


def test_write_key_creates_a_pending_subscriber_and_queues_a_confirmation(client, base, write_key, staff):
    response = _post(client, base, write_key, {"subscriber": {"email": "Ann@Example.com"}})

    assert response.status_code == 201
    body = response.json()
    assert (body["mode"], body["email"], body["state"], body["skip_confirmation_notification"]) == (
        "email", "ann@example.com", "pending", False,
    )
    assert ConfirmationSend.objects.count() == 1
    event = ConsentEvent.objects.get(action=ConsentAction.SUBSCRIBE)
    assert (event.source, event.actor) == (ConsentSource.API, staff)


def test_write_key_creates_a_confirmed_subscriber_when_skipping_with_a_reason(client, base, write_key):
    response = _post(client, base, write_key, {"subscriber": {
        "email": "ann@example.com", "skip_confirmation_notification": True, "skip_confirmation_reason": "Signed order form",
    }})

    assert response.status_code == 201
    assert (response.json()["state"], response.json()["skip_confirmation_notification"]) == ("confirmed", True)
    event = ConsentEvent.objects.get(action=ConsentAction.CONFIRMATION_SKIPPED)
    assert (event.source, event.details) == (ConsentSource.API, {"reason": "Signed order form"})
    assert not ConfirmationSend.objects.exists()


def test_skipping_confirmation_without_a_reason_names_the_reason_field(client, base, write_key):
    response = _post(client, base, write_key, {"subscriber": {"email": "ann@example.com", "skip_confirmation_notification": True}})

    assert response.status_code == 400
    assert list(response.json()["errors"]) == ["subscriber[skip_confirmation_reason]"]
    assert not Subscriber.objects.exists()


def test_create_accepts_form_encoded_fields(client, base, write_key, rest_api):
    response = client.post(
        base, {"subscriber[phone_number]": "+44 20 7946 0958", "subscriber[component_ids][]": [rest_api.public_id]}, **_auth(write_key)
    )

    assert response.status_code == 201
    body = response.json()
    assert (body["mode"], body["phone_number"], body["phone_country"], body["components"]) == (
        "sms", "+442079460958", "GB", [rest_api.public_id],
    )
    assert body["display_phone_number"] == "+44 20 7946 0958"


def test_create_with_a_bad_email_names_the_field(client, base, write_key):
    response = _post(client, base, write_key, {"subscriber": {"email": "ann-at-example"}})

    assert response.status_code == 400
    assert response.json() == {"errors": {"subscriber[email]": ["Enter a valid email address."]}}


def test_create_of_an_existing_address_names_the_field(client, base, write_key, confirmed_bob):
    response = _post(client, base, write_key, {"subscriber": {"email": "bob@example.com"}})

    assert response.status_code == 400
    assert list(response.json()["errors"]) == ["subscriber[email]"]


def test_create_with_an_unknown_region_names_the_field(client, base, write_key):
    response = _post(client, base, write_key, {"subscriber": {"email": "ann@example.com", "regions": ["mars"]}})

    assert response.status_code == 400
    assert list(response.json()["errors"]) == ["subscriber[regions][]"]


def test_create_puts_the_subscriber_in_a_customer_account(client, base, write_key, globex, eu):
    response = _post(client, base, write_key, {"subscriber": {
        "email": "ops@globex.example.org", "organization": globex.public_id, "regions": ["eu"],
    }})

    assert response.status_code == 201
    assert (response.json()["organization"], response.json()["regions"]) == (globex.public_id, ["eu"])


# --- read -----------------------------------------------------------------------------------------


def test_retrieve_answers_the_v1_subscriber_object_and_our_fields(client, base, read_key, confirmed_bob):
    response = client.get(f"{base}/{confirmed_bob.public_id}", **_auth(read_key))

    assert response.status_code == 200
    body = response.json()
    assert list(body)[: len(V1_KEYS)] == V1_KEYS
    assert {"state", "organization", "regions"} <= body.keys()
    assert (body["email"], body["endpoint"], body["phone_number"], body["page_access_user_id"]) == ("bob@example.com", None, None, None)


def test_unknown_subscriber_is_404_json(client, base, read_key):
    response = client.get(f"{base}/nosuchthing1", **_auth(read_key))

    assert response.status_code == 404
    assert "detail" in response.json()


def test_subscriber_of_another_page_is_404(client, read_key, page, confirmed_bob):
    other = factories.make_page(name="Other", url="https://other.example.org")

    response = client.get(f"/api/v1/pages/{other.public_id}/subscribers/{confirmed_bob.public_id}", **_auth(read_key))

    assert response.status_code == 404


def test_filter_q_matches_part_of_the_address(client, base, read_key, page):
    _email(page, "ann@example.com")
    bob = _email(page, "bob@globex.example.org")

    response = client.get(base, {"q": "GLOBEX"}, **_auth(read_key))

    assert [s["id"] for s in response.json()] == [bob.public_id]


def test_filter_type_selects_a_channel(client, base, read_key, page):
    _email(page, "ann@example.com")
    sms = services.subscriber_create(page=page, channel=Channel.SMS, address="+442079460958", skip_confirmation_reason="Contract")

    response = client.get(base, {"type": "sms"}, **_auth(read_key))

    assert [s["id"] for s in response.json()] == [sms.public_id]


def test_filter_state_selects_a_state(client, base, read_key, pending_ann, confirmed_bob):
    pending = client.get(base, {"state": "pending"}, **_auth(read_key)).json()
    active = client.get(base, {"state": "active"}, **_auth(read_key)).json()

    assert [s["id"] for s in pending] == [pending_ann.public_id]
    assert [s["id"] for s in active] == [confirmed_bob.public_id]


def test_unknown_filter_value_is_400_naming_the_parameter(client, base, read_key):
    response = client.get(base, {"type": "pigeon"}, **_auth(read_key))

    assert response.status_code == 400
    assert list(response.json()["errors"]) == ["type"]


def test_limit_above_100_is_refused(client, base, read_key):
    response = client.get(base, {"limit": 101}, **_auth(read_key))

    assert response.status_code == 400
    assert list(response.json()["errors"]) == ["limit"]


def test_pages_are_stable_and_do_not_overlap(client, base, read_key, page):
    created = [_email(page, f"user{i}@example.com") for i in range(5)]
    # Same creation time for all: the id must break the tie.
    Subscriber.objects.update(created=timezone.now())

    seen = []
    for number in (1, 2, 3):
        seen += [s["id"] for s in client.get(base, {"limit": 2, "page": number}, **_auth(read_key)).json()]

    assert sorted(seen) == sorted(s.public_id for s in created)
    assert seen == [s.public_id for s in sorted(created, key=lambda s: s.pk, reverse=True)]


def test_list_queries_do_not_grow_with_the_number_of_subscribers(client, base, read_key, page, rest_api, eu, globex, django_assert_num_queries):
    def add(count: int, start: int) -> None:
        for i in range(start, start + count):
            subscriber = _email(page, f"user{i}@example.com", organization=globex)
            subscriber.components.add(rest_api)
            subscriber.regions.add(eu)

    add(3, 0)
    # token, page, subscribers (+ account, incident joined), components, regions
    with django_assert_num_queries(5):
        assert len(client.get(base, **_auth(read_key)).json()) == 3
    add(27, 3)
    with django_assert_num_queries(5):
        assert len(client.get(base, **_auth(read_key)).json()) == 30


# --- update and delete ----------------------------------------------------------------------------


def test_patch_changes_preferences_and_writes_a_ledger_event(client, base, write_key, confirmed_bob, rest_api, eu, staff):
    response = _patch(client, f"{base}/{confirmed_bob.public_id}", write_key, {"subscriber": {
        "component_ids": [rest_api.public_id], "notify_maintenance": False, "regions": ["eu"],
        "locale": "nl", "time_zone": "Europe/Amsterdam",
    }})

    assert response.status_code == 200
    body = response.json()
    assert (body["components"], body["all_components"], body["notify_maintenance"], body["regions"]) == (
        [rest_api.public_id], False, False, ["eu"],
    )
    assert (body["locale"], body["time_zone"]) == ("nl", "Europe/Amsterdam")
    event = ConsentEvent.objects.get(action=ConsentAction.PREFERENCES)
    assert (event.subscriber, event.source, event.actor) == (confirmed_bob, ConsentSource.API, staff)


def test_patch_leaves_fields_not_sent_alone(client, base, write_key, confirmed_bob, rest_api):
    _patch(client, f"{base}/{confirmed_bob.public_id}", write_key, {"subscriber": {"component_ids": [rest_api.public_id]}})

    body = _patch(client, f"{base}/{confirmed_bob.public_id}", write_key, {"subscriber": {"notify_incidents": False}}).json()

    assert (body["components"], body["notify_incidents"], body["notify_maintenance"]) == ([rest_api.public_id], False, True)


def test_patch_with_an_unknown_time_zone_names_the_field(client, base, write_key, confirmed_bob):
    response = _patch(client, f"{base}/{confirmed_bob.public_id}", write_key, {"subscriber": {"time_zone": "Mars/Olympus"}})

    assert response.status_code == 400
    assert list(response.json()["errors"]) == ["subscriber[time_zone]"]


def test_patch_turning_off_both_incidents_and_maintenance_is_refused(client, base, write_key, confirmed_bob):
    response = _patch(client, f"{base}/{confirmed_bob.public_id}", write_key, {
        "subscriber": {"notify_incidents": False, "notify_maintenance": False},
    })

    assert response.status_code == 400
    assert list(response.json()["errors"]) == ["subscriber[notify_incidents]"]


def test_read_key_cannot_patch(client, base, read_key, confirmed_bob):
    response = _patch(client, f"{base}/{confirmed_bob.public_id}", read_key, {"subscriber": {"notify_incidents": False}})

    assert response.status_code == 403


def test_delete_unsubscribes_and_keeps_the_row(client, base, write_key, confirmed_bob, staff):
    response = client.delete(f"{base}/{confirmed_bob.public_id}", **_auth(write_key))

    assert response.status_code == 200
    assert response.json()["state"] == "unsubscribed"
    confirmed_bob.refresh_from_db()
    assert confirmed_bob.status == SubscriberStatus.UNSUBSCRIBED
    event = ConsentEvent.objects.get(action=ConsentAction.UNSUBSCRIBE)
    assert (event.source, event.actor) == (ConsentSource.API, staff)


# --- counts ---------------------------------------------------------------------------------------


def test_count_answers_the_total_and_honours_filters(client, base, read_key, pending_ann, confirmed_bob):
    total = client.get(f"{base}/count", **_auth(read_key)).json()
    pending = client.get(f"{base}/count.json", {"state": "pending"}, **_auth(read_key)).json()

    assert (total, pending) == ({"count": 2}, {"count": 1})


def test_histogram_counts_states_overall_and_per_channel(client, base, read_key, page, pending_ann, confirmed_bob):
    sms = services.subscriber_create(page=page, channel=Channel.SMS, address="+442079460958", skip_confirmation_reason="Contract")
    services.subscriber_unsubscribe(subscriber=sms)

    body = client.get(f"{base}/histogram_by_state", **_auth(read_key)).json()

    assert (body["pending"], body["confirmed"], body["unsubscribed"]) == (1, 1, 1)
    assert body["channels"]["email"] == {"pending": 1, "confirmed": 1, "unsubscribed": 0}
    assert body["channels"]["sms"] == {"pending": 0, "confirmed": 0, "unsubscribed": 1}
    assert body["channels"]["webhook"] == {"pending": 0, "confirmed": 0, "unsubscribed": 0}
