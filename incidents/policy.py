"""Pure functions over the severity policy and the status rules of the spec."""
from __future__ import annotations

from datetime import datetime, timedelta

from incidents.models import COMPONENT_STATUS_RANK, IMPACT_RANK, ComponentStatus, Impact, Severity

# Default update cadence by severity (REQUIREMENTS.md); P4 promises no follow-up time.
UPDATE_CADENCE: dict[str, timedelta | None] = {
    Severity.P1: timedelta(minutes=30),
    Severity.P2: timedelta(minutes=60),
    Severity.P3: timedelta(hours=2),
    Severity.P4: None,
}


def next_update_due(severity: str, after: datetime) -> datetime | None:
    cadence = UPDATE_CADENCE.get(severity)
    return after + cadence if cadence else None


def worst_component_status(statuses) -> str:
    statuses = list(statuses)
    if not statuses:
        return ComponentStatus.OPERATIONAL
    return max(statuses, key=lambda s: COMPONENT_STATUS_RANK[s])


def impact_from_component_statuses(statuses) -> str:
    """Spec 5.3: the impact an incident implies when its author sets none."""
    worst = worst_component_status(statuses)
    return {
        ComponentStatus.DEGRADED_PERFORMANCE: Impact.MINOR,
        ComponentStatus.PARTIAL_OUTAGE: Impact.MAJOR,
        ComponentStatus.MAJOR_OUTAGE: Impact.CRITICAL,
    }.get(worst, Impact.NONE)


def page_rollup(*, leaf_components, unresolved_impacts, maintenance_active: bool) -> tuple[str, str]:
    """Spec 5.2: the page indicator and its description.

    leaf_components are (status, only_show_if_degraded) pairs of non-group components.
    Component state wins over incident impact; maintenance only shows when nothing is wrong.
    """
    counted = [status for status, hidden in leaf_components if not (hidden and status == ComponentStatus.OPERATIONAL)]
    if counted and all(s == ComponentStatus.MAJOR_OUTAGE for s in counted):
        return "critical", "Major System Outage"
    if any(s in (ComponentStatus.MAJOR_OUTAGE, ComponentStatus.PARTIAL_OUTAGE) for s in counted):
        return "major", "Partial System Outage"
    if any(s == ComponentStatus.DEGRADED_PERFORMANCE for s in counted):
        return "minor", "Partially Degraded Service"
    worst_impact = max(unresolved_impacts, key=lambda i: IMPACT_RANK.get(i, 0), default=Impact.NONE)
    if worst_impact == Impact.CRITICAL:
        return "critical", "Major Service Outage"
    if worst_impact == Impact.MAJOR:
        return "major", "Partial System Outage"
    if worst_impact == Impact.MINOR:
        return "minor", "Minor Service Outage"
    if maintenance_active or any(s == ComponentStatus.UNDER_MAINTENANCE for s in counted):
        return "maintenance", "Service Under Maintenance"
    return "none", "All Systems Operational"


# --- the channel matrix (REQUIREMENTS.md, severity policy) ---------------------------------
# Subscriber channels only: the status page itself and the in-app banner show every update.
# Webhooks and chat are machine/team integrations, so they follow the page ("in-app") column
# and hear P1-P3; email is for P1/P2; SMS only reaches enterprise accounts, and only on P1.
_ENDPOINT_CHANNELS = frozenset({"webhook", "slack", "teams"})
_INCIDENT_CHANNELS: dict[str, frozenset[str]] = {
    Severity.P1: frozenset({"email", "sms"}) | _ENDPOINT_CHANNELS,
    Severity.P2: frozenset({"email"}) | _ENDPOINT_CHANNELS,
    Severity.P3: _ENDPOINT_CHANNELS,
    Severity.P4: frozenset(),
}
# Maintenance notices are announcements, not alarms: never by SMS.
MAINTENANCE_CHANNELS = frozenset({"email"}) | _ENDPOINT_CHANNELS
SMS_TIERS = frozenset({"enterprise"})


def channels_for(severity: str, tier: str | None, *, maintenance: bool = False, rules: dict | None = None) -> frozenset[str]:
    """The subscriber channels an update of this severity reaches for a subscriber of this tier.

    `rules`: the severity's rules from the policy version the update went out under
    (incidents.editorial); without them, the shipped defaults.
    """
    sms_tiers = SMS_TIERS
    if maintenance:
        channels = MAINTENANCE_CHANNELS
    elif rules is not None and "channels" in rules:
        channels = frozenset(rules["channels"] or ())
        sms_tiers = frozenset(rules.get("sms_tiers") or ())
    else:
        channels = _INCIDENT_CHANNELS.get(severity, frozenset())
    if tier not in sms_tiers:
        channels = channels - {"sms"}
    return channels
