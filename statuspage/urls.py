from django.conf import settings
from django.contrib import admin
from django.contrib.admin.views.decorators import staff_member_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import include, path
from django.utils.http import urlencode
from django.views.decorators.http import require_safe
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from incidents.urls import api_fallback


def admin_login(request: HttpRequest):
    """Staff sign in through allauth (and its two-factor step), never the bare admin form."""
    if request.user.is_authenticated and not admin.site.has_permission(request):
        # allauth sends a signed-in user straight back to ?next=/admin/, which lands here: a loop.
        raise PermissionDenied("This account cannot use the admin.")
    target = request.GET.get("next") or "/admin/"
    return redirect(f"{settings.LOGIN_URL}?{urlencode({'next': target})}")


@require_safe
def healthz(request: HttpRequest) -> HttpResponse:
    # Constant and database-free: a load balancer probe, and the floor bench/read_path compares to.
    return HttpResponse(b"ok\n", content_type="text/plain")


urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("admin/login/", admin_login),
    path("admin/", admin.site.urls),
    path("accounts/", include("allauth.urls")),
    path("", include("incidents.urls")),
    path("", include("subscribers.urls")),
    path("", include("subscribers.api_urls")),
    path("", include("incidents.api_v1_urls")),
    # The management API's OpenAPI 3 schema and its docs (Swagger UI from drf-spectacular-sidecar's
    # local files, so they work offline). Staff only: the schema maps the editorial endpoints, which
    # nobody outside needs to see. The schema takes a staff session or an API key (for client
    # generators); the docs page is for people, so it sends the anonymous to the sign-in page.
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", staff_member_required(SpectacularSwaggerView.as_view(url_name="api-schema")), name="api-docs"),
    path("", include("notifications.urls")),
    # anymail's ESP tracking webhooks: webhooks/anymail/<esp>/tracking/, basic auth ANYMAIL["WEBHOOK_SECRET"].
    path("webhooks/anymail/", include("anymail.urls")),
    *api_fallback,
]
