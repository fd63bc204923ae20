"""The customer-facing subscriber pages: subscribe, confirm, manage, unsubscribe, and the SMS inbound webhook.

Answers never tell an address's state to whoever types it: a valid subscribe request gets the
same "check your inbox / phone / endpoint" page whether the address is new, subscribed,
suppressed, rate-limited or caught by the honeypot; every bad link gets one generic page.

Client IP (ledger, per-IP cap): statuspage.lib.net.client_ip, shared with the API. By default
it is REMOTE_ADDR, as the connection reports it; X-Forwarded-For is not trusted, because anyone
can send it. Behind a reverse proxy REMOTE_ADDR is the proxy's address: set TRUSTED_PROXIES to
the number of proxies in front of the app, and the address that many hops from the right of
X-Forwarded-For is used instead.
"""
from __future__ import annotations

from urllib.parse import urlsplit
from xml.sax.saxutils import escape as xml_escape

from django.conf import settings
from django.core import signing
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseForbidden
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods, require_POST

from incidents import cache
from incidents.models import Page
from incidents.serving import page_id_for, snapshot_for
from incidents.views import page_context
from statuspage.lib.net import client_ip
from statuspage.lib.signing import verify_twilio_signature
from subscribers import services, tokens
from subscribers.addresses import normalise_phone
from subscribers.forms import PreferencesForm, SmsCodeForm, SubscribeForm
from subscribers.models import Channel, ConsentSource, Subscriber, SubscriberStatus
from subscribers.services import CONSENT_TEXT_VERSION

INVALID_LINK_STATUS = 404
SMS_VERIFY_SALT = "subscribers.sms-verify"
# The code itself lives 15 minutes from when it is sent; the form may wait a little for the queue.
SMS_VERIFY_MAX_AGE = 60 * 60

SMS_REPLIES = {
    "stop": "You will get no more texts from {name}. Reply START to subscribe again.",
    "start": "You are subscribed to {name} status texts again. Reply STOP to opt out.",
    "help": "{name} status alerts. Manage your subscription at {url}. Reply STOP to opt out, START to opt back in.",
}


def _page_dict(page: Page | None) -> dict | None:
    """What base.html shows about a page, from the cached snapshot (no SQL when warm)."""
    if page is None:
        return None
    snap = snapshot_for(page.public_id, version=cache.current_version())
    return page_context(snap) if snap else None


def _request_page(request: HttpRequest) -> Page:
    """The page this host serves, routed exactly like the public page."""
    page_id = page_id_for(request, version=cache.current_version())
    page = Page.objects.filter(public_id=page_id).first() if page_id else None
    if page is None:
        raise Http404("No status page is set up yet.")
    return page


def _request_page_or_none(request: HttpRequest) -> Page | None:
    try:
        return _request_page(request)
    except Http404:
        return None


def _subscriber_from(token: str, kind: str, *, allow_erased: bool = False) -> Subscriber | None:
    public_id = tokens.read_token(token, kind)
    if public_id is None:
        return None
    subscriber = Subscriber.objects.select_related("page", "incident").filter(public_id=public_id).first()
    if subscriber is None or (subscriber.erased_at and not allow_erased):
        return None
    return subscriber


def _invalid_link(request: HttpRequest) -> HttpResponse:
    """One answer for every tampered, expired, wrong-kind or dead link: it changes nothing and tells nothing."""
    context = {"page": _page_dict(_request_page_or_none(request))}
    return render(request, "subscribers/invalid_link.html", context, status=INVALID_LINK_STATUS)


def _sms_verify_token(page: Page, phone: str) -> str:
    # The token carries what the visitor typed (readable, signed), never a subscriber id: the page
    # for a number we will not text looks and behaves exactly like the page for one we do.
    return signing.dumps({"p": page.public_id, "a": phone}, salt=SMS_VERIFY_SALT)


def _read_sms_verify_token(token: str) -> tuple[str, str] | None:
    try:
        data = signing.loads(token or "", salt=SMS_VERIFY_SALT, max_age=SMS_VERIFY_MAX_AGE)
    except signing.BadSignature:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("p"), str) or not isinstance(data.get("a"), str):
        return None
    return data["p"], data["a"]


def _masked_endpoint(url: str) -> str:
    try:
        host = urlsplit(url).hostname or ""
    except ValueError:
        host = ""
    return f"{host}/…" if host else "your endpoint"


