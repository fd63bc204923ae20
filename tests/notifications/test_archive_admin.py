"""The archive in the admin: searchable, read-only, URL secrets masked; legal holds placed and released."""
from __future__ import annotations

import datetime as dt

import pytest
from django.urls import reverse

from notifications import archive
from notifications.models import ArchivedMessage, LegalHold
from tests import factories

pytestmark = pytest.mark.django_db

SECRET_HOOK = "https://hooks.slack.com/services/T000/B000/s3cr3t-t0ken"


def _message(**fields) -> ArchivedMessage:
    values = {"channel": "email", "kind": "notification", "recipient": "ann@example.com", "subject": "Elevated errors"}
    values.update(fields)
    return archive.archive_message(**values)


def test_list_shows_only_the_host_of_a_url_recipient(desk):
    _message(channel="slack", recipient=SECRET_HOOK)
    html = desk.get(reverse("admin:notifications_archivedmessage_changelist")).content.decode()
    assert "https://hooks.slack.com/…" in html
    assert "s3cr3t-t0ken" not in html


def test_list_shows_an_email_recipient_in_full(desk):
    _message()
    assert "ann@example.com" in desk.get(reverse("admin:notifications_archivedmessage_changelist")).content.decode()


def test_search_finds_a_message_by_provider_id(desk):
    _message(subject="Found me", provider_id="esp-4711")
    _message(subject="Not me", provider_id="esp-1")
    html = desk.get(reverse("admin:notifications_archivedmessage_changelist"), {"q": "esp-4711"}).content.decode()
    assert "Found me" in html and "Not me" not in html


def test_filter_by_channel(desk):
    _message(subject="By mail")
    _message(channel="sms", recipient="+15005550006", subject="By text")
    html = desk.get(reverse("admin:notifications_archivedmessage_changelist"), {"channel__exact": "sms"}).content.decode()
    assert "By text" in html and "By mail" not in html


def test_archived_message_page_is_view_only(desk):
    message = _message()
    url = reverse("admin:notifications_archivedmessage_change", args=[message.pk])
    assert desk.get(url).status_code == 200
    assert desk.post(url, {"subject": "rewritten"}).status_code == 403
    message.refresh_from_db()
    assert message.subject == "Elevated errors"


def test_archived_messages_cannot_be_added_in_the_admin(desk):
    assert desk.get(reverse("admin:notifications_archivedmessage_add")).status_code == 403


def test_archived_messages_cannot_be_deleted_in_the_admin(desk):
    message = _message()
    response = desk.post(reverse("admin:notifications_archivedmessage_delete", args=[message.pk]), {"post": "yes"})
    assert response.status_code == 403
    assert ArchivedMessage.objects.filter(pk=message.pk).exists()


def test_placing_a_legal_hold_on_an_incident_records_who_and_freezes_its_id(desk, page, staff):
    incident = factories.open_incident(page=page, deliver_notifications=False)
    response = desk.post(reverse("admin:notifications_legalhold_add"), {"incident": incident.pk, "reason": "Matter 2024-3"})
    assert response.status_code == 302
    hold = LegalHold.objects.get()
    assert (hold.incident_public_id, hold.created_by, hold.released_at) == (incident.public_id, staff, None)


def test_a_legal_hold_naming_two_scopes_is_refused(desk, page):
    incident = factories.open_incident(page=page, deliver_notifications=False)
    response = desk.post(reverse("admin:notifications_legalhold_add"), {"incident": incident.pk, "page": page.pk, "reason": "Both"})
    assert response.status_code == 200
    assert "exactly one of" in response.content.decode()
    assert not LegalHold.objects.exists()


def test_releasing_a_legal_hold_from_the_list(desk, page, staff):
    hold = archive.legal_hold_place(page=page, reason="Audit")
    response = desk.post(
        reverse("admin:notifications_legalhold_changelist"), {"action": "release_holds", "_selected_action": [hold.pk]}
    )
    assert response.status_code == 302
    hold.refresh_from_db()
    assert hold.released_at is not None and hold.released_by == staff


def test_legal_holds_cannot_be_deleted_in_the_admin(desk, page):
    hold = archive.legal_hold_place(starts_at=dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc), ends_at=dt.datetime(2024, 2, 1, tzinfo=dt.timezone.utc), reason="Audit")
    response = desk.post(reverse("admin:notifications_legalhold_delete", args=[hold.pk]), {"post": "yes"})
    assert response.status_code == 403
    assert LegalHold.objects.filter(pk=hold.pk).exists()


def test_a_legal_hold_page_shows_its_scope_read_only(desk, page):
    hold = archive.legal_hold_place(page=page, reason="Audit of 2024")
    html = desk.get(reverse("admin:notifications_legalhold_change", args=[hold.pk])).content.decode()
    assert "Audit of 2024" in html and 'name="reason"' not in html
