"""The message-template language: placeholders, validation, filling, default texts, suggestions."""
from __future__ import annotations

import itertools

import pytest
from django.core.exceptions import ValidationError

from incidents.message_templates import (
    CATEGORY_REQUIRES_LEGAL,
    CATEGORY_SUGGESTIONS,
    DEFAULT_TEMPLATES,
    LANGUAGES,
    PLACEHOLDERS,
    REQUIRED_FACTS,
    IncidentCategory,
    MessageKind,
    MissingValues,
    default_template,
    facts_missing,
    fill,
    missing_values,
    placeholders_in,
    suggested_kinds,
    template_errors,
    validate_template,
)
from incidents.models import IncidentStatus, MaintenanceStatus

KINDS_BY_LANGUAGE = list(itertools.product(MessageKind.values, LANGUAGES))


@pytest.mark.parametrize(("kind", "language"), KINDS_BY_LANGUAGE)
def test_every_default_template_validates(kind, language):
    subject, body = DEFAULT_TEMPLATES[(kind, language)]

    validate_template(subject, body)


@pytest.mark.parametrize(("kind", "language"), KINDS_BY_LANGUAGE)
def test_every_default_template_states_the_required_facts_of_its_kind(kind, language):
    subject, body = DEFAULT_TEMPLATES[(kind, language)]

    assert facts_missing(kind, subject, body) == []


@pytest.mark.parametrize("kind", MessageKind.values)
def test_german_defaults_are_their_own_text_not_the_english_one(kind):
    en_subject, en_body = DEFAULT_TEMPLATES[(kind, "en")]
    de_subject, de_body = DEFAULT_TEMPLATES[(kind, "de")]

    assert de_subject != en_subject
    assert de_body != en_body


@pytest.mark.parametrize("kind", MessageKind.values)
def test_german_and_english_defaults_ask_for_the_same_facts(kind):
    def names(language):
        subject, body = DEFAULT_TEMPLATES[(kind, language)]
        return set(placeholders_in(subject)) | set(placeholders_in(body))

    assert names("de") == names("en")


@pytest.mark.parametrize(("kind", "language"), KINDS_BY_LANGUAGE)
def test_a_default_that_names_a_cause_also_says_whether_it_is_suspected_or_confirmed(kind, language):
    subject, body = DEFAULT_TEMPLATES[(kind, language)]

    if "root_cause" in placeholders_in(body):
        assert "{root_cause_state}" in body


@pytest.mark.parametrize("kind", [MessageKind.INITIAL_ALERT, MessageKind.PROGRESS_UPDATE, MessageKind.EXTENDED_OUTAGE])
def test_alerts_and_updates_require_what_is_affected_impact_eta_what_to_do_and_next_update(kind):
    facts = set(REQUIRED_FACTS[kind])

    assert facts & {"service", "scope"}
    assert {"impact", "eta", "what_to_do", "next_update_at"} <= facts


def test_every_required_fact_is_a_known_placeholder():
    assert set(REQUIRED_FACTS) == set(MessageKind.values)
    for facts in REQUIRED_FACTS.values():
        assert set(facts) <= set(PLACEHOLDERS)


def test_a_template_that_drops_the_next_update_time_is_reported():
    subject, body = default_template(MessageKind.INITIAL_ALERT, "en")
    without_next_update = "\n\n".join(p for p in body.split("\n\n") if "{next_update_at}" not in p)

    assert facts_missing(MessageKind.INITIAL_ALERT, subject, without_next_update) == ["next_update_at"]


def test_placeholders_are_listed_in_order_of_first_use_and_once():
    assert placeholders_in("{service} is down since {started_at}; {service} again, {{not_one}}") == ["service", "started_at"]


def test_unknown_placeholder_error_names_it_and_lists_the_known_ones():
    errors = template_errors("Hello {foo}")

    assert len(errors) == 1
    assert errors[0].startswith("Unknown placeholder {foo}.")
    assert "Known placeholders:" in errors[0]
    assert "{service}" in errors[0]


def test_a_misspelt_placeholder_gets_a_suggestion():
    assert "Did you mean {service}?" in template_errors("{serivce}")[0]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Down: {}", "positional"),
        ("Down: {0}", "positional"),
        ("Down: {service.name}", "attribute or index access"),
        ("Down: {service[0]}", "attribute or index access"),
        ("ETA {eta!r}", "conversion (!r)"),
        ("ETA {eta:>10}", "format spec (:>10)"),
        ("ETA {eta", "the '{' at line 1, column 5 is never closed"),
        ("Line one\nETA eta}", "the '}' at line 2, column 8 has no opening '{'"),
        ("Down: {service{x}}", "the '{' at line 1, column 15 is inside a placeholder name"),
    ],
)
def test_each_malformed_form_is_reported_once_in_plain_words(text, expected):
    errors = template_errors(text)

    assert len(errors) == 1
    assert expected in errors[0]


