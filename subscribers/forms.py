"""The public subscribe form and the manage-preferences form (no JavaScript needed for either)."""
from __future__ import annotations

from functools import lru_cache

import phonenumbers
from django import forms
from django.core.exceptions import ValidationError
from phonenumbers.geodata.locale import LOCALE_DATA

from incidents.models import Component, Incident, Page, Region
from subscribers.addresses import normalise_address
from subscribers.models import Channel, Subscriber
from subscribers.services import Preferences

SCOPE_ALL = "all"
SCOPE_CHOSEN = "chosen"
SCOPE_INCIDENT = "incident"

# Languages messages may be written in; anything without a translation falls back to the page's language.
LANGUAGES = [
    ("", "The page's language"),
    ("en", "English"),
    ("de", "Deutsch"),
    ("es", "Español"),
    ("fr", "Français"),
    ("it", "Italiano"),
    ("nl", "Nederlands"),
    ("pt", "Português"),
    ("ja", "日本語"),
]

# A short list covers most readers without a script-driven picker; the page's zone is the default.
TIME_ZONES = [
    ("", "The page's time zone"),
    ("Etc/UTC", "UTC"),
    ("America/Los_Angeles", "US Pacific (Los Angeles)"),
    ("America/Denver", "US Mountain (Denver)"),
    ("America/Chicago", "US Central (Chicago)"),
    ("America/New_York", "US Eastern (New York)"),
    ("America/Sao_Paulo", "São Paulo"),
    ("America/Toronto", "Toronto"),
    ("Europe/London", "London"),
    ("Europe/Dublin", "Dublin"),
    ("Europe/Lisbon", "Lisbon"),
    ("Europe/Madrid", "Madrid"),
    ("Europe/Paris", "Paris"),
    ("Europe/Amsterdam", "Amsterdam"),
    ("Europe/Berlin", "Berlin"),
    ("Europe/Stockholm", "Stockholm"),
    ("Europe/Warsaw", "Warsaw"),
    ("Europe/Helsinki", "Helsinki"),
    ("Europe/Istanbul", "Istanbul"),
    ("Africa/Johannesburg", "Johannesburg"),
    ("Africa/Lagos", "Lagos"),
    ("Asia/Dubai", "Dubai"),
    ("Asia/Kolkata", "India (Kolkata)"),
    ("Asia/Singapore", "Singapore"),
    ("Asia/Shanghai", "China (Shanghai)"),
    ("Asia/Tokyo", "Tokyo"),
    ("Asia/Seoul", "Seoul"),
    ("Australia/Perth", "Perth"),
    ("Australia/Sydney", "Sydney"),
    ("Pacific/Auckland", "Auckland"),
]


def _country_name(code: str) -> str:
    names = LOCALE_DATA.get(code) or {}
    name = names.get("en", "")
    # The locale table points repeated names at another key: "*aa" means "same as names['aa']".
    while name.startswith("*"):
        name = names.get(name[1:], "")
    return name or code


@lru_cache(maxsize=1)
def country_choices() -> tuple[tuple[str, str], ...]:
    countries = sorted(
        ((code, f"{_country_name(code)} (+{phonenumbers.country_code_for_region(code)})") for code in phonenumbers.SUPPORTED_REGIONS),
        key=lambda pair: pair[1].casefold(),
    )
    return (("", "Number starts with + and its country code"), *countries)


def component_choices(page: Page) -> list[dict]:
    """The page's components in page order: groups carry their members, for nested checkboxes."""
    rows = list(Component.objects.filter(page=page).order_by("position", "name", "pk"))
    members: dict[int, list[Component]] = {}
    for c in rows:
        if c.group_id:
            members.setdefault(c.group_id, []).append(c)
    return [
        {"id": c.public_id, "name": c.name, "is_group": c.is_group,
         "children": [{"id": m.public_id, "name": m.name} for m in members.get(c.pk, [])]}
        for c in rows if not c.group_id
    ]


