"""The CRM import: all rows checked first, nothing written when one is wrong, everything in one go otherwise."""
from __future__ import annotations

import csv
import io

import pytest
from django.core.management import CommandError, call_command

from subscribers import importer, services
from subscribers.models import (
    AccountContact,
    Channel,
    ConfirmationSend,
    ConsentAction,
    ConsentEvent,
    ConsentSource,
    Organization,
    Subscriber,
    SubscriberStatus,
    Suppression,
    SuppressionReason,
    Tier,
)

HEADER = list(importer.COLUMNS)


def _csv(rows: list[dict], *, columns: list[str] | None = None, delimiter: str = ",") -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns or HEADER, delimiter=delimiter, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def _file(text: str, *, encoding: str = "utf-8") -> io.BytesIO:
    return io.BytesIO(text.encode(encoding))


def _initech(**overrides) -> dict:
    row = {
        "organization_name": "Initech", "organization_external_id": "CRM-7", "tier": "enterprise", "region": "eu",
        "sla": "99.95% monthly", "contact_name": "Peter Gibbons", "contact_role": "CTO", "contact_phone": "+44 20 7946 0958",
        "channel": "email", "address": "Ops@Initech.example", "components": "REST API;Dashboard", "notify": "incidents",
        "locale": "de", "time_zone": "Europe/Berlin",
    }
    return {**row, **overrides}


def _sms_row(**overrides) -> dict:
    return {"organization_external_id": "CRM-7", "channel": "sms", "address": "020 7946 0959", "phone_country": "GB", **overrides}


def _solo(**overrides) -> dict:
    return {"address": "solo@example.org", **overrides}


GOOD_ROWS = [_initech(), _sms_row(), _solo()]


def _import(page, text: str, **kwargs) -> importer.ImportReport:
    return importer.import_subscribers(_file(text), page=page, **kwargs)


def _table_counts() -> dict[str, int]:
    return {
        "organizations": Organization.objects.count(),
        "contacts": AccountContact.objects.count(),
        "subscribers": Subscriber.objects.count(),
        "components": Subscriber.components.through.objects.count(),
        "regions": Subscriber.regions.through.objects.count(),
        "ledger": ConsentEvent.objects.count(),
        "confirmations": ConfirmationSend.objects.count(),
        "suppressions": Suppression.objects.count(),
    }


@pytest.fixture
def catalogue(page, rest_api, webhooks, dashboard, eu, us):
    """The page the imports land on: components and regions to refer to."""
    return page


# --- a good file ------------------------------------------------------------------------------


def test_a_good_file_creates_accounts_contacts_and_subscribers(catalogue, rest_api, dashboard, eu):
    report = _import(catalogue, _csv(GOOD_ROWS), skip_confirmation_reason="Opted in through the contract")

    assert report.ok and report.written
    initech = Organization.objects.get(external_id="CRM-7")
    assert (initech.name, initech.tier, initech.region, initech.sla) == ("Initech", Tier.ENTERPRISE, eu, "99.95% monthly")
    assert list(initech.contacts.values_list("name", "role", "phone")) == [("Peter Gibbons", "CTO", "+442079460958")]
    ops = Subscriber.objects.get(address="ops@initech.example")
    assert ops.organization == initech and not ops.all_components
    assert set(ops.components.all()) == {rest_api, dashboard}
    assert (ops.notify_incidents, ops.notify_maintenance, ops.locale, ops.time_zone) == (True, False, "de", "Europe/Berlin")
    assert list(ops.regions.all()) == [eu]
    assert Subscriber.objects.get(channel=Channel.SMS).address == "+442079460959"
    assert Subscriber.objects.get(address="solo@example.org").organization is None


def test_imported_subscribers_are_in_the_ledger_with_source_import_and_the_skip_reason(catalogue):
    _import(catalogue, _csv(GOOD_ROWS), skip_confirmation_reason="Opted in through the contract")

    assert set(Subscriber.objects.values_list("status", flat=True)) == {SubscriberStatus.CONFIRMED}
    assert set(Subscriber.objects.values_list("confirmation_skipped_reason", flat=True)) == {"Opted in through the contract"}
    skipped = ConsentEvent.objects.filter(action=ConsentAction.CONFIRMATION_SKIPPED)
    assert skipped.count() == 3
    assert {(e.source, e.details["reason"]) for e in skipped} == {(ConsentSource.IMPORT, "Opted in through the contract")}
    assert set(ConsentEvent.objects.filter(action=ConsentAction.SUBSCRIBE).values_list("source", flat=True)) == {ConsentSource.IMPORT}


