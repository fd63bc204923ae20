"""The subscriber APIs: Statuspage's public subscribe API (v2) and the token-authenticated management API (v1).

The public endpoints take no cookies and no session, so they need no CSRF token: they set
`authentication_classes = []` (SessionAuthentication, the only class that enforces CSRF in
DRF, never runs) and opt in to AllowAny explicitly; DRF's default stays deny.
"""
from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import Prefetch, Q, QuerySet
from django.utils import timezone
from rest_framework import exceptions, status
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.permissions import AllowAny
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import AnonRateThrottle
from rest_framework.views import APIView

from incidents import cache as page_cache
from incidents.models import Component, Page, Region
from incidents.serving import page_id_for
from statuspage.lib.ids import new_public_id
from statuspage.lib.net import client_ip
from subscribers import services, tokens
from subscribers.authentication import (
    ApiTokenAuthentication,
    ApiTokenRateThrottle,
    SubscriberPermission,
    TokenScope,
    UnauthenticatedThrottleMixin,
)
from subscribers.models import ConsentSource, Subscriber, SubscriberStatus
from subscribers.serializers import (
    PublicSubscribeInput,
    PublicSubscriberOutput,
    SubscriberCreateInput,
    SubscriberListQuery,
    SubscriberOutput,
    SubscriberUpdateInput,
    api_errors,
    query_errors,
    service_errors,
    subscriber_fields,
)


class Utf8JSONRenderer(JSONRenderer):
    charset = "utf-8"


class AlwaysJSON(DefaultContentNegotiation):
    """JSON whatever the Accept header says: an embed widget sending Accept: text/html should not get a 406."""

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


# --- the public v2 subscribe API ----------------------------------------------------------------


class PublicApiView(APIView):
    """No credentials, open CORS, per-IP throttle; the page is the one the Host serves."""

    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes = [AnonRateThrottle]
    renderer_classes = [Utf8JSONRenderer]
    content_negotiation_class = AlwaysJSON
    cors_methods = "POST, OPTIONS"

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        response["Access-Control-Allow-Origin"] = "*"
        return response

    def options(self, request, *args, **kwargs) -> Response:
        """The CORS preflight: browsers ask before a cross-site form or JSON POST/DELETE."""
        response = Response(status=status.HTTP_204_NO_CONTENT)
        response["Access-Control-Allow-Methods"] = self.cors_methods
        response["Access-Control-Allow-Headers"] = "Content-Type"
        response["Access-Control-Max-Age"] = "86400"
        return response

    def request_page(self, request: Request) -> Page:
        page_id = page_id_for(request, version=page_cache.current_version())
        page = Page.objects.filter(public_id=page_id).first() if page_id else None
        if page is None:
            raise exceptions.NotFound("No status page is set up yet.")
        return page


class PublicSubscribeApi(PublicApiView):
    """POST /api/v2/subscribers.json: subscribe by email, phone number or webhook endpoint.

    Anti-enumeration: the reply is the same 201 shape whether the address is new, pending,
    confirmed, unsubscribed, suppressed, or this IP is over its hourly cap. Only a subscriber
    created by this very request is answered with its real id; every other case gets a
    freshly generated id that belongs to no one and is never stored. Answering an existing
    subscriber with its real id would let anyone test whether an address is subscribed, by
    asking twice and seeing the id repeat. The id is therefore of little use to the caller
    (unsubscribing needs a signed token, resending answers the same for any id), which is the
    point. A random 12-character base36 id colliding with a real one is negligible, and
    checking for it would itself be a timing signal.
    """

    def post(self, request: Request) -> Response:
        page = self.request_page(request)
        form = PublicSubscribeInput(data=subscriber_fields(request.data), context={"page": page})
        if not form.is_valid():
            return Response(api_errors(form.errors), status=status.HTTP_400_BAD_REQUEST)
        data = form.validated_data
        ip = client_ip(request)
        started = timezone.now()
        subscriber = None
        if services.ip_allowed(ip):
            try:
                # explicit_consent stays False: this API shows no consent wording, so it cannot lift a suppression.
                subscriber = services.subscriber_subscribe(
                    page=page, channel=data["channel"], address=data["address"], phone_country=data["phone_country"],
                    preferences=data["preferences"], source=ConsentSource.API, ip=ip,
                )
            except DjangoValidationError as exc:
                return Response(service_errors(exc, address_field=data["address_field"]), status=status.HTTP_400_BAD_REQUEST)
        created_now = subscriber is not None and subscriber.status == SubscriberStatus.PENDING and subscriber.created >= started
        if not created_now:
            subscriber = Subscriber(
                public_id=new_public_id(), page=page, channel=data["channel"], address=data["address"],
                phone_country=data["phone_country"], created=timezone.now(),
            )
        body = {"subscriber": PublicSubscriberOutput(subscriber, context={"time_zone_name": page.time_zone}).data}
        return Response(body, status=status.HTTP_201_CREATED)