class PreferencesForm(forms.Form):
    """What a subscriber hears about: shared by the subscribe page and the manage page."""

    scope = forms.ChoiceField(
        label="What to hear about",
        choices=[(SCOPE_ALL, "Everything on this page"), (SCOPE_CHOSEN, "Only the components I choose")],
        widget=forms.RadioSelect, initial=SCOPE_ALL,
    )
    components = forms.MultipleChoiceField(required=False, widget=forms.CheckboxSelectMultiple)
    notify_incidents = forms.BooleanField(required=False, initial=True, label="Incidents")
    notify_maintenance = forms.BooleanField(required=False, initial=True, label="Scheduled maintenance")
    regions = forms.MultipleChoiceField(required=False, widget=forms.CheckboxSelectMultiple, label="Regions")
    locale = forms.ChoiceField(required=False, choices=LANGUAGES, label="Language")
    time_zone = forms.ChoiceField(required=False, choices=TIME_ZONES, label="Time zone")

    def __init__(self, *args, page: Page, incident: Incident | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.page = page
        self.incident = incident
        self.component_tree = component_choices(page)
        self._components = {c.public_id: c for c in Component.objects.filter(page=page)}
        self._regions = {r.code: r for r in Region.objects.filter(page=page)}
        self.fields["components"].choices = [(cid, c.name) for cid, c in self._components.items()]
        self.fields["regions"].choices = [(code, r.name) for code, r in sorted(self._regions.items(), key=lambda kv: kv[1].name)]
        if incident is not None:
            self.fields["scope"].choices = [(SCOPE_INCIDENT, f"Only the incident “{incident.name}”"), *self.fields["scope"].choices]
        if not self._regions:
            del self.fields["regions"]

    @property
    def has_regions(self) -> bool:
        return "regions" in self.fields

    @property
    def selected_components(self) -> set[str]:
        if self.is_bound:
            return set(self.data.getlist(self.add_prefix("components")))
        return set(self.initial.get("components") or ())

    def clean(self) -> dict:
        data = super().clean()
        scope = data.get("scope")
        if scope == SCOPE_CHOSEN and not data.get("components"):
            self.add_error("components", "Choose at least one component, or everything.")
        if not (data.get("notify_incidents") or data.get("notify_maintenance")):
            self.add_error("notify_incidents", "Choose incidents, maintenance or both.")
        return data

    def preferences(self) -> Preferences:
        data = self.cleaned_data
        scope = data["scope"]
        chosen: list[Component] = []
        if scope == SCOPE_CHOSEN:
            for cid in data["components"]:
                component = self._components[cid]
                chosen.append(component)
                # A ticked group means its members too, as they are now; the group itself is kept
                # so the choice reads back as the group on the manage page.
                if component.is_group:
                    chosen += [c for c in self._components.values() if c.group_id == component.pk]
        unique = list({c.pk: c for c in chosen}.values())
        return Preferences(
            all_components=scope == SCOPE_ALL,
            components=tuple(unique),
            notify_incidents=data["notify_incidents"],
            notify_maintenance=data["notify_maintenance"],
            regions=tuple(self._regions[code] for code in data.get("regions") or ()),
            locale=data.get("locale") or "",
            time_zone=data.get("time_zone") or "",
            incident=self.incident if scope == SCOPE_INCIDENT else None,
        )

    @classmethod
    def initial_for(cls, subscriber: Subscriber) -> dict:
        if subscriber.incident_id:
            scope = SCOPE_INCIDENT
        else:
            scope = SCOPE_ALL if subscriber.all_components else SCOPE_CHOSEN
        return {
            "scope": scope,
            "components": [c.public_id for c in subscriber.components.all()],
            "notify_incidents": subscriber.notify_incidents,
            "notify_maintenance": subscriber.notify_maintenance,
            "regions": [r.code for r in subscriber.regions.all()],
            "locale": subscriber.locale,
            "time_zone": subscriber.time_zone,
        }


class SubscribeForm(PreferencesForm):
    """The public form: a channel and address, preferences, explicit consent, and a honeypot."""

    channel = forms.ChoiceField(choices=Channel.choices, widget=forms.RadioSelect, initial=Channel.EMAIL, label="How")
    email = forms.CharField(required=False, max_length=254, label="Email address")
    phone_number = forms.CharField(required=False, max_length=32, label="Mobile number")
    phone_country = forms.ChoiceField(required=False, label="Country")
    endpoint = forms.CharField(required=False, max_length=500, label="Endpoint URL")
    consent = forms.BooleanField(
        required=True, label="I agree",
        error_messages={"required": "Tick the box to agree to receive these messages."},
    )
    # The honeypot: people never see it; form-filling bots do and fill it in.
    website = forms.CharField(required=False, max_length=200)

    field_order = ["channel", "email", "phone_number", "phone_country", "endpoint"]

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["phone_country"].choices = country_choices()

    @property
    def is_bot(self) -> bool:
        return bool((self.data.get(self.add_prefix("website")) or "").strip()) if self.is_bound else False

    def address_field(self, channel: str) -> str:
        if channel == Channel.EMAIL:
            return "email"
        if channel == Channel.SMS:
            return "phone_number"
        return "endpoint"

    def clean(self) -> dict:
        data = super().clean()
        channel = data.get("channel")
        if not channel:
            return data
        field = self.address_field(channel)
        value = (data.get(field) or "").strip()
        if not value:
            missing = {"email": "Enter your email address.", "phone_number": "Enter your mobile number.",
                       "endpoint": "Enter the URL that should receive the messages."}
            self.add_error(field, missing[field])
            return data
        try:
            data["address"] = normalise_address(channel, value, phone_country=data.get("phone_country") or "")
        except ValidationError as exc:
            self.add_error(field, exc.messages)
        return data

    def claimed_channel(self) -> str:
        """The channel the posted data names, valid or not (what a honeypot answer echoes)."""
        value = self.data.get(self.add_prefix("channel")) if self.is_bound else None
        return value if value in Channel.values else Channel.EMAIL


class SmsCodeForm(forms.Form):
    token = forms.CharField(widget=forms.HiddenInput, max_length=500)
    code = forms.CharField(
        max_length=12, label="Code from the text message",
        widget=forms.TextInput(attrs={"inputmode": "numeric", "autocomplete": "one-time-code", "pattern": "[0-9 ]*"}),
    )
