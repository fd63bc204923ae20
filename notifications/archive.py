"""The compliance archive: append, verify, export and purge archived messages.

The chain: every row carries `content_sha256`, the SHA-256 of the canonical JSON of its
content fields, and `hash` = SHA-256 of prev_hash | sequence | content_sha256 | created (ISO),
where prev_hash is the previous row's hash (or the newest purge checkpoint's, or 64 zeros for
the first row ever). Sequences are gap-free: the next number is read and written under one
lock (a PostgreSQL transaction-level advisory lock; SQLite serialises write transactions
already), so a rolled-back writer frees its number for the next one.

An edit shows up as a content hash that no longer matches (or, when the attacker recomputed
it, a chain hash that no longer matches); a deleted row as a gap in the sequence. Removing the
newest rows leaves no trace inside the table: compare the head that archive_verify prints (or
an export's manifest.json) with one recorded earlier.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import mailbox
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from notifications.models import (
    ArchiveChannel,
    ArchiveCheckpoint,
    ArchivedMessage,
    LegalHold,
)

GENESIS_HASH = "0" * 64
# pg_advisory_xact_lock key shared by every archive writer and the purge ("ARCHIVE" in ASCII).
ARCHIVE_LOCK_KEY = 0x41524348495645
VERIFY_CHUNK = 2000

# The fields content_sha256 covers, in the order the canonical JSON is built (keys are sorted
# anyway). Integer foreign keys are left out on purpose: SET_NULL clears them when a subscriber
# or incident is deleted, while the frozen public ids stay.
CONTENT_FIELDS = (
    "channel", "kind", "recipient", "subject", "text_body", "html_body", "headers", "payload",
    "page_public_id", "incident_public_id", "update_public_id", "subscriber_public_id",
    "template_version", "policy_version", "approvals", "revision", "provider_id", "attempts",
    "sent_at", "message_id",
)

Progress = Callable[[int, int], None]


class ArchiveError(Exception):
    """A request the archive cannot carry out (bad export target, unknown incident, ...)."""


# --- hashing --------------------------------------------------------------------------------


def _iso(value: dt.datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(dt.timezone.utc).isoformat(timespec="microseconds")


def _plain_json(value: Any) -> Any:
    """The value as the database will hand it back (JSON round trip), so hashes recompute."""
    return json.loads(json.dumps(value, ensure_ascii=False, sort_keys=True))


def content_fields(message: ArchivedMessage) -> dict[str, Any]:
    values = {name: getattr(message, name) for name in CONTENT_FIELDS}
    values["sent_at"] = _iso(message.sent_at)
    return values


def content_hash(message: ArchivedMessage) -> str:
    canonical = json.dumps(content_fields(message), ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def chain_hash(*, prev_hash: str, sequence: int, content_sha256: str, created: dt.datetime) -> str:
    link = f"{prev_hash}|{sequence}|{content_sha256}|{_iso(created)}"
    return hashlib.sha256(link.encode("utf-8")).hexdigest()


# --- writing --------------------------------------------------------------------------------


def _now() -> dt.datetime:
    return timezone.now()


def _lock() -> None:
    """Serialise archive writers until the end of the current transaction."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [ARCHIVE_LOCK_KEY])
    # SQLite: write transactions are serialised by the database itself (IMMEDIATE mode in
    # settings), and the unique sequence is the backstop.


def _head() -> tuple[int, str]:
    """The last sequence and hash of the chain: the newest row, or the newest checkpoint."""
    last = ArchivedMessage.objects.order_by("-sequence").values_list("sequence", "hash").first()
    checkpoint = ArchiveCheckpoint.objects.order_by("-sequence").values_list("sequence", "hash").first()
    candidates = [c for c in (last, checkpoint) if c is not None]
    return max(candidates) if candidates else (0, GENESIS_HASH)


