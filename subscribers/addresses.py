"""Validating and normalising what people type as an address, per channel."""
from __future__ import annotations

from urllib.parse import urlsplit

import phonenumbers
from django.core.exceptions import ValidationError
from django.core.validators import EmailValidator

from subscribers.models import Channel

_email = EmailValidator(message="Enter a valid email address.")
_URL_HOSTS = {
    Channel.SLACK: ("hooks.slack.com",),
    Channel.TEAMS: (".webhook.office.com", ".logic.azure.com", ".powerautomate.com"),
}


def normalise_email(value: str) -> str:
    value = (value or "").strip()
    _email(value)
    local, _, domain = value.rpartition("@")
    # Domains are case-insensitive; local parts formally are not, but every real mailbox is.
    return f"{local}@{domain}".lower()


def normalise_phone(value: str, country: str = "") -> str:
    """E.164, e.g. +31201234567. `country` is an ISO 3166 alpha-2 code for national numbers."""
    value = (value or "").strip()
    country = (country or "").strip().upper() or None
    try:
        number = phonenumbers.parse(value, country)
    except phonenumbers.NumberParseException:
        raise ValidationError("Enter a phone number with its country code, such as +44 20 7946 0958.", code="invalid") from None
    if not phonenumbers.is_valid_number(number):
        raise ValidationError("This is not a valid phone number for its country.", code="invalid")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalise_url(value: str, channel: str) -> str:
    """A receiver URL: https, a public address (checked again on every connection), right host for chat."""
    from statuspage.lib.http import UnsafeDestination, check_public_url

    value = (value or "").strip()
    if len(value) > 500:
        raise ValidationError("The URL is too long (500 characters at most).", code="invalid")
    parts = urlsplit(value)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValidationError("Enter a full URL starting with https://", code="invalid")
    allowed_hosts = _URL_HOSTS.get(channel)
    if allowed_hosts:
        host = parts.hostname.lower()
        if not any(host == h or (h.startswith(".") and host.endswith(h)) for h in allowed_hosts):
            label = Channel(channel).label
            raise ValidationError(f"This is not a {label} incoming webhook URL.", code="invalid")
    try:
        check_public_url(value)
    except UnsafeDestination as exc:
        raise ValidationError(str(exc), code="unsafe") from None
    return value


def normalise_address(channel: str, value: str, *, phone_country: str = "") -> str:
    if channel == Channel.EMAIL:
        return normalise_email(value)
    if channel == Channel.SMS:
        return normalise_phone(value, phone_country)
    if channel in (Channel.WEBHOOK, Channel.SLACK, Channel.TEAMS):
        return normalise_url(value, channel)
    raise ValidationError(f"Unknown channel {channel!r}.", code="invalid")
