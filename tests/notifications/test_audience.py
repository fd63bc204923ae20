"""Who a dispatch reaches: the severity policy's channel matrix, subscriptions, regions, suppression."""
from __future__ import annotations

import pytest
from django.utils import timezone

from incidents.models import ComponentStatus, Region
from incidents.policy import channels_for
from notifications import services
from notifications.models import Delivery, Dispatch
from subscribers.models import Suppression, SuppressionReason
from tests import factories
from tests.notifications.ledger_helpers import confirmed

pytestmark = pytest.mark.django_db


def _expand(dispatch: Dispatch | None = None, **kwargs) -> set:
    dispatch = dispatch or Dispatch.objects.latest("id")
    services.dispatch_expand(dispatch_id=dispatch.pk, **kwargs)
    return set(Delivery.objects.filter(dispatch=dispatch).values_list("subscriber_id", flat=True))


# --- the channel matrix (pure) -------------------------------------------------------------------


def test_p1_reaches_email_chat_webhooks_and_sms_for_enterprise_only():
    assert channels_for("P1", "enterprise") == {"email", "sms", "webhook", "slack", "teams"}
    assert channels_for("P1", "business") == {"email", "webhook", "slack", "teams"}


def test_p2_reaches_email_and_integrations_but_not_sms():
    assert channels_for("P2", "enterprise") == {"email", "webhook", "slack", "teams"}


def test_p3_reaches_integrations_but_not_email():
    assert channels_for("P3", "enterprise") == {"webhook", "slack", "teams"}


def test_p4_reaches_no_subscriber():
    assert channels_for("P4", "enterprise") == frozenset()


def test_maintenance_notices_go_by_email_and_integrations_never_sms():
    assert channels_for("P1", "enterprise", maintenance=True) == {"email", "webhook", "slack", "teams"}


# --- expansion -------------------------------------------------------------------------------------


def test_sms_reaches_enterprise_subscribers_on_p1(page):
    enterprise = confirmed(page, channel="sms", tier="enterprise")
    confirmed(page, channel="sms", tier="business")
    confirmed(page, channel="sms")
    factories.open_incident(page=page, severity="P1")
    assert _expand() == {enterprise.pk}


def test_sms_reaches_nobody_on_p2(page):
    confirmed(page, channel="sms", tier="enterprise")
    factories.open_incident(page=page, severity="P2")
    assert _expand() == set()


def test_p3_skips_email_and_reaches_webhooks(page):
    confirmed(page, channel="email")
    hook = confirmed(page, channel="webhook")
    factories.open_incident(page=page, severity="P3")
    assert _expand() == {hook.pk}


def test_component_subscribers_hear_only_about_their_components(page, rest_api, dashboard):
    everything = confirmed(page)
    api_only = confirmed(page, components=[rest_api])
    confirmed(page, components=[dashboard])
    factories.open_incident(page=page, severity="P2", components={rest_api: ComponentStatus.PARTIAL_OUTAGE})
    assert _expand() == {everything.pk, api_only.pk}


def test_a_group_subscription_covers_its_components(page, api_group, rest_api):
    group_fan = confirmed(page, components=[api_group])
    factories.open_incident(page=page, severity="P2", components={rest_api: ComponentStatus.PARTIAL_OUTAGE})
    assert _expand() == {group_fan.pk}


def test_an_incident_without_components_reaches_component_subscribers_too(page, rest_api):
    api_only = confirmed(page, components=[rest_api])
    factories.open_incident(page=page, severity="P2")
    assert _expand() == {api_only.pk}


def test_region_subscribers_hear_only_about_their_regions(page):
    europe = Region.objects.create(page=page, code="eu", name="Europe")
    asia = Region.objects.create(page=page, code="ap", name="Asia")
    everywhere = confirmed(page)
    in_europe = confirmed(page, regions=[europe])
    confirmed(page, regions=[asia])
    factories.open_incident(page=page, severity="P2", regions=[europe])
    assert _expand() == {everywhere.pk, in_europe.pk}


def test_an_incident_without_regions_reaches_every_region(page):
    asia = Region.objects.create(page=page, code="ap", name="Asia")
    in_asia = confirmed(page, regions=[asia])
    factories.open_incident(page=page, severity="P2")
    assert _expand() == {in_asia.pk}


def test_event_type_preferences_are_respected(page):
    confirmed(page, notify_incidents=False)
    maintenance_only_off = confirmed(page, notify_maintenance=False)
    factories.open_incident(page=page, severity="P2")
    assert _expand() == {maintenance_only_off.pk}