class PublicUnsubscribeApi(PublicApiView):
    """DELETE /api/v2/subscribers/<id>.json: unsubscribe.

    Deviation from Statuspage: its public API unsubscribes by id alone, so anyone who learns an
    id can unsubscribe someone else. We require proof: the signed unsubscribe token from the
    subscriber's messages, as `?token=` or a `token` body field, naming this same id. Without a
    valid one the answer is 403 and nothing changes. With one, the answer is always 200, however
    often it is repeated and even if the subscriber has since been deleted.
    """

    cors_methods = "DELETE, OPTIONS"

    def delete(self, request: Request, subscriber_id: str) -> Response:
        token = request.query_params.get("token")
        if not token and hasattr(request.data, "get"):
            token = request.data.get("token")
        if not isinstance(token, str) or tokens.read_token(token, tokens.UNSUBSCRIBE) != subscriber_id:
            raise exceptions.PermissionDenied("Unsubscribing needs the signed token from one of your messages.")
        subscriber = Subscriber.objects.filter(public_id=subscriber_id).first()
        if subscriber is not None:
            services.subscriber_unsubscribe(subscriber=subscriber, source=ConsentSource.API, ip=client_ip(request))
        return Response({"subscriber": {"id": subscriber_id, "state": SubscriberStatus.UNSUBSCRIBED.value}})


class PublicResendConfirmationApi(PublicApiView):
    """POST /api/v2/subscribers/<id>/resend_confirmation: send the confirmation again.

    The same 200 answer whatever the id is (unknown, pending, confirmed), and the address's
    one-confirmation-a-day limit and the per-IP cap apply.
    """

    def post(self, request: Request, subscriber_id: str) -> Response:
        page = self.request_page(request)
        if services.ip_allowed(client_ip(request)):
            subscriber = Subscriber.objects.filter(page=page, public_id=subscriber_id).first()
            if subscriber is not None:
                services.subscriber_resend_confirmation(subscriber=subscriber)
        return Response({"message": "If this subscription is waiting for confirmation, a confirmation message is on its way."})


# --- the management API -------------------------------------------------------------------------


class ManagementApiView(UnauthenticatedThrottleMixin, APIView):
    """An API key in `Authorization: OAuth <key>` or `Bearer <key>`; read keys may only read, and
    the key's user needs the subscriber permission for what the call does."""

    authentication_classes = [ApiTokenAuthentication]
    permission_classes = [TokenScope, SubscriberPermission]
    throttle_classes = [ApiTokenRateThrottle]
    renderer_classes = [Utf8JSONRenderer]

    def get_page(self, page_id: str) -> Page:
        page = Page.objects.filter(public_id=page_id).first()
        if page is None:
            raise exceptions.NotFound("No page with this id.")
        return page

    def subscribers(self, page: Page) -> QuerySet[Subscriber]:
        # A fixed number of queries per list, however many subscribers: two prefetches and a join.
        return (
            Subscriber.objects.filter(page=page)
            .select_related("organization", "incident")
            .prefetch_related(
                Prefetch("components", queryset=Component.objects.only("id", "public_id", "position", "name")),
                Prefetch("regions", queryset=Region.objects.only("id", "code", "name")),
            )
        )

    def get_subscriber(self, page: Page, subscriber_id: str) -> Subscriber:
        subscriber = self.subscribers(page).filter(public_id=subscriber_id).first()
        if subscriber is None:
            raise exceptions.NotFound("No subscriber with this id on this page.")
        return subscriber

    def output(self, page: Page, subscriber_or_list, **kwargs) -> dict | list:
        return SubscriberOutput(subscriber_or_list, context={"time_zone_name": page.time_zone}, **kwargs).data

    def filtered(self, request: Request, page: Page) -> tuple[QuerySet[Subscriber] | None, dict]:
        query = SubscriberListQuery(data=request.query_params)
        if not query.is_valid():
            return None, query_errors(query.errors)
        params = query.validated_data
        subscribers = self.subscribers(page)
        if params.get("q"):
            q = params["q"].strip()
            subscribers = subscribers.filter(Q(address__icontains=q) | Q(organization__name__icontains=q))
        if params.get("type"):
            subscribers = subscribers.filter(channel=params["type"])
        state = SubscriberListQuery.STATES[params["state"]]
        if state == "quarantined":
            subscribers = subscribers.filter(quarantined_at__isnull=False)
        elif state:
            subscribers = subscribers.filter(status=state)
        return subscribers, params


