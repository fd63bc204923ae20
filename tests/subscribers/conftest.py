"""The cast of the subscriber tests."""
from __future__ import annotations

import pytest

from incidents.models import Region
from subscribers import services
from subscribers.models import Channel, ConsentSource, Organization, Tier


@pytest.fixture
def eu(page):
    return Region.objects.create(page=page, code="eu", name="Europe")


@pytest.fixture
def us(page):
    return Region.objects.create(page=page, code="us", name="United States")


@pytest.fixture
def globex(page, eu):
    return Organization.objects.create(page=page, name="Globex", external_id="CRM-1", tier=Tier.ENTERPRISE, region=eu, sla="99.95%")


@pytest.fixture
def pending_ann(page):
    """An email subscriber who has not confirmed yet."""
    return services.subscriber_subscribe(page=page, channel=Channel.EMAIL, address="ann@example.com", source=ConsentSource.PUBLIC_PAGE)


@pytest.fixture
def confirmed_bob(page):
    """An email subscriber added by staff with confirmation skipped."""
    return services.subscriber_create(
        page=page, channel=Channel.EMAIL, address="bob@example.com", skip_confirmation_reason="Imported from the old tool"
    )