def test_maintenance_notices_skip_subscribers_who_opted_out_of_maintenance(page):
    wants = confirmed(page)
    confirmed(page, notify_maintenance=False)
    confirmed(page, channel="sms", tier="enterprise")
    factories.schedule_maintenance(page=page)
    assert _expand() == {wants.pk}


def test_one_incident_subscribers_hear_only_about_their_incident(page):
    first = factories.open_incident(page=page, severity="P2", name="First")
    follower = confirmed(page, incident=first)
    factories.open_incident(page=page, severity="P2", name="Second")
    assert _expand() == set()
    assert _expand(Dispatch.objects.get(incident=first)) == {follower.pk}


def test_unconfirmed_suppressed_and_other_page_subscribers_are_left_out(page):
    other_page = factories.make_page(name="Other", url="https://status.example.org")
    confirmed(other_page)
    pending = confirmed(page)
    pending.status, pending.confirmed_at = "pending", None
    pending.save()
    blocked = confirmed(page)
    Suppression.objects.create(channel="email", address=blocked.address, reason=SuppressionReason.HARD_BOUNCE)
    reached = confirmed(page)
    factories.open_incident(page=page, severity="P1")
    assert _expand() == {reached.pk}


def test_expanding_twice_creates_no_new_deliveries(page):
    for _ in range(3):
        confirmed(page)
    factories.open_incident(page=page, severity="P1")
    dispatch = Dispatch.objects.get()
    _expand(dispatch)
    keys = set(Delivery.objects.values_list("idempotency_key", flat=True))
    # A lost lease (a worker died mid-expansion) lets another worker expand again.
    Dispatch.objects.filter(pk=dispatch.pk).update(status="expanding", claimed_until=timezone.now() - timezone.timedelta(seconds=1))
    _expand(dispatch)
    assert set(Delivery.objects.values_list("idempotency_key", flat=True)) == keys
    assert Dispatch.objects.get().recipients == 3


def test_a_dispatch_being_expanded_is_not_expanded_by_a_second_worker(page):
    confirmed(page)
    factories.open_incident(page=page, severity="P1")
    dispatch = Dispatch.objects.get()
    Dispatch.objects.filter(pk=dispatch.pk).update(status="expanding", claimed_until=timezone.now() + timezone.timedelta(minutes=5))
    assert services.dispatch_expand(dispatch_id=dispatch.pk) == 0
    assert not Delivery.objects.exists()


def test_expansion_in_small_chunks_reaches_everyone_once(page):
    subscribers = {confirmed(page).pk for _ in range(7)}
    factories.open_incident(page=page, severity="P1")
    assert _expand(chunk_size=2) == subscribers
    assert Delivery.objects.count() == 7


def test_deliveries_copy_channel_and_address_and_get_stable_keys(page):
    subscriber = confirmed(page, address="ann@example.org")
    factories.open_incident(page=page, severity="P1")
    _expand()
    delivery = Delivery.objects.get()
    assert (delivery.channel, delivery.address) == ("email", "ann@example.org")
    assert delivery.message_id.startswith(f"<{delivery.idempotency_key}@")
    assert delivery.subscriber == subscriber


def test_a_killed_expansion_resumes_after_the_last_finished_chunk(page):
    subscribers = sorted(confirmed(page).pk for _ in range(5))
    factories.open_incident(page=page, severity="P1")
    dispatch = Dispatch.objects.get()
    # The first worker finished the chunk up to the second subscriber, then died.
    Dispatch.objects.filter(pk=dispatch.pk).update(
        status="expanding", expanded_through=subscribers[1], claimed_until=timezone.now() - timezone.timedelta(seconds=1),
    )
    services.dispatch_expand(dispatch_id=dispatch.pk, chunk_size=2)
    assert set(Delivery.objects.values_list("subscriber_id", flat=True)) == set(subscribers[2:])
    assert Dispatch.objects.get().status == "sending"


def test_a_false_alarm_correction_reaches_only_those_who_were_notified(page):
    from incidents import services as incident_services

    told = confirmed(page)
    incident = factories.open_incident(page=page, severity="P1")
    services.dispatch_expand(dispatch_id=Dispatch.objects.get().pk)
    services.deliveries_send(ids=list(Delivery.objects.values_list("pk", flat=True)))
    # Subscribed after the alarm went out: never heard it, so is not bothered with its correction.
    confirmed(page)
    incident_services.incident_resolve(
        incident=incident, body="False alarm: a monitoring fault, no customer was affected.",
        provenance={"notified_only": True},
    )
    correction = Dispatch.objects.latest("id")
    assert correction.notified_only
    services.dispatch_expand(dispatch_id=correction.pk)
    assert list(Delivery.objects.filter(dispatch=correction).values_list("subscriber", flat=True)) == [told.pk]
