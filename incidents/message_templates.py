"""The message-template language: placeholders, validation, filling and the default texts.

Pure: no models, no database. incidents.models imports the choices from here, so this
module must never import incidents.models (that would be a circular import); status values
are therefore spelled out below and a test keeps them in step with the models.

A template is Markdown with ``{name}`` placeholders (str.format syntax, ``{{``/``}}`` for a
literal brace). Only bare names are allowed: no positions, attribute or index access, format
specs or conversions, because staff write these texts and the values are already prose.
"""
from __future__ import annotations

import difflib
import string
from collections.abc import Iterable, Mapping

from django.core.exceptions import ValidationError
from django.db import models


class MessageKind(models.TextChoices):
    INITIAL_ALERT = "initial_alert", "Initial alert"
    PROGRESS_UPDATE = "progress_update", "Progress update"
    RESOLUTION = "resolution", "Resolution"
    MAINTENANCE_NOTICE = "maintenance_notice", "Maintenance notice"
    MAINTENANCE_REMINDER = "maintenance_reminder", "Maintenance reminder"
    MAINTENANCE_OVERRUN = "maintenance_overrun", "Maintenance overrun"
    FALSE_ALARM = "false_alarm", "False alarm"
    EXTENDED_OUTAGE = "extended_outage", "Extended outage"
    POSTMORTEM = "postmortem", "Post-mortem"


class IncidentCategory(models.TextChoices):
    OUTAGE = "outage", "Outage"
    PERFORMANCE = "performance", "Performance"
    DATA_EXPOSURE = "data_exposure", "Data exposure / security"
    MAINTENANCE_ERROR = "maintenance_error", "Maintenance error"
    THIRD_PARTY = "third_party", "Third party"


# Shown to staff next to the template editor, so each line says what to write, not what it is.
PLACEHOLDERS: dict[str, str] = {
    "service": "The affected service or product, named as customers know it.",
    "impact": "What customers notice, in plain words (e.g. one in five payments fails).",
    "started_at": "When the impact began, with time zone.",
    "scope": "Who is affected: regions, plans, features, share of customers.",
    "status": "Where the work stands (investigating, fix identified, monitoring ...).",
    "what_we_are_doing": "What the team is doing right now.",
    "eta": "Expected resolution time with time zone, or plainly that there is no estimate yet.",
    "what_to_do": "What customers should do meanwhile: a workaround, or that nothing is needed.",
    "next_update_at": "When the next update will be posted, with time zone.",
    "status_link": "Link to the status page or to this incident's page.",
    "sla_credit": "Whether an SLA credit applies and how customers get it, or that none applies.",
    "what_changed": "What is new since the previous update.",
    "root_cause": "The cause as far as it is known; state its certainty in root_cause_state.",
    "root_cause_state": "How certain the cause is, in the message language: suspected (a hypothesis) or confirmed.",
    "resolved_at": "When service was fully restored, with time zone.",
    "what_happened": "A short account of what happened and what was affected.",
    "fix": "What was done to restore service.",
    "prevention": "What will change so that this does not happen again.",
    "window": "The maintenance window: start and end, with time zone.",
    "expected_impact": "What customers will notice during the maintenance.",
    "objection_deadline": "Last date and time (with time zone) to raise concerns about the window.",
    "details_link": "Link to the full maintenance or incident details.",
    "starts_in": "How long until the maintenance window opens (e.g. 24 hours).",
    "revised_end": "The new expected end of the maintenance, with time zone.",
    "overrun_reason": "Why the maintenance is taking longer than planned.",
    "known": "What has been established so far.",
    "unknown": "What is still open and being worked on.",
    "correction": "The correction: which notice was wrong and that there was no real impact.",
    "summary": "The post-mortem in two or three sentences.",
    "timeline": "Key moments from detection to resolution, with times and time zone.",
    "page_name": "The status page's name (filled in automatically).",
    "incident_name": "The incident's title (filled in automatically).",
}

# The spec's rule for every customer message: what is affected, the impact, the ETA (or that
# there is none yet), what to do, and when the next update comes.
_EVERY_MESSAGE = ("impact", "eta", "what_to_do", "next_update_at")