def _check_answer(request: HttpRequest, page: Page, *, channel: str, address: str) -> HttpResponse:
    """The one answer to every accepted-looking subscribe request."""
    kind = "email" if channel == Channel.EMAIL else "sms" if channel == Channel.SMS else "endpoint"
    context = {
        "page": _page_dict(page),
        "kind": kind,
        "channel_label": Channel(channel).label,
        "shown_address": _masked_endpoint(address) if kind == "endpoint" else address[:254],
    }
    if kind == "sms":
        context["code_form"] = SmsCodeForm(initial={"token": _sms_verify_token(page, address[:32])})
    return render(request, "subscribers/check.html", context)


def _add_errors(form, exc: ValidationError, address_field: str) -> None:
    errors = exc.message_dict if hasattr(exc, "error_dict") else {None: exc.messages}
    for field, messages in errors.items():
        target = address_field if field == "address" else field if field in form.fields else None
        for message in messages:
            form.add_error(target, message)


def _subscribe_context(page: Page, form: SubscribeForm) -> dict:
    return {
        "page": _page_dict(page),
        "page_name": page.name,
        "form": form,
        "consent_version": CONSENT_TEXT_VERSION,
    }


@never_cache
@require_http_methods(["GET", "HEAD", "POST"])
def subscribe(request: HttpRequest) -> HttpResponse:
    page = _request_page(request)
    if request.method != "POST":
        return render(request, "subscribers/subscribe.html", _subscribe_context(page, SubscribeForm(page=page)))
    form = SubscribeForm(request.POST, page=page)
    if form.is_bot:
        # Answer like a success, do nothing: a bot learns nothing and writes nothing.
        channel = form.claimed_channel()
        typed = request.POST.get(form.address_field(channel), "").strip()
        return _check_answer(request, page, channel=channel, address=typed)
    if not form.is_valid():
        return render(request, "subscribers/subscribe.html", _subscribe_context(page, form))
    channel = form.cleaned_data["channel"]
    address = form.cleaned_data["address"]
    ip = client_ip(request)
    if services.ip_allowed(ip):
        try:
            services.subscriber_subscribe(
                page=page, channel=channel, address=address, phone_country=form.cleaned_data.get("phone_country") or "",
                preferences=form.preferences(), source=ConsentSource.PUBLIC_PAGE, ip=ip,
                explicit_consent=form.cleaned_data["consent"],
            )
        except ValidationError as exc:
            # Only malformed input lands here (the form checks the same rules first), never an address's state.
            _add_errors(form, exc, form.address_field(channel))
            return render(request, "subscribers/subscribe.html", _subscribe_context(page, form))
    return _check_answer(request, page, channel=channel, address=address)


@never_cache
@require_POST
def sms_verify(request: HttpRequest) -> HttpResponse:
    """The code typed from the text message. A wrong code, a locked or expired code and a number we
    never texted all get the same answer."""
    page = _request_page(request)
    form = SmsCodeForm(request.POST)
    if form.is_valid():
        target = _read_sms_verify_token(form.cleaned_data["token"])
        subscriber = None
        if target is not None:
            subscriber = Subscriber.objects.filter(
                page__public_id=target[0], channel=Channel.SMS, address=target[1], erased_at__isnull=True
            ).first()
        if subscriber is not None and services.subscriber_verify_sms_code(
            subscriber=subscriber, code=form.cleaned_data["code"].replace(" ", ""), ip=client_ip(request)
        ):
            manage_url = f"/subscribers/manage/{tokens.make_token(subscriber.public_id, tokens.MANAGE)}"
            return render(request, "subscribers/confirmed.html", {"page": _page_dict(subscriber.page), "manage_url": manage_url})
        form.add_error("code", "That code is not right or has expired. Check the text message and try again.")
    return render(request, "subscribers/check.html", {
        "page": _page_dict(page), "kind": "sms", "channel_label": Channel.SMS.label, "shown_address": "", "code_form": form,
    })


@never_cache
@require_http_methods(["GET", "HEAD", "POST"])
def confirm(request: HttpRequest, token: str) -> HttpResponse:
    """GET shows a button (mail scanners fetch links); only the POST confirms."""
    subscriber = _subscriber_from(token, tokens.CONFIRM)
    if (
        subscriber is None
        or subscriber.status == SubscriberStatus.UNSUBSCRIBED
        or services.is_suppressed(subscriber.channel, subscriber.address)
    ):
        return _invalid_link(request)
    manage_url = f"/subscribers/manage/{tokens.make_token(subscriber.public_id, tokens.MANAGE)}"
    context = {"page": _page_dict(subscriber.page), "manage_url": manage_url, "address": subscriber.display_address}
    if request.method == "POST":
        services.subscriber_confirm(subscriber=subscriber, source=ConsentSource.PUBLIC_PAGE, ip=client_ip(request))
        subscriber.refresh_from_db()
        if not subscriber.is_confirmed:
            return _invalid_link(request)
        return render(request, "subscribers/confirmed.html", context)
    context["already"] = subscriber.is_confirmed
    return render(request, "subscribers/confirm.html", context)


