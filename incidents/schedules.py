"""The recurring tasks, upserted by name (django-q2's schedule() refuses a duplicate name)."""
from __future__ import annotations

from django.db import transaction
from django_q.models import Schedule

SCHEDULES = [
    {
        "name": "incidents.advance_maintenances",
        "func": "incidents.tasks.advance_maintenances",
        "schedule_type": Schedule.MINUTES,
        "minutes": 1,
    },
    {
        # Staff reminders and escalations (incidents.reminders): each is sent once, so running
        # every minute costs only the queries; a lead time of minutes needs this resolution.
        "name": "incidents.check_reminders",
        "func": "incidents.tasks.check_reminders",
        "schedule_type": Schedule.MINUTES,
        "minutes": 1,
    },
    {
        # Re-queues expired claims and due deliveries, expands dispatches whose task was lost.
        "name": "notifications.sweep_deliveries",
        "func": "notifications.tasks.sweep_deliveries",
        "schedule_type": Schedule.MINUTES,
        "minutes": 1,
    },
    {
        # Drops archived messages past ARCHIVE_RETENTION_DAYS (legal holds stop it), once a day.
        "name": "notifications.purge_archive",
        "func": "notifications.tasks.purge_archive",
        "schedule_type": Schedule.DAILY,
    },
]


@transaction.atomic
def schedules_upsert() -> list[tuple[str, bool]]:
    """Create or update every schedule in SCHEDULES; returns (name, created) pairs."""
    results = []
    for spec in SCHEDULES:
        defaults = {k: v for k, v in spec.items() if k != "name"}
        defaults["repeats"] = -1
        _schedule, created = Schedule.objects.update_or_create(name=spec["name"], defaults=defaults)
        results.append((spec["name"], created))
    return results
