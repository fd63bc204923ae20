"""The CRM import: customer accounts, their enterprise contacts and subscribers from a CSV export.

All or nothing. The first pass reads and checks every row and writes nothing; only a file
without a single error is read a second time and written, in one transaction, through the
services. Rows are streamed both times, so a large export is never held in memory: what
is kept between rows is one entry per distinct address (to find duplicates) and per account.
"""
from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction

from incidents.models import Component, Page, Region, validate_time_zone
from subscribers import services
from subscribers.addresses import normalise_address, normalise_phone
from subscribers.models import AccountContact, Channel, ConsentSource, Organization, Subscriber, Suppression, Tier

# Column name -> what it holds. The command's help is built from this.
COLUMNS: dict[str, str] = {
    "organization_name": "the customer account's name (accounts are matched by CRM id, else by this name)",
    "organization_external_id": "the account's id in the CRM",
    "tier": "enterprise, business or standard (default for a new account: standard)",
    "region": "a region code of the page: the account's region, and the only region the subscriber hears about",
    "sla": "the contractual SLA, free text (e.g. 99.95% monthly)",
    "contact_name": "an enterprise contact to phone in a P1 (needs contact_phone)",
    "contact_role": "the contact's role",
    "contact_phone": "the contact's phone number; a contact is created or updated only when this is given",
    "channel": "email, sms, webhook, slack or teams (default email)",
    "address": "the email address, phone number or endpoint URL (required)",
    "phone_country": "ISO country code for phone numbers written without +country (e.g. GB)",
    "components": "component names or public ids separated by semicolons; empty: the whole page",
    "notify": "incidents, maintenance or both (default both)",
    "locale": "the subscriber's language, e.g. en or de (empty: the page's language)",
    "time_zone": "an IANA time zone such as Europe/Paris (empty: the page's)",
}
ORGANIZATION_COLUMNS = ("organization_name", "organization_external_id")
NOTIFY = {"incidents": (True, False), "maintenance": (False, True), "both": (True, True)}
MAX_LENGTHS = {"organization_name": 200, "organization_external_id": 100, "sla": 100, "contact_name": 200, "contact_role": 100}
LOCALE_RE = re.compile(r"^[a-z]{2,3}(-[a-z0-9]{2,8})*$")

# Errors beyond this many are counted, not kept: a wrong file can have a million of them.
MAX_REPORTED_ERRORS = 1000
# Rows checked against the database together (existing subscribers, suppressions).
CHUNK_SIZE = 500
SNIFF_BYTES = 64 * 1024


class ImportFileError(Exception):
    """The file as a whole cannot be read (not UTF-8, no header, unknown columns...)."""


@dataclass(frozen=True)
class RowError:
    row: int | None  # the line number in the file (the header is line 1); None: the whole file
    column: str
    message: str

    def __str__(self) -> str:
        where = f"row {self.row}" if self.row is not None else "file"
        return f"{where}, column {self.column}: {self.message}" if self.column else f"{where}: {self.message}"


