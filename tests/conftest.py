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


# --- the editorial cast: one staff member per role group (incidents.editorial.ROLE_GROUPS) ---


def _member(django_user_model, username: str, group: str):
    from django.contrib.auth.models import Group

    user = django_user_model.objects.create_user(
        username=username, email=f"{username}@example.com", password="correct horse battery", is_staff=True,
    )
    user.groups.add(Group.objects.get(name=group))
    return user


@pytest.fixture
def communicator(db, django_user_model):
    return _member(django_user_model, "cora", "Communicators")


@pytest.fixture
def legal(db, django_user_model):
    return _member(django_user_model, "lee", "Legal approvers")


@pytest.fixture
def pr(db, django_user_model):
    return _member(django_user_model, "pat", "PR approvers")


@pytest.fixture
def executive_approver(db, django_user_model):
    return _member(django_user_model, "eve", "Executive approvers")


@pytest.fixture
def commander(db, django_user_model):
    return _member(django_user_model, "cam", "Incident commanders")


@pytest.fixture
def executive(db, django_user_model):
    return _member(django_user_model, "ed", "Executives")