def test_a_well_formed_template_with_literal_braces_has_no_errors():
    assert template_errors("Use {{braces}} freely; {service} is fine.") == []


def test_validation_errors_are_keyed_by_the_field_that_has_them():
    with pytest.raises(ValidationError) as caught:
        validate_template("{foo} is down", "{service} is down")

    assert set(caught.value.message_dict) == {"subject"}
    assert "Unknown placeholder {foo}." in caught.value.message_dict["subject"][0]


def test_fill_replaces_placeholders_and_marks_the_ones_still_to_write():
    filled = fill("**{service}**: {impact}. Next update {next_update_at}.", {"service": "Checkout", "impact": ""})

    assert filled == "**Checkout**: [[impact]]. Next update [[next_update_at]]."


def test_fill_with_missing_error_names_every_missing_value():
    with pytest.raises(MissingValues) as caught:
        fill("{service} {impact} {eta} {impact}", {"service": "Checkout", "eta": "  "}, missing="error")

    assert caught.value.names == ["impact", "eta"]
    assert isinstance(caught.value, KeyError)


def test_literal_braces_survive_filling():
    assert fill("{{literal}} and {service}", {"service": "API"}) == "{literal} and API"


def test_values_are_inserted_verbatim_and_never_read_as_placeholders():
    value = "**bold** <b>{impact}</b> {{x}}"

    assert fill("{service}", {"service": value, "impact": "SHOULD NOT APPEAR"}) == value


def test_fill_refuses_a_template_malformed_in_shape():
    with pytest.raises(ValueError, match="conversion"):
        fill("{eta!r}", {"eta": "soon"})


def test_missing_values_lists_unfilled_placeholders_in_order():
    assert missing_values("{eta} {service} {impact}", {"service": "API", "impact": " "}) == ["eta", "impact"]


def test_every_category_starts_with_the_initial_alert():
    assert set(CATEGORY_SUGGESTIONS) == set(IncidentCategory.values)
    for kinds in CATEGORY_SUGGESTIONS.values():
        assert kinds[0] == MessageKind.INITIAL_ALERT


def test_a_maintenance_error_suggests_the_overrun_notice():
    assert MessageKind.MAINTENANCE_OVERRUN in CATEGORY_SUGGESTIONS[IncidentCategory.MAINTENANCE_ERROR]


@pytest.mark.parametrize(
    ("category", "state", "expected"),
    [
        ("outage", dict(status=None, is_maintenance=False), ["initial_alert"]),
        ("outage", dict(status="investigating", is_maintenance=False), ["progress_update"]),
        ("outage", dict(status="identified", is_maintenance=False, extended=True), ["extended_outage", "progress_update"]),
        ("maintenance_error", dict(status="monitoring", is_maintenance=False), ["progress_update", "maintenance_overrun"]),
        ("outage", dict(status="resolved", is_maintenance=False), ["resolution", "postmortem"]),
        ("performance", dict(status="resolved", is_maintenance=False), ["resolution"]),
        ("outage", dict(status="postmortem", is_maintenance=False), ["postmortem"]),
        ("outage", dict(status="investigating", is_maintenance=False, false_alarm=True), ["false_alarm"]),
        ("", dict(status="", is_maintenance=True), ["maintenance_notice"]),
        ("", dict(status="scheduled", is_maintenance=True), ["maintenance_reminder", "maintenance_notice"]),
        ("", dict(status="in_progress", is_maintenance=True), ["progress_update", "maintenance_overrun"]),
        ("", dict(status="verifying", is_maintenance=True, extended=True), ["maintenance_overrun", "progress_update"]),
        ("", dict(status="completed", is_maintenance=True), ["resolution"]),
    ],
)
def test_suggestions_follow_the_incident_state(category, state, expected):
    assert suggested_kinds(category, **state) == expected


@pytest.mark.parametrize(
    ("status", "is_maintenance"),
    [(s, False) for s in IncidentStatus.values] + [(s, True) for s in MaintenanceStatus.values],
)
def test_every_status_of_the_models_gets_a_suggestion(status, is_maintenance):
    kinds = suggested_kinds("outage", status=status, is_maintenance=is_maintenance)

    assert kinds and set(kinds) <= set(MessageKind.values)


def test_an_unknown_status_is_refused():
    with pytest.raises(ValueError, match="closed"):
        suggested_kinds("outage", status="closed", is_maintenance=False)


def test_an_unknown_language_falls_back_to_english():
    assert default_template(MessageKind.RESOLUTION, "fr") == DEFAULT_TEMPLATES[(MessageKind.RESOLUTION, "en")]


def test_a_regional_locale_uses_its_language():
    assert default_template(MessageKind.RESOLUTION, "de-AT") == DEFAULT_TEMPLATES[(MessageKind.RESOLUTION, "de")]


def test_data_exposure_always_needs_legal_approval():
    assert CATEGORY_REQUIRES_LEGAL == {IncidentCategory.DATA_EXPOSURE}
