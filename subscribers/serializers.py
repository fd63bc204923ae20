"""Input and output shapes of the subscriber APIs (the public v2 subscribe API and the management API).

Inputs only parse and look things up on the page; the services decide. Field errors are
keyed the way Statuspage names its parameters (`subscriber[email]`, `subscriber[component_ids][]`)
so a client can put each message next to the field it sent.
"""
from __future__ import annotations

import re
from collections.abc import Mapping

import phonenumbers
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import QueryDict
from rest_framework import serializers

from incidents.models import Component, Incident, Page, Region
from incidents.wire import timestamp
from subscribers.addresses import normalise_address, normalise_email
from subscribers.models import URL_CHANNELS, Channel, Organization, Subscriber, SubscriberStatus
from subscribers.services import Preferences

LIST_FIELDS = frozenset({"component_ids", "regions"})
_KEY = re.compile(r"^subscriber\[(\w+)\](\[\])?$")
# Where each channel's address is given in a request, and shown in a reply.
ADDRESS_FIELD = {
    Channel.EMAIL: "email",
    Channel.SMS: "phone_number",
    Channel.WEBHOOK: "endpoint",
    Channel.SLACK: "endpoint",
    Channel.TEAMS: "endpoint",
}
# What the services call a field -> what the API calls it.
_SERVICE_FIELDS = {"components": "component_ids", "channel": "mode"}


def field_key(name: str) -> str:
    return f"subscriber[{name}]" + ("[]" if name in LIST_FIELDS else "")


def subscriber_fields(data: object) -> dict:
    """Flatten a request body into {field: value}.

    Accepts JSON `{"subscriber": {...}}`, form fields `subscriber[x]` / `subscriber[x][]`,
    or the same bracketed keys in a flat JSON object.
    """
    if not isinstance(data, Mapping):
        return {}
    fields: dict = {}
    nested = data.get("subscriber")
    if isinstance(nested, Mapping):
        fields.update(nested)
    for key in data:
        match = _KEY.match(str(key))
        if not match:
            continue
        name, brackets = match.groups()
        if isinstance(data, QueryDict):
            values = data.getlist(key)
            fields[name] = values if (brackets or name in LIST_FIELDS) else values[-1]
        else:
            fields[name] = data[key]
    for name in LIST_FIELDS & fields.keys():
        if isinstance(fields[name], str):
            fields[name] = [fields[name]] if fields[name] else []
    return fields


def _messages(value: object) -> list[str]:
    if isinstance(value, Mapping):
        return [m for item in value.values() for m in _messages(item)]
    if isinstance(value, (list, tuple)):
        return [m for item in value for m in _messages(item)]
    return [str(value)]


def api_errors(errors: Mapping) -> dict:
    """DRF serializer errors -> {"errors": {"subscriber[field]": [messages]}}."""
    out: dict[str, list[str]] = {}
    for name, value in errors.items():
        key = "subscriber" if name == "non_field_errors" else field_key(name)
        out.setdefault(key, []).extend(_messages(value))
    return {"errors": out}


def service_errors(exc: DjangoValidationError, *, address_field: str) -> dict:
    """A service's ValidationError -> the same error shape, naming the API's fields."""
    if not hasattr(exc, "error_dict"):
        return {"errors": {"subscriber": exc.messages}}
    out: dict[str, list[str]] = {}
    for name, messages in exc.message_dict.items():
        if name == "address":
            key = field_key(address_field)
        elif name == "__all__":
            key = "subscriber"
        else:
            key = field_key(_SERVICE_FIELDS.get(name, name))
        out.setdefault(key, []).extend(messages)
    return {"errors": out}


# --- shared input parsing -----------------------------------------------------------------------