@never_cache
@require_http_methods(["GET", "HEAD", "POST"])
def manage(request: HttpRequest, token: str) -> HttpResponse:
    subscriber = _subscriber_from(token, tokens.MANAGE)
    if subscriber is None:
        return _invalid_link(request)
    form_kwargs = {"page": subscriber.page, "incident": subscriber.incident}
    active = subscriber.status != SubscriberStatus.UNSUBSCRIBED
    if request.method == "POST" and active:
        form = PreferencesForm(request.POST, **form_kwargs)
        if form.is_valid():
            try:
                services.subscriber_update_preferences(
                    subscriber=subscriber, preferences=form.preferences(), source=ConsentSource.PUBLIC_PAGE, ip=client_ip(request)
                )
            except ValidationError as exc:
                _add_errors(form, exc, "components")
            else:
                # Post/redirect/get: a reload does not post again.
                return redirect(f"{request.path}?saved=1", permanent=False)
    else:
        form = PreferencesForm(initial=PreferencesForm.initial_for(subscriber), **form_kwargs)
    context = {
        "page": _page_dict(subscriber.page),
        "subscriber": subscriber,
        "active": active,
        "form": form,
        "saved": request.GET.get("saved") == "1" and request.method != "POST",
        "unsubscribe_url": f"/subscribers/unsubscribe/{tokens.make_token(subscriber.public_id, tokens.UNSUBSCRIBE)}",
    }
    return render(request, "subscribers/manage.html", context)


@csrf_exempt  # RFC 8058: mail clients POST without cookies or a CSRF token; the signed token is the authority.
@never_cache
@require_http_methods(["GET", "HEAD", "POST"])
def unsubscribe(request: HttpRequest, token: str) -> HttpResponse:
    """GET asks (link scanners must not unsubscribe anyone); POST unsubscribes, and repeating it is harmless."""
    subscriber = _subscriber_from(token, tokens.UNSUBSCRIBE, allow_erased=True)
    if subscriber is None:
        return _invalid_link(request)
    context = {"page": _page_dict(subscriber.page), "address": subscriber.display_address, "channel_label": subscriber.get_channel_display()}
    if request.method == "POST":
        one_click = request.POST.get("List-Unsubscribe") == "One-Click"
        services.subscriber_unsubscribe(
            subscriber=subscriber, source=ConsentSource.EMAIL_CLIENT if one_click else ConsentSource.PUBLIC_PAGE, ip=client_ip(request),
        )
        return render(request, "subscribers/unsubscribed.html", context)
    context["already"] = subscriber.status == SubscriberStatus.UNSUBSCRIBED
    return render(request, "subscribers/unsubscribe.html", context)


def _twiml(message: str | None) -> HttpResponse:
    body = f"<Response><Message>{xml_escape(message)}</Message></Response>" if message else "<Response></Response>"
    return HttpResponse(f'<?xml version="1.0" encoding="UTF-8"?>{body}', content_type="text/xml; charset=utf-8")


@csrf_exempt  # the provider posts here; its signature, not a cookie, proves who is calling
@require_POST
def sms_inbound(request: HttpRequest) -> HttpResponse:
    """Twilio-style inbound SMS: STOP / START / HELP in their usual wordings.

    The signature covers the public URL the provider called. Behind a proxy the request's own
    scheme and host may differ from it, so the URL is rebuilt from SITE_URL plus the path and
    query: point the provider at exactly SITE_URL + /webhooks/sms/inbound.
    """
    url = settings.SITE_URL + request.get_full_path()
    auth_token = getattr(settings, "SMS_AUTH_TOKEN", "")
    signature = request.headers.get("X-Twilio-Signature", "")
    if not auth_token or not signature or not verify_twilio_signature(url, request.POST, signature, auth_token):
        return HttpResponseForbidden("Bad signature.", content_type="text/plain")
    from_number = request.POST.get("From", "")
    keyword = services.sms_reply_handle(from_number=from_number, body=request.POST.get("Body", ""))
    if keyword is None:
        return _twiml(None)
    page = _page_for_number(from_number) or _request_page_or_none(request)
    name = page.name if page else "Status"
    url = f"{page.base_url}/" if page else settings.SITE_URL + "/"
    return _twiml(SMS_REPLIES[keyword].format(name=name, url=url))


def _page_for_number(number: str) -> Page | None:
    try:
        number = normalise_phone(number)
    except ValidationError:
        return None
    subscriber = Subscriber.objects.select_related("page").filter(channel=Channel.SMS, address=number).order_by("pk").first()
    return subscriber.page if subscriber else None
