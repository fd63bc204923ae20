"""The compliance archive: append-only, hash-chained, exportable, purged only behind holds."""
from __future__ import annotations

import datetime as dt
import email
import hashlib
import json
import mailbox
from contextlib import contextmanager

import pytest
import time_machine
from django.core import mail
from django.core.exceptions import ValidationError
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from incidents import services as incident_services
from incidents.models import IncidentStatus
from notifications import archive
from notifications.models import ArchiveCheckpoint, ArchivedMessage, ArchiveImmutable
from subscribers import services as subscriber_services
from subscribers.models import Channel, ConsentSource
from tests import factories

pytestmark = pytest.mark.django_db

postgres_only = pytest.mark.skipif(
    "connection.vendor != 'postgresql'",
    reason="the append-only trigger exists on PostgreSQL only; SQLite relies on the model and queryset guards",
)

T0 = dt.datetime(2020, 1, 1, 12, 0, tzinfo=dt.timezone.utc)


def _email(**fields) -> ArchivedMessage:
    values = {
        "channel": "email", "kind": "notification", "recipient": "ann@example.com", "subject": "Elevated errors",
        "text_body": "We are investigating.", "html_body": "<p>We are investigating.</p>",
        "headers": {"List-Unsubscribe": "<https://status.example.com/u/x>"}, "provider_id": "esp-1",
    }
    values.update(fields)
    return archive.archive_message(**values)


@contextmanager
def _at(monkeypatch, when: dt.datetime):
    """Archive as if the clock read `when` (retention tests need old rows)."""
    monkeypatch.setattr(archive, "_now", lambda: when)
    yield
    monkeypatch.setattr(archive, "_now", timezone.now)


def _tamper(sql: str, params: list) -> None:
    """Change the table behind the application's back, as a DBA could (on PostgreSQL only with
    the trigger switched off, which the table owner can do)."""
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # ALTER TABLE waits for no deferred foreign-key checks: run them now.
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute("ALTER TABLE notifications_archivedmessage DISABLE TRIGGER archivedmessage_append_only")
        cursor.execute(sql, params)
        if connection.vendor == "postgresql":
            cursor.execute("ALTER TABLE notifications_archivedmessage ENABLE TRIGGER archivedmessage_append_only")
            cursor.execute("SET CONSTRAINTS ALL DEFERRED")


# --- the chain ---------------------------------------------------------------------------------


def test_first_message_is_chained_to_the_genesis_hash(db):
    first = _email()
    assert (first.sequence, first.prev_hash) == (1, archive.GENESIS_HASH)


def test_each_message_is_chained_to_the_previous_ones_hash(db):
    first, second = _email(), _email(recipient="bob@example.com")
    assert second.sequence == first.sequence + 1
    assert second.prev_hash == first.hash
    assert second.hash == archive.chain_hash(
        prev_hash=first.hash, sequence=second.sequence, content_sha256=second.content_sha256, created=second.created
    )


def test_content_hash_covers_the_rendered_bodies(db):
    message = _email()
    message.text_body = "Something else"
    assert archive.content_hash(message) != message.content_sha256


def test_a_rolled_back_write_frees_its_sequence_number(db):
    _email()
    with pytest.raises(RuntimeError), transaction.atomic():
        _email()
        raise RuntimeError("the caller failed after archiving")
    assert _email().sequence == 2


def test_archive_messages_chains_a_batch_in_order(db):
    rows = archive.archive_messages([
        {"channel": "sms", "kind": "notification", "recipient": f"+1555000000{i}", "text_body": "P1"} for i in range(3)
    ])
    assert [r.sequence for r in rows] == [1, 2, 3]
    assert archive.archive_verify().ok


# --- append-only -------------------------------------------------------------------------------


def test_saving_an_archived_message_again_is_refused(db):
    message = _email()
    message.subject = "Nothing happened"
    with pytest.raises(ArchiveImmutable):
        message.save()


