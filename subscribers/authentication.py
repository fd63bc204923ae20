"""Management API keys: `Authorization: OAuth <key>` (Statuspage's style) or `Bearer <key>`, read/write/publish scopes."""
from __future__ import annotations

from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.settings import api_settings
from rest_framework.throttling import AnonRateThrottle, SimpleRateThrottle

from subscribers import services
from subscribers.models import ApiToken

SCHEMES = (b"oauth", b"bearer")
DEFAULT_TOKEN_RATE = "600/min"


class _AnonThrottle(AnonRateThrottle):
    """The anonymous rate, read at request time (AnonRateThrottle reads it once, at import)."""

    def get_rate(self) -> str:
        return api_settings.DEFAULT_THROTTLE_RATES.get("anon") or "120/min"


def _count_failure(request) -> None:
    """Wrong keys cost a lookup each: past the anonymous rate per client address, answer 429.

    Throttles in DRF run only after authentication succeeds, so the count lives here.
    """
    from django.core.cache import cache

    throttle = _AnonThrottle()
    allowed, period = throttle.num_requests, throttle.duration
    ident = throttle.get_ident(request)
    key = f"api-key-failures:{ident}"
    cache.add(key, 0, timeout=period)
    try:
        failures = cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, timeout=period)
        failures = 1
    if failures > allowed:
        raise exceptions.Throttled(wait=period)


class UnauthenticatedThrottleMixin:
    """Requests with no key at all are throttled per client address before they are refused."""

    def check_permissions(self, request) -> None:
        if request.auth is None:
            throttle = _AnonThrottle()
            if not throttle.allow_request(request, self):
                self.throttled(request, throttle.wait())
        super().check_permissions(request)


class ApiTokenAuthentication(BaseAuthentication):
    """Looks the key up by its SHA-256 (the key itself is never stored); revoked keys and disabled staff are refused."""

    def authenticate(self, request):
        header = get_authorization_header(request).split()
        if not header or header[0].lower() not in SCHEMES:
            return None  # no credentials: the permission check answers 401
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Send the key as `Authorization: OAuth <key>` or `Bearer <key>`.")
        try:
            key = header[1].decode("ascii")
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed("Invalid API key.") from None
        token = (
            ApiToken.objects.select_related("user")
            .filter(key_digest=services.api_token_digest(key), revoked_at__isnull=True)
            .first()
        )
        # One message for unknown, revoked and orphaned keys: a caller learns nothing about which it was.
        if token is None or not token.user.is_active or not token.user.is_staff:
            _count_failure(request)
            raise exceptions.AuthenticationFailed("Invalid API key.")
        services.api_token_record_use(token=token)
        return token.user, token

    def authenticate_header(self, request) -> str:
        # Makes DRF answer 401 (not 403) when credentials are missing or wrong.
        return 'Bearer realm="api"'


def _missing_scope(scope: str, why: str) -> dict:
    # A dict detail: DRF answers it as the body, so the client sees the scope by name.
    return {"detail": f"This API key lacks the {scope} scope: {why}", "missing_scope": scope}


class TokenScope(BasePermission):
    """Deny by default: a valid key is needed; reading needs the read scope, anything else write."""

    message = _missing_scope(ApiToken.Scope.WRITE, "it may only read.")

    def has_permission(self, request, view) -> bool:
        token = request.auth
        if not isinstance(token, ApiToken):
            return False
        if request.method in SAFE_METHODS:
            self.message = _missing_scope(ApiToken.Scope.READ, "reading needs it.")
            return token.has_scope(ApiToken.Scope.READ)
        self.message = _missing_scope(ApiToken.Scope.WRITE, "it may only read; use a key with the write scope.")
        return token.has_scope(ApiToken.Scope.WRITE)


class SubscriberPermission(BasePermission):
    """The key's user needs the Django permission for what the call does to subscribers: a key
    is never more than its owner (a communicator's read key does not list subscribers)."""

    PERMS = {"GET": "view_subscriber", "HEAD": "view_subscriber", "OPTIONS": "view_subscriber",
             "POST": "add_subscriber", "PUT": "change_subscriber", "PATCH": "change_subscriber",
             "DELETE": "change_subscriber"}

    def has_permission(self, request, view) -> bool:
        codename = getattr(view, "subscriber_permission", None) or self.PERMS.get(request.method, "change_subscriber")
        user = request.user
        if user is not None and user.is_active and user.has_perm(f"subscribers.{codename}"):
            return True
        self.message = {"detail": f"You may not do this: it needs the permission {codename}.", "missing_permission": codename}
        return False


class PublishScope(BasePermission):
    """For calls that put words in front of customers or sign them off: approve, publish."""

    message = _missing_scope(ApiToken.Scope.PUBLISH, "approving and publishing need it.")

    def has_permission(self, request, view) -> bool:
        token = request.auth
        return isinstance(token, ApiToken) and token.has_scope(ApiToken.Scope.PUBLISH)


class ApiTokenRateThrottle(SimpleRateThrottle):
    """Requests per key, so two integrations of one person do not share a budget.

    The rate is REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["api_token"] when set, else 600/min.
    Read at request time rather than import time so settings overrides take effect.
    """

    scope = "api_token"

    def get_rate(self) -> str:
        return api_settings.DEFAULT_THROTTLE_RATES.get(self.scope) or DEFAULT_TOKEN_RATE

    def allow_request(self, request, view) -> bool:
        self.rate = self.get_rate()
        self.num_requests, self.duration = self.parse_rate(self.rate)
        return super().allow_request(request, view)

    def get_cache_key(self, request, view) -> str | None:
        token = request.auth
        if not isinstance(token, ApiToken):
            return None  # unauthenticated requests are refused before they cost anything
        return self.cache_format % {"scope": self.scope, "ident": token.pk}
