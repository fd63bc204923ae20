"""Cascades (child incidents notify nobody on their own) and the subscriber's language and time zone."""
from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.core.exceptions import ValidationError

from incidents import services as incident_services
from notifications import services
from notifications.models import ArchivedMessage, Delivery, Dispatch
from notifications.rendering import dispatch_context, message_locale, render
from tests import factories
from tests.notifications.ledger_helpers import confirmed

pytestmark = pytest.mark.django_db


@pytest.fixture
def parent(page):
    return factories.open_incident(page=page, name="Database failover", severity="P1")


# --- cascades ----------------------------------------------------------------------------------


def test_a_child_incident_is_linked_to_its_parent(page, parent):
    child = factories.open_incident(page=page, name="Slow dashboard", severity="P2", parent=parent)
    assert child.parent == parent
    assert list(parent.children.all()) == [child]


def test_a_child_incident_creates_no_dispatch_for_any_of_its_updates(page, parent):
    confirmed(page)
    child = factories.open_incident(page=page, name="Slow dashboard", severity="P1", parent=parent)
    incident_services.incident_post_update(incident=child, status="identified", body="Caused by the failover.")
    incident_services.incident_resolve(incident=child, body="Recovered.")
    assert not Dispatch.objects.filter(incident=child).exists()
    assert Dispatch.objects.filter(incident=parent).count() == 1


def test_a_child_incident_still_publishes_its_updates_on_the_page(page, parent):
    child = factories.open_incident(page=page, name="Slow dashboard", severity="P1", parent=parent)
    assert ArchivedMessage.objects.filter(kind="page_update", incident=child).count() == 1


def test_the_parent_thread_keeps_notifying(page, parent):
    subscriber = confirmed(page)
    factories.open_incident(page=page, name="Slow dashboard", severity="P1", parent=parent)
    services.dispatch_expand(dispatch_id=Dispatch.objects.get(incident=parent).pk)
    assert list(Delivery.objects.values_list("subscriber_id", flat=True)) == [subscriber.pk]


def test_a_child_cannot_have_children(page, parent):
    child = factories.open_incident(page=page, name="Slow dashboard", parent=parent)
    with pytest.raises(ValidationError) as error:
        factories.open_incident(page=page, name="Stale cache", parent=child)
    assert "parent" in error.value.message_dict


def test_an_incident_with_children_cannot_become_a_child(page, parent):
    factories.open_incident(page=page, name="Slow dashboard", parent=parent)
    other = factories.open_incident(page=page, name="Network partition")
    parent.parent = other
    with pytest.raises(ValidationError) as error:
        parent.full_clean()
    assert "child incidents of its own" in error.value.message_dict["parent"][0]


def test_the_parent_must_be_on_the_same_page(page, parent):
    other_page = factories.make_page(name="Other", url="https://status.other.example")
    with pytest.raises(ValidationError) as error:
        factories.open_incident(page=other_page, name="Slow dashboard", parent=parent)
    assert "same page" in error.value.message_dict["parent"][0]


def test_an_incident_cannot_be_its_own_parent(parent):
    parent.parent = parent
    with pytest.raises(ValidationError):
        parent.full_clean()


# --- language and time zone ----------------------------------------------------------------------


def _rendered(page, subscriber):
    incident = factories.open_incident(
        page=page, severity="P1", next_update_at=datetime(2036, 2, 28, 9, 30, tzinfo=UTC),
    )
    ctx = dispatch_context(page=page, incident=incident, update=incident.updates.get())
    return render(ctx, channel=subscriber.channel, to=subscriber.address, subscriber=subscriber, idempotency_key="k" * 32,
                  message_id="<k@example.com>")


def test_the_message_is_rendered_in_the_subscribers_language(page):
    subscriber = confirmed(page, locale="fr")
    assert message_locale(subscriber, page) == "fr"
    assert _rendered(page, subscriber).metadata["locale"] == "fr"


def test_a_subscriber_without_a_language_gets_the_pages(page, settings):
    subscriber = confirmed(page, locale="")
    assert _rendered(page, subscriber).metadata["locale"] == settings.LANGUAGE_CODE


def test_an_unknown_language_falls_back_without_failing(page, settings):
    subscriber = confirmed(page, locale="xx-nope")
    message = _rendered(page, subscriber)
    assert message.metadata["locale"] == settings.LANGUAGE_CODE
    assert "Next update:" in message.text


def test_times_are_shown_in_the_subscribers_time_zone(page):
    subscriber = confirmed(page, time_zone="Asia/Tokyo")
    message = _rendered(page, subscriber)
    assert message.merge_data["next_update"] == "2036-02-28 18:30 JST"


def test_times_fall_back_to_the_pages_time_zone(page):
    page.time_zone = "Europe/Paris"
    page.save()
    subscriber = confirmed(page, time_zone="")
    assert _rendered(page, subscriber).merge_data["next_update"] == "2036-02-28 10:30 CET"


def test_status_page_links_in_emails_carry_campaign_parameters(page):
    from notifications.rendering import dispatch_context, render
    from tests import factories as f

    incident = f.open_incident(page=page)
    ctx = dispatch_context(page=page, incident=incident, update=incident.updates.first())

    message = render(ctx, channel="email", to="ann@example.com", subscriber=None, idempotency_key="k1")

    expected = f"/incidents/{incident.public_id}?utm_source=statuspage&utm_medium=email&utm_campaign=incident-{incident.public_id}"
    assert expected in message.text
    assert expected.replace("&", "&amp;") in message.html
