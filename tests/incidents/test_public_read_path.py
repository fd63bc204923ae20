"""Cached public outputs are answered before the session, auth, CSRF and message middleware."""
from __future__ import annotations

import pytest


@pytest.mark.parametrize("path", ["/", "/api/v2/summary.json", "/history.atom"])
def test_public_outputs_keep_the_security_headers(client, page, path):
    response = client.get(path)

    assert response.status_code == 200
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["X-Frame-Options"] == "DENY"
    assert response["Referrer-Policy"] == "same-origin"


def test_public_outputs_never_touch_the_session_or_set_cookies(client, page, staff):
    client.force_login(staff)

    response = client.get("/")

    assert not response.cookies
    assert "Cookie" not in response.get("Vary", "")


def test_writes_to_public_urls_still_go_down_the_whole_stack(client, page):
    response = client.post("/")

    assert response.status_code == 405


def test_other_pages_still_get_the_session_and_csrf_middleware(client, page):
    response = client.get("/subscribe")

    assert response.status_code == 200
    assert "csrftoken" in response.cookies


def test_a_missing_incident_is_still_a_404_page(client, page):
    assert client.get("/incidents/zzzzzzzzzzzz").status_code == 404
