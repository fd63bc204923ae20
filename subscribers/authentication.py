"""Management API keys: `Authorization: OAuth <key>` (Statuspage's style) or `Bearer <key>`, read/write/publish scopes."""
from __future__ import annotations

from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle

from subscribers import services
from subscribers.models import ApiToken

SCHEMES = (b"oauth", b"bearer")
DEFAULT_TOKEN_RATE = "600/min"


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
