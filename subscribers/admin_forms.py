"""Forms of the subscriber admin. They check what a form can; the services have the last word."""
from __future__ import annotations

from urllib.parse import urlsplit

from django import forms
from django.core.exceptions import ValidationError

from incidents.models import Component, Page, Region
from subscribers import services
from subscribers.addresses import normalise_email, normalise_phone
from subscribers.models import URL_CHANNELS, AccountContact, Channel, Subscriber, Suppression

PREFERENCE_FIELDS = ["all_components", "components", "notify_incidents", "notify_maintenance", "regions", "locale", "time_zone"]


def preferences_from(data: dict, *, incident=None) -> services.Preferences:
    """A form's cleaned data as the services' Preferences."""
    return services.Preferences(
        all_components=data["all_components"],
        components=tuple(data.get("components") or ()),
        notify_incidents=data["notify_incidents"],
        notify_maintenance=data["notify_maintenance"],
        regions=tuple(data.get("regions") or ()),
        locale=data.get("locale") or "",
        time_zone=data.get("time_zone") or "",
        incident=incident,
    )


class AccountContactForm(forms.ModelForm):
    class Meta:
        model = AccountContact
        fields = ["name", "role", "phone", "email"]

    def clean_phone(self) -> str:
        phone = self.cleaned_data.get("phone", "")
        # Account managers dial this in a P1: it must be a real number, stored in E.164.
        return normalise_phone(phone) if phone else phone


class SubscriberAddForm(forms.ModelForm):
    skip_confirmation = forms.BooleanField(
        required=False, help_text="Confirmed at once, with no confirmation message. Requires a reason, kept in the consent ledger.",
    )
    skip_confirmation_reason = forms.CharField(
        required=False, max_length=200, help_text="Why this subscriber need not confirm, e.g. “Asked by phone, ticket 4711”.",
    )

    class Meta:
        model = Subscriber
        fields = ["page", "channel", "address", "phone_country", "organization", *PREFERENCE_FIELDS]
        help_texts = {
            "address": "An email address, a phone number (with +country, or give the country), or an endpoint URL.",
            "phone_country": "For phone numbers without +country: the ISO code, e.g. GB.",
        }

    def clean(self) -> dict:
        data = super().clean()
        if data.get("skip_confirmation") and not (data.get("skip_confirmation_reason") or "").strip():
            self.add_error("skip_confirmation_reason", "Give the reason for skipping the confirmation.")
        return data


class SubscriberChangeForm(forms.ModelForm):
    class Meta:
        model = Subscriber
        fields = ["organization", *PREFERENCE_FIELDS]


def normalise_suppressed_address(channel: str, value: str, phone_country: str = "") -> str:
    """The address as subscriptions store it, so the block matches them.

    Endpoint URLs are not resolved here: blocking a URL that now points somewhere private is
    exactly what staff may need to do.
    """
    if channel == Channel.EMAIL:
        return normalise_email(value)
    if channel == Channel.SMS:
        return normalise_phone(value, phone_country)
    value = (value or "").strip()
    parts = urlsplit(value)
    if channel not in URL_CHANNELS or parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValidationError("Enter a full URL starting with https://")
    return value


class SuppressionAddForm(forms.ModelForm):
    phone_country = forms.CharField(required=False, max_length=2, help_text="For phone numbers without +country: the ISO code, e.g. GB.")

    class Meta:
        model = Suppression
        fields = ["channel", "address", "note"]
        help_texts = {"note": "Why this address is blocked (who asked, the ticket)."}

    def clean(self) -> dict:
        data = super().clean()
        channel, address = data.get("channel"), data.get("address")
        if channel and address:
            try:
                data["address"] = normalise_suppressed_address(channel, address, data.get("phone_country", ""))
            except ValidationError as exc:
                self.add_error("address", exc)
            else:
                if Suppression.objects.filter(channel=channel, address=data["address"]).exists():
                    self.add_error("address", "This address is already on the suppression list.")
        return data

    def _post_clean(self) -> None:
        # The row is written by services.address_suppress, which sets the reason and source.
        pass


class ImportForm(forms.Form):
    page = forms.ModelChoiceField(queryset=Page.objects.order_by("name"), help_text="The status page the subscribers follow.")
    file = forms.FileField(help_text="A CSV export (UTF-8, comma- or semicolon-separated) with a header row.")
    dry_run = forms.BooleanField(required=False, initial=True, help_text="Check the file and show what would change; write nothing.")
    skip_confirmation_reason = forms.CharField(
        required=False, max_length=200,
        help_text="Why these subscribers need not confirm (kept in the consent ledger). Empty: each new subscriber is sent a confirmation.",
    )

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        pages = self.fields["page"].queryset
        if pages.count() == 1:
            self.fields["page"].initial = pages.first()


class OutreachForm(forms.Form):
    """Which page's (and optionally which region's) enterprise contacts to download."""

    page = forms.ModelChoiceField(queryset=Page.objects.order_by("name"))
    region = forms.ModelChoiceField(queryset=Region.objects.select_related("page"), required=False)

    def clean(self) -> dict:
        data = super().clean()
        if data.get("page") and data.get("region") and data["region"].page_id != data["page"].pk:
            self.add_error("region", "Choose a region of this page.")
        return data


def component_choices() -> list[tuple[int, str]]:
    return [(c.pk, str(c)) for c in Component.objects.select_related("group").order_by("page_id", "group__position", "position", "name")]