REQUIRED_FACTS: dict[MessageKind, tuple[str, ...]] = {
    MessageKind.INITIAL_ALERT: ("service", *_EVERY_MESSAGE),
    # A progress update may narrow or widen who is affected, so it restates the scope.
    MessageKind.PROGRESS_UPDATE: ("scope", *_EVERY_MESSAGE),
    # After 4 h without an ETA the message turns to what is known and what is not.
    MessageKind.EXTENDED_OUTAGE: ("service", *_EVERY_MESSAGE, "known", "unknown"),
    MessageKind.RESOLUTION: ("resolved_at", "what_happened", "fix", "prevention", "sla_credit"),
    MessageKind.MAINTENANCE_NOTICE: ("window", "expected_impact", "what_to_do", "objection_deadline", "details_link"),
    MessageKind.MAINTENANCE_REMINDER: ("window", "starts_in", "expected_impact"),
    MessageKind.MAINTENANCE_OVERRUN: ("revised_end", "overrun_reason", "next_update_at"),
    MessageKind.FALSE_ALARM: ("correction",),
    MessageKind.POSTMORTEM: ("summary", "timeline", "root_cause", "prevention"),
}


# --------------------------------------------------------------------------- parsing

_FORMATTER = string.Formatter()


class MissingValues(KeyError):
    """fill(missing="error") found placeholders without a value; ``names`` lists all of them."""

    def __init__(self, names: Iterable[str]) -> None:
        self.names = list(names)
        super().__init__(self.names)

    def __str__(self) -> str:
        return "No value for " + ", ".join(f"{{{name}}}" for name in self.names)


def _as_written(field_name: str, conversion: str | None, format_spec: str) -> str:
    conv = f"!{conversion}" if conversion else ""
    spec = f":{format_spec}" if format_spec else ""
    return f"{{{field_name}{conv}{spec}}}"


def placeholders_in(text: str) -> list[str]:
    """Field names in order of first appearance, each once, as written.

    Stops quietly at the first malformed brace: template_errors is where that is reported.
    """
    found: list[str] = []
    try:
        for _literal, field_name, _spec, _conversion in _FORMATTER.parse(text):
            if field_name and field_name not in found:
                found.append(field_name)
    except ValueError:
        pass
    return found


def _position(text: str, index: int) -> str:
    line = text.count("\n", 0, index) + 1
    column = index - (text.rfind("\n", 0, index) + 1) + 1
    return f"line {line}, column {column}"


def _unbalanced_brace(text: str) -> tuple[str, int] | None:
    """What is wrong with the first misplaced brace, and where; Python's parser does not say where."""
    i, n = 0, len(text)
    while i < n:
        char = text[i]
        if char == "{":
            if text.startswith("{{", i):
                i += 2
                continue
            # Nested braces are legal inside a format spec ({a:{b}}), so count depth; in the
            # name itself ({a{b}}) a brace is an error of its own.
            depth, j, in_name = 1, i + 1, True
            while j < n and depth:
                if text[j] in ":!" and depth == 1:
                    in_name = False
                if text[j] == "{":
                    if in_name:
                        return "in_name", j
                    depth += 1
                elif text[j] == "}":
                    depth -= 1
                j += 1
            if depth:
                return "unclosed", i
            i = j
        elif char == "}":
            if text.startswith("}}", i):
                i += 2
                continue
            return "unopened", i
        else:
            i += 1
    return None


def _brace_error(text: str, exc: ValueError) -> str:
    hint = "To show a literal brace, write {{ or }}."
    where = _unbalanced_brace(text)
    if where is None:
        return f"Malformed placeholder ({exc}). {hint}"
    problem, index = where
    if problem == "in_name":
        return f"Malformed placeholder: the '{{' at {_position(text, index)} is inside a placeholder name. {hint}"
    if problem == "unclosed":
        return f"Unbalanced brace: the '{{' at {_position(text, index)} is never closed. {hint}"
    return f"Unbalanced brace: the '}}' at {_position(text, index)} has no opening '{{'. {hint}"


