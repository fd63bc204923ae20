"""The public status page and the incident page: what a reader sees, and how it is served."""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone as dt_timezone

import pytest
from django.utils import timezone

from incidents import selectors, services
from incidents.models import ComponentStatus
from tests import factories

NOW = datetime(2025, 6, 15, 12, 0, tzinfo=dt_timezone.utc)
BAR_RE = re.compile(r'<i class="bar s-([a-z_]+)" title="([^"]*)"></i>')


def bars(html: str) -> list[tuple[str, str]]:
    return BAR_RE.findall(html)


@pytest.fixture
def fixed_now(time_machine):
    """A frozen clock, so day boundaries cannot move between writing and reading."""
    time_machine.move_to(NOW, tick=False)


def test_page_shows_banner_text_and_component_and_group_names(client, page, rest_api, webhooks, dashboard):
    response = client.get("/")

    html = response.content.decode()
    assert response.status_code == 200
    assert response["Content-Type"] == "text/html; charset=utf-8"
    assert "All Systems Operational" in html
    for name in ("API", "REST API", "Webhooks", "Dashboard"):
        assert f'<span class="name">{name}</span>' in html


def test_banner_carries_the_indicator_class_and_its_description(client, page, rest_api):
    services.component_set_status(component=rest_api, status=ComponentStatus.MAJOR_OUTAGE, source="manual")

    html = client.get("/").content.decode()

    assert 'class="banner i-critical"' in html
    assert "Major System Outage" in html


def test_component_status_is_written_next_to_its_colour(client, page, rest_api, dashboard):
    services.component_set_status(component=rest_api, status=ComponentStatus.PARTIAL_OUTAGE, source="manual")

    html = client.get("/").content.decode()

    assert re.search(r'<li class="component s-partial_outage">\s*<div class="row"><span class="name">REST API</span>'
                     r'<span class="state"><span class="dot" aria-hidden="true"></span>Partial outage</span>', html)


def test_group_shows_the_worst_status_of_its_children(client, page, rest_api, webhooks):
    services.component_set_status(component=webhooks, status=ComponentStatus.DEGRADED_PERFORMANCE, source="manual")

    html = client.get("/").content.decode()

    assert re.search(r'<li class="group s-degraded_performance">\s*<details open>\s*<summary><span class="name">API</span>', html)


def test_only_show_if_degraded_component_is_hidden_while_operational(client, page):
    factories.make_component(page=page, name="Legacy SOAP", only_show_if_degraded=True)

    html = client.get("/").content.decode()

    assert "Legacy SOAP" not in html


def test_only_show_if_degraded_component_is_shown_when_degraded(client, page):
    factories.make_component(
        page=page, name="Legacy SOAP", only_show_if_degraded=True, status=ComponentStatus.DEGRADED_PERFORMANCE
    )

    html = client.get("/").content.decode()

    assert '<span class="name">Legacy SOAP</span>' in html


def test_uptime_bars_show_ninety_days_per_showcased_component(client, page, dashboard):
    factories.make_component(page=page, name="Internal tool", showcase=False, position=3)

    html = client.get("/").content.decode()

    assert len(bars(html)) == 90
    assert 'aria-label="Dashboard: 100.00% uptime over the last 90 days"' in html


def test_uptime_formula_is_written_on_the_page(client, page, dashboard):
    html = client.get("/").content.decode()

    assert "Uptime = 1 − (major outage time + 0.3 × partial outage time) ÷ (observed time − maintenance time)" in html
    assert "Degraded performance counts as up; maintenance is excluded" in html


def test_days_before_a_component_existed_render_as_no_data(client, fixed_now, page):
    factories.make_component(page=page, name="New service", created=timezone.now() - timedelta(days=10))

    rendered = bars(client.get("/").content.decode())

    no_data = [title for status, title in rendered if status == "nodata"]
    assert len(no_data) == 79
    assert all(title.endswith(": no data") for title in no_data)
    assert rendered[-1][0] == "operational"


def test_bar_title_gives_the_date_and_the_uptime_of_the_day(client, fixed_now, page, dashboard):
    rendered = bars(client.get("/").content.decode())

    assert rendered[0] == ("operational", "Mar 18, 2025: 100.00% uptime")
    assert rendered[-1] == ("operational", "Jun 15, 2025: 100.00% uptime")