def _build(
    *, channel: str, kind: str, recipient: str, subject: str = "", text_body: str = "", html_body: str = "",
    headers: dict[str, Any] | None = None, payload: Any = None, page=None, incident=None, update=None,
    subscriber=None, template_version: str = "", policy_version: str = "", approvals: list | None = None,
    revision: str | int = "", provider_id: str = "", attempts: int = 1, sent_at: dt.datetime | None = None,
    message_id: str = "",
) -> ArchivedMessage:
    if channel not in ArchiveChannel.values:
        raise ValueError(f"Unknown archive channel {channel!r}")
    if not kind:
        raise ValueError("An archived message needs a kind")
    if page is None and incident is not None:
        page = incident.page
    if incident is None and update is not None:
        incident = update.incident
    headers = dict(headers or {})
    if channel == ArchiveChannel.EMAIL:
        # As sent: the email transport sends from DEFAULT_FROM_EMAIL unless told otherwise.
        headers.setdefault("From", settings.DEFAULT_FROM_EMAIL)
    return ArchivedMessage(
        channel=channel, kind=str(kind), recipient=str(recipient), subject=subject or "",
        text_body=text_body or "", html_body=html_body or "",
        # str -> str is already what the JSON round trip would give back.
        headers={str(k): str(v) for k, v in headers.items()},
        payload=_plain_json(payload) if payload is not None else None,
        page=page, incident=incident, update=update, subscriber=subscriber,
        page_public_id=page.public_id if page is not None else "",
        incident_public_id=incident.public_id if incident is not None else "",
        update_public_id=update.public_id if update is not None else "",
        subscriber_public_id=subscriber.public_id if subscriber is not None else "",
        template_version=str(template_version or ""), policy_version=str(policy_version or ""),
        approvals=_plain_json(list(approvals)) if approvals else [], revision=str(revision if revision is not None else ""),
        provider_id=str(provider_id or ""), attempts=int(attempts), sent_at=sent_at,
        message_id=message_id or "",
    )


def _append(messages: list[ArchivedMessage]) -> list[ArchivedMessage]:
    """Chain and insert messages; the caller is inside a transaction."""
    _lock()
    sequence, prev_hash = _head()
    # One timestamp for the batch, taken under the lock, so `created` never goes backwards
    # along the sequence on one clock.
    now = _now()
    for message in messages:
        sequence += 1
        message.sequence = sequence
        message.created = now
        message.content_sha256 = content_hash(message)
        message.prev_hash = prev_hash
        message.hash = chain_hash(prev_hash=prev_hash, sequence=sequence, content_sha256=message.content_sha256, created=now)
        prev_hash = message.hash
    if len(messages) == 1:
        messages[0].save()
    elif connection.vendor == "postgresql":
        _copy_in(messages)
    else:
        ArchivedMessage.objects.bulk_create(messages, batch_size=500)
    return messages


def _copy_in(messages: list[ArchivedMessage]) -> None:
    """Insert a batch with COPY: a send batch archives hundreds of rows of rendered bodies, and
    bulk_create spent longer adapting its parameters than PostgreSQL spent storing them
    (bench/fanout). The rows get no pk here; nothing reads it back from a batch."""
    fields = [field for field in ArchivedMessage._meta.concrete_fields if not field.primary_key]
    table = connection.ops.quote_name(ArchivedMessage._meta.db_table)
    columns = ", ".join(connection.ops.quote_name(field.column) for field in fields)
    with connection.cursor() as cursor, cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
        for message in messages:
            copy.write_row([field.get_db_prep_save(getattr(message, field.attname), connection) for field in fields])


@transaction.atomic
def archive_message(
    *,
    channel: str,
    kind: str,
    recipient: str,
    subject: str = "",
    text_body: str = "",
    html_body: str = "",
    headers: dict[str, Any] | None = None,
    payload: Any = None,
    page=None,
    incident=None,
    update=None,
    subscriber=None,
    template_version: str = "",
    policy_version: str = "",
    approvals: list | None = None,
    revision: str | int = "",
    provider_id: str = "",
    attempts: int = 1,
    sent_at: dt.datetime | None = None,
    message_id: str = "",
) -> ArchivedMessage:
    """Append one message as sent to the archive, chained to the previous one.

    Takes the archive lock until the surrounding transaction ends: keep that transaction short
    (never wait on a provider while holding it). Rolled back with the caller's transaction.
    """
    message = _build(
        channel=channel, kind=kind, recipient=recipient, subject=subject, text_body=text_body,
        html_body=html_body, headers=headers, payload=payload, page=page, incident=incident, update=update,
        subscriber=subscriber, template_version=template_version, policy_version=policy_version,
        approvals=approvals, revision=revision, provider_id=provider_id, attempts=attempts, sent_at=sent_at,
        message_id=message_id,
    )
    return _append([message])[0]


@transaction.atomic
def archive_messages(entries: Iterable[dict[str, Any]]) -> list[ArchivedMessage]:
    """Append many messages under one lock and one INSERT per 500 (a send batch's worth).

    Each entry takes the keyword arguments of archive_message. Same transaction rules.
    """
    messages = [_build(**entry) for entry in entries]
    return _append(messages) if messages else []