def test_deleting_an_archived_message_is_refused(db):
    with pytest.raises(ArchiveImmutable):
        _email().delete()


def test_updating_archived_messages_through_the_queryset_is_refused(db):
    _email()
    with pytest.raises(ArchiveImmutable):
        ArchivedMessage.objects.update(subject="rewritten")


def test_deleting_archived_messages_through_the_queryset_is_refused(db):
    _email()
    with pytest.raises(ArchiveImmutable):
        ArchivedMessage.objects.all().delete()


def test_deleting_a_subscriber_keeps_their_archived_messages(page):
    subscriber = subscriber_services.subscriber_create(page=page, channel=Channel.EMAIL, address="cat@example.com", skip_confirmation_reason="test")
    public_id = subscriber.public_id
    message = _email(subscriber=subscriber, page=page)
    subscriber.delete()
    message.refresh_from_db()
    assert (message.subscriber_id, message.subscriber_public_id) == (None, public_id)
    assert archive.archive_verify().ok


def test_deleting_an_incident_keeps_its_archived_messages(page):
    incident = factories.open_incident(page=page, deliver_notifications=False)
    public_id = incident.public_id
    incident_services.content_delete(instances=[incident])
    rows = ArchivedMessage.objects.filter(incident_public_id=public_id)
    assert rows.count() == 1
    assert rows.get().incident_id is None and rows.get().update_id is None
    assert archive.archive_verify().ok


@postgres_only
def test_postgres_refuses_a_raw_update(db):
    _email()
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("UPDATE notifications_archivedmessage SET subject = 'rewritten'")


@postgres_only
def test_postgres_refuses_a_raw_delete(db):
    _email()
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("DELETE FROM notifications_archivedmessage")


@postgres_only
def test_postgres_refuses_pointing_a_message_at_another_subscriber(page):
    first = subscriber_services.subscriber_create(page=page, channel=Channel.EMAIL, address="a@example.com", skip_confirmation_reason="test")
    other = subscriber_services.subscriber_create(page=page, channel=Channel.EMAIL, address="b@example.com", skip_confirmation_reason="test")
    _email(subscriber=first)
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("UPDATE notifications_archivedmessage SET subscriber_id = %s", [other.pk])


# --- verify ------------------------------------------------------------------------------------


def test_verify_passes_on_a_clean_chain(db):
    for _ in range(3):
        _email()
    result = archive.archive_verify()
    assert (result.ok, result.count, result.last_sequence) == (True, 3, 3)
    assert result.last_hash == ArchivedMessage.objects.get(sequence=3).hash


def test_verify_names_the_first_edited_message(db):
    for _ in range(4):
        _email()
    _tamper("UPDATE notifications_archivedmessage SET text_body = %s WHERE sequence IN (2, 3)", ["All fine, nothing to see."])
    result = archive.archive_verify()
    assert (result.ok, result.broken_sequence) == (False, 2)
    assert result.reason.startswith("content changed")


def test_verify_names_an_edit_that_recomputed_the_content_hash(db):
    for _ in range(3):
        _email()
    forged = ArchivedMessage.objects.get(sequence=2)
    forged.recipient = "mallory@example.com"
    _tamper(
        "UPDATE notifications_archivedmessage SET recipient = %s, content_sha256 = %s WHERE sequence = 2",
        [forged.recipient, archive.content_hash(forged)],
    )
    result = archive.archive_verify()
    assert (result.broken_sequence, result.reason.split(":")[0]) == (2, "chain broken")


def test_verify_names_a_deleted_message_as_a_gap(db):
    for _ in range(4):
        _email()
    _tamper("DELETE FROM notifications_archivedmessage WHERE sequence = 3", [])
    result = archive.archive_verify()
    assert (result.ok, result.broken_sequence) == (False, 3)
    assert result.reason.startswith("sequence gap")


