"""URLs of the subscriber APIs, at the root of the page's host like the rest of the v2 API."""
from __future__ import annotations

from django.urls import re_path

from subscribers import api

app_name = "subscribers_api"

_JSON = r"(?:\.json)?"
_PAGE = r"^api/v1/pages/(?P<page_id>[a-z0-9]+)/subscribers"
_ID = r"(?P<subscriber_id>[A-Za-z0-9_-]+)"

urlpatterns = [
    # Statuspage's public subscribe API (used by its embed library and client libraries).
    re_path(r"^api/v2/subscribers\.json$", api.PublicSubscribeApi.as_view(), name="public-subscribe"),
    re_path(rf"^api/v2/subscribers/{_ID}{_JSON}$", api.PublicUnsubscribeApi.as_view(), name="public-unsubscribe"),
    re_path(rf"^api/v2/subscribers/{_ID}/resend_confirmation{_JSON}$", api.PublicResendConfirmationApi.as_view(),
            name="public-resend-confirmation"),
    # The management API; like Statuspage's v1, every path works with and without ".json".
    re_path(rf"{_PAGE}{_JSON}$", api.SubscriberListCreateApi.as_view(), name="subscribers"),
    re_path(rf"{_PAGE}/count{_JSON}$", api.SubscriberCountApi.as_view(), name="subscriber-count"),
    re_path(rf"{_PAGE}/histogram_by_state{_JSON}$", api.SubscriberHistogramApi.as_view(), name="subscriber-histogram"),
    re_path(rf"{_PAGE}/{_ID}{_JSON}$", api.SubscriberDetailApi.as_view(), name="subscriber"),
    re_path(rf"{_PAGE}/{_ID}/resend_confirmation{_JSON}$", api.SubscriberResendConfirmationApi.as_view(),
            name="subscriber-resend-confirmation"),
]
