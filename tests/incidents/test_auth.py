"""Staff sign in through allauth, with a TOTP code when they enabled one; nobody signs up."""
from __future__ import annotations

from datetime import datetime, timezone as dt_timezone

import pytest
import time_machine
from allauth.mfa import app_settings as mfa_settings
from allauth.mfa.models import Authenticator
from allauth.mfa.totp.internal.auth import (
    SECRET_SESSION_KEY,
    TOTP,
    format_hotp_value,
    generate_totp_secret,
    hotp_value,
)

PASSWORD = "correct horse battery"
# TOTP codes depend on the clock: freezing it keeps the code valid for the whole test.
FROZEN = datetime(2026, 3, 10, 12, 0, 10, tzinfo=dt_timezone.utc)


def _totp_code(secret: str, at: datetime) -> str:
    # allauth's own computation: HOTP over the number of whole periods since the epoch.
    return format_hotp_value(hotp_value(secret, int(at.timestamp()) // mfa_settings.TOTP_PERIOD))


def _log_in(client, email: str, password: str = PASSWORD):
    return client.post("/accounts/login/", {"login": email, "password": password})


@pytest.fixture
def staff_with_totp(staff):
    secret = generate_totp_secret()
    TOTP.activate(staff, secret)
    return staff, secret


def test_an_anonymous_visit_to_the_admin_ends_at_the_allauth_login(client, db):
    response = client.get("/admin/", follow=True)

    assert response.redirect_chain[-1][0].startswith("/accounts/login/")
    assert response.status_code == 200
    assert "next=%2Fadmin%2F" in response.redirect_chain[-1][0]


def test_the_admin_login_form_is_never_served(client, db):
    response = client.get("/admin/login/", {"next": "/admin/incidents/"})

    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=%2Fadmin%2Fincidents%2F"


def test_staff_log_in_with_email_and_password_and_reach_the_admin(client, staff):
    response = _log_in(client, "sam@example.com")

    assert response.status_code == 302
    assert response["Location"] == "/admin/"
    assert client.get("/admin/").status_code == 200


def test_a_wrong_password_does_not_sign_in(client, staff):
    response = _log_in(client, "sam@example.com", "not the password")

    assert response.status_code == 200
    assert client.get("/admin/").status_code == 302


@time_machine.travel(FROZEN, tick=False)
def test_a_user_with_totp_is_asked_for_the_code_after_the_password(client, staff_with_totp):
    response = _log_in(client, "sam@example.com")

    assert response.status_code == 302
    assert response["Location"] == "/accounts/2fa/authenticate/"
    assert client.get("/admin/").status_code == 302  # not signed in yet


@time_machine.travel(FROZEN, tick=False)
def test_a_valid_totp_code_completes_the_sign_in(client, staff_with_totp):
    _staff, secret = staff_with_totp
    _log_in(client, "sam@example.com")

    response = client.post("/accounts/2fa/authenticate/", {"code": _totp_code(secret, FROZEN)})

    assert response.status_code == 302
    assert response["Location"] == "/admin/"
    assert client.get("/admin/").status_code == 200


@time_machine.travel(FROZEN, tick=False)
def test_a_wrong_totp_code_keeps_the_user_out(client, staff_with_totp):
    _staff, secret = staff_with_totp
    _log_in(client, "sam@example.com")
    wrong = format_hotp_value((int(_totp_code(secret, FROZEN)) + 1) % 10**mfa_settings.TOTP_DIGITS)

    response = client.post("/accounts/2fa/authenticate/", {"code": wrong})

    assert response.status_code == 200
    assert "code" in response.context["form"].errors
    assert client.get("/admin/").status_code == 302


@time_machine.travel(FROZEN, tick=False)
def test_staff_can_turn_on_totp_for_themselves(client, staff):
    _log_in(client, "sam@example.com")
    client.post("/accounts/reauthenticate/", {"password": PASSWORD})  # allauth asks again before a security change
    assert client.get("/accounts/2fa/totp/activate/").status_code == 200
    secret = client.session[SECRET_SESSION_KEY]

    response = client.post("/accounts/2fa/totp/activate/", {"code": _totp_code(secret, FROZEN)})

    assert response.status_code == 302
    assert Authenticator.objects.filter(user=staff, type=Authenticator.Type.TOTP).exists()


def test_sign_up_is_closed(client, django_user_model, db):
    shown = client.get("/accounts/signup/")
    client.post("/accounts/signup/", {"email": "eve@example.com", "password1": PASSWORD, "password2": PASSWORD})

    assert "account/signup_closed.html" in [t.name for t in shown.templates]
    assert not django_user_model.objects.filter(email="eve@example.com").exists()


def test_a_signed_in_user_without_staff_status_is_refused_the_admin(client, django_user_model, db):
    django_user_model.objects.create_user(username="ann", email="ann@example.com", password=PASSWORD)
    _log_in(client, "ann@example.com")

    response = client.get("/admin/", follow=True)

    assert response.status_code == 403
    assert client.get("/admin/incidents/incident/", follow=True).status_code == 403
