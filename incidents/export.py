"""Static export: the public page, its feeds and the v2 JSON as plain files, rewritten on every change.

When settings.STATIC_EXPORT_DIR is set, incidents.cache runs export_static_site() once each
transaction that changed content commits. Each page gets a folder named after its host:

    <STATIC_EXPORT_DIR>/status.example.com/
        index.html                  the status page
        history.html                the first page of the history (older pages need Django)
        history.atom, history.rss
        incidents/<id>.html         every incident and maintenance of the snapshot
        api/v2/summary.json, api/v2/incidents/unresolved.json, ... (every v2 endpoint)
        static/css/status.css, static/js/localtime.js (the two assets the pages link to)

The bytes come from the same render functions as the views, so a file and a live response at
the same content version are identical. Every file is written to a temporary file in its own
folder and moved into place with os.replace, so a reader sees the old file or the new one,
never half of one. Incident files that left the snapshot are deleted, so a request for an old
incident falls through to Django rather than being answered from a stale copy.

nginx serves a folder directly, and hands anything it lacks to Django:

    server {
        server_name status.example.com;
        root /srv/statuspage-export/status.example.com;
        index index.html;
        charset utf-8;
        charset_types text/html text/css application/javascript application/json application/atom+xml application/rss+xml;
        types { text/html html; text/css css; application/javascript js; application/json json;
                application/atom+xml atom; application/rss+xml rss; }
        proxy_set_header Host $host;
        location / { try_files $uri $uri.html $uri/ @django; }
        location /api/ { add_header Access-Control-Allow-Origin "*"; try_files $uri @django; }
        location = /history { if ($arg_page) { proxy_pass http://127.0.0.1:8000; } try_files /history.html @django; }
        location @django { proxy_pass http://127.0.0.1:8000; }
    }

A CDN in front of object storage maps it the same way: the key is the path, plus ".html" for
the extensionless page paths.
"""
from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import tempfile
from pathlib import Path
from urllib.parse import urlparse

from django.conf import settings
from django.contrib.staticfiles import finders
from django.templatetags.static import static

from incidents import cache, feeds, views, wire
from incidents.models import Page
from incidents.selectors import history_months
from incidents.serving import snapshot_for

logger = logging.getLogger(__name__)

STATIC_ASSETS = ("css/status.css", "js/localtime.js")
_HOST_RE = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$")
_INCIDENT_FILE_RE = re.compile(r"^[A-Za-z0-9_-]{1,12}\.html$")


def write_atomic(path: Path, data: bytes) -> Path:
    """Write `data` to `path` through a temporary file in the same folder and os.replace.

    No fsync: the files are a cache of the database, rewritten on the next change anyway, and
    the rename alone keeps readers from seeing a partial file.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, 0o644)  # mkstemp makes it 0600, which the web server could not read
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


def _page_files(snap: dict) -> dict[str, bytes]:
    """Relative path -> bytes for one page, from the same renderers the views use."""
    files = {
        "index.html": views.render_status_page(snap),
        "history.atom": feeds.render_atom(snap),
        "history.rss": feeds.render_rss(snap),
    }
    history = history_months(snap["page"]["id"], offset=0)
    if history is not None:
        files["history.html"] = views.render_history_page(snap, history)
    for name in wire.ENDPOINTS:
        files[f"api/v2/{name}.json"] = wire.render_endpoint(name, snap)
    for incident in (*snap["incidents"], *snap["maintenances"]):
        files[f"incidents/{incident['id']}.html"] = views.render_incident_page(snap, incident)
    for asset in STATIC_ASSETS:
        url = static(asset)
        source = finders.find(asset)
        # A STATIC_URL on another host (a CDN) serves the assets itself.
        if url.startswith("/") and source:
            files[url.lstrip("/")] = Path(source).read_bytes()
    return files


def _remove_stale_incidents(folder: Path, keep: set[str]) -> None:
    if not folder.is_dir():
        return
    for path in folder.iterdir():
        if _INCIDENT_FILE_RE.match(path.name) and path.name not in keep:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()


def export_page(snap: dict, root: Path) -> list[Path]:
    host = (urlparse(snap["page"]["url"]).hostname or "").lower()
    if not _HOST_RE.match(host):
        logger.warning("static export skipped page %s: %r is not a host name", snap["page"]["id"], host)
        return []
    base = root / host
    written = [write_atomic(base / relative, data) for relative, data in _page_files(snap).items()]
    keep = {f"{i['id']}.html" for i in (*snap["incidents"], *snap["maintenances"])}
    _remove_stale_incidents(base / "incidents", keep)
    return written


def export_static_site() -> list[Path]:
    """Write every page's files under settings.STATIC_EXPORT_DIR; returns the paths written."""
    root = Path(settings.STATIC_EXPORT_DIR)
    root.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    # Two processes committing at once would otherwise interleave their files; under the lock
    # each reads the content version afresh, so the last one to run writes the newest content.
    with open(root / ".export.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        version = cache.current_version()
        for page_id in Page.objects.order_by("pk").values_list("public_id", flat=True):
            snap = snapshot_for(page_id, version=version)
            if snap is not None:
                written += export_page(snap, root)
    return written