@dataclass
class ImportReport:
    dry_run: bool = False
    rows: int = 0
    organizations_created: int = 0
    organizations_updated: int = 0
    contacts_created: int = 0
    contacts_updated: int = 0
    subscribers_created: int = 0
    subscribers_skipped: int = 0
    skipped: list[tuple[int, str]] = field(default_factory=list)  # (row, address), the first MAX_REPORTED_ERRORS
    errors: list[RowError] = field(default_factory=list)
    errors_not_shown: int = 0
    written: bool = False

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def error_count(self) -> int:
        return len(self.errors) + self.errors_not_shown

    def add_error(self, row: int | None, column: str, message: str) -> None:
        if len(self.errors) < MAX_REPORTED_ERRORS:
            self.errors.append(RowError(row, column, message))
        else:
            self.errors_not_shown += 1

    def add_skipped(self, row: int, address: str) -> None:
        self.subscribers_skipped += 1
        if len(self.skipped) < MAX_REPORTED_ERRORS:
            self.skipped.append((row, address))

    def reset_counts(self) -> None:
        self.organizations_created = self.organizations_updated = 0
        self.contacts_created = self.contacts_updated = 0
        self.subscribers_created = self.subscribers_skipped = 0
        self.skipped = []

    def summary(self) -> str:
        if self.errors:
            return f"{self.error_count} error(s) in {self.rows} row(s); nothing was written."
        verb = "would be" if self.dry_run else "were"
        return (
            f"{self.rows} row(s) read. Customer accounts: {self.organizations_created} {verb} created, "
            f"{self.organizations_updated} {verb} updated. Contacts: {self.contacts_created} {verb} created, "
            f"{self.contacts_updated} {verb} updated. Subscribers: {self.subscribers_created} {verb} created, "
            f"{self.subscribers_skipped} already subscribed {verb} skipped."
            + (" Dry run: nothing was written." if self.dry_run else "")
        )

    def error_lines(self) -> list[str]:
        lines = [str(error) for error in self.errors]
        if self.errors_not_shown:
            lines.append(f"... and {self.errors_not_shown} more error(s).")
        return lines


# Called every `progress_every` rows and at the end of each pass: (phase, rows so far, report).
Progress = Callable[[str, int, ImportReport], None]


@dataclass
class _Row:
    line: int
    org_key: tuple[str, str] | None
    org_name: str
    org_external_id: str
    tier: str
    region: Region | None
    sla: str
    contact_name: str
    contact_role: str
    contact_phone: str
    channel: str
    address: str
    phone_country: str
    components: tuple[Component, ...]
    notify_incidents: bool
    notify_maintenance: bool
    locale: str
    time_zone: str


@dataclass
class _AccountSeen:
    line: int
    name: str
    tier: str
    region: Region | None
    sla: str
    contacts: set[str] = field(default_factory=set)