def _shape_errors(field_name: str, conversion: str | None, format_spec: str) -> list[str]:
    """Problems of form that make a placeholder unfillable, whatever its name."""
    written = _as_written(field_name, conversion, format_spec)
    errors = []
    if field_name == "" or field_name.isdigit():
        errors.append(f"Placeholder {written} has no name; positional placeholders are not supported. Use a name such as {{service}}.")
    elif "." in field_name or "[" in field_name:
        root = field_name.replace("[", ".").split(".")[0]
        errors.append(f"Placeholder {written} uses attribute or index access, which templates do not support. Write {{{root}}}.")
    if conversion:
        errors.append(f"Placeholder {written} has a conversion (!{conversion}); values are inserted as written, so leave it out.")
    if format_spec:
        errors.append(f"Placeholder {written} has a format spec (:{format_spec}); values are inserted as written, so leave it out.")
    return errors


def _is_plain_name(field_name: str) -> bool:
    return bool(field_name) and not field_name.isdigit() and "." not in field_name and "[" not in field_name


def _unknown_error(field_name: str) -> str:
    known = ", ".join(f"{{{name}}}" for name in sorted(PLACEHOLDERS))
    close = difflib.get_close_matches(field_name.strip().lower(), PLACEHOLDERS, n=1)
    guess = f" Did you mean {{{close[0]}}}?" if close else ""
    return f"Unknown placeholder {{{field_name}}}.{guess} Known placeholders: {known}."


def template_errors(text: str) -> list[str]:
    """One message per problem, each once, in the order they appear; empty when the text is fine."""
    errors: list[str] = []

    def add(message: str) -> None:
        if message not in errors:
            errors.append(message)

    try:
        for _literal, field_name, format_spec, conversion in _FORMATTER.parse(text):
            if field_name is None:
                continue
            for message in _shape_errors(field_name, conversion, format_spec):
                add(message)
            if _is_plain_name(field_name) and field_name not in PLACEHOLDERS:
                add(_unknown_error(field_name))
    except ValueError as exc:
        # The parser cannot continue past a broken brace; what came before is still reported.
        add(_brace_error(text, exc))
    return errors


def validate_template(subject: str, body: str) -> None:
    """Raise ValidationError keyed by field so a ModelForm or the admin shows it beside the field."""
    errors = {field: problems for field, problems in (("subject", template_errors(subject)), ("body", template_errors(body))) if problems}
    if errors:
        raise ValidationError(errors)


# --------------------------------------------------------------------------- filling


def _has_value(values: Mapping[str, str], name: str) -> bool:
    value = values.get(name)
    return value is not None and str(value).strip() != ""


def missing_values(text: str, values: Mapping[str, str]) -> list[str]:
    """Placeholders of ``text`` that have no value (absent or blank), in order, each once."""
    return [name for name in placeholders_in(text) if _is_plain_name(name) and not _has_value(values, name)]


def fill(text: str, values: Mapping[str, str], *, missing: str = "marker") -> str:
    """Substitute values verbatim (the result is Markdown; escaping is the renderer's job).

    missing="marker" leaves a visible ``[[name]]`` where a value is still to be written, so a
    draft shows the communicator its gaps; missing="error" raises MissingValues naming all of
    them. A template that is malformed in shape raises ValueError: validate before saving.
    """
    if missing not in ("marker", "error"):
        raise ValueError(f'missing must be "marker" or "error", not {missing!r}')
    try:
        parts = list(_FORMATTER.parse(text))
    except ValueError as exc:
        raise ValueError(_brace_error(text, exc)) from None
    problems = [p for _lit, name, spec, conv in parts if name is not None for p in _shape_errors(name, conv, spec)]
    if problems:
        raise ValueError("Template cannot be filled: " + " ".join(problems))
    if missing == "error":
        absent = missing_values(text, values)
        if absent:
            raise MissingValues(absent)
    # One pass over the parsed text, so a value containing braces is never read as a placeholder.
    out: list[str] = []
    for literal, name, _spec, _conv in parts:
        out.append(literal)
        if name is not None:
            out.append(str(values[name]) if _has_value(values, name) else f"[[{name}]]")
    return "".join(out)


def facts_missing(kind: str, subject: str, body: str) -> list[str]:
    """Required facts of ``kind`` that neither subject nor body has a placeholder for."""
    if kind not in REQUIRED_FACTS:
        raise ValueError(f"Unknown message kind {kind!r}; use one of {', '.join(MessageKind.values)}.")
    present = set(placeholders_in(subject)) | set(placeholders_in(body))
    return [name for name in REQUIRED_FACTS[kind] if name not in present]


