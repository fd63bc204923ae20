"""Management API keys: creation (service, `api_token` command, admin), scopes, header schemes, revocation, bookkeeping, throttling."""
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
    return services.api_token_create(user=staff, name="Dashboard", scopes=[ApiToken.Scope.READ])


# --- creating keys --------------------------------------------------------------------------------


def test_created_key_is_stored_only_as_its_digest(staff):
    token, key = services.api_token_create(user=staff, name="CRM sync", scopes=[ApiToken.Scope.WRITE])

    assert key.startswith("sp_") and len(key) > 40
    token.refresh_from_db()
    assert token.key_digest == hashlib.sha256(key.encode()).hexdigest()
    assert token.prefix == key[:8]
    assert key not in {str(value) for value in ApiToken.objects.values().get().values()}


@pytest.mark.parametrize(("given", "stored"), [
    ("read", ["read"]),
    ("write", ["read", "write"]),
    ("publish", ["read", "write", "publish"]),
    (["publish", "read"], ["read", "write", "publish"]),
    ("read, write", ["read", "write"]),
])
def test_scopes_are_stored_with_the_scopes_they_imply(staff, given, stored):
    token, _key = services.api_token_create(user=staff, name="CRM sync", scopes=given)

    token.refresh_from_db()
    assert token.scopes == stored


@pytest.mark.parametrize("scopes", ["admin", "read,admin", "", []])
def test_service_refuses_unknown_or_no_scopes(staff, scopes):
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError) as refused:
        services.api_token_create(user=staff, name="CRM sync", scopes=scopes)
    assert "scopes" in refused.value.message_dict
    assert not ApiToken.objects.exists()


def test_service_refuses_a_key_for_a_user_who_is_not_staff(django_user_model):
    from django.core.exceptions import ValidationError

    customer = django_user_model.objects.create_user(username="cus", email="cus@example.com", password="x" * 12)

    with pytest.raises(ValidationError) as refused:
        services.api_token_create(user=customer, name="x", scopes="read")
    assert "user" in refused.value.message_dict


def test_api_token_create_prints_the_key_once_and_stores_its_digest(staff):
    out, err = io.StringIO(), io.StringIO()

    call_command("api_token", "create", "--user", "SAM@example.com", "--scopes", "read,write,publish", stdout=out, stderr=err)

    key = out.getvalue().strip()
    token = ApiToken.objects.get()
    assert (token.user, token.scopes) == (staff, ["read", "write", "publish"])
    assert token.key_digest == hashlib.sha256(key.encode()).hexdigest()
    assert key not in err.getvalue()
    assert key not in {str(value) for value in ApiToken.objects.values().get().values()}


def test_api_token_list_shows_prefix_scopes_and_state_but_never_a_key(staff, read_token):
    out = io.StringIO()

    call_command("api_token", "list", stdout=out)

    line = out.getvalue().strip()
    assert read_token[0].prefix in line and "read" in line and "active" in line
    assert read_token[1] not in line


def test_api_token_revoke_by_prefix_refuses_the_key(client, url, read_token):
    call_command("api_token", "revoke", read_token[0].prefix, stdout=io.StringIO())

    read_token[0].refresh_from_db()
    assert read_token[0].revoked_at is not None
    assert client.get(url, HTTP_AUTHORIZATION=f"OAuth {read_token[1]}").status_code == 401


def test_api_token_revoke_refuses_an_unknown_key(db):
    with pytest.raises(CommandError, match="No API key"):
        call_command("api_token", "revoke", "sp_nope", stdout=io.StringIO())


def test_create_api_token_still_works_as_an_alias(staff):
    out, err = io.StringIO(), io.StringIO()

    call_command("create_api_token", user="SAM@example.com", name="CRM sync", scope="write", stdout=out, stderr=err)

    key = out.getvalue().strip()
    token = ApiToken.objects.get()
    assert (token.user, token.name, token.scopes) == (staff, "CRM sync", ["read", "write"])
    assert token.key_digest == hashlib.sha256(key.encode()).hexdigest()
    assert key not in err.getvalue()


def test_command_refuses_an_unknown_user(db):
    with pytest.raises(CommandError, match="No user"):
        call_command("api_token", "create", "--user", "nobody@example.com", "--scopes", "read", stdout=io.StringIO())


def test_command_refuses_an_unknown_scope(staff):
    with pytest.raises(CommandError, match="admin"):
        call_command("api_token", "create", "--user", staff.email, "--scopes", "admin", stdout=io.StringIO())
    assert not ApiToken.objects.exists()