def _resolve_address(data: dict, *, mode: str = "") -> dict:
    """Which channel the request means, and its normalised address.

    Like Statuspage, an endpoint wins when an endpoint and an email are both given (the email
    is then the owner's contact; we validate it but keep only the endpoint).
    """
    email = (data.get("email") or "").strip()
    phone = (data.get("phone_number") or "").strip()
    country = (data.get("phone_country") or "").strip().upper()
    endpoint = (data.get("endpoint") or "").strip()

    if mode:
        field = ADDRESS_FIELD[mode]
        if not {"email": email, "phone_number": phone, "endpoint": endpoint}[field]:
            raise serializers.ValidationError({field: [f"Give the {field.replace('_', ' ')} for mode {mode}."]})
        channel = mode
    elif endpoint:
        channel = Channel.WEBHOOK
    elif phone and email:
        raise serializers.ValidationError({"phone_number": ["Give an email address or a phone number, not both."]})
    elif phone:
        channel = Channel.SMS
    elif email:
        channel = Channel.EMAIL
    else:
        raise serializers.ValidationError({"email": ["Give an email address, a phone number or a webhook endpoint."]})

    errors: dict[str, list[str]] = {}
    if channel in URL_CHANNELS and email:
        try:
            normalise_email(email)
        except DjangoValidationError as exc:
            errors["email"] = list(exc.messages)
    if channel == Channel.SMS and country and country not in phonenumbers.SUPPORTED_REGIONS:
        errors["phone_country"] = ["Enter a two-letter country code, such as US or GB."]
    field = ADDRESS_FIELD[channel]
    raw = {"email": email, "phone_number": phone, "endpoint": endpoint}[field]
    address = ""
    if not errors:
        try:
            address = normalise_address(channel, raw, phone_country=country)
        except DjangoValidationError as exc:
            errors[field] = list(exc.messages)
    if errors:
        raise serializers.ValidationError(errors)
    if channel == Channel.SMS:
        # Keep the number's own country, so a number typed in international form still records one.
        country = phonenumbers.region_code_for_number(phonenumbers.parse(address)) or country
    else:
        country = ""
    return {"channel": channel, "address": address, "phone_country": country, "address_field": field}


def _resolve_components(page: Page, ids: list[str]) -> tuple[Component, ...]:
    ids = list(dict.fromkeys(ids))
    found = {c.public_id: c for c in Component.objects.filter(page=page, public_id__in=ids)}
    unknown = [i for i in ids if i not in found]
    if unknown:
        raise serializers.ValidationError({"component_ids": [f"No component with id {', '.join(unknown)} on this page."]})
    return tuple(found[i] for i in ids)


def _resolve_regions(page: Page, codes: list[str]) -> tuple[Region, ...]:
    codes = list(dict.fromkeys(codes))
    found = {r.code: r for r in Region.objects.filter(page=page, code__in=codes)}
    unknown = [c for c in codes if c not in found]
    if unknown:
        raise serializers.ValidationError({"regions": [f"No region with code {', '.join(unknown)} on this page."]})
    return tuple(found[c] for c in codes)


def _resolve_incident(page: Page, incident_id: str) -> Incident | None:
    if not incident_id:
        return None
    incident = Incident.objects.filter(page=page, public_id=incident_id).first()
    if incident is None:
        raise serializers.ValidationError({"incident": ["No incident with this id on this page."]})
    return incident


class _AddressInput(serializers.Serializer):
    email = serializers.CharField(required=False, allow_blank=True, max_length=254)
    phone_number = serializers.CharField(required=False, allow_blank=True, max_length=40)
    phone_country = serializers.CharField(required=False, allow_blank=True, max_length=2)
    endpoint = serializers.CharField(required=False, allow_blank=True, max_length=500)
    component_ids = serializers.ListField(child=serializers.CharField(max_length=40), required=False, max_length=500)
    incident = serializers.CharField(required=False, allow_blank=True, max_length=40)

    @property
    def page(self) -> Page:
        return self.context["page"]


# --- the public v2 subscribe API ----------------------------------------------------------------


class PublicSubscribeInput(_AddressInput):
    """POST /api/v2/subscribers.json. validated_data: channel, address, phone_country, address_field, preferences."""

    def validate(self, data: dict) -> dict:
        resolved = _resolve_address(data)
        components = _resolve_components(self.page, data.get("component_ids") or [])
        incident = _resolve_incident(self.page, data.get("incident") or "")
        preferences = Preferences(all_components=not components, components=components, incident=incident)
        return {**resolved, "preferences": preferences}


class PublicSubscriberOutput(serializers.Serializer):
    """The reply of the public subscribe API, shaped like Statuspage's (key order as captured)."""

    created_at = serializers.SerializerMethodField()
    skip_confirmation_notification = serializers.SerializerMethodField()
    quarantined_at = serializers.SerializerMethodField()
    id = serializers.CharField(source="public_id")
    mode = serializers.CharField(source="channel")
    purge_at = serializers.SerializerMethodField()

    def _ts(self, value):
        return timestamp(value, self.context["time_zone_name"])

    def get_created_at(self, sub: Subscriber):
        return self._ts(sub.created)

    def get_skip_confirmation_notification(self, sub: Subscriber) -> bool:
        return bool(sub.confirmation_skipped_reason)

    def get_quarantined_at(self, sub: Subscriber):
        return self._ts(sub.quarantined_at)

    def get_purge_at(self, sub: Subscriber) -> None:
        return None  # we never purge on a timer; erasure is an explicit act

    def to_representation(self, sub: Subscriber) -> dict:
        data = super().to_representation(sub)
        if sub.channel == Channel.SMS:
            data["phone_number"] = sub.address
            data["phone_country"] = sub.phone_country or None
        else:
            data[ADDRESS_FIELD[sub.channel]] = sub.address
        return data