class SubscriberListCreateApi(ManagementApiView):
    """GET (filters q, type, state, limit ≤ 100, page, sort_direction) and POST /api/v1/pages/<page>/subscribers."""

    def get(self, request: Request, page_id: str) -> Response:
        page = self.get_page(page_id)
        subscribers, params = self.filtered(request, page)
        if subscribers is None:
            return Response(params, status=status.HTTP_400_BAD_REQUEST)
        # Newest first by default; the id breaks ties so pages never overlap or skip.
        order = ["created", "id"] if params["sort_direction"] == "asc" else ["-created", "-id"]
        start = (params["page"] - 1) * params["limit"]
        rows = subscribers.order_by(*order)[start : start + params["limit"]]
        return Response(self.output(page, rows, many=True))

    def post(self, request: Request, page_id: str) -> Response:
        """Create a subscriber. skip_confirmation_notification needs a skip_confirmation_reason, kept in the ledger."""
        page = self.get_page(page_id)
        form = SubscriberCreateInput(data=subscriber_fields(request.data), context={"page": page})
        if not form.is_valid():
            return Response(api_errors(form.errors), status=status.HTTP_400_BAD_REQUEST)
        data = form.validated_data
        try:
            subscriber = services.subscriber_create(
                page=page, channel=data["channel"], address=data["address"], phone_country=data["phone_country"],
                preferences=data["preferences"], organization=data["organization"],
                skip_confirmation_reason=data["skip_confirmation_reason"], source=ConsentSource.API, actor=request.user,
            )
        except DjangoValidationError as exc:
            return Response(service_errors(exc, address_field=data["address_field"]), status=status.HTTP_400_BAD_REQUEST)
        return Response(self.output(page, self.get_subscriber(page, subscriber.public_id)), status=status.HTTP_201_CREATED)


class SubscriberDetailApi(ManagementApiView):
    """GET, PATCH and DELETE /api/v1/pages/<page>/subscribers/<id>."""

    def get(self, request: Request, page_id: str, subscriber_id: str) -> Response:
        page = self.get_page(page_id)
        return Response(self.output(page, self.get_subscriber(page, subscriber_id)))

    def patch(self, request: Request, page_id: str, subscriber_id: str) -> Response:
        page = self.get_page(page_id)
        subscriber = self.get_subscriber(page, subscriber_id)
        form = SubscriberUpdateInput(data=subscriber_fields(request.data), context={"subscriber": subscriber})
        if not form.is_valid():
            return Response(api_errors(form.errors), status=status.HTTP_400_BAD_REQUEST)
        try:
            services.subscriber_update_preferences(
                subscriber=subscriber, preferences=form.validated_data["preferences"], source=ConsentSource.API, actor=request.user,
            )
        except DjangoValidationError as exc:
            return Response(service_errors(exc, address_field="email"), status=status.HTTP_400_BAD_REQUEST)
        return Response(self.output(page, self.get_subscriber(page, subscriber_id)))

    def delete(self, request: Request, page_id: str, subscriber_id: str) -> Response:
        """Unsubscribe (like Statuspage's DELETE), not delete the row.

        The row and its ledger stay, so the address is known to have left: a later import or
        API call cannot silently re-add it as if new, and the consent history stays attached.
        Removing personal data is the separate, deliberate erasure in the admin.
        """
        page = self.get_page(page_id)
        subscriber = self.get_subscriber(page, subscriber_id)
        services.subscriber_unsubscribe(subscriber=subscriber, source=ConsentSource.API, actor=request.user)
        return Response(self.output(page, self.get_subscriber(page, subscriber_id)))


class SubscriberResendConfirmationApi(ManagementApiView):
    """POST /api/v1/pages/<page>/subscribers/<id>/resend_confirmation (the one-a-day limit still applies)."""

    subscriber_permission = "change_subscriber"

    def post(self, request: Request, page_id: str, subscriber_id: str) -> Response:
        page = self.get_page(page_id)
        subscriber = self.get_subscriber(page, subscriber_id)
        return Response({"sent": services.subscriber_resend_confirmation(subscriber=subscriber)})


class SubscriberCountApi(ManagementApiView):
    """GET /api/v1/pages/<page>/subscribers/count (the list's q, type and state filters apply)."""

    def get(self, request: Request, page_id: str) -> Response:
        page = self.get_page(page_id)
        subscribers, params = self.filtered(request, page)
        if subscribers is None:
            return Response(params, status=status.HTTP_400_BAD_REQUEST)
        return Response({"count": subscribers.count()})


class SubscriberHistogramApi(ManagementApiView):
    """GET /api/v1/pages/<page>/subscribers/histogram_by_state: counts by state, overall and per channel."""

    def get(self, request: Request, page_id: str) -> Response:
        page = self.get_page(page_id)
        return Response(services.subscriber_state_histogram(page=page))