# --------------------------------------------------------------------------- default texts

LANGUAGES = ("en", "de")

# The project's own wording. Every body names each required fact of its kind; the cause is
# always shown with its certainty so a hypothesis never reads as a confirmed finding.
DEFAULT_TEMPLATES: dict[tuple[str, str], tuple[str, str]] = {
    (MessageKind.INITIAL_ALERT, "en"): (
        "{service}: we are looking into a problem",
        "We are investigating a problem with **{service}** that began at {started_at}.\n\n"
        "**Impact:** {impact}\n\n"
        "**Who is affected:** {scope}\n\n"
        "**Current status:** {status}\n\n"
        "**What we are doing:** {what_we_are_doing}\n\n"
        "**Expected resolution:** {eta}\n\n"
        "**What you can do:** {what_to_do}\n\n"
        "**Next update:** by {next_update_at}. You can follow along at {status_link}.\n",
    ),
    (MessageKind.INITIAL_ALERT, "de"): (
        "{service}: Wir gehen einer Störung nach",
        "Seit {started_at} ist **{service}** gestört. Wir sind bereits dabei, die Ursache zu finden.\n\n"
        "**Auswirkungen:** {impact}\n\n"
        "**Betroffen:** {scope}\n\n"
        "**Aktueller Stand:** {status}\n\n"
        "**Was wir unternehmen:** {what_we_are_doing}\n\n"
        "**Voraussichtliche Behebung:** {eta}\n\n"
        "**Was Sie tun können:** {what_to_do}\n\n"
        "**Nächstes Update:** spätestens {next_update_at}. Den aktuellen Stand finden Sie jederzeit unter {status_link}.\n",
    ),
    (MessageKind.PROGRESS_UPDATE, "en"): (
        "Update: {incident_name}",
        "Here is where things stand with the problem affecting **{service}**.\n\n"
        "**What has changed:** {what_changed}\n\n"
        "**Cause ({root_cause_state}):** {root_cause}\n\n"
        "**Who is affected:** {scope}\n\n"
        "**Impact:** {impact}\n\n"
        "**Expected resolution:** {eta}\n\n"
        "**What you can do:** {what_to_do}\n\n"
        "**Next update:** by {next_update_at}. Details: {status_link}\n",
    ),
    (MessageKind.PROGRESS_UPDATE, "de"): (
        "Neuer Stand: {incident_name}",
        "Wir haben Neuigkeiten zur Störung bei **{service}**.\n\n"
        "**Neu seit dem letzten Update:** {what_changed}\n\n"
        "**Ursache ({root_cause_state}):** {root_cause}\n\n"
        "**Betroffen:** {scope}\n\n"
        "**Auswirkungen:** {impact}\n\n"
        "**Voraussichtliche Behebung:** {eta}\n\n"
        "**Was Sie tun können:** {what_to_do}\n\n"
        "**Nächstes Update:** spätestens {next_update_at}. Alle Einzelheiten: {status_link}\n",
    ),
    (MessageKind.RESOLUTION, "en"): (
        "Resolved: {incident_name}",
        "The problem affecting **{service}** is resolved. Service was fully restored at {resolved_at}.\n\n"
        "**What happened:** {what_happened}\n\n"
        "**Cause ({root_cause_state}):** {root_cause}\n\n"
        "**What we fixed:** {fix}\n\n"
        "**What we are changing:** {prevention}\n\n"
        "**Service credit:** {sla_credit}\n\n"
        "We are sorry for the disruption. If anything still does not work as expected, please contact our support team.\n",
    ),
    (MessageKind.RESOLUTION, "de"): (
        "Behoben: {incident_name}",
        "Die Störung bei **{service}** ist behoben. Seit {resolved_at} funktioniert wieder alles wie gewohnt.\n\n"
        "**Was passiert ist:** {what_happened}\n\n"
        "**Ursache ({root_cause_state}):** {root_cause}\n\n"
        "**Behebung:** {fix}\n\n"
        "**Damit es nicht wieder vorkommt:** {prevention}\n\n"
        "**SLA-Gutschrift:** {sla_credit}\n\n"
        "Wir bitten, die Unannehmlichkeiten zu entschuldigen. Sollte noch etwas nicht wie gewohnt funktionieren, "
        "wenden Sie sich bitte an unseren Support.\n",
    ),
    (MessageKind.MAINTENANCE_NOTICE, "en"): (
        "Planned maintenance: {service}, {window}",
        "We will carry out planned maintenance on **{service}**.\n\n"
        "**When:** {window}\n\n"
        "**What you will notice:** {expected_impact}\n\n"
        "**What you need to do:** {what_to_do}\n\n"
        "If this timing causes you difficulties, please tell us by {objection_deadline} and we will look for "
        "an alternative together.\n\n"
        "Full details: {details_link}\n",
    ),
    (MessageKind.MAINTENANCE_NOTICE, "de"): (
        "Geplante Wartung: {service}, {window}",
        "Wir führen geplante Wartungsarbeiten an **{service}** durch.\n\n"
        "**Zeitraum:** {window}\n\n"
        "**Was Sie bemerken werden:** {expected_impact}\n\n"
        "**Was Sie tun müssen:** {what_to_do}\n\n"
        "Passt Ihnen der Termin nicht, geben Sie uns bitte bis {objection_deadline} Bescheid. "
        "Wir suchen dann gemeinsam mit Ihnen nach einer Lösung.\n\n"
        "Alle Einzelheiten: {details_link}\n",
    ),
    (MessageKind.MAINTENANCE_REMINDER, "en"): (
        "Reminder: maintenance on {service} starts in {starts_in}",
        "A quick reminder: the planned maintenance on **{service}** starts in {starts_in}.\n\n"
        "**When:** {window}\n\n"
        "**What you will notice:** {expected_impact}\n\n"
        "**What you need to do:** {what_to_do}\n\n"
        "We will let you know here once the work is finished. Details: {details_link}\n",
    ),
    (MessageKind.MAINTENANCE_REMINDER, "de"): (
        "Erinnerung: Wartung an {service} beginnt in {starts_in}",
        "Zur Erinnerung: Die geplanten Wartungsarbeiten an **{service}** beginnen in {starts_in}.\n\n"
        "**Zeitraum:** {window}\n\n"
        "**Was Sie bemerken werden:** {expected_impact}\n\n"
        "**Was Sie tun müssen:** {what_to_do}\n\n"
        "Sobald die Arbeiten abgeschlossen sind, informieren wir Sie hier. Einzelheiten: {details_link}\n",
    ),
    (MessageKind.MAINTENANCE_OVERRUN, "en"): (
        "Maintenance on {service} is taking longer than planned",
        "The maintenance on **{service}** is taking longer than we planned.\n\n"
        "**Why:** {overrun_reason}\n\n"
        "**New expected end:** {revised_end}\n\n"
        "**What you will notice until then:** {expected_impact}\n\n"
        "**What you can do:** {what_to_do}\n\n"
        "**Next update:** by {next_update_at}. Details: {details_link}\n\n"
        "We are sorry for the extra disruption.\n",
    ),
    (MessageKind.MAINTENANCE_OVERRUN, "de"): (
        "Wartung an {service} dauert länger als geplant",
        "Die Wartungsarbeiten an **{service}** dauern länger als vorgesehen.\n\n"
        "**Grund:** {overrun_reason}\n\n"
        "**Neues voraussichtliches Ende:** {revised_end}\n\n"
        "**Was Sie bis dahin bemerken:** {expected_impact}\n\n"
        "**Was Sie tun können:** {what_to_do}\n\n"
        "**Nächstes Update:** spätestens {next_update_at}. Einzelheiten: {details_link}\n\n"
        "Wir bitten, die Verzögerung zu entschuldigen.\n",
    ),
    (MessageKind.FALSE_ALARM, "en"): (
        "Correction: {incident_name}",
        "Please disregard our earlier notice about **{service}**.\n\n"
        "{correction}\n\n"
        "There is nothing you need to do. We apologise for the confusion.\n",
    ),
    (MessageKind.FALSE_ALARM, "de"): (
        "Korrektur: {incident_name}",
        "Unsere vorherige Meldung zu **{service}** ist gegenstandslos.\n\n"
        "{correction}\n\n"
        "Sie müssen nichts weiter unternehmen. Bitte entschuldigen Sie das Versehen.\n",
    ),
    (MessageKind.EXTENDED_OUTAGE, "en"): (
        "Ongoing: {incident_name} - what we know and what we don't",
        "The problem affecting **{service}** is taking longer to resolve than we hoped. "
        "So that you can plan, here is an honest picture of where things stand.\n\n"
        "**Impact:** {impact}\n\n"
        "**What we know:** {known}\n\n"
        "**What we don't know yet:** {unknown}\n\n"
        "**Expected resolution:** {eta}\n\n"
        "**What you can do:** {what_to_do}\n\n"
        "**Service credit:** {sla_credit}\n\n"
        "**Next update:** by {next_update_at}. We will keep posting regularly until this is resolved; "
        "everything is also at {status_link}.\n",
    ),
    (MessageKind.EXTENDED_OUTAGE, "de"): (
        "Andauernde Störung: {incident_name} - was wir wissen und was noch offen ist",
        "Die Störung bei **{service}** dauert leider länger an, als wir gehofft hatten. "
        "Damit Sie planen können, geben wir Ihnen hier einen offenen Überblick.\n\n"
        "**Auswirkungen:** {impact}\n\n"
        "**Was wir wissen:** {known}\n\n"
        "**Was noch offen ist:** {unknown}\n\n"
        "**Voraussichtliche Behebung:** {eta}\n\n"
        "**Was Sie tun können:** {what_to_do}\n\n"
        "**SLA-Gutschrift:** {sla_credit}\n\n"
        "**Nächstes Update:** spätestens {next_update_at}. Bis zur Behebung melden wir uns weiterhin regelmäßig; "
        "den aktuellen Stand finden Sie auch unter {status_link}.\n",
    ),
    (MessageKind.POSTMORTEM, "en"): (
        "Incident report: {incident_name}",
        "This report explains what happened to **{service}** and what we are doing about it.\n\n"
        "**Summary:** {summary}\n\n"
        "**Timeline**\n\n"
        "{timeline}\n\n"
        "**Root cause ({root_cause_state}):** {root_cause}\n\n"
        "**What we fixed:** {fix}\n\n"
        "**What we are changing:** {prevention}\n\n"
        "Thank you for your patience. If you have questions about this report, our support team is happy to help.\n",
    ),
    (MessageKind.POSTMORTEM, "de"): (
        "Abschlussbericht zur Störung: {incident_name}",
        "In diesem Bericht erläutern wir, was bei **{service}** passiert ist und welche Konsequenzen wir daraus ziehen.\n\n"
        "**Zusammenfassung:** {summary}\n\n"
        "**Zeitlicher Ablauf**\n\n"
        "{timeline}\n\n"
        "**Ursache ({root_cause_state}):** {root_cause}\n\n"
        "**Behebung:** {fix}\n\n"
        "**Damit es nicht wieder vorkommt:** {prevention}\n\n"
        "Vielen Dank für Ihre Geduld. Bei Fragen zu diesem Bericht hilft Ihnen unser Support gern weiter.\n",
    ),
}


