"""Walk the compliance archive's hash chain and name its first broken link."""
from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from notifications.archive import archive_verify


class Command(BaseCommand):
    help = "Verify the compliance archive's hash chain; fails naming the first broken link."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--progress", action="store_true", help="Report progress on stderr.")

    def handle(self, *args, **options) -> None:
        progress = (lambda done, total: self.stderr.write(f"verified {done}/{total}")) if options["progress"] else None
        result = archive_verify(progress=progress)
        if not result.ok:
            raise CommandError(
                f"archive broken at sequence {result.broken_sequence}: {result.reason} "
                f"({result.count} messages verified before it)"
            )
        since = f" since purge checkpoint #{result.checkpoint_sequence}" if result.checkpoint_sequence else ""
        self.stdout.write(
            f"archive intact: {result.count} messages{since}, "
            f"last sequence {result.last_sequence}, last hash {result.last_hash}"
        )
