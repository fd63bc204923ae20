"""The fan-out streams its audience: keyset windows of chunk_size, a bounded cost per chunk."""
from __future__ import annotations

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from notifications import selectors, services
from notifications.models import Delivery, Dispatch
from subscribers.models import Subscriber, SubscriberStatus
from tests import factories

pytestmark = pytest.mark.django_db

AUDIENCE = 2500
CHUNK = 100


@pytest.fixture
def audience(page) -> list[int]:
    now = timezone.now()
    Subscriber.objects.bulk_create([
        Subscriber(page=page, channel="email", address=f"reader{n:05d}@example.org",
                   status=SubscriberStatus.CONFIRMED, confirmed_at=now)
        for n in range(AUDIENCE)
    ])
    return list(Subscriber.objects.order_by("pk").values_list("pk", flat=True))


@pytest.fixture
def dispatch(page, audience, monkeypatch) -> Dispatch:
    monkeypatch.setattr(services, "_enqueue", lambda *args, **kwargs: None)
    factories.open_incident(page=page, severity="P1")
    return Dispatch.objects.get()


def test_the_audience_is_read_in_keyset_windows_never_larger_than_the_chunk(dispatch, audience, monkeypatch):
    real_chunks = selectors.audience_chunks
    windows: list[list[int]] = []

    def recording_chunks(*args, **kwargs):
        for chunk in real_chunks(*args, **kwargs):
            windows.append([row[0] for row in chunk])
            yield chunk

    monkeypatch.setattr(selectors, "audience_chunks", recording_chunks)
    services.dispatch_expand(dispatch_id=dispatch.pk, chunk_size=CHUNK)

    assert len(windows) == AUDIENCE // CHUNK
    assert max(len(window) for window in windows) == CHUNK
    # Consecutive, ordered, non-overlapping windows that together are the audience once.
    assert [pk for window in windows for pk in window] == audience
    assert Delivery.objects.filter(dispatch=dispatch).count() == AUDIENCE


def test_no_query_reads_the_whole_audience_or_writes_more_than_a_chunk(dispatch, monkeypatch):
    manager_class = type(Delivery.objects)
    real_bulk_create = manager_class.bulk_create
    written: list[int] = []

    def recording_bulk_create(self, objs, *args, **kwargs):
        if self.model is Delivery:
            written.append(len(objs))
        return real_bulk_create(self, objs, *args, **kwargs)

    monkeypatch.setattr(manager_class, "bulk_create", recording_bulk_create)
    with CaptureQueriesContext(connection) as queries:
        services.dispatch_expand(dispatch_id=dispatch.pk, chunk_size=CHUNK)

    assert written and max(written) <= CHUNK
    audience_reads = [q["sql"] for q in queries.captured_queries
                      if q["sql"].lstrip().upper().startswith("SELECT") and 'FROM "subscribers_subscriber"' in q["sql"]]
    assert len(audience_reads) == AUDIENCE // CHUNK + 1  # the last, empty window ends the loop
    for sql in audience_reads:
        assert re.search(rf"LIMIT {CHUNK}\b", sql), sql
    # Each later window starts after the last id of the one before (keyset, not OFFSET).
    assert all("OFFSET" not in sql.upper() for sql in audience_reads)
    assert all('"subscribers_subscriber"."id" >' in sql for sql in audience_reads[1:])


def test_the_expansion_costs_a_bounded_number_of_queries_per_chunk(dispatch):
    with CaptureQueriesContext(connection) as queries:
        services.dispatch_expand(dispatch_id=dispatch.pk, chunk_size=CHUNK)
    chunks = AUDIENCE // CHUNK
    # Per chunk: read the window, savepoint, insert, read back ids, record progress, release.
    # A fixed handful besides (claim the dispatch, load it, policy lookups, count, finish).
    assert len(queries) <= 7 * chunks + 20, len(queries)


def test_a_send_batch_costs_a_bounded_number_of_queries_whatever_its_size(dispatch):
    services.dispatch_expand(dispatch_id=dispatch.pk, chunk_size=CHUNK)
    ids = list(Delivery.objects.order_by("pk").values_list("pk", flat=True))
    with CaptureQueriesContext(connection) as small:
        services.deliveries_send(ids=ids[:10])
    with CaptureQueriesContext(connection) as large:
        services.deliveries_send(ids=ids[10:110])
    # The claim, the checks, the archive and the outcomes (one UPDATE for every success) are per
    # batch, so ten times the deliveries cost no more statements; the second batch even reuses
    # the dispatch's rendering context.
    assert len(large) <= len(small), (len(small), len(large))