def test_bar_title_names_the_trouble_of_the_day(client, fixed_now, page, time_machine):
    component = factories.make_component(page=page, name="Search")
    time_machine.move_to(NOW - timedelta(hours=2), tick=False)
    services.component_set_status(component=component, status=ComponentStatus.PARTIAL_OUTAGE, source="manual")
    time_machine.move_to(NOW - timedelta(hours=1), tick=False)
    services.component_set_status(component=component, status=ComponentStatus.OPERATIONAL, source="manual")
    time_machine.move_to(NOW, tick=False)

    status, title = bars(client.get("/").content.decode())[-1]

    # 12 observed hours today, 1 of them a partial outage: 1 - 0.3 x 1/12 = 97.5 %.
    assert status == "partial_outage"
    assert title == "Jun 15, 2025: 97.50% uptime · Partial outage 1 h"


def test_active_incident_shows_its_updates_and_next_update_time(client, page, rest_api):
    due = datetime(2030, 1, 15, 14, 30, tzinfo=dt_timezone.utc)
    incident = factories.open_incident(page=page, name="Slow API responses", components={rest_api: ComponentStatus.DEGRADED_PERFORMANCE})
    services.incident_post_update(incident=incident, status="identified", body="A bad deploy; rolling back.", next_update_at=due)

    html = client.get("/").content.decode()

    assert f'<a href="/incidents/{incident.public_id}">Slow API responses</a>' in html
    assert "We are investigating reports of errors." in html
    assert "A bad deploy; rolling back." in html
    assert 'Next update by <time datetime="2030-01-15T14:30:00Z" data-fmt="short">Jan 15, 14:30 UTC</time>' in html


def test_resolved_incident_is_not_listed_as_active(client, page, rest_api):
    incident = factories.open_incident(page=page, name="Brief blip", components={rest_api: ComponentStatus.MAJOR_OUTAGE})
    services.incident_resolve(incident=incident, body="Fixed.")

    html = client.get("/").content.decode()

    assert "Active incidents" not in html
    assert "Resolved in the last 7 days" in html
    assert "All Systems Operational" in html


def test_upcoming_maintenance_is_shown_with_its_window(client, page, dashboard):
    maintenance = factories.schedule_maintenance(page=page, name="Database upgrade", components=[dashboard])

    html = client.get("/").content.decode()

    assert "Upcoming maintenance" in html
    assert f'<a href="/incidents/{maintenance.public_id}">Database upgrade</a>' in html
    start = maintenance.scheduled_for.astimezone(dt_timezone.utc)
    assert f'Window: <time datetime="{start:%Y-%m-%dT%H:%M:%SZ}"' in html
    assert "We will upgrade the primary database." in html


def test_maintenance_in_progress_is_shown(client, page, dashboard):
    maintenance = factories.schedule_maintenance(page=page, name="Cache rotation", components=[dashboard], starts_in=timedelta(0))
    services.maintenance_start(maintenance=maintenance)

    html = client.get("/").content.decode()

    assert "Maintenance in progress" in html
    assert "Cache rotation" in html
    assert "Service Under Maintenance" in html


def test_times_are_shown_in_the_page_zone_inside_time_elements(client, page):
    page.time_zone = "America/New_York"
    services.page_save(page=page)
    factories.open_incident(page=page, display_at=datetime(2025, 1, 15, 12, 0, tzinfo=dt_timezone.utc))

    html = client.get("/").content.decode()

    assert '<time datetime="2025-01-15T12:00:00Z" data-fmt="short">Jan 15, 07:00 EST</time>' in html


def test_page_links_its_feeds_and_local_time_script_in_the_head(client, page):
    head = client.get("/").content.decode().split("</head>")[0]

    assert '<link rel="alternate" type="application/atom+xml"' in head
    assert 'href="/history.atom"' in head
    assert '<link rel="alternate" type="application/rss+xml"' in head
    assert '<script src="/static/js/localtime.js" defer></script>' in head


def test_page_declares_language_and_viewport(client, page):
    html = client.get("/").content.decode()

    assert '<html lang="en">' in html
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in html
    assert "<h1" in html


def test_page_uses_the_brand_colours(client, page):
    page.brand_colour = "#123456"
    services.page_save(page=page)

    html = client.get("/").content.decode()

    assert "--brand:#123456" in html


def test_page_has_no_external_assets(client, page, dashboard):
    html = client.get("/").content.decode()

    assert not re.search(r'(src|href)="(https?:)?//', html.split("</head>")[0])


def test_matching_etag_answers_304_without_sql(client, page, dashboard, django_assert_num_queries):
    etag = client.get("/")["ETag"]

    with django_assert_num_queries(0):
        response = client.get("/", HTTP_IF_NONE_MATCH=etag)

    assert response.status_code == 304
    assert response["ETag"] == etag