# --- verifying ------------------------------------------------------------------------------


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    count: int  # rows checked
    first_sequence: int | None = None
    last_sequence: int | None = None
    last_hash: str = GENESIS_HASH
    checkpoint_sequence: int = 0  # rows up to this one were purged
    broken_sequence: int | None = None
    reason: str = ""


def archive_verify(*, progress: Progress | None = None) -> VerifyResult:
    """Walk the chain from the newest purge checkpoint and report its first broken link."""
    checkpoint = ArchiveCheckpoint.objects.order_by("-sequence").first()
    start_sequence = checkpoint.sequence if checkpoint else 0
    prev_hash = checkpoint.hash if checkpoint else GENESIS_HASH
    rows = ArchivedMessage.objects.filter(sequence__gt=start_sequence).order_by("sequence")
    total = rows.count() if progress else 0
    expected = start_sequence + 1
    count = 0
    first = None

    def broken(sequence: int, reason: str) -> VerifyResult:
        return VerifyResult(
            ok=False, count=count, first_sequence=first, last_sequence=expected - 1, last_hash=prev_hash,
            checkpoint_sequence=start_sequence, broken_sequence=sequence, reason=reason,
        )

    for row in rows.iterator(chunk_size=VERIFY_CHUNK):
        if row.sequence != expected:
            missing = f"{expected}" if row.sequence == expected + 1 else f"{expected}-{row.sequence - 1}"
            return broken(expected, f"sequence gap: message {missing} is missing (deleted)")
        if content_hash(row) != row.content_sha256:
            return broken(row.sequence, "content changed: the stored content no longer matches its hash")
        if row.prev_hash != prev_hash:
            return broken(row.sequence, "chain broken: prev_hash does not match the previous link")
        if chain_hash(prev_hash=prev_hash, sequence=row.sequence, content_sha256=row.content_sha256, created=row.created) != row.hash:
            return broken(row.sequence, "chain broken: the link hash does not recompute (hash, sequence or time changed)")
        first = row.sequence if first is None else first
        prev_hash = row.hash
        expected += 1
        count += 1
        if progress and count % VERIFY_CHUNK == 0:
            progress(count, total)
    if progress:
        progress(count, total)
    return VerifyResult(
        ok=True, count=count, first_sequence=first, last_sequence=expected - 1, last_hash=prev_hash,
        checkpoint_sequence=start_sequence,
    )


# --- exporting ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExportResult:
    count: int
    files: dict[str, str]  # file name -> sha256
    first_sequence: int | None
    last_sequence: int | None


def export_queryset(*, start: dt.datetime | None = None, end: dt.datetime | None = None, incident: str | None = None):
    rows = ArchivedMessage.objects.all()
    if start is not None:
        rows = rows.filter(created__gte=start)
    if end is not None:
        rows = rows.filter(created__lt=end)
    if incident is not None:
        # The frozen id: an incident deleted since is still exportable.
        rows = rows.filter(incident_public_id=getattr(incident, "public_id", incident))
    return rows.order_by("sequence")


def message_record(row: ArchivedMessage) -> dict[str, Any]:
    """One JSONL line: everything archived about a message, including its chain links."""
    record = content_fields(row)
    record.update(
        sequence=row.sequence, created=_iso(row.created), content_sha256=row.content_sha256,
        prev_hash=row.prev_hash, hash=row.hash,
    )
    return record


def _header_value(value: Any) -> str:
    return " ".join(str(value).split())


# Headers the export writes itself; archived values for them are not copied twice.
_OWN_HEADERS = {"from", "to", "subject", "date", "message-id", "mime-version", "content-type", "content-transfer-encoding"}