# --- the management API -------------------------------------------------------------------------


class SubscriberListQuery(serializers.Serializer):
    """Query parameters of the list and count endpoints."""

    # Statuspage's names for states are accepted too.
    STATES = {
        "all": None,
        "pending": SubscriberStatus.PENDING,
        "unconfirmed": SubscriberStatus.PENDING,
        "confirmed": SubscriberStatus.CONFIRMED,
        "active": SubscriberStatus.CONFIRMED,
        "unsubscribed": SubscriberStatus.UNSUBSCRIBED,
        "quarantined": "quarantined",
    }

    q = serializers.CharField(required=False, allow_blank=True, max_length=200)
    type = serializers.ChoiceField(choices=Channel.values, required=False)
    state = serializers.ChoiceField(choices=list(STATES), required=False, default="all")
    limit = serializers.IntegerField(required=False, min_value=1, max_value=100, default=100)
    page = serializers.IntegerField(required=False, min_value=1, max_value=100_000, default=1)
    sort_direction = serializers.ChoiceField(choices=["asc", "desc"], required=False, default="desc")


def query_errors(errors: Mapping) -> dict:
    return {"errors": {name: _messages(value) for name, value in errors.items()}}


class SubscriberCreateInput(_AddressInput):
    """POST /api/v1/pages/<page>/subscribers."""

    mode = serializers.ChoiceField(choices=Channel.values, required=False)
    regions = serializers.ListField(child=serializers.CharField(max_length=32), required=False, max_length=100)
    notify_incidents = serializers.BooleanField(required=False, default=True)
    notify_maintenance = serializers.BooleanField(required=False, default=True)
    locale = serializers.CharField(required=False, allow_blank=True, max_length=10, default="")
    time_zone = serializers.CharField(required=False, allow_blank=True, max_length=64, default="")
    organization = serializers.CharField(required=False, allow_blank=True, max_length=40)
    skip_confirmation_notification = serializers.BooleanField(required=False, default=False)
    skip_confirmation_reason = serializers.CharField(required=False, allow_blank=True, max_length=200, default="")

    def validate(self, data: dict) -> dict:
        if data["skip_confirmation_notification"] and not data["skip_confirmation_reason"].strip():
            raise serializers.ValidationError(
                {"skip_confirmation_reason": ["Say why this subscriber need not confirm (it is kept in the consent ledger)."]}
            )
        resolved = _resolve_address(data, mode=data.get("mode", ""))
        components = _resolve_components(self.page, data.get("component_ids") or [])
        preferences = Preferences(
            all_components=not components,
            components=components,
            incident=_resolve_incident(self.page, data.get("incident") or ""),
            notify_incidents=data["notify_incidents"],
            notify_maintenance=data["notify_maintenance"],
            regions=_resolve_regions(self.page, data.get("regions") or []),
            locale=data["locale"].strip(),
            time_zone=data["time_zone"].strip(),
        )
        organization = None
        if data.get("organization"):
            organization = Organization.objects.filter(page=self.page, public_id=data["organization"]).first()
            if organization is None:
                raise serializers.ValidationError({"organization": ["No customer account with this id on this page."]})
        reason = data["skip_confirmation_reason"].strip() if data["skip_confirmation_notification"] else ""
        return {**resolved, "preferences": preferences, "organization": organization, "skip_confirmation_reason": reason}


