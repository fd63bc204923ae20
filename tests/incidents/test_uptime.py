"""The 90-day uptime bars: computed from the status log, day by day in the page's time zone."""
from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine

from incidents import services
from incidents.models import ComponentStatus, StatusSource
from incidents.selectors import PARTIAL_OUTAGE_WEIGHT, UPTIME_DAYS, page_snapshot
from tests import factories

UTC = ZoneInfo("Etc/UTC")
# Noon, so "today" is half observed; the days under test are well inside the window.
NOW = datetime(2026, 3, 20, 12, 0, tzinfo=UTC)
DAY = date(2026, 3, 15)


def _midnight(day: date, tz=UTC) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=tz)


@pytest.fixture
def clock():
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


@pytest.fixture
def search(clock, page):
    return factories.make_component(page=page, name="Search")


def _set(clock, component, status: str, at: datetime) -> None:
    clock.move_to(at)
    services.component_set_status(component=component, status=status, source=StatusSource.MANUAL)
    clock.move_to(NOW)


def _days(page, component) -> dict[date, dict]:
    uptime = page_snapshot(page.public_id)["uptime"][component.public_id]
    return {d["date"]: d for d in uptime["days"]}


def test_the_bars_cover_ninety_days_ending_today(page, search):
    days = page_snapshot(page.public_id)["uptime"][search.public_id]["days"]

    assert len(days) == UPTIME_DAYS == 90
    assert days[-1]["date"] == NOW.date()
    assert days[0]["date"] == NOW.date() - timedelta(days=89)
    assert all(d["uptime"] == 1.0 for d in days)


def test_a_day_fully_in_major_outage_is_zero(clock, page, search):
    _set(clock, search, ComponentStatus.MAJOR_OUTAGE, _midnight(DAY))
    _set(clock, search, ComponentStatus.OPERATIONAL, _midnight(DAY + timedelta(days=1)))

    days = _days(page, search)

    assert days[DAY]["uptime"] == 0.0
    assert days[DAY]["worst"] == ComponentStatus.MAJOR_OUTAGE
    assert days[DAY - timedelta(days=1)]["uptime"] == 1.0
    assert days[DAY + timedelta(days=1)]["uptime"] == 1.0


def test_a_day_half_in_partial_outage_is_eighty_five_percent(clock, page, search):
    _set(clock, search, ComponentStatus.PARTIAL_OUTAGE, _midnight(DAY))
    _set(clock, search, ComponentStatus.OPERATIONAL, _midnight(DAY) + timedelta(hours=12))

    days = _days(page, search)

    assert days[DAY]["uptime"] == pytest.approx(1 - PARTIAL_OUTAGE_WEIGHT * 0.5)
    assert days[DAY]["uptime"] == pytest.approx(0.85)


def test_degraded_performance_counts_as_up(clock, page, search):
    _set(clock, search, ComponentStatus.DEGRADED_PERFORMANCE, _midnight(DAY))
    _set(clock, search, ComponentStatus.OPERATIONAL, _midnight(DAY + timedelta(days=1)))

    day = _days(page, search)[DAY]

    assert day["uptime"] == 1.0
    assert day["worst"] == ComponentStatus.DEGRADED_PERFORMANCE


def test_a_day_half_maintenance_half_major_outage_is_zero(clock, page, search):
    _set(clock, search, ComponentStatus.UNDER_MAINTENANCE, _midnight(DAY))
    _set(clock, search, ComponentStatus.MAJOR_OUTAGE, _midnight(DAY) + timedelta(hours=12))
    _set(clock, search, ComponentStatus.OPERATIONAL, _midnight(DAY + timedelta(days=1)))

    assert _days(page, search)[DAY]["uptime"] == 0.0


def test_maintenance_is_never_downtime(clock, page, search):
    clock.move_to(_midnight(DAY) - timedelta(days=2))
    maintenance = factories.schedule_maintenance(page=page, components=[search], starts_in=timedelta(days=2), lasts=timedelta(hours=20))
    clock.move_to(maintenance.scheduled_for)
    services.maintenances_advance(now=maintenance.scheduled_for)
    clock.move_to(maintenance.scheduled_until)
    services.maintenances_advance(now=maintenance.scheduled_until)
    clock.move_to(NOW)

    day = _days(page, search)[DAY]

    assert day["seconds"] == {ComponentStatus.UNDER_MAINTENANCE: 20 * 3600, ComponentStatus.OPERATIONAL: 4 * 3600}
    assert day["uptime"] == 1.0