def _base_language(language: str) -> str:
    # Subscriber locales arrive as "de-AT" or "de_CH"; the templates are per language only.
    return (language or "").replace("_", "-").split("-")[0].strip().lower()


def default_template(kind: str, language: str) -> tuple[str, str]:
    """(subject, body) of the shipped default; English when the language has no text of its own."""
    if kind not in MessageKind.values:
        raise ValueError(f"Unknown message kind {kind!r}; use one of {', '.join(MessageKind.values)}.")
    base = _base_language(language)
    return DEFAULT_TEMPLATES[(kind, base if base in LANGUAGES else "en")]


# --------------------------------------------------------------------------- suggestions

CATEGORY_SUGGESTIONS: dict[str, tuple[str, ...]] = {
    IncidentCategory.OUTAGE: (
        MessageKind.INITIAL_ALERT, MessageKind.PROGRESS_UPDATE, MessageKind.EXTENDED_OUTAGE,
        MessageKind.RESOLUTION, MessageKind.POSTMORTEM, MessageKind.FALSE_ALARM,
    ),
    # Slowness is what monitoring most often misreads, hence the false alarm.
    IncidentCategory.PERFORMANCE: (
        MessageKind.INITIAL_ALERT, MessageKind.PROGRESS_UPDATE, MessageKind.RESOLUTION, MessageKind.FALSE_ALARM,
    ),
    IncidentCategory.DATA_EXPOSURE: (
        MessageKind.INITIAL_ALERT, MessageKind.PROGRESS_UPDATE, MessageKind.RESOLUTION, MessageKind.POSTMORTEM,
    ),
    # A maintenance that broke something usually also runs past its window.
    IncidentCategory.MAINTENANCE_ERROR: (
        MessageKind.INITIAL_ALERT, MessageKind.MAINTENANCE_OVERRUN, MessageKind.PROGRESS_UPDATE,
        MessageKind.RESOLUTION, MessageKind.POSTMORTEM,
    ),
    # A vendor's fix is out of our hands, so these tend to become extended outages.
    IncidentCategory.THIRD_PARTY: (
        MessageKind.INITIAL_ALERT, MessageKind.PROGRESS_UPDATE, MessageKind.EXTENDED_OUTAGE, MessageKind.RESOLUTION,
    ),
}