def test_command_refuses_a_user_who_is_not_staff(django_user_model):
    django_user_model.objects.create_user(username="cus", email="cus@example.com", password="x" * 12)

    with pytest.raises(CommandError, match="staff"):
        call_command("api_token", "create", "--user", "cus@example.com", "--scopes", "read", stdout=io.StringIO())


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
    _, other_key = services.api_token_create(user=staff, name="Other", scopes=[ApiToken.Scope.READ])

    statuses = [client.get(url, HTTP_AUTHORIZATION=f"OAuth {read_token[1]}").status_code for _ in range(3)]
    other = client.get(url, HTTP_AUTHORIZATION=f"OAuth {other_key}")

    assert statuses == [200, 200, 429]
    assert other.status_code == 200


# --- the publish scope ----------------------------------------------------------------------------


def test_publish_scope_permission_names_the_scope_it_misses(rf, staff):
    from subscribers.authentication import PublishScope

    token, _key = services.api_token_create(user=staff, name="Sync", scopes="write")
    request = rf.post("/")
    request.auth = token

    permission = PublishScope()

    assert permission.has_permission(request, None) is False
    assert permission.message["missing_scope"] == "publish"


# --- the admin ------------------------------------------------------------------------------------


def test_admin_create_shows_the_key_once_and_stores_only_its_digest(desk, staff):
    response = desk.post(
        "/admin/subscribers/apitoken/add/", {"user": staff.pk, "name": "Pager sync", "scopes": ["write"]}, follow=True,
    )

    token = ApiToken.objects.get()
    shown = [str(m) for m in response.context["messages"]]
    key = next(m for m in shown if "not shown again" in m).split("<code>")[1].split("</code>")[0]
    assert token.scopes == ["read", "write"]
    assert token.key_digest == hashlib.sha256(key.encode()).hexdigest()
    assert key not in desk.get(f"/admin/subscribers/apitoken/{token.pk}/change/").content.decode()


def test_admin_list_shows_prefix_scopes_and_last_use(desk, read_token):
    response = desk.get("/admin/subscribers/apitoken/")

    page = response.content.decode()
    assert f"{read_token[0].prefix}…" in page and "read" in page
    assert read_token[1] not in page


def test_admin_revoke_action_revokes_the_selected_keys(desk, client, url, read_token):
    desk.post("/admin/subscribers/apitoken/", {"action": "revoke_selected", "_selected_action": [read_token[0].pk]})

    read_token[0].refresh_from_db()
    assert read_token[0].revoked_at is not None


def test_admin_never_edits_a_key(desk, read_token):
    response = desk.post(f"/admin/subscribers/apitoken/{read_token[0].pk}/change/", {"name": "Renamed", "scopes": ["publish"]})

    read_token[0].refresh_from_db()
    assert response.status_code == 403
    assert (read_token[0].name, read_token[0].scopes) == ("Dashboard", ["read"])


# --- the migration from one scope to scopes ---------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_migration_maps_the_old_scope_to_scopes(django_user_model):
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    before, after = [("subscribers", "0002_endpoint_quarantine")], [("subscribers", "0003_apitoken_scopes")]
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    old = executor.loader.project_state(before).apps
    user = old.get_model("auth", "User").objects.create(username="ops", email="ops@example.com", is_staff=True)
    OldToken = old.get_model("subscribers", "ApiToken")
    OldToken.objects.create(name="r", user_id=user.pk, key_digest="a" * 64, prefix="sp_a", scope="read")
    OldToken.objects.create(name="w", user_id=user.pk, key_digest="b" * 64, prefix="sp_b", scope="write")

    executor = MigrationExecutor(connection)
    executor.migrate(after)

    new = executor.loader.project_state(after).apps.get_model("subscribers", "ApiToken")
    assert dict(new.objects.values_list("name", "scopes")) == {"r": ["read"], "w": ["read", "write"]}


# --- a key is never more than its owner; wrong keys are throttled too ------------------------------


def test_a_key_can_do_only_what_its_user_may_do_to_subscribers(client, page, communicator):
    _, key = services.api_token_create(user=communicator, name="Communicator", scopes=[ApiToken.Scope.READ])

    response = client.get(f"/api/v1/pages/{page.public_id}/subscribers", HTTP_AUTHORIZATION=f"OAuth {key}")

    assert response.status_code == 403
    assert response.json()["missing_permission"] == "view_subscriber"


def test_wrong_keys_are_throttled_per_client_address(client, url, settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"anon": "2/min"}}

    statuses = [client.get(url, HTTP_AUTHORIZATION=f"OAuth sp_guess{n}").status_code for n in range(3)]

    assert statuses == [401, 401, 429]


def test_requests_without_a_key_are_throttled_per_client_address(client, url, settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"anon": "2/min"}}

    statuses = [client.get(url).status_code for _ in range(3)]

    assert statuses == [401, 401, 429]
