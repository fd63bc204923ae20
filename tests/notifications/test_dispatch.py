"""Publishing an update writes one Dispatch in the same transaction and queues its fan-out on commit."""
from __future__ import annotations

import pytest
from django.core import mail
from django.db import transaction

from incidents import services as incident_services
from incidents.models import ComponentStatus
from notifications.models import Delivery, DeliveryStatus, Dispatch, DispatchKind, DispatchStatus
from tests import factories
from tests.notifications.ledger_helpers import confirmed

pytestmark = pytest.mark.django_db


def test_opening_an_incident_creates_one_dispatch_for_its_first_update(page, rest_api):
    incident = factories.open_incident(page=page, severity="P2", components={rest_api: ComponentStatus.MAJOR_OUTAGE})
    [dispatch] = Dispatch.objects.all()
    assert dispatch.update == incident.updates.get()
    assert (dispatch.incident, dispatch.page, dispatch.kind, dispatch.severity) == (incident, page, DispatchKind.INCIDENT, "P2")


def test_each_published_update_gets_its_own_dispatch(page):
    incident = factories.open_incident(page=page, severity="P1")
    update = incident_services.incident_post_update(incident=incident, status="identified", body="Found it.")
    resolution = incident_services.incident_resolve(incident=incident, body="Fixed.")
    assert set(Dispatch.objects.values_list("update_id", flat=True)) == {incident.updates.earliest("id").pk, update.pk, resolution.pk}


def test_an_update_published_without_notifications_creates_no_dispatch(page):
    factories.open_incident(page=page, severity="P1", deliver_notifications=False)
    assert not Dispatch.objects.exists()


def test_a_maintenance_notice_creates_a_maintenance_dispatch(page, dashboard):
    maintenance = factories.schedule_maintenance(page=page, components=[dashboard])
    [dispatch] = Dispatch.objects.all()
    assert (dispatch.incident, dispatch.kind) == (maintenance, DispatchKind.MAINTENANCE)


def test_a_rolled_back_publish_creates_no_dispatch_and_sends_nothing(page, django_capture_on_commit_callbacks):
    confirmed(page)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        with pytest.raises(RuntimeError):
            with transaction.atomic():
                factories.open_incident(page=page, severity="P1")
                raise RuntimeError("the publish failed after the update was written")
    assert callbacks == []
    assert not Dispatch.objects.exists()
    assert not Delivery.objects.exists()
    assert mail.outbox == []


def test_the_fan_out_is_queued_only_on_commit(page, django_capture_on_commit_callbacks):
    confirmed(page)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        factories.open_incident(page=page, severity="P1")
    # Until the transaction commits the dispatch waits: nothing is expanded or sent.
    assert Dispatch.objects.get().status == DispatchStatus.PENDING
    assert not Delivery.objects.exists()
    assert len(callbacks) >= 1


def test_a_committed_publish_reaches_a_confirmed_subscriber_by_email(page, django_capture_on_commit_callbacks):
    subscriber = confirmed(page)
    with django_capture_on_commit_callbacks(execute=True):
        factories.open_incident(page=page, name="Login failures", severity="P1")
    [delivery] = Delivery.objects.all()
    assert (delivery.subscriber, delivery.status) == (subscriber, DeliveryStatus.SENT)
    [sent] = mail.outbox
    assert sent.to == [subscriber.address]
    assert "Login failures" in sent.subject
    assert Dispatch.objects.get().status == DispatchStatus.DONE