def email_message(row: ArchivedMessage) -> EmailMessage:
    """The archived message as an RFC 5322 message: the email as sent, or a pseudo-message
    (text/plain, X-Channel) for the other channels."""
    msg = EmailMessage()
    when = row.sent_at or row.created
    headers = row.headers or {}
    if row.channel == ArchiveChannel.EMAIL:
        msg["From"] = _header_value(headers.get("From") or settings.DEFAULT_FROM_EMAIL)
        msg["To"] = _header_value(row.recipient)
    else:
        msg["From"] = _header_value(settings.DEFAULT_FROM_EMAIL)
        msg["To"] = "undisclosed-recipients:;"
        msg["X-Recipient"] = _header_value(row.recipient)
    msg["Subject"] = _header_value(row.subject)
    msg["Date"] = format_datetime(when.astimezone(dt.timezone.utc))
    msg["Message-ID"] = row.message_id or f"<archive-{row.sequence}@{_domain()}>"
    msg["X-Channel"] = row.channel
    msg["X-Kind"] = row.kind
    msg["X-Archive-Sequence"] = str(row.sequence)
    msg["X-Archive-Hash"] = row.hash
    if row.provider_id:
        msg["X-Provider-Id"] = _header_value(row.provider_id)
    for public_field, header in (("page_public_id", "X-Page"), ("incident_public_id", "X-Incident"),
                                 ("update_public_id", "X-Incident-Update"), ("subscriber_public_id", "X-Subscriber")):
        if getattr(row, public_field):
            msg[header] = getattr(row, public_field)
    for name, value in headers.items():
        if name.lower() not in _OWN_HEADERS:
            msg[name] = _header_value(value)
    msg.set_content(row.text_body or "")
    if row.html_body:
        msg.add_alternative(row.html_body, subtype="html")
    if row.payload is not None:
        body = json.dumps(row.payload, ensure_ascii=False, sort_keys=True, indent=2).encode("utf-8")
        msg.add_attachment(body, maintype="application", subtype="json", filename="payload.json")
    return msg


