"""/history.atom and /history.rss, shaped like Statuspage's (spec §9.1).

One entry per incident or maintenance, newest first, whose content is the whole update trail as
HTML: one <p> per update, newest first, with the time in the page's zone and the status label
("Update" when the status did not change). Feed readers key on the entry id, so it is built from
the integer primary key, which never changes. The XML is written by Django's SAX generator, so
names and bodies are escaped by the writer, not by hand.
"""
from __future__ import annotations

import io
import re
import zoneinfo
from datetime import datetime
from email.utils import format_datetime
from urllib.parse import urlparse

from django.http import HttpRequest, HttpResponse
from django.utils.xmlutils import SimplerXMLGenerator
from django.views.decorators.http import require_safe

from incidents.selectors import LIST_LIMIT
from incidents.serving import public_read, serve, snapshot_for
from incidents.views import labelled_updates, page_zone

ATOM_CONTENT_TYPE = "application/atom+xml; charset=utf-8"
RSS_CONTENT_TYPE = "application/rss+xml; charset=utf-8"
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
# XML 1.0 cannot carry these at all, even escaped; the SAX writer would raise on them.
_XML_ILLEGAL = re.compile(r"[\x00-\x08\x0B\x0C\x0E-\x1F\uFFFE\uFFFF]")


def _text(value: str) -> str:
    return _XML_ILLEGAL.sub("", value or "")


def atom_time(value: datetime) -> str:
    """UTC, 'Z', whole seconds: 2025-10-21T17:39:34Z."""
    return value.astimezone(zoneinfo.ZoneInfo("UTC")).strftime("%Y-%m-%dT%H:%M:%SZ")


def rss_time(value: datetime, tz: zoneinfo.ZoneInfo) -> str:
    """RFC 822 in the page's zone: Sun, 07 Nov 2021 07:01:01 -0500."""
    return format_datetime(value.astimezone(tz).replace(microsecond=0))


def feed_title(page_name: str) -> str:
    # "<Page> Status - Incident History", without doubling a name that already ends in "Status".
    base = page_name if page_name.lower().endswith(" status") else f"{page_name} Status"
    return f"{base} - Incident History"


def update_html(label: str, update: dict, tz: zoneinfo.ZoneInfo) -> str:
    """One update as Statuspage writes it; the body is the already sanitised body_html.

    The body usually starts with its own <p>: the header joins that paragraph rather than
    wrapping it in another one (a <p> inside a <p> is not HTML), so the result is still one
    <p> per update, followed by any further blocks of the body.
    """
    local = update["display_at"].astimezone(tz)
    head = (
        f"<small>{_MONTHS[local.month - 1]} <var data-var='date'>{local.day:>2}</var>, "
        f"<var data-var='time'>{local:%H:%M}</var> {local.tzname()}</small><br><strong>{label}</strong> - "
    )
    body = (update["body_html"] or "").strip()
    if body.startswith("<p>"):
        return f"<p>{head}{body[3:]}"
    return f"<p>{head}</p>{body}"


def entry_html(incident: dict, tz: zoneinfo.ZoneInfo) -> str:
    return "".join(update_html(label, u, tz) for label, u in labelled_updates(incident["incident_updates"]))


def _entry_updated(incident: dict) -> datetime:
    times = [incident["updated_at"], *(u["display_at"] for u in incident["incident_updates"])]
    return max(times)


def feed_entries(snap: dict) -> list[dict]:
    """Incidents and maintenances together, the most recently announced first."""
    rows = sorted([*snap["incidents"], *snap["maintenances"]], key=lambda r: (r["created_at"], r["pk"]), reverse=True)
    return rows[:LIST_LIMIT]


def _host(snap: dict) -> str:
    return urlparse(snap["page"]["url"]).hostname or "localhost"


def render_atom(snap: dict) -> bytes:
    tz = page_zone(snap)
    page = snap["page"]
    host = _host(snap)
    out = io.StringIO()
    xml = SimplerXMLGenerator(out, "utf-8", short_empty_elements=True)
    xml.startDocument()
    xml.startElement("feed", {"xmlns": "http://www.w3.org/2005/Atom", "xml:lang": "en-US"})
    xml.addQuickElement("id", f"tag:{host},2005:/history")
    xml.addQuickElement("link", attrs={"rel": "alternate", "type": "text/html", "href": page["url"]})
    xml.addQuickElement("link", attrs={"rel": "self", "type": "application/atom+xml", "href": f"{page['url']}/history.atom"})
    xml.addQuickElement("title", _text(feed_title(page["name"])))
    xml.addQuickElement("updated", atom_time(page["updated_at"]))
    xml.startElement("author", {})
    xml.addQuickElement("name", _text(page["name"]))
    xml.endElement("author")
    for incident in feed_entries(snap):
        xml.startElement("entry", {})
        xml.addQuickElement("id", f"tag:{host},2005:Incident/{incident['pk']}")
        xml.addQuickElement("published", atom_time(incident["created_at"]))
        xml.addQuickElement("updated", atom_time(_entry_updated(incident)))
        xml.addQuickElement("link", attrs={"rel": "alternate", "type": "text/html", "href": incident["shortlink"]})
        xml.addQuickElement("title", _text(incident["name"]))
        xml.addQuickElement("content", _text(entry_html(incident, tz)), {"type": "html"})
        xml.endElement("entry")
    xml.endElement("feed")
    xml.endDocument()
    return out.getvalue().encode("utf-8")


def render_rss(snap: dict) -> bytes:
    tz = page_zone(snap)
    page = snap["page"]
    out = io.StringIO()
    xml = SimplerXMLGenerator(out, "utf-8", short_empty_elements=True)
    xml.startDocument()
    xml.startElement("rss", {"version": "2.0", "xmlns:dc": "http://purl.org/dc/elements/1.1/"})
    xml.startElement("channel", {})
    xml.addQuickElement("title", _text(feed_title(page["name"])))
    xml.addQuickElement("link", page["url"])
    xml.addQuickElement("description", "Statuspage")
    xml.addQuickElement("pubDate", rss_time(page["updated_at"], tz))
    for incident in feed_entries(snap):
        xml.startElement("item", {})
        xml.addQuickElement("title", _text(incident["name"]))
        xml.addQuickElement("description", _text(entry_html(incident, tz)))
        xml.addQuickElement("pubDate", rss_time(incident["created_at"], tz))
        xml.addQuickElement("link", incident["shortlink"])
        xml.addQuickElement("guid", incident["shortlink"])
        xml.endElement("item")
    xml.endElement("channel")
    xml.endElement("rss")
    xml.endDocument()
    return out.getvalue().encode("utf-8")


def _feed_view(key: str, render, content_type: str):
    @public_read
    @require_safe
    def view(request: HttpRequest) -> HttpResponse:
        def build(page_id: str, version: str) -> tuple[bytes, str] | None:
            snap = snapshot_for(page_id, version=version)
            return None if snap is None else (render(snap), content_type)

        return serve(request, ("feed", key), build)

    view.__name__ = f"history_{key}"
    return view


history_atom = _feed_view("atom", render_atom, ATOM_CONTENT_TYPE)
history_rss = _feed_view("rss", render_rss, RSS_CONTENT_TYPE)
