"""Remove archived messages past the retention period, honouring legal holds."""
from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand

from notifications.archive import archive_purge, retention_cutoff


class Command(BaseCommand):
    help = (
        "Purge archived messages older than ARCHIVE_RETENTION_DAYS, oldest first; a legal hold on "
        "an expired message stops the purge there until it is released."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--dry-run", action="store_true", help="Count what would go; remove nothing.")

    def handle(self, *args, **options) -> None:
        before = retention_cutoff()
        result = archive_purge(before=before, dry_run=options["dry_run"])
        verb = "would purge" if options["dry_run"] else "purged"
        through = f" (through sequence {result.through_sequence})" if result.through_sequence else ""
        self.stdout.write(
            f"{verb} {result.count} messages archived before {before:%Y-%m-%d %H:%M} UTC{through}; "
            f"retention {settings.ARCHIVE_RETENTION_DAYS} days"
        )
        if result.held_sequence is not None:
            self.stdout.write(
                f"stopped at sequence {result.held_sequence}, kept by: {'; '.join(result.holds)}; "
                "later messages wait until the hold is released"
            )