class _Checker:
    """Checks rows one by one against the page and the rows before them."""

    def __init__(self, page: Page, report: ImportReport) -> None:
        self.page = page
        self.report = report
        self.regions = {region.code.lower(): region for region in Region.objects.filter(page=page)}
        self.components_by_id: dict[str, Component] = {}
        self.components_by_name: dict[str, list[Component]] = {}
        for component in Component.objects.filter(page=page).select_related("group"):
            self.components_by_id[component.public_id.lower()] = component
            self.components_by_name.setdefault(component.name.casefold(), []).append(component)
        self.addresses: dict[tuple[str, str], int] = {}
        self.accounts: dict[tuple[str, str], _AccountSeen] = {}
        self.account_by_name: dict[str, tuple[str, str]] = {}
        self.languages = {code.lower() for code, _ in settings.LANGUAGES}

    def check(self, line: int, values: dict[str, str]) -> _Row | None:
        errors: list[tuple[str, str]] = []

        def error(column: str, message: str) -> None:
            errors.append((column, message))

        for column, limit in MAX_LENGTHS.items():
            if len(values[column]) > limit:
                error(column, f"longer than {limit} characters")

        org_name, external_id = values["organization_name"], values["organization_external_id"]
        has_account = bool(org_name or external_id)
        tier = values["tier"].lower()
        if tier and tier not in Tier.values:
            error("tier", f"unknown tier {values['tier']!r}: use {', '.join(Tier.values)}")
        elif tier and not has_account:
            error("tier", "a tier belongs to a customer account: give organization_name or organization_external_id")
        region = None
        if values["region"]:
            region = self.regions.get(values["region"].lower())
            if region is None:
                known = ", ".join(sorted(self.regions)) or "this page has no regions"
                error("region", f"unknown region {values['region']!r} (known: {known})")
        if values["sla"] and not has_account:
            error("sla", "an SLA belongs to a customer account: give organization_name or organization_external_id")

        contact_phone = ""
        if values["contact_phone"]:
            if not has_account:
                error("contact_phone", "a contact belongs to a customer account: give organization_name or organization_external_id")
            if not values["contact_name"]:
                error("contact_name", "a contact with a phone number needs a name")
            try:
                contact_phone = normalise_phone(values["contact_phone"], values["phone_country"])
            except ValidationError as exc:
                error("contact_phone", " ".join(exc.messages))

        channel = (values["channel"] or Channel.EMAIL).lower()
        address = ""
        if channel not in Channel.values:
            error("channel", f"unknown channel {values['channel']!r}: use {', '.join(Channel.values)}")
        elif not values["address"]:
            error("address", "required")
        else:
            try:
                address = normalise_address(channel, values["address"], phone_country=values["phone_country"])
            except ValidationError as exc:
                error("address", " ".join(exc.messages))
        phone_country = values["phone_country"].upper()
        if phone_country and not re.fullmatch(r"[A-Z]{2}", phone_country):
            error("phone_country", f"{values['phone_country']!r} is not a two-letter country code")
        if address:
            first = self.addresses.get((channel, address))
            if first is not None:
                error("address", f"{address} appears twice in the file (first on row {first})")

        components: list[Component] = []
        for token in (part.strip() for part in values["components"].split(";")):
            if not token:
                continue
            match = self.components_by_id.get(token.lower())
            if match is None:
                named = self.components_by_name.get(token.casefold(), [])
                if len(named) > 1:
                    ids = ", ".join(c.public_id for c in named)
                    error("components", f"{token!r} names more than one component: use its public id ({ids})")
                    continue
                match = named[0] if named else None
            if match is None:
                error("components", f"unknown component {token!r}")
            elif match not in components:
                components.append(match)

        notify = (values["notify"] or "both").lower()
        if notify not in NOTIFY:
            error("notify", f"{values['notify']!r}: use incidents, maintenance or both")
            notify = "both"
        locale = values["locale"].lower().replace("_", "-")
        if locale and (not LOCALE_RE.match(locale) or (locale not in self.languages and locale.split("-")[0] not in self.languages)):
            error("locale", f"unknown language {values['locale']!r}")
        time_zone = values["time_zone"]
        if time_zone:
            try:
                validate_time_zone(time_zone)
            except ValidationError as exc:
                error("time_zone", " ".join(exc.messages))

        org_key = None
        if has_account and not errors:
            org_key = self._check_account(line, org_name, external_id, tier, region, values["sla"], error)
            if org_key is not None and contact_phone:
                self.accounts[org_key].contacts.add(contact_phone)

        for column, message in errors:
            self.report.add_error(line, column, message)
        if errors:
            return None
        self.addresses[(channel, address)] = line
        return _Row(
            line=line, org_key=org_key, org_name=org_name, org_external_id=external_id, tier=tier, region=region,
            sla=values["sla"], contact_name=values["contact_name"], contact_role=values["contact_role"],
            contact_phone=contact_phone, channel=channel, address=address, phone_country=phone_country,
            components=tuple(components), notify_incidents=NOTIFY[notify][0], notify_maintenance=NOTIFY[notify][1],
            locale=locale, time_zone=time_zone,
        )

    def _check_account(self, line, name, external_id, tier, region, sla, error) -> tuple[str, str] | None:
        """Rows of one account must agree with each other; returns the account's key in this file."""
        if external_id:
            key = ("external_id", external_id)
        else:
            key = self.account_by_name.get(name.casefold(), ("name", name.casefold()))
        seen = self.accounts.get(key)
        if seen is None:
            if not name and not Organization.objects.filter(page=self.page, external_id=external_id).exists():
                error("organization_name", f"account {external_id!r} is not known yet: give its name")
                return None
            self.accounts[key] = _AccountSeen(line=line, name=name, tier=tier, region=region, sla=sla)
            if name:
                self.account_by_name.setdefault(name.casefold(), key)
            return key
        for column, mine, theirs in (
            ("organization_name", name, seen.name), ("tier", tier, seen.tier), ("region", region, seen.region), ("sla", sla, seen.sla),
        ):
            if mine and theirs and mine != theirs:
                error(column, f"the account differs from row {seen.line} ({theirs} there)")
            elif mine and not theirs:
                setattr(seen, "name" if column == "organization_name" else column, mine)
        return key


