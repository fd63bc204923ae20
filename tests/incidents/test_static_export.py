"""The static export: plain files written on commit, each one atomically."""
from __future__ import annotations

import os
import stat

import pytest

from incidents import export, services, wire
from incidents.models import ComponentStatus
from tests import factories


@pytest.fixture
def export_dir(settings, tmp_path):
    settings.STATIC_EXPORT_DIR = str(tmp_path)
    return tmp_path


@pytest.fixture
def incident(page, rest_api):
    return factories.open_incident(page=page, name="Checkout errors", components={rest_api: ComponentStatus.PARTIAL_OUTAGE})


def publish(incident, capture, body: str = "We found the cause."):
    with capture(execute=True):
        services.incident_post_update(incident=incident, status="identified", body=body)


def test_a_publish_writes_every_file_of_the_page(export_dir, incident, django_capture_on_commit_callbacks):
    publish(incident, django_capture_on_commit_callbacks)

    site = export_dir / "status.example.com"
    expected = {"index.html", "history.html", "history.atom", "history.rss", f"incidents/{incident.public_id}.html"}
    expected |= {f"api/v2/{name}.json" for name in wire.ENDPOINTS}
    expected |= {"static/css/status.css", "static/js/localtime.js"}
    written = {p.relative_to(site).as_posix() for p in site.rglob("*") if p.is_file()}
    assert written == expected


def test_exported_files_hold_the_published_update(export_dir, incident, django_capture_on_commit_callbacks):
    publish(incident, django_capture_on_commit_callbacks, body="Rolling back the release.")

    site = export_dir / "status.example.com"
    assert "Rolling back the release." in (site / "index.html").read_text()
    assert "Rolling back the release." in (site / f"incidents/{incident.public_id}.html").read_text()
    assert "Rolling back the release." in (site / "api/v2/incidents/unresolved.json").read_text()
    assert "Rolling back the release." in (site / "history.atom").read_text()


def test_every_file_is_written_through_a_temporary_file_in_its_folder(
    export_dir, incident, django_capture_on_commit_callbacks, monkeypatch
):
    moves = []
    real_replace = os.replace

    def recording_replace(src, dst):
        moves.append((os.fspath(src), os.fspath(dst)))
        real_replace(src, dst)

    monkeypatch.setattr(export.os, "replace", recording_replace)

    publish(incident, django_capture_on_commit_callbacks)

    files = {str(p) for p in export_dir.rglob("*") if p.is_file() and p.name != ".export.lock"}
    assert {dst for _src, dst in moves} == files
    assert all(os.path.dirname(src) == os.path.dirname(dst) and src != dst for src, dst in moves)
    assert not [p for p in export_dir.rglob("*.tmp")]


def test_exported_files_are_readable_by_the_web_server(export_dir, incident, django_capture_on_commit_callbacks):
    publish(incident, django_capture_on_commit_callbacks)

    mode = (export_dir / "status.example.com" / "index.html").stat().st_mode
    assert stat.S_IMODE(mode) == 0o644


def test_exported_page_is_byte_for_byte_the_live_page(export_dir, incident, client, django_capture_on_commit_callbacks):
    publish(incident, django_capture_on_commit_callbacks)

    site = export_dir / "status.example.com"
    assert client.get("/").content == (site / "index.html").read_bytes()
    assert client.get("/history.rss").content == (site / "history.rss").read_bytes()
    assert client.get("/api/v2/summary.json").content == (site / "api/v2/summary.json").read_bytes()


def test_export_returns_the_paths_it_wrote(export_dir, incident):
    written = export.export_static_site()

    assert export_dir / "status.example.com" / "index.html" in written
    assert all(path.is_file() for path in written)


def test_export_writes_one_folder_per_page_host(export_dir, page):
    factories.make_page(name="Other", url="https://status.example.org")

    export.export_static_site()

    assert (export_dir / "status.example.org" / "index.html").is_file()
    assert "Other Status" in (export_dir / "status.example.org" / "index.html").read_text()


def test_export_removes_incidents_that_left_the_snapshot(export_dir, incident):
    stale = export_dir / "status.example.com" / "incidents" / "gone12345678.html"
    stale.parent.mkdir(parents=True)
    stale.write_text("old")

    export.export_static_site()

    assert not stale.exists()
    assert (stale.parent / f"{incident.public_id}.html").exists()


def test_nothing_is_exported_without_the_setting(settings, tmp_path, incident, django_capture_on_commit_callbacks):
    settings.STATIC_EXPORT_DIR = ""

    publish(incident, django_capture_on_commit_callbacks)

    assert list(tmp_path.iterdir()) == []
