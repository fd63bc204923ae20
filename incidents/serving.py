"""Serving cached public outputs: host routing, ETag/304 before any work, cache headers."""
from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotModified
from django.http.request import split_domain_port
from django.utils.cache import patch_vary_headers

from incidents import cache
from incidents.selectors import page_routes, page_snapshot


def page_id_for(request: HttpRequest, *, version: str) -> str | None:
    routes = cache.cached(("routes",), page_routes, version=version)
    host, _port = split_domain_port(request.get_host())
    return routes["hosts"].get(host, routes["default"])


def snapshot_for(page_id: str, *, version: str) -> dict | None:
    return cache.cached(("snapshot", page_id), lambda: page_snapshot(page_id), version=version)


def _etag_matches(request: HttpRequest, etag: str) -> bool:
    header = request.headers.get("If-None-Match", "")
    if not header:
        return False
    candidates = {tag.strip().removeprefix("W/") for tag in header.split(",")}
    return "*" in candidates or etag in candidates


def serve(
    request: HttpRequest,
    key: tuple,
    build: Callable[[str, str], tuple[bytes, str] | None],
    *,
    cors: bool = False,
) -> HttpResponse:
    """Answer with the cached output `key` of the request's page, rendering it once per version.

    build(page_id, version) returns (body, content type), or None when the thing does not exist.
    A matching If-None-Match answers 304 from the version token alone, without SQL.
    """
    version = cache.current_version()
    page_id = page_id_for(request, version=version)
    if page_id is None:
        raise Http404("No status page is set up yet.")
    full_key = (page_id, *key)
    etag = cache.etag_for(version, ("rendered", *full_key))
    # A compressed body is another representation, so it gets its own strong ETag.
    wants_gzip = "gzip" in request.headers.get("Accept-Encoding", "")
    gzip_etag = etag[:-1] + '-gz"'

    def headers(response: HttpResponse, tag: str) -> HttpResponse:
        response["ETag"] = tag
        response["Cache-Control"] = f"public, max-age={settings.PUBLIC_CACHE_MAX_AGE}"
        patch_vary_headers(response, ["Host", "Accept-Encoding"])
        if cors:
            response["Access-Control-Allow-Origin"] = "*"
        return response

    if _etag_matches(request, etag) or _etag_matches(request, gzip_etag):
        return headers(HttpResponseNotModified(), gzip_etag if wants_gzip else etag)

    def render() -> tuple[bytes, str]:
        result = build(page_id, version)
        if result is None:
            # Raised inside the cache call so a miss is never stored: random ids cannot fill memory.
            raise Http404("Not found")
        return result

    out = cache.rendered(full_key, render, version=version)
    if wants_gzip and out.gzipped is not None:
        response = HttpResponse(out.gzipped, content_type=out.content_type)
        response["Content-Encoding"] = "gzip"
        return headers(response, gzip_etag)
    return headers(HttpResponse(out.body, content_type=out.content_type), etag)