# --- reading the file ---


def _text(file: BinaryIO) -> io.TextIOWrapper:
    file.seek(0)
    # utf-8-sig drops the byte-order mark spreadsheets put in front of "CSV UTF-8" exports.
    return io.TextIOWrapper(file, encoding="utf-8-sig", errors="strict", newline="")


def _delimiter(sample: str) -> str:
    header = next((line for line in sample.splitlines() if line.strip()), "")
    try:
        delimiter = csv.Sniffer().sniff(sample, delimiters=",;").delimiter
    except csv.Error:  # one column, or too little to go on
        delimiter = ","
    # The header holds only column names, so it settles what the data rows may blur (the
    # semicolons of a components cell in a comma-separated file, say).
    other = ";" if delimiter == "," else ","
    if delimiter not in header and other in header:
        delimiter = other
    return delimiter


def _not_utf8(line: int | None) -> ImportFileError:
    where = f" (line {line})" if line else ""
    return ImportFileError(
        f"The file is not UTF-8 text{where}. Save it from the spreadsheet or CRM as “CSV UTF-8” and upload it again."
    )


def _header_key(name: str) -> str:
    return re.sub(r"[\s-]+", "_", name.strip().lower())


# Marks a row the reader could not split into the header's columns.
_ROW_ERROR = "__row_error__"


def read_rows(file: BinaryIO) -> Iterator[tuple[int, dict[str, str]]]:
    """(line number, {column: stripped value}) for each non-empty data row. Raises ImportFileError."""
    text = _text(file)
    try:
        try:
            sample = text.read(SNIFF_BYTES)
        except UnicodeDecodeError:
            raise _not_utf8(None) from None
        if "\n" in sample and len(sample) == SNIFF_BYTES:
            sample = sample[: sample.rindex("\n")]  # a cut line would mislead the sniffer
        text.seek(0)
        reader = csv.reader(text, delimiter=_delimiter(sample))
        header: list[str] | None = None
        try:
            for cells in reader:
                if not any(cell.strip() for cell in cells):
                    continue  # empty lines, and lines of empty cells
                if header is None:
                    header = _check_header(cells)
                    continue
                if len(cells) > len(header) and any(cell.strip() for cell in cells[len(header):]):
                    yield reader.line_num, {_ROW_ERROR: f"{len(cells)} fields, but the header has {len(header)}"}
                    continue
                values = dict.fromkeys(COLUMNS, "")
                for name, cell in zip(header, cells):
                    values[name] = cell.strip()
                yield reader.line_num, values
        except UnicodeDecodeError:
            raise _not_utf8(reader.line_num + 1) from None
        except csv.Error as exc:
            raise ImportFileError(f"Line {reader.line_num}: this is not a readable CSV file ({exc}).") from None
        if header is None:
            raise ImportFileError("The file is empty: it needs a header row naming the columns, then one row per subscriber.")
    finally:
        text.detach()  # hand the binary file back open: it is read twice


def _check_header(cells: list[str]) -> list[str]:
    names = [_header_key(cell) for cell in cells]
    unknown = [cell.strip() for cell, name in zip(cells, names) if name not in COLUMNS]
    if unknown:
        raise ImportFileError(
            f"Unknown column(s) in the header: {', '.join(unknown)}. The columns are: {', '.join(COLUMNS)}."
        )
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ImportFileError(f"Column(s) named twice in the header: {', '.join(repeated)}.")
    if "address" not in names:
        raise ImportFileError("The header has no “address” column.")
    return names


