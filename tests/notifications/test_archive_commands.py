"""manage.py archive_verify, archive_export and archive_purge."""
from __future__ import annotations

import datetime as dt
import hashlib
import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection, transaction
from django.utils import timezone

from notifications import archive
from notifications.models import ArchivedMessage
from tests import factories

pytestmark = pytest.mark.django_db


def _email(**fields) -> ArchivedMessage:
    values = {"channel": "email", "kind": "notification", "recipient": "ann@example.com", "subject": "Errors", "text_body": "Looking."}
    values.update(fields)
    return archive.archive_message(**values)


def _run(name: str, *args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command(name, *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_verify_reports_an_intact_archive_with_its_last_hash(db):
    _email()
    last = _email()
    out, _ = _run("archive_verify")
    assert out.strip() == f"archive intact: 2 messages, last sequence 2, last hash {last.hash}"


def test_verify_fails_naming_the_first_broken_sequence(db):
    for _ in range(3):
        _email()
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute("ALTER TABLE notifications_archivedmessage DISABLE TRIGGER archivedmessage_append_only")
        cursor.execute("DELETE FROM notifications_archivedmessage WHERE sequence = 2")
        if connection.vendor == "postgresql":
            cursor.execute("ALTER TABLE notifications_archivedmessage ENABLE TRIGGER archivedmessage_append_only")
    with pytest.raises(CommandError, match=r"broken at sequence 2: sequence gap"):
        _run("archive_verify")


def test_export_by_dates_writes_the_files_and_shows_progress_on_stderr(db, tmp_path):
    _email()
    today = timezone.now().date().isoformat()
    out, err = _run("archive_export", "--from", today, "--to", today, "--out", str(tmp_path / "audit"))
    assert "exported 1/1 messages" in err
    manifest = (tmp_path / "audit" / "MANIFEST.sha256").read_text()
    digest = hashlib.sha256((tmp_path / "audit" / "messages.jsonl").read_bytes()).hexdigest()
    assert f"{digest}  messages.jsonl" in manifest
    assert f"{digest}  messages.jsonl" in out


def test_export_by_incident_writes_only_that_incidents_messages(page, tmp_path):
    incident = factories.open_incident(page=page, deliver_notifications=False)
    _email()
    _run("archive_export", "--incident", incident.public_id, "--out", str(tmp_path / "audit"))
    manifest = json.loads((tmp_path / "audit" / "manifest.json").read_text())
    assert (manifest["count"], manifest["filters"]["incident"]) == (1, incident.public_id)


def test_export_rejects_a_malformed_date(db, tmp_path):
    with pytest.raises(CommandError, match="--from must be a date"):
        _run("archive_export", "--from", "01/02/2024", "--to", "2024-02-03", "--out", str(tmp_path / "x"))


def test_export_rejects_an_end_before_the_start(db, tmp_path):
    with pytest.raises(CommandError, match="--to must not be before --from"):
        _run("archive_export", "--from", "2024-02-03", "--to", "2024-02-01", "--out", str(tmp_path / "x"))


def test_export_rejects_an_unknown_incident(db, tmp_path):
    with pytest.raises(CommandError, match="No incident 'nope'"):
        _run("archive_export", "--incident", "nope", "--out", str(tmp_path / "x"))


def test_export_rejects_a_directory_that_is_not_empty(db, tmp_path):
    (tmp_path / "old.jsonl").write_text("{}\n")
    with pytest.raises(CommandError, match="empty directory"):
        _run("archive_export", "--from", "2024-01-01", "--to", "2024-01-02", "--out", str(tmp_path))


def test_export_needs_a_range_or_an_incident(db, tmp_path):
    with pytest.raises(CommandError, match="Say what to export"):
        _run("archive_export", "--out", str(tmp_path / "x"))


def test_purge_uses_the_retention_setting(db, settings, monkeypatch):
    settings.ARCHIVE_RETENTION_DAYS = 30
    monkeypatch.setattr(archive, "_now", lambda: timezone.now() - dt.timedelta(days=31))
    _email()
    monkeypatch.setattr(archive, "_now", lambda: timezone.now() - dt.timedelta(days=29))
    _email()
    out, _ = _run("archive_purge")
    assert out.startswith("purged 1 messages")
    assert list(ArchivedMessage.objects.values_list("sequence", flat=True)) == [2]


def test_purge_dry_run_removes_nothing(db, monkeypatch):
    monkeypatch.setattr(archive, "_now", lambda: timezone.now() - dt.timedelta(days=4000))
    _email()
    out, _ = _run("archive_purge", "--dry-run")
    assert out.startswith("would purge 1 messages")
    assert ArchivedMessage.objects.count() == 1


def test_purge_says_which_hold_stopped_it(page, monkeypatch):
    monkeypatch.setattr(archive, "_now", lambda: timezone.now() - dt.timedelta(days=4000))
    _email(page=page)
    archive.legal_hold_place(page=page, reason="Class action")
    out, _ = _run("archive_purge")
    assert "stopped at sequence 1, kept by: Legal hold on page Acme" in out
