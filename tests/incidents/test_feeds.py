"""/history.atom and /history.rss, as spec §9.1 describes Statuspage's."""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta, timezone as dt_timezone
from email.utils import parsedate_to_datetime

import pytest

from incidents import services
from tests import factories

ATOM = "{http://www.w3.org/2005/Atom}"
NOW = datetime(2025, 1, 15, 12, 0, tzinfo=dt_timezone.utc)


@pytest.fixture
def fixed_now(time_machine):
    time_machine.move_to(NOW, tick=False)


def atom(client) -> ET.Element:
    return ET.fromstring(client.get("/history.atom").content)


def rss(client) -> ET.Element:
    return ET.fromstring(client.get("/history.rss").content)


def test_atom_feed_is_served_as_atom(client, page):
    response = client.get("/history.atom")

    assert response.status_code == 200
    assert response["Content-Type"] == "application/atom+xml; charset=utf-8"
    assert response["ETag"]


def test_rss_feed_is_served_as_rss(client, page):
    response = client.get("/history.rss")

    assert response.status_code == 200
    assert response["Content-Type"] == "application/rss+xml; charset=utf-8"


def test_atom_feed_describes_the_page(client, page):
    feed = atom(client)

    assert feed.findtext(f"{ATOM}title") == "Acme Status - Incident History"
    assert feed.findtext(f"{ATOM}id") == "tag:status.example.com,2005:/history"
    assert feed.findtext(f"{ATOM}author/{ATOM}name") == "Acme"
    links = {link.get("rel"): link.get("href") for link in feed.findall(f"{ATOM}link")}
    assert links == {"alternate": "https://status.example.com", "self": "https://status.example.com/history.atom"}


def test_atom_lists_incidents_and_maintenances_newest_first(client, page, time_machine):
    time_machine.move_to(NOW - timedelta(hours=2), tick=False)
    factories.open_incident(page=page, name="First incident")
    time_machine.move_to(NOW - timedelta(hours=1), tick=False)
    factories.schedule_maintenance(page=page, name="A maintenance")
    time_machine.move_to(NOW, tick=False)
    factories.open_incident(page=page, name="Latest incident")

    titles = [entry.findtext(f"{ATOM}title") for entry in atom(client).findall(f"{ATOM}entry")]

    assert titles == ["Latest incident", "A maintenance", "First incident"]


def test_atom_entry_id_is_a_tag_uri_with_the_incident_pk(client, page):
    incident = factories.open_incident(page=page)

    entry = atom(client).find(f"{ATOM}entry")

    assert entry.findtext(f"{ATOM}id") == f"tag:status.example.com,2005:Incident/{incident.pk}"
    assert entry.find(f"{ATOM}link").get("href") == f"https://status.example.com/incidents/{incident.public_id}"


def test_atom_times_are_utc_with_z_and_no_milliseconds(client, page, fixed_now):
    factories.open_incident(page=page)

    entry = atom(client).find(f"{ATOM}entry")

    assert entry.findtext(f"{ATOM}published") == "2025-01-15T12:00:00Z"
    assert entry.findtext(f"{ATOM}updated") == "2025-01-15T12:00:00Z"


def test_entry_content_is_the_update_trail_newest_first_with_labels(client, page):
    incident = factories.open_incident(page=page, body="Looking into it.")
    services.incident_post_update(incident=incident, status="investigating", body="Still looking.")
    services.incident_post_update(incident=incident, status="identified", body="Found the cause.")

    content = atom(client).find(f"{ATOM}entry").findtext(f"{ATOM}content")

    assert re.findall(r"<strong>([\w ]+)</strong> - (\w[\w ]*)", content) == [
        ("Identified", "Found the cause"),
        ("Update", "Still looking"),
        ("Investigating", "Looking into it"),
    ]


def test_entry_content_uses_statuspage_update_markup(client, page, fixed_now):
    factories.open_incident(page=page, body="Looking into it.")

    content = atom(client).find(f"{ATOM}entry").findtext(f"{ATOM}content")

    assert content == (
        "<p><small>Jan <var data-var='date'>15</var>, <var data-var='time'>12:00</var> UTC</small><br>"
        "<strong>Investigating</strong> - Looking into it.</p>"
    )


def test_entry_content_times_use_the_page_zone_abbreviation(client, page, fixed_now):
    page.time_zone = "America/New_York"
    services.page_save(page=page)
    factories.open_incident(page=page)

    content = atom(client).find(f"{ATOM}entry").findtext(f"{ATOM}content")

    assert "<var data-var='time'>07:00</var> EST</small>" in content


def test_maintenance_labels_use_title_cased_statuses(client, page, dashboard):
    maintenance = factories.schedule_maintenance(page=page, components=[dashboard], starts_in=timedelta(0))
    services.maintenance_start(maintenance=maintenance)

    content = atom(client).find(f"{ATOM}entry").findtext(f"{ATOM}content")

    assert re.findall(r"<strong>([\w ]+)</strong>", content) == ["In progress", "Scheduled"]


def test_entry_content_keeps_the_body_formatting(client, page):
    factories.open_incident(page=page, body="Use the **backup** region.\n\n- step one\n- step two")

    content = atom(client).find(f"{ATOM}entry").findtext(f"{ATOM}content")

    assert "<strong>Investigating</strong> - Use the <strong>backup</strong> region.</p>" in content
    assert "<li>step one</li>" in content


def test_rss_channel_names_the_page(client, page):
    channel = rss(client).find("channel")

    assert channel.findtext("title") == "Acme Status - Incident History"
    assert channel.findtext("link") == "https://status.example.com"
    assert channel.findtext("description") == "Statuspage"


def test_rss_item_links_and_guid_are_the_incident_url(client, page):
    incident = factories.open_incident(page=page, name="Queue backlog")

    item = rss(client).find("channel/item")

    url = f"https://status.example.com/incidents/{incident.public_id}"
    assert item.findtext("title") == "Queue backlog"
    assert item.findtext("link") == url
    assert item.findtext("guid") == url
    assert "<strong>Investigating</strong>" in item.findtext("description")


def test_rss_pubdate_is_rfc822_in_the_page_zone(client, page, fixed_now):
    page.time_zone = "America/New_York"
    services.page_save(page=page)
    factories.open_incident(page=page)

    pub_date = rss(client).find("channel/item").findtext("pubDate")

    assert pub_date == "Wed, 15 Jan 2025 07:00:00 -0500"
    assert parsedate_to_datetime(pub_date) == NOW


def test_feed_escapes_markup_in_names(client, page):
    factories.open_incident(page=page, name="Errors on <b>checkout</b> & cart")

    assert atom(client).find(f"{ATOM}entry").findtext(f"{ATOM}title") == "Errors on <b>checkout</b> & cart"
    assert b"&lt;b&gt;checkout" in client.get("/history.rss").content


def test_feed_drops_characters_xml_cannot_carry(client, page):
    factories.open_incident(page=page, name="Bad\x0bname")

    assert atom(client).find(f"{ATOM}entry").findtext(f"{ATOM}title") == "Badname"


def test_feed_answers_head(client, page):
    assert client.head("/history.rss").status_code == 200


def test_feed_matching_etag_answers_304(client, page, django_assert_num_queries):
    etag = client.get("/history.atom")["ETag"]

    with django_assert_num_queries(0):
        assert client.get("/history.atom", HTTP_IF_NONE_MATCH=etag).status_code == 304
