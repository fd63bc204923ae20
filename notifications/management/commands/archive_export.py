"""Export archived messages of a date range or an incident, with a SHA-256 manifest."""
from __future__ import annotations

import datetime as dt

from django.core.management.base import BaseCommand, CommandError

from incidents.models import Incident
from notifications.archive import ArchiveError, archive_export
from notifications.models import ArchivedMessage


def _day(value: str, option: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise CommandError(f"{option} must be a date as YYYY-MM-DD; got {value!r}") from None


def _midnight(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time.min, tzinfo=dt.timezone.utc)


class Command(BaseCommand):
    help = (
        "Write archived messages (a date range in UTC, both days included, and/or an incident) to "
        "an empty directory: messages.jsonl, messages.mbox, manifest.json and MANIFEST.sha256."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--from", dest="start", metavar="DATE", help="First day (UTC), YYYY-MM-DD.")
        parser.add_argument("--to", dest="end", metavar="DATE", help="Last day (UTC), YYYY-MM-DD, included.")
        parser.add_argument("--incident", metavar="ID", help="The incident's public id (also after it was deleted).")
        parser.add_argument("--out", required=True, metavar="DIR", help="An empty or new directory.")

    def handle(self, *args, **options) -> None:
        start = _midnight(_day(options["start"], "--from")) if options["start"] else None
        end = _midnight(_day(options["end"], "--to") + dt.timedelta(days=1)) if options["end"] else None
        incident = options["incident"]
        if start is None and end is None and not incident:
            raise CommandError("Say what to export: --from DATE --to DATE, or --incident ID.")
        if start and end and end <= start:
            raise CommandError("--to must not be before --from.")
        if incident and not (
            Incident.objects.filter(public_id=incident).exists()
            or ArchivedMessage.objects.filter(incident_public_id=incident).exists()
        ):
            raise CommandError(f"No incident {incident!r} (and no archived message names it).")

        def progress(done: int, total: int) -> None:
            self.stderr.write(f"exported {done}/{total} messages")

        try:
            result = archive_export(out_dir=options["out"], start=start, end=end, incident=incident, progress=progress)
        except ArchiveError as exc:
            raise CommandError(str(exc)) from None
        span = f"sequence {result.first_sequence}..{result.last_sequence}" if result.count else "nothing matched"
        self.stdout.write(f"exported {result.count} messages ({span}) to {options['out']}")
        for name, digest in result.files.items():
            self.stdout.write(f"{digest}  {name}")