def test_verify_reports_progress(db):
    _email()
    seen = []
    archive.archive_verify(progress=lambda done, total: seen.append((done, total)))
    assert seen[-1] == (1, 1)


# --- what gets archived ------------------------------------------------------------------------


def test_publishing_an_update_archives_it_in_the_same_transaction(page, django_capture_on_commit_callbacks):
    incident = factories.open_incident(page=page, deliver_notifications=False)
    with django_capture_on_commit_callbacks(execute=False), transaction.atomic():
        update = incident_services.incident_post_update(
            incident=incident, status=IncidentStatus.IDENTIFIED, body="The cause is a **bad deploy**.", deliver_notifications=False,
        )
        # Before commit, with no on-commit callback run: the row is part of the publish itself.
        row = ArchivedMessage.objects.get(update_public_id=update.public_id)
    assert (row.channel, row.kind) == ("page", "page_update")
    assert row.recipient == f"https://status.example.com/incidents/{incident.public_id}"
    assert "<strong>bad deploy</strong>" in row.html_body
    assert row.payload["status"] == IncidentStatus.IDENTIFIED


def test_a_rolled_back_publish_leaves_no_archive_row(page):
    incident = factories.open_incident(page=page, deliver_notifications=False)
    before = ArchivedMessage.objects.count()
    with pytest.raises(RuntimeError), transaction.atomic():
        incident_services.incident_post_update(incident=incident, status=IncidentStatus.IDENTIFIED, body="Found it.", deliver_notifications=False)
        raise RuntimeError("the publish failed after the update was written")
    assert ArchivedMessage.objects.count() == before