def _chunks(file: BinaryIO, report: ImportReport) -> Iterator[list[tuple[int, dict[str, str]]]]:
    chunk: list[tuple[int, dict[str, str]]] = []
    for line, values in read_rows(file):
        if _ROW_ERROR in values:
            report.add_error(line, "", values[_ROW_ERROR])
            continue
        chunk.append((line, values))
        if len(chunk) >= CHUNK_SIZE:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _existing(page: Page, rows: list[_Row]) -> tuple[set[tuple[str, str]], set[tuple[str, str]]]:
    """Which of these rows' addresses are subscribed on the page already, and which are suppressed."""
    by_channel: dict[str, list[str]] = {}
    for row in rows:
        by_channel.setdefault(row.channel, []).append(row.address)
    subscribed: set[tuple[str, str]] = set()
    suppressed: set[tuple[str, str]] = set()
    for channel, addresses in by_channel.items():
        subscribed.update(
            (channel, address) for address in
            Subscriber.objects.filter(page=page, channel=channel, address__in=addresses).values_list("address", flat=True)
        )
        suppressed.update(
            (channel, address) for address in
            Suppression.objects.filter(channel=channel, address__in=addresses).values_list("address", flat=True)
        )
    return subscribed, suppressed


# --- the import ---


class _Rollback(Exception):
    pass


def import_subscribers(
    file: BinaryIO,
    *,
    page: Page,
    dry_run: bool = False,
    skip_confirmation_reason: str = "",
    actor=None,
    progress: Progress | None = None,
    progress_every: int = 500,
) -> ImportReport:
    """Check the whole file, then (unless dry_run or any row is wrong) write it in one transaction.

    `file` is a binary, seekable file. Without a skip_confirmation_reason every new subscriber is
    pending and gets a confirmation when the transaction commits; with one, they are confirmed and
    the reason is in the ledger.
    """
    report = ImportReport(dry_run=dry_run)
    try:
        _check_pass(file, page, report, progress, progress_every)
        if report.errors or dry_run:
            return report
        report.reset_counts()
        try:
            with transaction.atomic():
                _write_pass(file, page, report, skip_confirmation_reason.strip(), actor, progress, progress_every)
                if report.errors:  # the database changed between the passes
                    raise _Rollback
        except _Rollback:
            report.reset_counts()
            return report
        report.written = True
    except ImportFileError as exc:
        report.reset_counts()
        report.add_error(None, "", str(exc))
    return report


def _tick(progress: Progress | None, every: int, phase: str, report: ImportReport, rows_before: int, rows_after: int) -> None:
    if progress is not None and rows_before // every != rows_after // every:
        progress(phase, rows_after, report)


def _check_pass(file, page, report, progress, every) -> None:
    checker = _Checker(page, report)
    report.rows = 0
    for chunk in _chunks(file, report):
        rows = [row for row in (checker.check(line, values) for line, values in chunk) if row is not None]
        subscribed, suppressed = _existing(page, rows)
        for row in rows:
            key = (row.channel, row.address)
            if key in suppressed:
                report.add_error(row.line, "address", f"{row.address} is on the suppression list")
            elif key in subscribed:
                report.add_skipped(row.line, _shown(row))
            else:
                report.subscribers_created += 1
        before, report.rows = report.rows, report.rows + len(chunk)
        _tick(progress, every, "checking", report, before, report.rows)
    _count_accounts(page, checker, report)
    if progress is not None:
        progress("checked", report.rows, report)


