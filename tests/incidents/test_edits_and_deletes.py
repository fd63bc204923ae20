from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db.models import RestrictedError

from incidents import services
from incidents.models import Component, ComponentStatus, Incident, Page
from tests import factories


def test_deleting_a_page_takes_its_groups_and_components_with_it(page, api_group, rest_api, dashboard):
    services.content_delete(instances=[page])

    assert not Page.objects.exists()
    assert not Component.objects.exists()


def test_a_group_that_still_has_components_cannot_be_deleted(page, api_group, rest_api):
    with pytest.raises(RestrictedError):
        services.content_delete(instances=[api_group])

    assert Component.objects.filter(pk=api_group.pk).exists()


def test_a_delete_is_served_at_once(client, page, dashboard, django_capture_on_commit_callbacks):
    assert "Dashboard" in client.get("/").content.decode()

    with django_capture_on_commit_callbacks(execute=True):
        services.content_delete(instances=[dashboard])

    assert "Dashboard" not in client.get("/").content.decode()


def test_moving_a_scheduled_maintenance_moves_it_in_the_history(page):
    maintenance = factories.schedule_maintenance(page=page, starts_in=timedelta(days=2))
    later = maintenance.scheduled_for + timedelta(days=40)
    maintenance.scheduled_for, maintenance.scheduled_until = later, later + timedelta(hours=1)

    services.incident_edit(incident=maintenance)

    assert Incident.objects.get(pk=maintenance.pk).started_at == later


def test_a_new_group_cannot_be_given_a_status_of_its_own(page):
    with pytest.raises(ValidationError) as refused:
        services.component_save(component=Component(page=page, is_group=True, name="Edge", status=ComponentStatus.MAJOR_OUTAGE))

    assert "status" in refused.value.message_dict
    assert not Component.objects.filter(name="Edge").exists()


def test_editing_an_incident_can_change_its_regions(page):
    from incidents.models import Region

    eu = Region.objects.create(page=page, code="eu", name="Europe")
    incident = factories.open_incident(page=page)

    services.incident_edit(incident=incident, regions=[eu])

    assert list(incident.regions.all()) == [eu]
