"""The history page: incidents and maintenances by month, three months a page."""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone as dt_timezone

import pytest

from incidents import services
from tests import factories

NOW = datetime(2025, 6, 15, 12, 0, tzinfo=dt_timezone.utc)


@pytest.fixture
def mid_june(time_machine):
    time_machine.move_to(NOW, tick=False)


def past_incident(page, name: str, started_at: datetime):
    incident = factories.open_incident(page=page, name=name, started_at=started_at, display_at=started_at)
    services.incident_resolve(incident=incident, body="Resolved.", resolved_at=started_at + timedelta(hours=1), display_at=started_at + timedelta(hours=1))
    return incident


def months(html: str) -> dict[str, str]:
    """Month heading -> the HTML of that month's section, in page order."""
    sections = re.findall(r'<section class="month"[^>]*>\s*<h2[^>]*>([^<]+)</h2>(.*?)</section>', html, re.S)
    return dict(sections)


def test_history_groups_incidents_by_month_newest_first(client, mid_june, page):
    past_incident(page, "June outage", datetime(2025, 6, 3, 9, 0, tzinfo=dt_timezone.utc))
    past_incident(page, "May outage", datetime(2025, 5, 20, 9, 0, tzinfo=dt_timezone.utc))
    past_incident(page, "April outage", datetime(2025, 4, 1, 9, 0, tzinfo=dt_timezone.utc))

    sections = months(client.get("/history").content.decode())

    assert list(sections) == ["June 2025", "May 2025", "April 2025"]
    assert "June outage" in sections["June 2025"]
    assert "May outage" in sections["May 2025"]
    assert "April outage" in sections["April 2025"]


def test_history_lists_newest_incident_first_within_a_month(client, mid_june, page):
    past_incident(page, "Early June", datetime(2025, 6, 2, 9, 0, tzinfo=dt_timezone.utc))
    past_incident(page, "Mid June", datetime(2025, 6, 10, 9, 0, tzinfo=dt_timezone.utc))

    june = months(client.get("/history").content.decode())["June 2025"]

    assert june.index("Mid June") < june.index("Early June")


def test_history_groups_by_month_in_the_page_time_zone(client, mid_june, page):
    page.time_zone = "America/New_York"
    services.page_save(page=page)
    # 02:00 UTC on June 1st is still May 31st in New York.
    past_incident(page, "Late night", datetime(2025, 6, 1, 2, 0, tzinfo=dt_timezone.utc))

    sections = months(client.get("/history").content.decode())

    assert "Late night" in sections["May 2025"]


def test_history_includes_maintenances(client, mid_june, page, dashboard):
    maintenance = factories.schedule_maintenance(page=page, name="Network upgrade", components=[dashboard])

    html = client.get("/history").content.decode()

    assert f'<a href="/incidents/{maintenance.public_id}">Network upgrade</a>' in months(html)["June 2025"]
    assert "Scheduled maintenance" in html


def test_history_says_when_a_month_had_nothing(client, mid_june, page):
    sections = months(client.get("/history").content.decode())

    assert "Nothing reported this month." in sections["May 2025"]


def test_history_first_page_links_to_older_incidents(client, mid_june, page):
    past_incident(page, "March outage", datetime(2025, 3, 10, 9, 0, tzinfo=dt_timezone.utc))

    html = client.get("/history").content.decode()

    assert "March outage" not in html
    assert '<a href="/history?page=1" rel="next">Older →</a>' in html
    assert "Newer" not in html


def test_history_second_page_shows_older_months_and_links_newer(client, mid_june, page):
    past_incident(page, "March outage", datetime(2025, 3, 10, 9, 0, tzinfo=dt_timezone.utc))

    html = client.get("/history?page=1").content.decode()

    assert list(months(html)) == ["March 2025", "February 2025", "January 2025"]
    assert "March outage" in html
    assert '<a href="/history" rel="prev">← Newer</a>' in html
    assert "Older" not in html


def test_history_pages_are_cached_separately(client, mid_june, page):
    first = client.get("/history")
    second = client.get("/history?page=1")

    assert first["ETag"] != second["ETag"]


@pytest.mark.parametrize("value", ["abc", "-1", "1.5", "99999999999999999999", "٣"])
def test_history_bad_page_value_is_404(client, page, value):
    assert client.get("/history", {"page": value}).status_code == 404


def test_history_empty_page_value_is_the_first_page(client, mid_june, page):
    assert "June 2025" in client.get("/history?page=").content.decode()


def test_history_answers_head(client, page):
    assert client.head("/history").status_code == 200