def test_importing_without_a_reason_leaves_subscribers_pending_and_sends_confirmations_on_commit(
    catalogue, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as callbacks:
        _import(catalogue, _csv(GOOD_ROWS))

    assert set(Subscriber.objects.values_list("status", flat=True)) == {SubscriberStatus.PENDING}
    assert len(callbacks) == 3
    assert ConfirmationSend.objects.count() == 3


def test_components_may_be_given_by_public_id(catalogue, webhooks):
    _import(catalogue, _csv([_solo(components=webhooks.public_id)]))

    assert list(Subscriber.objects.get().components.all()) == [webhooks]


# --- errors: nothing written -------------------------------------------------------------------


def test_one_bad_row_writes_nothing_at_all(catalogue, confirmed_bob, globex):
    before = _table_counts()

    report = _import(catalogue, _csv([*GOOD_ROWS, _solo(address="carol@example.org", tier="platinum", organization_name="Hooli")]))

    assert not report.ok and not report.written
    assert _table_counts() == before


def test_a_row_error_names_the_row_and_the_column(catalogue):
    report = _import(catalogue, _csv([_initech(), _solo(tier="platinum", organization_name="Hooli")]))

    assert [(e.row, e.column) for e in report.errors] == [(3, "tier")]
    assert "row 3, column tier: unknown tier 'platinum'" in str(report.errors[0])


def test_every_bad_row_is_reported_not_only_the_first(catalogue):
    rows = [_solo(address="not an email"), _initech(), _solo(address="x@example.org", region="mars")]

    report = _import(catalogue, _csv(rows))

    assert [(e.row, e.column) for e in report.errors] == [(2, "address"), (4, "region")]


@pytest.mark.parametrize(
    ("row", "column"),
    [
        (_solo(tier="gold", organization_name="Hooli"), "tier"),
        (_solo(region="mars"), "region"),
        (_solo(address="ann@"), "address"),
        (_solo(address="", locale="en"), "address"),
        (_solo(channel="pigeon"), "channel"),
        (_solo(channel="sms", address="12"), "address"),
        (_solo(components="REST API;Billing"), "components"),
        (_solo(notify="sometimes"), "notify"),
        (_solo(locale="klingon"), "locale"),
        (_solo(time_zone="Mars/Olympus"), "time_zone"),
        (_solo(phone_country="GBR"), "phone_country"),
        (_initech(contact_phone="555"), "contact_phone"),
        (_initech(contact_name=""), "contact_name"),
        (_solo(contact_name="Ann", contact_phone="+44 20 7946 0958"), "contact_phone"),
        (_solo(sla="99.9%"), "sla"),
        (_solo(organization_external_id="CRM-404"), "organization_name"),
    ],
)
def test_a_bad_value_is_an_error_on_its_column(catalogue, row, column):
    report = _import(catalogue, _csv([row]))

    assert [(e.row, e.column) for e in report.errors] == [(2, column)]


def test_an_address_twice_in_the_file_is_an_error_naming_the_first_row(catalogue):
    report = _import(catalogue, _csv([_solo(), _initech(), _solo(address="SOLO@example.org")]))

    assert [(e.row, e.column) for e in report.errors] == [(4, "address")]
    assert "first on row 2" in report.errors[0].message


def test_a_suppressed_address_is_an_error(catalogue):
    services.address_suppress(channel=Channel.EMAIL, address="solo@example.org", reason=SuppressionReason.HARD_BOUNCE)

    report = _import(catalogue, _csv([_solo()]))

    assert [(e.row, e.column, e.message) for e in report.errors] == [(2, "address", "solo@example.org is on the suppression list")]


def test_rows_of_one_account_that_disagree_are_an_error(catalogue):
    report = _import(catalogue, _csv([_initech(), _initech(address="noc@initech.example", tier="business")]))

    assert [(e.row, e.column) for e in report.errors] == [(3, "tier")]


def test_a_component_name_two_components_share_must_be_given_by_public_id(catalogue, page):
    from tests import factories

    other_group = factories.make_group(page=page, name="EU", position=3)
    factories.make_component(page=page, group=other_group, name="Dashboard", position=1)

    report = _import(catalogue, _csv([_solo(components="Dashboard")]))

    assert [(e.row, e.column) for e in report.errors] == [(2, "components")]
    assert "public id" in report.errors[0].message


def test_a_refusal_while_writing_rolls_back_the_whole_import(catalogue, monkeypatch):
    real_create = services.subscriber_create

    def refuse_the_third(**kwargs):
        if kwargs["address"] == "solo@example.org":  # as if it were suppressed after the check
            raise services.ValidationError({"address": "This address is on the suppression list; it cannot be added."})
        return real_create(**kwargs)

    monkeypatch.setattr(services, "subscriber_create", refuse_the_third)
    before = _table_counts()

    report = _import(catalogue, _csv(GOOD_ROWS))

    assert [(e.row, e.column) for e in report.errors] == [(4, "address")]
    assert not report.written
    assert _table_counts() == before


# --- dry run and re-import ------------------------------------------------------------------------


def test_a_dry_run_writes_nothing(catalogue):
    before = _table_counts()

    report = _import(catalogue, _csv(GOOD_ROWS), dry_run=True)

    assert report.ok and not report.written
    assert _table_counts() == before


def test_a_dry_run_reports_what_would_be_created(catalogue, confirmed_bob):
    report = _import(catalogue, _csv([*GOOD_ROWS, _solo(address="bob@example.com")]), dry_run=True)

    assert (report.organizations_created, report.contacts_created, report.subscribers_created, report.subscribers_skipped) == (1, 1, 3, 1)
    assert "would be created" in report.summary()


def test_reimporting_a_file_creates_no_accounts_and_skips_existing_subscribers(catalogue):
    _import(catalogue, _csv(GOOD_ROWS))
    before = _table_counts()

    report = _import(catalogue, _csv(GOOD_ROWS))

    assert report.ok
    assert (report.organizations_created, report.organizations_updated, report.contacts_created) == (0, 0, 0)
    assert (report.subscribers_created, report.subscribers_skipped) == (0, 3)
    assert [row for row, _ in report.skipped] == [2, 3, 4]
    assert _table_counts() == before


def test_an_account_is_matched_by_external_id_and_updated(catalogue, globex, us):
    report = _import(catalogue, _csv([_solo(organization_external_id="CRM-1", organization_name="Globex Corp", region="us", tier="business")]))

    assert report.organizations_updated == 1 and Organization.objects.count() == 1
    globex.refresh_from_db()
    assert (globex.name, globex.tier, globex.region) == ("Globex Corp", Tier.BUSINESS, us)
    assert Subscriber.objects.get().organization == globex


def test_an_account_without_external_id_is_matched_by_name(catalogue, globex):
    _import(catalogue, _csv([_solo(organization_name="globex")]))

    assert Organization.objects.count() == 1
    assert Subscriber.objects.get().organization == globex


# --- reading files ------------------------------------------------------------------------------


def test_a_file_with_a_byte_order_mark_imports(catalogue):
    report = importer.import_subscribers(_file("\ufeff" + _csv(GOOD_ROWS)), page=catalogue)

    assert report.written and Subscriber.objects.count() == 3


def test_a_file_with_windows_line_endings_imports(catalogue):
    report = _import(catalogue, _csv(GOOD_ROWS).replace("\n", "\r\n"))

    assert report.written and Subscriber.objects.count() == 3


def test_a_semicolon_separated_file_imports(catalogue, rest_api, dashboard):
    report = _import(catalogue, _csv(GOOD_ROWS, delimiter=";"))

    assert report.written
    assert set(Subscriber.objects.get(address="ops@initech.example").components.all()) == {rest_api, dashboard}


def test_columns_may_come_in_any_order_and_be_left_out(catalogue):
    text = "Time Zone,address,Organization_Name\nAsia/Tokyo,ann@example.org,Hooli\n"

    report = _import(catalogue, text)

    assert report.written
    ann = Subscriber.objects.get()
    assert (ann.address, ann.time_zone, ann.organization.name) == ("ann@example.org", "Asia/Tokyo", "Hooli")


def test_empty_lines_are_skipped_and_rows_keep_their_line_numbers(catalogue):
    text = "address,tier\n\nann@example.org,\n , \n\nbob@@example.org,\n"

    report = _import(catalogue, text)

    assert [(e.row, e.column) for e in report.errors] == [(6, "address")]


def test_a_file_that_is_not_utf8_is_refused_with_a_clear_error(catalogue):
    text = _csv([_solo(address="jose@example.org", organization_name="Señor Café")])

    report = importer.import_subscribers(_file(text, encoding="latin-1"), page=catalogue)

    assert [(e.row, e.column) for e in report.errors] == [(None, "")]
    assert "not UTF-8" in report.errors[0].message
    assert Subscriber.objects.count() == 0


def test_an_unknown_column_is_refused_naming_it(catalogue):
    report = _import(catalogue, "adress,channel\nann@example.org,email\n")

    assert "Unknown column(s) in the header: adress" in report.errors[0].message


def test_a_file_without_rows_is_refused(catalogue):
    report = _import(catalogue, "\n\n")

    assert "empty" in report.errors[0].message


def test_a_row_with_more_fields_than_the_header_is_an_error(catalogue):
    report = _import(catalogue, "address,channel\nann@example.org,email,surprise\n")

    assert [(e.row, e.column) for e in report.errors] == [(2, "")]


def test_rows_are_streamed_not_read_all_at_once(catalogue):
    lines = "".join(f"user{n}@example.org,email\n" for n in range(40_000))
    data = io.BytesIO(("address,channel\n" + lines).encode())

    rows = importer.read_rows(data)
    first = next(rows)

    assert first == (2, {**dict.fromkeys(importer.COLUMNS, ""), "address": "user0@example.org", "channel": "email"})
    assert data.tell() < len(data.getvalue()) / 4
    rows.close()


def test_progress_is_reported_every_n_rows(catalogue, monkeypatch):
    monkeypatch.setattr(importer, "CHUNK_SIZE", 2)
    rows = [_solo(address=f"user{n}@example.org") for n in range(5)]
    calls = []

    _import(catalogue, _csv(rows), progress=lambda phase, done, report: calls.append((phase, done)), progress_every=2)

    assert calls == [("checking", 2), ("checking", 4), ("checked", 5), ("writing", 2), ("writing", 4), ("written", 5)]


# --- the command ----------------------------------------------------------------------------------


@pytest.fixture
def good_file(tmp_path):
    path = tmp_path / "crm.csv"
    path.write_text(_csv(GOOD_ROWS), encoding="utf-8")
    return path


def test_the_command_imports_a_file(catalogue, good_file):
    out = io.StringIO()

    call_command("import_subscribers", str(good_file), "--page", catalogue.public_id, "--skip-confirmation-reason", "Contract", stdout=out, stderr=io.StringIO())

    assert Subscriber.objects.filter(status=SubscriberStatus.CONFIRMED).count() == 3
    assert "3 were created" in out.getvalue()


def test_the_command_finds_the_page_by_name(catalogue, good_file):
    call_command("import_subscribers", str(good_file), "--page", "acme", stdout=io.StringIO(), stderr=io.StringIO())

    assert Subscriber.objects.filter(page=catalogue).count() == 3


def test_the_command_lists_every_error_and_writes_nothing(catalogue, tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text(_csv([_solo(address="nope"), _initech(region="mars")]), encoding="utf-8")

    with pytest.raises(CommandError) as raised:
        call_command("import_subscribers", str(path), "--page", catalogue.public_id, stdout=io.StringIO(), stderr=io.StringIO())

    assert "row 2, column address" in str(raised.value)
    assert "row 3, column region" in str(raised.value)
    assert Organization.objects.count() == 0


def test_the_command_dry_run_writes_nothing(catalogue, good_file):
    out = io.StringIO()

    call_command("import_subscribers", str(good_file), "--page", catalogue.public_id, "--dry-run", stdout=out, stderr=io.StringIO())

    assert Subscriber.objects.count() == 0
    assert "Dry run: nothing was written." in out.getvalue()


def test_the_command_shows_progress_on_stderr(catalogue, good_file):
    err = io.StringIO()

    call_command("import_subscribers", str(good_file), "--page", catalogue.public_id, "--progress-every", "2", stdout=io.StringIO(), stderr=err)

    assert "writing: 3 rows, 3 new, 0 already subscribed, 0 errors" in err.getvalue()


def test_the_command_refuses_an_unknown_page(catalogue, good_file):
    with pytest.raises(CommandError, match="No status page"):
        call_command("import_subscribers", str(good_file), "--page", "nowhere", stdout=io.StringIO(), stderr=io.StringIO())