class SubscriberUpdateInput(serializers.Serializer):
    """PATCH /api/v1/pages/<page>/subscribers/<id>: only the fields sent change.

    `component_ids: []` (or `all_components: true`) means the whole page.
    """

    component_ids = serializers.ListField(child=serializers.CharField(max_length=40), required=False, max_length=500)
    all_components = serializers.BooleanField(required=False)
    notify_incidents = serializers.BooleanField(required=False)
    notify_maintenance = serializers.BooleanField(required=False)
    regions = serializers.ListField(child=serializers.CharField(max_length=32), required=False, max_length=100)
    locale = serializers.CharField(required=False, allow_blank=True, max_length=10)
    time_zone = serializers.CharField(required=False, allow_blank=True, max_length=64)

    def validate(self, data: dict) -> dict:
        if not data:
            raise serializers.ValidationError("Send at least one field to change.")
        sub: Subscriber = self.context["subscriber"]
        page = sub.page
        components = tuple(sub.components.all())
        all_components = sub.all_components
        if "component_ids" in data:
            components = _resolve_components(page, data["component_ids"])
            all_components = not components
        if data.get("all_components"):
            all_components, components = True, ()
        elif data.get("all_components") is False and not components and sub.incident_id is None:
            raise serializers.ValidationError({"component_ids": ["Choose at least one component, or everything."]})
        regions = _resolve_regions(page, data["regions"]) if "regions" in data else tuple(sub.regions.all())
        return {
            "preferences": Preferences(
                all_components=all_components,
                components=components,
                incident=sub.incident,
                notify_incidents=data.get("notify_incidents", sub.notify_incidents),
                notify_maintenance=data.get("notify_maintenance", sub.notify_maintenance),
                regions=regions,
                locale=data.get("locale", sub.locale).strip(),
                time_zone=data.get("time_zone", sub.time_zone).strip(),
            )
        }


class SubscriberOutput(serializers.Serializer):
    """The v1 subscriber object, plus our own fields (state, organization, regions and preferences).

    Expects `components`, `regions` prefetched and `organization`, `incident` selected.
    """

    id = serializers.CharField(source="public_id")
    mode = serializers.CharField(source="channel")
    email = serializers.SerializerMethodField()
    endpoint = serializers.SerializerMethodField()
    phone_number = serializers.SerializerMethodField()
    phone_country = serializers.SerializerMethodField()
    display_phone_number = serializers.SerializerMethodField()
    skip_confirmation_notification = serializers.SerializerMethodField()
    quarantined_at = serializers.SerializerMethodField()
    purge_at = serializers.SerializerMethodField()
    components = serializers.SerializerMethodField()
    page_access_user_id = serializers.SerializerMethodField()
    created_at = serializers.SerializerMethodField()
    state = serializers.CharField(source="status")
    organization = serializers.SerializerMethodField()
    regions = serializers.SerializerMethodField()
    all_components = serializers.BooleanField()
    incident = serializers.SerializerMethodField()
    notify_incidents = serializers.BooleanField()
    notify_maintenance = serializers.BooleanField()
    locale = serializers.CharField()
    time_zone = serializers.CharField()
    confirmed_at = serializers.SerializerMethodField()
    unsubscribed_at = serializers.SerializerMethodField()

    def _ts(self, value):
        return timestamp(value, self.context["time_zone_name"])

    def _address(self, sub: Subscriber, field: str) -> str | None:
        if sub.erased_at or ADDRESS_FIELD[sub.channel] != field:
            return None
        return sub.address

    def get_email(self, sub: Subscriber):
        return self._address(sub, "email")

    def get_endpoint(self, sub: Subscriber):
        return self._address(sub, "endpoint")

    def get_phone_number(self, sub: Subscriber):
        return self._address(sub, "phone_number")

    def get_phone_country(self, sub: Subscriber):
        return sub.phone_country or None

    def get_display_phone_number(self, sub: Subscriber):
        number = self._address(sub, "phone_number")
        if not number:
            return None
        try:
            parsed = phonenumbers.parse(number)
        except phonenumbers.NumberParseException:
            return number
        return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.INTERNATIONAL)

    def get_skip_confirmation_notification(self, sub: Subscriber) -> bool:
        return bool(sub.confirmation_skipped_reason)

    def get_quarantined_at(self, sub: Subscriber):
        return self._ts(sub.quarantined_at)

    def get_purge_at(self, sub: Subscriber) -> None:
        return None

    def get_components(self, sub: Subscriber) -> list[str]:
        return [c.public_id for c in sub.components.all()]

    def get_page_access_user_id(self, sub: Subscriber) -> None:
        return None  # no audience-specific pages here

    def get_created_at(self, sub: Subscriber):
        return self._ts(sub.created)

    def get_organization(self, sub: Subscriber):
        return sub.organization.public_id if sub.organization_id else None

    def get_regions(self, sub: Subscriber) -> list[str]:
        return [r.code for r in sub.regions.all()]

    def get_incident(self, sub: Subscriber):
        return sub.incident.public_id if sub.incident_id else None

    def get_confirmed_at(self, sub: Subscriber):
        return self._ts(sub.confirmed_at)

    def get_unsubscribed_at(self, sub: Subscriber):
        return self._ts(sub.unsubscribed_at)
