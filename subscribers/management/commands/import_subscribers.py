from __future__ import annotations

import argparse
import textwrap
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser, DjangoHelpFormatter

from incidents.models import Page
from subscribers import importer


def _columns_help() -> str:
    return "\n".join(f"  {name:<26} {text}" for name, text in importer.COLUMNS.items())


class _HelpFormatter(DjangoHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Keeps the description's column table as written."""


class Command(BaseCommand):
    help = textwrap.fill(
        "Import customer accounts, their enterprise contacts and subscribers from a CRM export (CSV, UTF-8, "
        "comma- or semicolon-separated, a header row naming the columns in any order). Every row is checked "
        "first; if any row is wrong, every error is listed (row number and column) and nothing is written. "
        "Otherwise everything is written in one transaction. Accounts are matched by CRM id, else by name; an "
        "address already subscribed on the page and channel is skipped.", width=79,
    ) + "\n\ncolumns:\n" + _columns_help()

    def create_parser(self, prog_name: str, subcommand: str, **kwargs) -> CommandParser:
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        parser.formatter_class = _HelpFormatter
        return parser

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", type=Path, help="The CSV file.")
        parser.add_argument("--page", required=True, help="The status page: its public id or its name.")
        parser.add_argument("--dry-run", action="store_true", help="Check the file and report what would change; write nothing.")
        parser.add_argument(
            "--skip-confirmation-reason", default="",
            help="Why these subscribers need not confirm (recorded in the consent ledger), e.g. 'Opted in through "
                 "the customer contract'. Without it, every new subscriber is sent a confirmation.",
        )
        parser.add_argument("--progress-every", type=int, default=1000, help="Report progress every N rows (default 1000).")

    def handle(self, *args, **options) -> None:
        page = self._page(options["page"])
        path: Path = options["file"]
        every = options["progress_every"]
        if every < 1:
            raise CommandError("--progress-every must be at least 1.")
        try:
            file = path.open("rb")
        except OSError as exc:
            raise CommandError(f"Cannot open {path}: {exc.strerror}.") from None
        with file:
            report = importer.import_subscribers(
                file, page=page, dry_run=options["dry_run"], skip_confirmation_reason=options["skip_confirmation_reason"],
                progress=self._progress, progress_every=every,
            )
        self._end_progress_line()
        if report.errors:
            raise CommandError("\n".join([report.summary(), *report.error_lines()]))
        for row, address in report.skipped:
            self.stdout.write(f"row {row}: {address} is already subscribed; skipped.")
        if report.subscribers_skipped > len(report.skipped):
            self.stdout.write(f"... and {report.subscribers_skipped - len(report.skipped)} more skipped.")
        self.stdout.write(self.style.SUCCESS(report.summary()))

    def _page(self, value: str) -> Page:
        page = Page.objects.filter(public_id=value).first()
        if page is not None:
            return page
        pages = list(Page.objects.filter(name__iexact=value)[:2])
        if len(pages) == 1:
            return pages[0]
        if pages:
            raise CommandError(f"More than one page is named {value!r}: give its public id.")
        raise CommandError(f"No status page has the public id or name {value!r}.")

    _line_open = False

    def _progress(self, phase: str, rows: int, report: importer.ImportReport) -> None:
        line = (
            f"{phase}: {rows} rows, {report.subscribers_created} new, {report.subscribers_skipped} already "
            f"subscribed, {report.error_count} errors"
        )
        if self.stderr.isatty():
            # One line rewritten in place: a progress bar without a dependency.
            self.stderr.write(f"\r{line}\033[K", ending="")
            self._line_open = True
        else:
            self.stderr.write(line)

    def _end_progress_line(self) -> None:
        if self._line_open:
            self.stderr.write("")
            self._line_open = False