CATEGORY_REQUIRES_LEGAL = frozenset({IncidentCategory.DATA_EXPOSURE})

# The status values of incidents.models (IncidentStatus, MaintenanceStatus), spelled out
# because importing them would be circular; tests check the two stay in step.
_OPEN_INCIDENT = frozenset({"investigating", "identified", "monitoring"})
_RESOLVED_INCIDENT = "resolved"
_POSTMORTEM_INCIDENT = "postmortem"
_SCHEDULED_MAINTENANCE = "scheduled"
_ACTIVE_MAINTENANCE = frozenset({"in_progress", "verifying"})
_COMPLETED_MAINTENANCE = "completed"
# Kinds a category may add while an incident is still open.
_OPEN_EXTRAS = frozenset({MessageKind.MAINTENANCE_OVERRUN})


def suggested_kinds(
    category: str, *, status: str | None, is_maintenance: bool, extended: bool = False, false_alarm: bool = False,
) -> list[str]:
    """The kinds to offer next, best first.

    ``status`` is the incident's status, or None (or "") when nothing has been published yet,
    which makes the next message the first notice. The state decides what is offered; the
    category only adds kinds that fit that state.
    """
    if false_alarm:
        return [MessageKind.FALSE_ALARM]
    category_kinds = CATEGORY_SUGGESTIONS.get(category, ())
    if is_maintenance:
        if not status:
            return [MessageKind.MAINTENANCE_NOTICE]
        if status == _SCHEDULED_MAINTENANCE:
            # The notice stays on offer for when the window moves.
            return [MessageKind.MAINTENANCE_REMINDER, MessageKind.MAINTENANCE_NOTICE]
        if status in _ACTIVE_MAINTENANCE:
            if extended:
                return [MessageKind.MAINTENANCE_OVERRUN, MessageKind.PROGRESS_UPDATE]
            return [MessageKind.PROGRESS_UPDATE, MessageKind.MAINTENANCE_OVERRUN]
        if status == _COMPLETED_MAINTENANCE:
            return [MessageKind.RESOLUTION]
        raise ValueError(f"Unknown maintenance status {status!r}.")
    if not status:
        return [MessageKind.INITIAL_ALERT]
    if status in _OPEN_INCIDENT:
        kinds = [MessageKind.EXTENDED_OUTAGE, MessageKind.PROGRESS_UPDATE] if extended else [MessageKind.PROGRESS_UPDATE]
        return kinds + [kind for kind in category_kinds if kind in _OPEN_EXTRAS and kind not in kinds]
    if status == _RESOLVED_INCIDENT:
        return [MessageKind.RESOLUTION] + [kind for kind in category_kinds if kind == MessageKind.POSTMORTEM]
    if status == _POSTMORTEM_INCIDENT:
        return [MessageKind.POSTMORTEM]
    raise ValueError(f"Unknown incident status {status!r}.")
