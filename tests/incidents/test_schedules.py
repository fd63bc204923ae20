"""The recurring queue work: schedules upserted by name, queue settings that cannot double-run."""
from __future__ import annotations

from datetime import timedelta
from io import StringIO

import time_machine
from django.conf import settings
from django.core.management import call_command
from django.utils.module_loading import import_string
from django_q.models import Schedule

from incidents import tasks
from incidents.models import Component, ComponentStatus, MaintenanceStatus
from incidents.schedules import SCHEDULES
from tests import factories

NAME = "incidents.advance_maintenances"


def _setup_schedules() -> str:
    out = StringIO()
    call_command("setup_schedules", stdout=out)
    return out.getvalue()


def test_setup_schedules_creates_the_per_minute_schedule(db):
    output = _setup_schedules()

    schedule = Schedule.objects.get(name=NAME)
    assert (schedule.func, schedule.schedule_type, schedule.minutes, schedule.repeats) == (
        "incidents.tasks.advance_maintenances", Schedule.MINUTES, 1, -1,
    )
    assert f"created schedule {NAME}" in output


def test_setup_schedules_twice_updates_instead_of_duplicating(db):
    _setup_schedules()
    Schedule.objects.filter(name=NAME).update(minutes=15, repeats=0)  # drifted by hand

    output = _setup_schedules()

    schedule = Schedule.objects.get(name=NAME)  # exactly one row
    assert (schedule.minutes, schedule.repeats) == (1, -1)
    assert f"updated schedule {NAME}" in output
    assert Schedule.objects.count() == len(SCHEDULES)


def test_every_scheduled_function_can_be_imported(db):
    _setup_schedules()

    for schedule in Schedule.objects.all():
        assert callable(import_string(schedule.func))


def test_queue_retry_exceeds_timeout_and_attempts_are_bounded():
    conf = settings.Q_CLUSTER
    # retry <= timeout hands a still-running task to a second worker; max_attempts 0 retries forever.
    assert conf["retry"] > conf["timeout"]
    assert conf["max_attempts"] > 0


def test_the_advance_task_runs_the_maintenance_service(page, rest_api):
    maintenance = factories.schedule_maintenance(page=page, components=[rest_api])

    with time_machine.travel(maintenance.scheduled_for + timedelta(minutes=1), tick=False):
        result = tasks.advance_maintenances()

    assert result == {"reminded": 0, "started": 1, "completed": 0}
    maintenance.refresh_from_db()
    assert maintenance.status == MaintenanceStatus.IN_PROGRESS
    assert Component.objects.get(pk=rest_api.pk).status == ComponentStatus.UNDER_MAINTENANCE