def _domain() -> str:
    address = settings.DEFAULT_FROM_EMAIL.rsplit("@", 1)
    return address[1].strip("> ") if len(address) == 2 else "statuspage.invalid"


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def archive_export(
    *,
    out_dir: str | os.PathLike,
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
    incident=None,
    progress: Progress | None = None,
) -> ExportResult:
    """Write the messages of a time range (created, start inclusive, end exclusive) and/or an
    incident (an Incident or its public id) to out_dir: messages.jsonl, messages.mbox (one
    RFC 5322 message per archived message), manifest.json (filters, count, chain anchors) and
    MANIFEST.sha256 (`sha256sum -c` format). out_dir must be missing or empty."""
    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ArchiveError(f"{out} must be an empty directory or not exist yet")
    out.mkdir(parents=True, exist_ok=True)
    rows = export_queryset(start=start, end=end, incident=incident)
    total = rows.count()
    jsonl_path, mbox_path = out / "messages.jsonl", out / "messages.mbox"
    count = 0
    first: ArchivedMessage | None = None
    last: ArchivedMessage | None = None
    box = mailbox.mbox(mbox_path, create=True)
    try:
        with jsonl_path.open("w", encoding="utf-8") as jsonl:
            for row in rows.iterator(chunk_size=VERIFY_CHUNK):
                jsonl.write(json.dumps(message_record(row), ensure_ascii=False, sort_keys=True) + "\n")
                box.add(email_message(row))
                first = first or row
                last = row
                count += 1
                if progress and count % VERIFY_CHUNK == 0:
                    progress(count, total)
        box.flush()
    finally:
        box.close()
    if progress:
        progress(count, total)
    manifest = {
        "generated_at": _iso(timezone.now()),
        "filters": {
            "from": _iso(start), "to": _iso(end),
            "incident": getattr(incident, "public_id", incident) if incident is not None else None,
        },
        "count": count,
        "files": {"messages.jsonl": "one JSON object per message, in sequence order", "messages.mbox": "RFC 5322 messages (mboxo)"},
        # The chain links at both ends of the export: recompute each row's hashes from the
        # JSONL (see notifications/archive.py) and compare these with the live archive.
        "first": {"sequence": first.sequence, "prev_hash": first.prev_hash, "hash": first.hash} if first else None,
        "last": {"sequence": last.sequence, "hash": last.hash} if last else None,
        "hashing": "content_sha256 = sha256(canonical JSON of content fields); hash = sha256(prev_hash|sequence|content_sha256|created ISO)",
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    files = {name: _sha256_file(out / name) for name in ("messages.jsonl", "messages.mbox", "manifest.json")}
    (out / "MANIFEST.sha256").write_text("".join(f"{digest}  {name}\n" for name, digest in files.items()), encoding="utf-8")
    return ExportResult(
        count=count, files=files, first_sequence=first.sequence if first else None,
        last_sequence=last.sequence if last else None,
    )


# --- retention and legal hold ----------------------------------------------------------------


@dataclass(frozen=True)
class PurgeResult:
    count: int  # rows removed (or that would be, on a dry run)
    through_sequence: int | None  # the new checkpoint
    held_sequence: int | None = None  # the first expired row kept by a legal hold
    holds: list[str] = field(default_factory=list)  # the holds that stopped the purge


def retention_cutoff(now: dt.datetime | None = None) -> dt.datetime:
    return (now or timezone.now()) - dt.timedelta(days=settings.ARCHIVE_RETENTION_DAYS)


def _held(holds: list[LegalHold]) -> Q | None:
    condition = None
    for hold in holds:
        condition = hold.holds() if condition is None else condition | hold.holds()
    return condition


@transaction.atomic
def archive_purge(*, before: dt.datetime, dry_run: bool = False) -> PurgeResult:
    """Remove messages archived before `before`, oldest first, keeping the chain verifiable.

    Only a contiguous prefix of the sequence goes: the purge stops at the first row that is
    not yet expired or that an active legal hold keeps, so a hold on an old row pauses purging
    of everything after it until it is released. The last removed link is recorded as an
    ArchiveCheckpoint in the same transaction; archive_verify starts there.
    Takes the archive lock.
    """
    _lock()
    start = ArchiveCheckpoint.objects.order_by("-sequence").values_list("sequence", flat=True).first() or 0
    live = ArchivedMessage.objects.filter(sequence__gt=start)
    # The first row not yet expired ends the prefix ...
    stop = live.filter(created__gte=before).order_by("sequence").values_list("sequence", flat=True).first()
    # ... and so does the first expired row under an active hold, if it comes sooner.
    holds = list(LegalHold.objects.filter(released_at__isnull=True))
    held_sequence = None
    stopping_holds: list[str] = []
    held = _held(holds)
    if held is not None:
        candidates = live if stop is None else live.filter(sequence__lt=stop)
        held_sequence = candidates.filter(held).order_by("sequence").values_list("sequence", flat=True).first()
        if held_sequence is not None:
            stop = held_sequence
            stopping_holds = [str(hold) for hold in holds if live.filter(sequence=held_sequence).filter(hold.holds()).exists()]
    prefix = live if stop is None else live.filter(sequence__lt=stop)
    last = prefix.order_by("-sequence").values_list("sequence", "hash").first()
    if last is None:
        return PurgeResult(count=0, through_sequence=None, held_sequence=held_sequence, holds=stopping_holds)
    through, through_hash = last
    doomed = ArchivedMessage.objects.filter(sequence__gt=start, sequence__lte=through)
    count = doomed.count()
    if dry_run:
        return PurgeResult(count=count, through_sequence=through, held_sequence=held_sequence, holds=stopping_holds)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            # Lets the append-only trigger pass DELETEs until this transaction ends.
            cursor.execute("SET LOCAL statuspage.archive_purge = 'on'")
    deleted = doomed._purge_delete()
    ArchiveCheckpoint(sequence=through, hash=through_hash, purged_count=deleted, before=before, created=timezone.now()).save()
    return PurgeResult(count=deleted, through_sequence=through, held_sequence=held_sequence, holds=stopping_holds)


def check_legal_hold_scope(
    *, incident=None, page=None, starts_at: dt.datetime | None = None, ends_at: dt.datetime | None = None,
) -> None:
    """Raise ValidationError unless exactly one scope is named: an incident, a page or a window."""
    scopes = [incident is not None, page is not None, starts_at is not None or ends_at is not None]
    if sum(scopes) != 1:
        raise ValidationError("A legal hold names exactly one of: an incident, a page, or a time window.")
    if scopes[2] and (starts_at is None or ends_at is None or ends_at <= starts_at):
        raise ValidationError({"ends_at": "A time window needs a start and a later end."})


@transaction.atomic
def legal_hold_place(
    *, reason: str, actor=None, incident=None, page=None,
    starts_at: dt.datetime | None = None, ends_at: dt.datetime | None = None,
) -> LegalHold:
    """Keep the archived messages of an incident, a page or a time window from being purged."""
    check_legal_hold_scope(incident=incident, page=page, starts_at=starts_at, ends_at=ends_at)
    if not (reason or "").strip():
        raise ValidationError({"reason": "Say why the messages must be kept."})
    hold = LegalHold(
        incident=incident, page=page,
        incident_public_id=incident.public_id if incident is not None else "",
        page_public_id=page.public_id if page is not None else "",
        starts_at=starts_at, ends_at=ends_at, reason=reason.strip(),
        created_by=actor if getattr(actor, "pk", None) else None, created=timezone.now(),
    )
    hold.full_clean()
    hold.save()
    return hold


@transaction.atomic
def legal_hold_release(*, hold: LegalHold, actor=None) -> bool:
    """Release a hold (idempotent): the next purge may remove what it kept, if expired."""
    updated = LegalHold.objects.filter(pk=hold.pk, released_at__isnull=True).update(
        released_at=timezone.now(), released_by=actor if getattr(actor, "pk", None) else None,
    )
    hold.refresh_from_db()
    return bool(updated)