def _count_accounts(page: Page, checker: _Checker, report: ImportReport) -> None:
    """What the write would do to accounts and contacts (for the dry run's report)."""
    for key, seen in checker.accounts.items():
        organization = _find_account(page, key, seen.name)
        if organization is None:
            report.organizations_created += 1
            report.contacts_created += len(seen.contacts)
            continue
        if any(value and getattr(organization, attr) != value for attr, value in (
            ("tier", seen.tier), ("region", seen.region), ("sla", seen.sla),
            ("name", seen.name if key[0] == "external_id" else ""), ("external_id", key[1] if key[0] == "external_id" else ""),
        )):
            report.organizations_updated += 1
        known = set(AccountContact.objects.filter(organization=organization, phone__in=seen.contacts).values_list("phone", flat=True))
        report.contacts_created += len(seen.contacts - known)


def _find_account(page: Page, key: tuple[str, str], name: str) -> Organization | None:
    kind, value = key
    accounts = Organization.objects.filter(page=page)
    if kind == "external_id":
        found = accounts.filter(external_id=value).first()
        if found is None and name:
            found = accounts.filter(external_id="", name__iexact=name).first()
        return found
    return accounts.filter(name__iexact=value).order_by("pk").first()


def _write_pass(file, page, report, reason, actor, progress, every) -> None:
    checker = _Checker(page, report)
    accounts: dict[tuple[str, str], Organization] = {}
    contacts: set[tuple[int, str]] = set()
    report.rows = 0
    for chunk in _chunks(file, report):
        rows = [row for row in (checker.check(line, values) for line, values in chunk) if row is not None]
        subscribed, _ = _existing(page, rows)
        for row in rows:
            try:
                organization = _write_account(page, row, accounts, contacts, report)
                if (row.channel, row.address) in subscribed:
                    report.add_skipped(row.line, _shown(row))
                    continue
                services.subscriber_create(
                    page=page, channel=row.channel, address=row.address, phone_country=row.phone_country,
                    organization=organization, skip_confirmation_reason=reason, source=ConsentSource.IMPORT, actor=actor,
                    preferences=services.Preferences(
                        all_components=not row.components, components=row.components,
                        notify_incidents=row.notify_incidents, notify_maintenance=row.notify_maintenance,
                        regions=(row.region,) if row.region else (), locale=row.locale, time_zone=row.time_zone,
                    ),
                )
                report.subscribers_created += 1
            except ValidationError as exc:
                for column, messages in _error_columns(exc):
                    report.add_error(row.line, column, messages)
        before, report.rows = report.rows, report.rows + len(chunk)
        _tick(progress, every, "writing", report, before, report.rows)
    if progress is not None:
        progress("written", report.rows, report)


def _write_account(page, row: _Row, accounts: dict, contacts: set, report: ImportReport) -> Organization | None:
    if row.org_key is None:
        return None
    organization = accounts.get(row.org_key)
    if organization is None:
        organization, outcome = services.organization_upsert(
            page=page, name=row.org_name, external_id=row.org_external_id, tier=row.tier, region=row.region, sla=row.sla,
        )
        accounts[row.org_key] = organization
        report.organizations_created += outcome == "created"
        report.organizations_updated += outcome == "updated"
    if row.contact_phone and (organization.pk, row.contact_phone) not in contacts:
        _, outcome = services.account_contact_upsert(
            organization=organization, name=row.contact_name, role=row.contact_role, phone=row.contact_phone,
        )
        contacts.add((organization.pk, row.contact_phone))
        report.contacts_created += outcome == "created"
        report.contacts_updated += outcome == "updated"
    return organization


_SERVICE_COLUMNS = {"name": "organization_name", "phone": "contact_phone", "regions": "region", "__all__": ""}


def _error_columns(exc: ValidationError) -> Iterator[tuple[str, str]]:
    if not hasattr(exc, "error_dict"):
        yield "", " ".join(exc.messages)
        return
    for name, errors in exc.error_dict.items():
        yield _SERVICE_COLUMNS.get(name, name), " ".join(message for error in errors for message in error.messages)


def _shown(row: _Row) -> str:
    # Endpoint URLs carry secrets in their paths; reports show the host only, as the admin does.
    return Subscriber(channel=row.channel, address=row.address).display_address

