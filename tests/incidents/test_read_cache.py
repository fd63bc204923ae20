"""The read path's cache: 304s and warm reads cost no SQL, commits invalidate, cold reads are O(1)."""
from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.core.exceptions import ValidationError
from django.core.cache import cache as shared_cache
from django.utils import timezone

from incidents import cache, services
from incidents.models import Component, ComponentStatus, ComponentStatusChange, StatusSource
from tests import factories

SUMMARY = "/api/v2/summary.json"
# A cold summary.json: host routes, then the snapshot's page, components, incidents (with the
# recent-list subqueries inlined), their updates, their affected components, and the status log.
COLD_SUMMARY_QUERIES = 7
# With no incident at all Django skips the two prefetch queries (updates, affected components).
COLD_SUMMARY_QUERIES_WITHOUT_INCIDENTS = 5


def _cold() -> None:
    """Forget every cached copy, as a freshly started install would."""
    shared_cache.clear()
    cache.clear_local()


def test_a_conditional_get_with_the_etag_answers_304_without_sql(client, page, rest_api, django_assert_num_queries):
    etag = client.get(SUMMARY)["ETag"]

    with django_assert_num_queries(0):
        response = client.get(SUMMARY, HTTP_IF_NONE_MATCH=etag)

    assert response.status_code == 304
    assert response.content == b""
    assert response["ETag"] == etag
    assert response["Access-Control-Allow-Origin"] == "*"


def test_another_process_answers_the_304_from_the_shared_cache_without_sql(client, page, rest_api, django_assert_num_queries):
    etag = client.get(SUMMARY)["ETag"]
    cache.clear_local()  # a second web process: nothing in memory, the shared cache is warm

    with django_assert_num_queries(0):
        response = client.get(SUMMARY, HTTP_IF_NONE_MATCH=etag)

    assert response.status_code == 304


def test_a_warm_cache_answers_without_sql(client, page, rest_api, django_assert_num_queries):
    first = client.get(SUMMARY)

    with django_assert_num_queries(0):
        again = client.get(SUMMARY)
        head = client.head(SUMMARY)

    assert again.status_code == head.status_code == 200
    assert again.content == first.content


def test_a_committed_change_is_served_at_once_and_retires_the_old_etag(
    client, page, rest_api, django_capture_on_commit_callbacks
):
    before = client.get(SUMMARY)

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        services.component_set_status(component=rest_api, status=ComponentStatus.MAJOR_OUTAGE, source=StatusSource.MANUAL)

    assert callbacks
    after = client.get(SUMMARY, HTTP_IF_NONE_MATCH=before["ETag"])
    assert after.status_code == 200
    assert after["ETag"] != before["ETag"]
    assert after.content != before.content
    served = {c["id"]: c["status"] for c in after.json()["components"]}
    assert served[rest_api.public_id] == ComponentStatus.MAJOR_OUTAGE


def test_a_whole_incident_open_bumps_the_version_once(page, rest_api, dashboard, monkeypatch, django_capture_on_commit_callbacks):
    bumps = []
    real_bump = cache._bump
    monkeypatch.setattr(cache, "_bump", lambda: (bumps.append(1), real_bump()))
    version = cache.current_version()

    with django_capture_on_commit_callbacks(execute=True):
        factories.open_incident(page=page, components={rest_api: ComponentStatus.MAJOR_OUTAGE, dashboard: ComponentStatus.PARTIAL_OUTAGE})

    # One bump (and one static export) per commit, however many rows the write touched.
    assert len(bumps) == 1
    assert cache.current_version() != version


def test_a_failed_write_does_not_bump_the_version(page, rest_api, django_capture_on_commit_callbacks):
    version = cache.current_version()

    with django_capture_on_commit_callbacks(execute=True), pytest.raises(ValidationError):
        factories.open_incident(page=page, body="", components={rest_api: ComponentStatus.MAJOR_OUTAGE})

    assert cache.current_version() == version