def test_a_day_fully_under_maintenance_has_no_uptime_figure(clock, page, search):
    _set(clock, search, ComponentStatus.UNDER_MAINTENANCE, _midnight(DAY))
    _set(clock, search, ComponentStatus.OPERATIONAL, _midnight(DAY + timedelta(days=1)))

    day = _days(page, search)[DAY]

    assert day["uptime"] is None
    assert day["worst"] == ComponentStatus.UNDER_MAINTENANCE


def test_days_before_the_component_existed_have_no_data(clock, page):
    clock.move_to(_midnight(DAY) + timedelta(hours=6))
    newcomer = factories.make_component(page=page, name="Newcomer", created=_midnight(DAY) + timedelta(hours=6))
    clock.move_to(NOW)

    days = _days(page, newcomer)

    assert days[DAY - timedelta(days=1)] == {"date": DAY - timedelta(days=1), "uptime": None, "worst": None, "seconds": {}}
    assert days[DAY]["uptime"] == 1.0
    assert days[DAY]["seconds"] == {ComponentStatus.OPERATIONAL: 18 * 3600}


def test_a_start_date_earlier_than_creation_starts_the_history_then(clock, page):
    newcomer = factories.make_component(page=page, name="Imported", created=NOW - timedelta(days=1), start_date=DAY)

    days = _days(page, newcomer)

    assert days[DAY - timedelta(days=1)]["uptime"] is None
    assert days[DAY]["uptime"] == 1.0


def test_a_start_date_later_than_creation_hides_the_days_before_it(clock, page):
    # Set up weeks before launch: the bars start on launch day, not on the day the row was made.
    prepared = factories.make_component(page=page, name="Launching", created=NOW - timedelta(days=40), start_date=DAY)

    days = _days(page, prepared)

    assert days[DAY - timedelta(days=1)]["uptime"] is None
    assert days[DAY]["uptime"] == 1.0


def test_an_outage_from_before_the_window_counts_from_its_first_day(clock, page, search):
    _set(clock, search, ComponentStatus.MAJOR_OUTAGE, NOW - timedelta(days=100))

    days = list(_days(page, search).values())

    assert all(d["uptime"] == 0.0 for d in days)


def test_days_follow_the_pages_time_zone(db, clock):
    la = ZoneInfo("America/Los_Angeles")
    page = factories.make_page(name="West", url="https://status.west.example.org", time_zone="America/Los_Angeles")
    component = factories.make_component(page=page, name="Edge")
    _set(clock, component, ComponentStatus.MAJOR_OUTAGE, _midnight(DAY, la))
    _set(clock, component, ComponentStatus.OPERATIONAL, _midnight(DAY + timedelta(days=1), la))

    days = _days(page, component)

    assert days[DAY]["uptime"] == 0.0
    assert days[DAY - timedelta(days=1)]["uptime"] == 1.0
    assert days[DAY + timedelta(days=1)]["uptime"] == 1.0


def test_overall_uptime_weighs_every_observed_second(clock, page, search):
    _set(clock, search, ComponentStatus.MAJOR_OUTAGE, _midnight(DAY))
    _set(clock, search, ComponentStatus.OPERATIONAL, _midnight(DAY + timedelta(days=1)))

    overall = page_snapshot(page.public_id)["uptime"][search.public_id]["uptime"]

    observed = 89 * 86400 + 12 * 3600  # 89 whole days and today until noon
    assert overall == pytest.approx(1 - 86400 / observed)


def test_components_without_showcase_have_no_bars(clock, page, search):
    hidden = factories.make_component(page=page, name="Internal", showcase=False)

    uptime = page_snapshot(page.public_id)["uptime"]

    assert search.public_id in uptime
    assert hidden.public_id not in uptime
