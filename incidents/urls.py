from django.urls import path, re_path

from incidents import api, feeds, views

app_name = "incidents"

# Statuspage clients throw away any path prefix, so the v2 API lives at the root of the host.
api_v2 = [
    path("api/v2/summary.json", api.summary, name="api-summary"),
    path("api/v2/status.json", api.status, name="api-status"),
    path("api/v2/components.json", api.components, name="api-components"),
    path("api/v2/incidents.json", api.incidents, name="api-incidents"),
    path("api/v2/incidents/unresolved.json", api.incidents_unresolved, name="api-incidents-unresolved"),
    path("api/v2/incidents/resolved.json", api.incidents_resolved, name="api-incidents-resolved"),
    path("api/v2/scheduled-maintenances.json", api.scheduled_maintenances, name="api-maintenances"),
    path("api/v2/scheduled-maintenances/upcoming.json", api.scheduled_maintenances_upcoming, name="api-maintenances-upcoming"),
    path("api/v2/scheduled-maintenances/active.json", api.scheduled_maintenances_active, name="api-maintenances-active"),
]

urlpatterns = [
    path("", views.status_page, name="page"),
    path("incidents/<str:incident_id>", views.incident_detail, name="incident"),
    path("history", views.history, name="history"),
    path("history.atom", feeds.history_atom, name="history-atom"),
    path("history.rss", feeds.history_rss, name="history-rss"),
    *api_v2,
]

# Must stay last in the root URLconf's list: any other /api/ path answers 404 in JSON.
api_fallback = [re_path(r"^api/(?P<path>.*)$", api.not_found, name="api-not-found")]