def test_etags_change_on_the_hour_so_uptime_and_upcoming_lists_age(client, page, rest_api):
    now = timezone.now().replace(minute=30)
    with time_machine.travel(now, tick=False):
        first = client.get(SUMMARY)["ETag"]
    with time_machine.travel(now + timedelta(hours=1), tick=False):
        later = client.get(SUMMARY, HTTP_IF_NONE_MATCH=first)

    assert later.status_code == 200
    assert later["ETag"] != first


# --- query count pin: a cold summary.json costs the same whatever the page holds --------------


def _bulk_components(page, count: int) -> None:
    # Built in bulk: going through component_save 500 times would cost seconds per run, and the
    # read path only needs the rows (groups with children, and a status-log entry in the window).
    groups = Component.objects.bulk_create(
        [Component(page=page, is_group=True, name=f"Region {n}", position=n + 1) for n in range(max(1, count // 10))]
    )
    leaves = Component.objects.bulk_create(
        [
            Component(page=page, group=groups[n % len(groups)], name=f"Service {n}", position=n // len(groups) + 1,
                      status=ComponentStatus.DEGRADED_PERFORMANCE if n % 7 == 0 else ComponentStatus.OPERATIONAL,
                      created=timezone.now() - timedelta(days=120))
            for n in range(count - len(groups))
        ]
    )
    ComponentStatusChange.objects.bulk_create(
        [
            ComponentStatusChange(component=c, old_status=ComponentStatus.OPERATIONAL, new_status=c.status,
                                  source=StatusSource.MANUAL, created=timezone.now() - timedelta(days=3))
            for c in leaves
        ]
    )


def _cold_summary(client, django_assert_num_queries, expected: int) -> dict:
    _cold()
    with django_assert_num_queries(expected):
        response = client.get(SUMMARY)
    assert response.status_code == 200
    return response.json()


@pytest.mark.parametrize("count", [5, 500])
def test_cold_summary_query_count_does_not_grow_with_components(client, page, django_assert_num_queries, count):
    _bulk_components(page, count)
    leaf = Component.objects.filter(page=page, is_group=False).first()
    factories.open_incident(page=page, components={leaf: ComponentStatus.MAJOR_OUTAGE})

    summary = _cold_summary(client, django_assert_num_queries, COLD_SUMMARY_QUERIES)

    assert len(summary["components"]) == count


@pytest.mark.parametrize("count", [1, 60])
def test_cold_summary_query_count_does_not_grow_with_incidents(client, page, rest_api, dashboard, django_assert_num_queries, count):
    for n in range(count):
        factories.open_incident(page=page, name=f"Incident {n}", components={rest_api if n % 2 else dashboard: ComponentStatus.PARTIAL_OUTAGE})
    factories.schedule_maintenance(page=page, components=[dashboard])

    summary = _cold_summary(client, django_assert_num_queries, COLD_SUMMARY_QUERIES)

    assert len(summary["incidents"]) == count


def test_cold_summary_without_incidents_skips_only_the_prefetches(client, page, rest_api, dashboard, django_assert_num_queries):
    summary = _cold_summary(client, django_assert_num_queries, COLD_SUMMARY_QUERIES_WITHOUT_INCIDENTS)

    assert summary["incidents"] == []


@pytest.mark.parametrize("count", [5, 500])
def test_cold_status_page_query_count_does_not_grow_with_components(client, page, django_assert_num_queries, count):
    _bulk_components(page, count)
    leaf = Component.objects.filter(page=page, is_group=False).first()
    factories.open_incident(page=page, components={leaf: ComponentStatus.MAJOR_OUTAGE})
    _cold()

    # The same snapshot feeds the page, so the page costs exactly what summary.json costs.
    with django_assert_num_queries(COLD_SUMMARY_QUERIES):
        response = client.get("/")

    assert response.status_code == 200
    assert response.content.count(b'class="component ') == count - max(1, count // 10)
