"""Provider callbacks about deliveries: the SMS status callback (email tracking comes via anymail)."""
from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseForbidden
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from notifications import services
from statuspage.lib.signing import verify_twilio_signature

_KEPT_FIELDS = ("MessageSid", "MessageStatus", "ErrorCode", "ErrorMessage", "To", "AccountSid", "RawDlrDoneDate")


@csrf_exempt  # the provider posts here; its signature, not a cookie, proves who is calling
@require_POST
def sms_status(request: HttpRequest) -> HttpResponse:
    """Twilio-style delivery status callback (StatusCallback of a sent message).

    Like the inbound webhook, the signed URL is rebuilt from SITE_URL: point the provider at
    exactly SITE_URL + /webhooks/sms/status (SMS_STATUS_CALLBACK_URL).
    """
    url = settings.SITE_URL + request.get_full_path()
    auth_token = getattr(settings, "SMS_AUTH_TOKEN", "")
    signature = request.headers.get("X-Twilio-Signature", "")
    if not auth_token or not signature or not verify_twilio_signature(url, request.POST, signature, auth_token):
        return HttpResponseForbidden("Bad signature.", content_type="text/plain")
    services.sms_status_handle(
        message_sid=request.POST.get("MessageSid", "") or request.POST.get("SmsSid", ""),
        message_status=request.POST.get("MessageStatus", "") or request.POST.get("SmsStatus", ""),
        error_code=request.POST.get("ErrorCode", ""),
        payload={name: request.POST[name] for name in _KEPT_FIELDS if name in request.POST},
    )
    # 204 whether or not the message was ours: the provider has nothing to retry.
    return HttpResponse(status=204)
