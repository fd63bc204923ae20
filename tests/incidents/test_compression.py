import gzip

from incidents import cache
from tests import factories


def test_large_outputs_are_served_gzipped_from_a_body_compressed_once(client, page, rest_api):
    plain = client.get("/")
    packed = client.get("/", HTTP_ACCEPT_ENCODING="gzip, br")
    assert packed["Content-Encoding"] == "gzip"
    assert gzip.decompress(packed.content) == plain.content
    assert "Accept-Encoding" in packed["Vary"]


def test_the_gzipped_representation_has_its_own_etag_and_revalidates(client, page, django_assert_num_queries):
    for n in range(5):
        factories.make_component(page=page, name=f"Service {n}", position=n + 1)
    plain = client.get("/api/v2/summary.json")
    packed = client.get("/api/v2/summary.json", HTTP_ACCEPT_ENCODING="gzip")
    assert packed["ETag"] != plain["ETag"]
    with django_assert_num_queries(0):
        again = client.get("/api/v2/summary.json", HTTP_ACCEPT_ENCODING="gzip", HTTP_IF_NONE_MATCH=packed["ETag"])
    assert again.status_code == 304
    assert again["ETag"] == packed["ETag"]


def test_small_outputs_are_sent_as_they_are(client, page):
    response = client.get("/api/v2/status.json", HTTP_ACCEPT_ENCODING="gzip")
    assert not response.has_header("Content-Encoding")
    assert response.json()["status"]["indicator"] == "none"


def test_a_missing_incident_is_not_remembered_in_the_process_cache(client, page):
    client.get("/api/v2/status.json")
    before = len(cache._local.values)
    for n in range(5):
        assert client.get(f"/incidents/zzzzzzzzzz{n:02d}").status_code == 404
    assert len(cache._local.values) == before


def test_a_missing_incident_that_is_created_later_is_found(client, page):
    incident = factories.open_incident(page=page)
    assert client.get(f"/incidents/{incident.public_id}").status_code == 200
