"""Hostile update bodies render inert on every public surface: page, incident page, feeds, API."""
from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from html.parser import HTMLParser

import pytest

from incidents import services
from tests import factories

HOSTILE = (
    "Checkout is **slow**.\n\n"
    "<script>alert('script')</script>\n\n"
    "<img src=x onerror=\"alert('img')\">\n\n"
    "[details](javascript:alert('md-link')) and <a href=\"javascript:alert('html-link')\" onclick=\"alert('click')\">more</a>"
)
OUR_SCRIPT = "/static/js/localtime.js"


class ActiveContent(HTMLParser):
    """Collects whatever in a document could run: scripts, event handlers, javascript: URLs."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "iframe", "object", "embed") and dict(attrs).get("src") != OUR_SCRIPT:
            self.found.append(f"<{tag}>")
        for name, value in attrs:
            if name.startswith("on"):
                self.found.append(f"{name}=")
            if name in ("href", "src", "action", "formaction") and (value or "").strip().lower().startswith("javascript:"):
                self.found.append(f"{name}=javascript:")

    def handle_data(self, data):
        self.text.append(data)


def active_content(html: str) -> list[str]:
    parser = ActiveContent()
    parser.feed(html)
    parser.close()
    return parser.found


@pytest.fixture
def hostile(page, rest_api):
    incident = factories.open_incident(page=page, name="Slow checkout")
    services.incident_post_update(incident=incident, status="identified", body=HOSTILE)
    return incident


def test_status_page_renders_a_hostile_update_inert(client, hostile):
    html = client.get("/").content.decode()

    assert active_content(html) == []
    assert "alert(" not in html
    assert "Checkout is <strong>slow</strong>." in html


def test_incident_page_renders_a_hostile_update_inert(client, hostile):
    html = client.get(f"/incidents/{hostile.public_id}").content.decode()

    assert active_content(html) == []
    assert "alert(" not in html
    assert "Checkout is <strong>slow</strong>." in html


def test_history_page_renders_a_hostile_update_inert(client, hostile):
    html = client.get("/history").content.decode()

    assert active_content(html) == []
    assert "alert(" not in html


def test_atom_feed_carries_a_hostile_update_inert(client, hostile):
    feed = ET.fromstring(client.get("/history.atom").content)

    content = feed.find("{http://www.w3.org/2005/Atom}entry/{http://www.w3.org/2005/Atom}content").text

    assert active_content(content) == []
    assert "alert(" not in content
    assert "Checkout is <strong>slow</strong>." in content


def test_rss_feed_carries_a_hostile_update_inert(client, hostile):
    feed = ET.fromstring(client.get("/history.rss").content)

    description = feed.find("channel/item/description").text

    assert active_content(description) == []
    assert "alert(" not in description


def test_api_carries_a_hostile_update_inert(client, hostile):
    payload = json.loads(client.get("/api/v2/incidents/unresolved.json").content)

    body = payload["incidents"][0]["incident_updates"][0]["body"]

    # API bodies are the author's text (not Markdown rendered); any markup in it is sanitised.
    assert active_content(body) == []
    assert "<script" not in body
    assert "onerror" not in body
    assert "<img" not in body


def test_hostile_incident_name_is_escaped_on_the_page(client, page):
    factories.open_incident(page=page, name="<script>alert('name')</script>")

    html = client.get("/").content.decode()

    assert active_content(html) == []
    assert "&lt;script&gt;alert(&#x27;name&#x27;)&lt;/script&gt;" in html


def test_hostile_component_name_and_description_are_escaped(client, page):
    factories.make_component(page=page, name="<img src=x onerror=alert(1)>", description="\"><script>alert(2)</script>")

    html = client.get("/").content.decode()

    assert active_content(html) == []
