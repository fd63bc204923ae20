"""Serving cached public outputs: host routing, ETag/304 before any work, cache headers.

Views marked @public_read are answered by PublicReadMiddleware straight after Django's
SecurityMiddleware: a cached public page needs no session, user, CSRF token or messages, and
skipping that middleware is most of what separates a cached page from a constant response.
"""
from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotModified
from django.http.request import split_domain_port
from django.urls import Resolver404, resolve

from incidents import cache
from incidents.selectors import page_routes, page_snapshot


_HOSTS: dict[str, str] = {}  # raw Host header -> host name, so the hot path skips the parsing
_HOSTS_MAX = 1000


def _host_name(request: HttpRequest) -> str:
    raw = request.get_host()  # validated against ALLOWED_HOSTS
    host = _HOSTS.get(raw)
    if host is None:
        host, _port = split_domain_port(raw)
        if len(_HOSTS) < _HOSTS_MAX:  # wildcard ALLOWED_HOSTS must not grow it without bound
            _HOSTS[raw] = host
    return host


def page_id_for(request: HttpRequest, *, version: str) -> str | None:
    routes = cache.cached(("routes",), page_routes, version=version)
    return routes["hosts"].get(_host_name(request), routes["default"])


def public_read(view):
    """Mark a GET/HEAD view that serves cached, user-independent bytes through serve()."""
    view.public_read = True
    return view


class PublicReadMiddleware:
    """Answer GET and HEAD requests for @public_read views before the session, auth, CSRF,
    message and allauth middleware run. Other requests, and other views, go down the stack.

    It sits after SecurityMiddleware, so HTTPS redirects and security headers still apply; the
    clickjacking header that XFrameOptionsMiddleware would add is set here.
    """

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.method in ("GET", "HEAD"):
            try:
                match = resolve(request.path_info)
            except Resolver404:
                match = None
            if match is not None and getattr(match.func, "public_read", False):
                request.resolver_match = match
                response = match.func(request, *match.args, **match.kwargs)
                if "X-Frame-Options" not in response:
                    response["X-Frame-Options"] = settings.X_FRAME_OPTIONS
                return response
        return self.get_response(request)


def snapshot_for(page_id: str, *, version: str) -> dict | None:
    return cache.cached(("snapshot", page_id), lambda: page_snapshot(page_id), version=version)


def _etag_matches(request: HttpRequest, etag: str) -> bool:
    # META rather than request.headers: building the headers mapping costs more than the rest.
    header = request.META.get("HTTP_IF_NONE_MATCH", "")
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
    wants_gzip = "gzip" in request.META.get("HTTP_ACCEPT_ENCODING", "")
    gzip_etag = etag[:-1] + '-gz"'

    def headers(response: HttpResponse, tag: str) -> HttpResponse:
        response["ETag"] = tag
        response["Cache-Control"] = f"public, max-age={settings.PUBLIC_CACHE_MAX_AGE}"
        response["Vary"] = "Host, Accept-Encoding"  # a fresh response: nothing to merge with
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
