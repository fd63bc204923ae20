"""The public status API v2 (GET and HEAD, no authentication, CORS open).

These are plain views over cached bytes rather than DRF views: every request is answered from
the rendered cache, and content negotiation would only add work on the hottest path.
"""
from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_safe

from incidents import wire
from incidents.serving import public_read, serve, snapshot_for


def _endpoint_view(name: str):
    @public_read
    @require_safe
    def view(request: HttpRequest) -> HttpResponse:
        def build(page_id: str, version: str):
            snap = snapshot_for(page_id, version=version)
            return None if snap is None else (wire.render_endpoint(name, snap), wire.JSON_CONTENT_TYPE)

        return serve(request, ("api", name), build, cors=True)

    view.__name__ = f"api_{name.replace('/', '_').replace('-', '_')}"
    return view


summary = _endpoint_view("summary")
status = _endpoint_view("status")
components = _endpoint_view("components")
incidents = _endpoint_view("incidents")
incidents_unresolved = _endpoint_view("incidents/unresolved")
incidents_resolved = _endpoint_view("incidents/resolved")
scheduled_maintenances = _endpoint_view("scheduled-maintenances")
scheduled_maintenances_upcoming = _endpoint_view("scheduled-maintenances/upcoming")
scheduled_maintenances_active = _endpoint_view("scheduled-maintenances/active")


def not_found(request: HttpRequest, path: str = "") -> JsonResponse:
    response = JsonResponse({"error": "not_found", "message": f"No API endpoint at /{request.path.lstrip('/')}"}, status=404, content_type="application/json; charset=utf-8")
    response["Access-Control-Allow-Origin"] = "*"
    return response
