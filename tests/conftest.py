"""The named cast of the test suite."""
from __future__ import annotations

import pytest

from incidents import cache
from tests import factories


@pytest.fixture(autouse=True)
def _fresh_read_cache():
    """Each test starts with an empty page cache, in this process and the shared one."""
    from django.core.cache import cache as shared

    shared.clear()
    cache.clear_local()
    yield
    shared.clear()
    cache.clear_local()


@pytest.fixture(autouse=True)
def _anymail_test_backend(settings):
    """Django's test set-up swaps EMAIL_BACKEND for locmem; put anymail's test backend back so
    sent messages carry anymail_status like real ESP sends (they still land in mail.outbox)."""
    settings.EMAIL_BACKEND = "anymail.backends.test.EmailBackend"


@pytest.fixture
def page(db):
    return factories.make_page(name="Acme", url="https://status.example.com", is_default=True)


@pytest.fixture
def api_group(page):
    return factories.make_group(page=page, name="API", position=1)


@pytest.fixture
def rest_api(page, api_group):
    return factories.make_component(page=page, group=api_group, name="REST API", position=1)


@pytest.fixture
def webhooks(page, api_group):
    return factories.make_component(page=page, group=api_group, name="Webhooks", position=2)


@pytest.fixture
def dashboard(page):
    return factories.make_component(page=page, name="Dashboard", position=2)


@pytest.fixture
def staff(django_user_model):
    return django_user_model.objects.create_user(
        username="sam", email="sam@example.com", password="correct horse battery", is_staff=True, is_superuser=True
    )


@pytest.fixture
def desk(client, staff):
    """A browser signed in to the admin as staff."""
    client.force_login(staff)
    return client
