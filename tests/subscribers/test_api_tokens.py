"""Management API keys: creation (service and command), header schemes, revocation, bookkeeping, throttling."""
from __future__ import annotations

import hashlib
import io
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from subscribers import services
from subscribers.models import ApiToken


@pytest.fixture
def url(page) -> str:
    return f"/api/v1/pages/{page.public_id}/subscribers"


@pytest.fixture
def read_token(staff) -> tuple[ApiToken, str]:
    return services.api_token_create(user=staff, name="Dashboard", scope=ApiToken.Scope.READ)


# --- creating keys --------------------------------------------------------------------------------


def test_created_key_is_stored_only_as_its_digest(staff):
    token, key = services.api_token_create(user=staff, name="CRM sync", scope=ApiToken.Scope.WRITE)

    assert key.startswith("sp_") and len(key) > 40
    token.refresh_from_db()
    assert token.key_digest == hashlib.sha256(key.encode()).hexdigest()
    assert token.prefix == key[:8]
    assert key not in {str(value) for value in ApiToken.objects.values().get().values()}


def test_service_refuses_an_unknown_scope(staff):
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError):
        services.api_token_create(user=staff, name="CRM sync", scope="admin")


def test_command_prints_the_key_once(staff):
    out, err = io.StringIO(), io.StringIO()

    call_command("create_api_token", user="SAM@example.com", name="CRM sync", scope="write", stdout=out, stderr=err)

    key = out.getvalue().strip()
    token = ApiToken.objects.get()
    assert (token.user, token.name, token.scope) == (staff, "CRM sync", ApiToken.Scope.WRITE)
    assert token.key_digest == hashlib.sha256(key.encode()).hexdigest()
    assert key not in err.getvalue()


def test_command_refuses_an_unknown_user(db):
    with pytest.raises(CommandError, match="No user"):
        call_command("create_api_token", user="nobody@example.com", name="x", scope="read", stdout=io.StringIO())


def test_command_refuses_an_unknown_scope(staff):
    with pytest.raises(CommandError):
        call_command("create_api_token", user=staff.email, name="x", scope="admin", stdout=io.StringIO())
    assert not ApiToken.objects.exists()


def test_command_refuses_a_user_who_is_not_staff(django_user_model):
    django_user_model.objects.create_user(username="cus", email="cus@example.com", password="x" * 12)

    with pytest.raises(CommandError, match="staff"):
        call_command("create_api_token", user="cus@example.com", name="x", scope="read", stdout=io.StringIO())


# --- using keys -----------------------------------------------------------------------------------


@pytest.mark.parametrize("scheme", ["OAuth", "Bearer", "bearer"])
def test_oauth_and_bearer_schemes_are_both_accepted(client, url, read_token, scheme):
    response = client.get(url, HTTP_AUTHORIZATION=f"{scheme} {read_token[1]}")

    assert response.status_code == 200


def test_wrong_key_is_401(client, url, read_token):
    response = client.get(url, HTTP_AUTHORIZATION=f"OAuth {read_token[1]}x")

    assert response.status_code == 401
    assert "WWW-Authenticate" in response


def test_revoked_key_is_401(client, url, read_token):
    services.api_token_revoke(token=read_token[0])

    response = client.get(url, HTTP_AUTHORIZATION=f"OAuth {read_token[1]}")

    assert response.status_code == 401


def test_key_of_a_deactivated_user_is_401(client, url, read_token, staff):
    staff.is_active = False
    staff.save()

    response = client.get(url, HTTP_AUTHORIZATION=f"OAuth {read_token[1]}")

    assert response.status_code == 401


def test_first_use_records_last_used_at(client, url, read_token):
    client.get(url, HTTP_AUTHORIZATION=f"OAuth {read_token[1]}")

    read_token[0].refresh_from_db()
    assert read_token[0].last_used_at is not None


def test_last_used_at_is_written_at_most_once_a_minute(client, url, read_token):
    recent = timezone.now() - timedelta(seconds=30)
    ApiToken.objects.filter(pk=read_token[0].pk).update(last_used_at=recent)

    client.get(url, HTTP_AUTHORIZATION=f"OAuth {read_token[1]}")

    read_token[0].refresh_from_db()
    assert read_token[0].last_used_at == recent


def test_last_used_at_older_than_a_minute_is_refreshed(client, url, read_token):
    old = timezone.now() - timedelta(minutes=5)
    ApiToken.objects.filter(pk=read_token[0].pk).update(last_used_at=old)

    client.get(url, HTTP_AUTHORIZATION=f"OAuth {read_token[1]}")

    read_token[0].refresh_from_db()
    assert read_token[0].last_used_at > old


def test_requests_are_throttled_per_key(client, url, read_token, staff, settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"api_token": "2/min"}}
    _, other_key = services.api_token_create(user=staff, name="Other", scope=ApiToken.Scope.READ)

    statuses = [client.get(url, HTTP_AUTHORIZATION=f"OAuth {read_token[1]}").status_code for _ in range(3)]
    other = client.get(url, HTTP_AUTHORIZATION=f"OAuth {other_key}")

    assert statuses == [200, 200, 429]
    assert other.status_code == 200