def test_a_sent_confirmation_email_is_archived_with_its_headers_and_provider_id(page, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        subscriber = subscriber_services.subscriber_subscribe(
            page=page, channel=Channel.EMAIL, address="dee@example.com", source=ConsentSource.PUBLIC_PAGE
        )
    sent = mail.outbox[0]
    row = ArchivedMessage.objects.get(kind="confirmation")
    assert (row.channel, row.recipient, row.subject) == ("email", "dee@example.com", sent.subject)
    assert row.headers["List-Unsubscribe"] == sent.extra_headers["List-Unsubscribe"]
    assert row.provider_id == str(sent.anymail_status.message_id)
    assert row.subscriber_public_id == subscriber.public_id


def test_a_confirmation_that_failed_to_send_is_not_archived(page, receiver, allow_local, django_capture_on_commit_callbacks):
    receiver.reply(500)
    with django_capture_on_commit_callbacks(execute=True):
        subscriber_services.subscriber_create(page=page, channel=Channel.WEBHOOK, address=f"{receiver.url}/hook")
    assert receiver.requests
    assert not ArchivedMessage.objects.filter(kind="confirmation").exists()


# --- export ------------------------------------------------------------------------------------


def _sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_export_writes_jsonl_mbox_and_a_manifest_whose_hashes_match(db, tmp_path):
    _email()
    _email(channel="webhook", recipient="https://hooks.example.org/secret", payload={"incident": {"id": "x"}})
    archive.archive_export(out_dir=tmp_path / "out", start=timezone.now() - dt.timedelta(days=1))
    out = tmp_path / "out"
    lines = (out / "MANIFEST.sha256").read_text().splitlines()
    listed = dict(reversed(line.split("  ", 1)) for line in lines)
    assert set(listed) == {"messages.jsonl", "messages.mbox", "manifest.json"}
    assert all(_sha256(out / name) == digest for name, digest in listed.items())


def test_export_jsonl_lines_recompute_to_their_archived_hashes(db, tmp_path):
    _email()
    archive.archive_export(out_dir=tmp_path, start=T0)
    record = json.loads((tmp_path / "messages.jsonl").read_text().splitlines()[0])
    content = {name: record[name] for name in archive.CONTENT_FIELDS}
    canonical = json.dumps(content, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    assert hashlib.sha256(canonical.encode()).hexdigest() == record["content_sha256"]


def test_export_mbox_holds_the_email_as_sent(db, tmp_path):
    _email(message_id="<m1@example.com>")
    archive.archive_export(out_dir=tmp_path, start=T0)
    (message,) = list(mailbox.mbox(tmp_path / "messages.mbox"))
    assert (message["To"], message["Message-ID"]) == ("ann@example.com", "<m1@example.com>")
    assert message["List-Unsubscribe"] == "<https://status.example.com/u/x>"
    assert {part.get_content_type() for part in message.walk()} >= {"text/plain", "text/html"}


def test_export_writes_other_channels_as_pseudo_messages_with_their_channel(db, tmp_path):
    _email(channel="slack", recipient="https://hooks.slack.com/services/T/B/secret", headers={})
    archive.archive_export(out_dir=tmp_path, start=T0)
    (message,) = list(mailbox.mbox(tmp_path / "messages.mbox"))
    assert message["X-Channel"] == "slack"
    assert message["X-Recipient"] == "https://hooks.slack.com/services/T/B/secret"
    assert email.message_from_bytes(message.as_bytes()).get_content_type() == "multipart/alternative"


def test_export_filters_by_date_range(db, tmp_path, monkeypatch):
    with _at(monkeypatch, T0):
        _email(subject="old")
    with _at(monkeypatch, T0 + dt.timedelta(days=10)):
        _email(subject="in range")
    _email(subject="recent")
    result = archive.archive_export(out_dir=tmp_path, start=T0 + dt.timedelta(days=5), end=T0 + dt.timedelta(days=20))
    subjects = [json.loads(line)["subject"] for line in (tmp_path / "messages.jsonl").read_text().splitlines()]
    assert (result.count, subjects) == (1, ["in range"])


def test_export_filters_by_incident_also_after_it_was_deleted(page, tmp_path):
    incident = factories.open_incident(page=page, deliver_notifications=False)
    factories.open_incident(page=page, name="Another", deliver_notifications=False)
    public_id = incident.public_id
    incident_services.content_delete(instances=[incident])
    result = archive.archive_export(out_dir=tmp_path, incident=public_id)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert result.count == 1
    assert manifest["last"]["hash"] == ArchivedMessage.objects.get(incident_public_id=public_id).hash


def test_export_refuses_a_directory_that_is_not_empty(db, tmp_path):
    (tmp_path / "keep.txt").write_text("x")
    with pytest.raises(archive.ArchiveError):
        archive.archive_export(out_dir=tmp_path, start=T0)


# --- retention and legal hold ------------------------------------------------------------------


def _history(monkeypatch, page, *, days: int) -> list[ArchivedMessage]:
    """One message a day for `days` days from T0."""
    rows = []
    for day in range(days):
        with _at(monkeypatch, T0 + dt.timedelta(days=day)):
            rows.append(_email(page=page, subject=f"day {day}"))
    return rows


def test_purge_removes_expired_messages_and_the_chain_still_verifies(page, monkeypatch):
    _history(monkeypatch, page, days=5)
    result = archive.archive_purge(before=T0 + dt.timedelta(days=3))
    assert (result.count, result.through_sequence) == (3, 3)
    assert list(ArchivedMessage.objects.order_by("sequence").values_list("sequence", flat=True)) == [4, 5]
    verified = archive.archive_verify()
    assert (verified.ok, verified.count, verified.checkpoint_sequence) == (True, 2, 3)


def test_the_daily_schedule_purges_what_retention_lets_go(page, monkeypatch, settings):
    from incidents.schedules import SCHEDULES
    from notifications import tasks

    [spec] = [s for s in SCHEDULES if s["func"] == "notifications.tasks.purge_archive"]
    assert spec["schedule_type"] == "D"
    _history(monkeypatch, page, days=5)
    settings.ARCHIVE_RETENTION_DAYS = 2
    with time_machine.travel(T0 + dt.timedelta(days=5), tick=False):
        result = tasks.purge_archive()
    # Days 0-2 are more than two days old on day 5; days 3 and 4 stay.
    assert result["purged"] == 3
    assert list(ArchivedMessage.objects.order_by("sequence").values_list("subject", flat=True)) == ["day 3", "day 4"]
    assert archive.archive_verify().ok


def test_purge_keeps_messages_within_retention(page, monkeypatch):
    _history(monkeypatch, page, days=3)
    assert archive.archive_purge(before=T0).count == 0
    assert ArchivedMessage.objects.count() == 3


def test_a_dry_run_purge_removes_nothing(page, monkeypatch):
    _history(monkeypatch, page, days=3)
    assert archive.archive_purge(before=T0 + dt.timedelta(days=9), dry_run=True).count == 3
    assert (ArchivedMessage.objects.count(), ArchiveCheckpoint.objects.count()) == (3, 0)


def test_a_legal_hold_stops_the_purge_at_the_first_held_message(page, monkeypatch, staff):
    rows = _history(monkeypatch, page, days=2)
    with _at(monkeypatch, T0 + dt.timedelta(days=2)):
        incident = factories.open_incident(page=page, deliver_notifications=False)
    _history(monkeypatch, page, days=2)
    archive.legal_hold_place(incident=incident, reason="Litigation 2020-17", actor=staff)
    result = archive.archive_purge(before=T0 + dt.timedelta(days=30))
    assert (result.count, result.held_sequence) == (len(rows), 3)
    assert ArchivedMessage.objects.filter(incident_public_id=incident.public_id).exists()
    assert archive.archive_verify().ok


def test_a_released_hold_lets_the_purge_continue(page, monkeypatch, staff):
    with _at(monkeypatch, T0):
        incident = factories.open_incident(page=page, deliver_notifications=False)
    _history(monkeypatch, page, days=2)
    hold = archive.legal_hold_place(incident=incident, reason="Audit", actor=staff)
    assert archive.archive_purge(before=T0 + dt.timedelta(days=30)).count == 0
    archive.legal_hold_release(hold=hold, actor=staff)
    assert archive.archive_purge(before=T0 + dt.timedelta(days=30)).count == 3
    assert archive.archive_verify().ok


def test_a_time_window_hold_keeps_the_messages_archived_in_it(page, monkeypatch):
    _history(monkeypatch, page, days=4)
    archive.legal_hold_place(starts_at=T0 + dt.timedelta(days=2), ends_at=T0 + dt.timedelta(days=3), reason="Regulator request")
    result = archive.archive_purge(before=T0 + dt.timedelta(days=30))
    assert (result.count, result.held_sequence) == (2, 3)


def test_messages_archived_after_a_full_purge_chain_from_the_checkpoint(page, monkeypatch):
    _history(monkeypatch, page, days=2)
    archive.archive_purge(before=T0 + dt.timedelta(days=30))
    later = _email()
    assert later.sequence == 3
    assert later.prev_hash == ArchiveCheckpoint.objects.get().hash
    assert archive.archive_verify().ok


def test_a_legal_hold_names_exactly_one_scope(page):
    with pytest.raises(ValidationError):
        archive.legal_hold_place(page=page, starts_at=T0, ends_at=T0 + dt.timedelta(days=1), reason="Both")


@pytest.mark.skipif(
    "connection.vendor != 'postgresql'",
    reason="the advisory lock is PostgreSQL's; SQLite serialises write transactions itself",
)
@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_on_postgres_get_a_gap_free_chain():
    import threading

    from django.db import connections

    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def writer(name: str) -> None:
        try:
            barrier.wait(timeout=10)
            for i in range(15):
                _email(recipient=f"{name}{i}@example.com")
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=writer, args=(name,)) for name in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    result = archive.archive_verify()
    assert (result.ok, result.count) == (True, 30)