def test_responses_carry_cache_headers(client, page, settings):
    response = client.get("/")

    assert response["Cache-Control"] == f"public, max-age={settings.PUBLIC_CACHE_MAX_AGE}"
    assert "Host" in response["Vary"]


def test_a_publish_changes_the_next_response(client, page, rest_api, django_capture_on_commit_callbacks):
    incident = factories.open_incident(page=page, components={rest_api: ComponentStatus.PARTIAL_OUTAGE})
    first = client.get("/")

    with django_capture_on_commit_callbacks(execute=True):
        services.incident_post_update(incident=incident, status="identified", body="The cause is a full disk.")
    second = client.get("/", HTTP_IF_NONE_MATCH=first["ETag"])

    assert second.status_code == 200
    assert second["ETag"] != first["ETag"]
    assert "The cause is a full disk." in second.content.decode()


def test_head_request_is_answered(client, page):
    response = client.head("/")

    assert response.status_code == 200
    assert response["ETag"]
    assert response.content == b""


def test_post_is_refused(client, page):
    assert client.post("/").status_code == 405


@pytest.mark.parametrize("count", [5, 50])
def test_page_queries_do_not_grow_with_components(client, page, count, django_assert_num_queries):
    group = factories.make_group(page=page, name="Fleet")
    components = [
        factories.make_component(page=page, group=group if n % 2 else None, name=f"Service {n}", position=n + 1)
        for n in range(count)
    ]
    factories.open_incident(page=page, components={c: ComponentStatus.PARTIAL_OUTAGE for c in components[:3]})

    # Routing (1), then the snapshot: page, components, incidents, their updates, their components, uptime log.
    with django_assert_num_queries(7):
        response = client.get("/")

    assert response.status_code == 200


# --- the incident page -----------------------------------------------------------------------


def test_incident_page_shows_name_impact_status_components_and_timeline(client, page, rest_api):
    incident = factories.open_incident(page=page, name="Login failures", components={rest_api: ComponentStatus.MAJOR_OUTAGE})
    services.incident_post_update(incident=incident, status="identified", body="An expired certificate.")

    html = client.get(f"/incidents/{incident.public_id}").content.decode()

    assert '<h1 id="incident-title">Login failures</h1>' in html
    assert "<dt>Impact</dt><dd>Critical</dd>" in html
    assert '<span class="tag">Identified</span>' in html
    assert "API - REST API" in html
    assert html.index("An expired certificate.") < html.index("We are investigating reports of errors.")


def test_incident_page_labels_an_update_without_status_change_as_update(client, page):
    incident = factories.open_incident(page=page)
    services.incident_post_update(incident=incident, status="investigating", body="Still looking.")

    html = client.get(f"/incidents/{incident.public_id}").content.decode()

    assert re.findall(r"<strong>(\w+)</strong>", html) == ["Update", "Investigating"]


def test_incident_page_shows_a_maintenance_window(client, page, dashboard):
    maintenance = factories.schedule_maintenance(page=page, components=[dashboard])
    start = maintenance.scheduled_for.astimezone(dt_timezone.utc)

    html = client.get(f"/incidents/{maintenance.public_id}").content.decode()

    assert f'<dt>Window</dt><dd><time datetime="{start:%Y-%m-%dT%H:%M:%SZ}"' in html
    assert "Scheduled maintenance" in html


def test_incident_page_serves_an_old_incident_that_left_the_snapshot(client, page, monkeypatch):
    long_ago = timezone.now() - timedelta(days=400)
    old = factories.open_incident(page=page, name="The old outage", started_at=long_ago, display_at=long_ago)
    services.incident_resolve(incident=old, body="Long fixed.", resolved_at=long_ago + timedelta(hours=1))
    newer = factories.open_incident(page=page, name="A newer one")
    services.incident_resolve(incident=newer, body="Fixed too.")
    monkeypatch.setattr(selectors, "LIST_LIMIT", 1)
    assert old.public_id not in {i["id"] for i in selectors.page_snapshot(page.public_id)["incidents"]}

    response = client.get(f"/incidents/{old.public_id}")

    assert response.status_code == 200
    assert "The old outage" in response.content.decode()
    assert "Long fixed." in response.content.decode()


def test_unknown_incident_is_404(client, page):
    assert client.get("/incidents/zzzzzzzzzzzz").status_code == 404


def test_malformed_incident_id_is_404(client, page):
    assert client.get("/incidents/" + "x" * 40).status_code == 404


def test_incident_of_another_page_is_404(client, page):
    other = factories.make_page(name="Other", url="https://status.example.org")
    incident = factories.open_incident(page=other)

    assert client.get(f"/incidents/{incident.public_id}").status_code == 404
