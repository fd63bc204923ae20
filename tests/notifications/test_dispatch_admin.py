"""The dispatch change page: live per-channel progress, its deliveries, and resending the failed ones."""
from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from notifications import services
from notifications.models import Delivery, DeliveryEvent, DeliveryStatus, Dispatch, DispatchStatus
from tests import factories
from tests.notifications.ledger_helpers import confirmed

pytestmark = pytest.mark.django_db


@pytest.fixture
def dispatch(page) -> Dispatch:
    """A P1 dispatch to three emails and two webhooks, expanded but not sent."""
    for _ in range(3):
        confirmed(page)
    for _ in range(2):
        confirmed(page, channel="webhook")
    factories.open_incident(page=page, severity="P1")
    dispatch = Dispatch.objects.get()
    services.dispatch_expand(dispatch_id=dispatch.pk)
    return dispatch


def _set(dispatch: Dispatch, channel: str, *statuses: str) -> list[Delivery]:
    deliveries = list(Delivery.objects.filter(dispatch=dispatch, channel=channel).order_by("pk"))
    for delivery, status in zip(deliveries, statuses):
        Delivery.objects.filter(pk=delivery.pk).update(status=status)
    return deliveries


def _progress_url(dispatch: Dispatch) -> str:
    return reverse("admin:notifications_dispatch_progress", args=[dispatch.pk])


def test_the_progress_json_counts_deliveries_per_channel(desk, dispatch):
    emails = _set(dispatch, "email", DeliveryStatus.SENT, DeliveryStatus.SENT, DeliveryStatus.FAILED)
    _set(dispatch, "webhook", DeliveryStatus.DEAD)
    DeliveryEvent.objects.create(delivery=emails[0], provider_event_id="evt-1", kind="delivered")
    DeliveryEvent.objects.create(delivery=emails[0], provider_event_id="evt-2", kind="opened")
    data = desk.get(_progress_url(dispatch)).json()
    email, webhook = data["channels"]["email"], data["channels"]["webhook"]
    assert (email["sent"], email["delivered"], email["failed"], email["queued"], email["total"]) == (2, 1, 1, 0, 3)
    assert (webhook["dead"], webhook["queued"], webhook["total"]) == (1, 1, 2)
    assert data["totals"]["total"] == 5 and data["resendable"] == 2
    assert email["percent"]["sent"] == pytest.approx(66.7)
    assert data["done"] is False


def test_the_progress_counts_come_from_one_aggregate_query(dispatch):
    from notifications.admin import dispatch_progress

    with CaptureQueriesContext(connection) as queries:
        dispatch_progress(dispatch)
    assert len(queries) == 1


def test_a_finished_dispatch_says_it_is_done(desk, dispatch):
    Delivery.objects.filter(dispatch=dispatch).update(status=DeliveryStatus.SENT)
    services.dispatch_finish_if_done(dispatch_id=dispatch.pk)
    data = desk.get(_progress_url(dispatch)).json()
    assert data["done"] is True and data["status"] == DispatchStatus.DONE


def test_the_change_page_shows_the_progress_bars_the_poller_and_the_deliveries_link(desk, dispatch):
    _set(dispatch, "email", DeliveryStatus.SENT)
    response = desk.get(reverse("admin:notifications_dispatch_change", args=[dispatch.pk]))
    html = response.content.decode()
    assert response.status_code == 200
    assert 'tr data-channel="email"' in html and 'tr data-channel="webhook"' in html
    assert 'class="sent" data-width="sent" style="width: 33.3%"' in html
    assert f'data-progress-url="{_progress_url(dispatch)}"' in html
    assert f"?dispatch__id__exact={dispatch.pk}" in html


def test_the_deliveries_link_lists_only_this_dispatchs_deliveries(desk, dispatch, page):
    factories.open_incident(page=page, name="Another one", severity="P1")
    other = Dispatch.objects.exclude(pk=dispatch.pk).get()
    services.dispatch_expand(dispatch_id=other.pk)
    response = desk.get(reverse("admin:notifications_delivery_changelist") + f"?dispatch__id__exact={dispatch.pk}")
    assert response.status_code == 200
    assert response.context["cl"].result_count == 5


def test_the_resend_button_is_shown_when_something_failed(desk, dispatch):
    _set(dispatch, "email", DeliveryStatus.FAILED)
    html = desk.get(reverse("admin:notifications_dispatch_change", args=[dispatch.pk])).content.decode()
    assert f'formaction="{reverse("admin:notifications_dispatch_resend", args=[dispatch.pk])}"' in html


def test_resend_requeues_failed_and_dead_deliveries_only(desk, dispatch, django_capture_on_commit_callbacks):
    failed, skipped, sent = _set(dispatch, "email", DeliveryStatus.FAILED, DeliveryStatus.SKIPPED, DeliveryStatus.SENT)
    [dead, _queued] = _set(dispatch, "webhook", DeliveryStatus.DEAD)
    with django_capture_on_commit_callbacks(execute=False):
        response = desk.post(reverse("admin:notifications_dispatch_resend", args=[dispatch.pk]))
    assert response.status_code == 302
    statuses = dict(Delivery.objects.values_list("pk", "status"))
    assert statuses[failed.pk] == statuses[dead.pk] == DeliveryStatus.QUEUED
    assert (statuses[skipped.pk], statuses[sent.pk]) == (DeliveryStatus.SKIPPED, DeliveryStatus.SENT)


def test_resend_refuses_get(desk, dispatch):
    _set(dispatch, "email", DeliveryStatus.FAILED)
    response = desk.get(reverse("admin:notifications_dispatch_resend", args=[dispatch.pk]))
    assert response.status_code == 405
    assert Delivery.objects.filter(status=DeliveryStatus.FAILED).count() == 1


def test_the_progress_json_is_for_staff_only(client, django_user_model, dispatch):
    user = django_user_model.objects.create_user(username="pat", password="x", is_staff=False)
    client.force_login(user)
    response = client.get(_progress_url(dispatch))
    assert response.status_code == 302
    assert "login" in response["Location"]


def test_anonymous_visitors_cannot_resend(client, dispatch):
    _set(dispatch, "email", DeliveryStatus.FAILED)
    response = client.post(reverse("admin:notifications_dispatch_resend", args=[dispatch.pk]))
    assert response.status_code == 302
    assert Delivery.objects.filter(status=DeliveryStatus.FAILED).count() == 1


def test_staff_without_the_delivery_change_permission_cannot_resend(client, django_user_model, dispatch):
    from django.contrib.auth.models import Permission

    user = django_user_model.objects.create_user(username="viewer", password="x", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_dispatch"))
    client.force_login(user)
    _set(dispatch, "email", DeliveryStatus.FAILED)
    assert client.get(_progress_url(dispatch)).status_code == 200
    assert client.post(reverse("admin:notifications_dispatch_resend", args=[dispatch.pk])).status_code == 403
    assert Delivery.objects.filter(status=DeliveryStatus.FAILED).count() == 1
