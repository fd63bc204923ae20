"""What happened and what we say about it: pages, components, incidents and maintenance."""
from __future__ import annotations

import re
import zoneinfo
from urllib.parse import urlparse

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone

from incidents.message_templates import IncidentCategory, MessageKind
from statuspage.lib.ids import new_public_id


def validate_time_zone(value: str) -> None:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValidationError("Unknown time zone %(value)s: use an IANA name such as Europe/Paris.", params={"value": value}) from None


hex_colour = RegexValidator(r"^#[0-9a-fA-F]{6}$", "Enter a colour as #rrggbb.")
_HOST_RE = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$")


def public_id_field() -> models.CharField:
    return models.CharField(max_length=12, unique=True, default=new_public_id, editable=False)


class ComponentStatus(models.TextChoices):
    OPERATIONAL = "operational", "Operational"
    DEGRADED_PERFORMANCE = "degraded_performance", "Degraded performance"
    PARTIAL_OUTAGE = "partial_outage", "Partial outage"
    MAJOR_OUTAGE = "major_outage", "Major outage"
    UNDER_MAINTENANCE = "under_maintenance", "Under maintenance"


# Worst last: a group's status is the child status with the highest rank.
COMPONENT_STATUS_RANK = {
    ComponentStatus.OPERATIONAL: 0,
    ComponentStatus.UNDER_MAINTENANCE: 1,
    ComponentStatus.DEGRADED_PERFORMANCE: 2,
    ComponentStatus.PARTIAL_OUTAGE: 3,
    ComponentStatus.MAJOR_OUTAGE: 4,
}


class Page(models.Model):
    """One public status page; an install may serve several, routed by host name."""

    public_id = public_id_field()
    name = models.CharField(max_length=100)
    url = models.URLField(help_text="The public address of the page, e.g. https://status.example.com")
    extra_hosts = models.TextField(
        blank=True, help_text="Further host names that serve this page, one per line (e.g. status.example.org)."
    )
    is_default = models.BooleanField(default=False, help_text="Serve this page for host names no page claims.")
    time_zone = models.CharField(max_length=64, default="Etc/UTC", validators=[validate_time_zone])
    description = models.TextField(blank=True, help_text="A short line under the page title.")
    support_url = models.URLField(blank=True)
    logo = models.FileField(upload_to="branding/", blank=True)
    brand_colour = models.CharField(max_length=7, default="#1f2d3d", validators=[hex_colour])
    accent_colour = models.CharField(max_length=7, default="#3498db", validators=[hex_colour])
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["is_default"], condition=Q(is_default=True), name="page_one_default"),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def base_url(self) -> str:
        return self.url.rstrip("/")

    def host_names(self) -> list[str]:
        hosts = [(urlparse(self.url).hostname or "").lower()]
        hosts += [line.strip().lower() for line in self.extra_hosts.splitlines() if line.strip()]
        return [h for h in hosts if h]

    def clean(self) -> None:
        bad = [line.strip() for line in self.extra_hosts.splitlines() if line.strip() and not _HOST_RE.match(line.strip().lower())]
        if bad:
            raise ValidationError({"extra_hosts": f"Not a host name: {', '.join(bad)}"})
        mine = set(self.host_names())
        for other in Page.objects.exclude(pk=self.pk):
            taken = mine & set(other.host_names())
            if taken:
                raise ValidationError({"extra_hosts": f"{', '.join(sorted(taken))} already serves the page {other.name}."})


class Region(models.Model):
    page = models.ForeignKey(Page, on_delete=models.CASCADE, related_name="regions")
    code = models.SlugField(max_length=32)
    name = models.CharField(max_length=100)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["page", "code"], name="region_code_unique_per_page")]

    def __str__(self) -> str:
        return self.name


class Component(models.Model):
    """A service customers care about, or a group of them (two levels only)."""

    public_id = public_id_field()
    page = models.ForeignKey(Page, on_delete=models.CASCADE, related_name="components")
    is_group = models.BooleanField(default=False)
    group = models.ForeignKey(
        # RESTRICT, not PROTECT: deleting the page cascades through groups and members alike,
        # while deleting a group that still has members is refused.
        "self", on_delete=models.RESTRICT, null=True, blank=True, related_name="children",
        limit_choices_to={"is_group": True},
    )
    name = models.CharField(max_length=100)
    description = models.TextField(blank=True)
    position = models.PositiveIntegerField(default=1, help_text="Order among its siblings, from 1.")
    status = models.CharField(max_length=24, choices=ComponentStatus.choices, default=ComponentStatus.OPERATIONAL)
    showcase = models.BooleanField(default=True, help_text="Show 90-day uptime bars on the page.")
    only_show_if_degraded = models.BooleanField(default=False)
    start_date = models.DateField(null=True, blank=True, help_text="The day uptime history starts.")
    comms_owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+",
        verbose_name="communications owner", help_text="Who owns customer communication for this group's incidents.",
    )
    created = models.DateTimeField(default=timezone.now, editable=False)
    updated = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["position", "name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(is_group=False) | Q(group__isnull=True), name="component_group_is_top_level"
            ),
            models.CheckConstraint(condition=Q(position__gte=1), name="component_position_from_one"),
        ]

    def __str__(self) -> str:
        return f"{self.group.name} - {self.name}" if self.group_id and self.group else self.name

    def clean(self) -> None:
        errors = {}
        if self.group_id:
            group = self.group
            if self.is_group:
                errors["group"] = "A group cannot belong to another group."
            elif not group.is_group:
                errors["group"] = "Choose a component group, not a component."
            elif self.pk and group.pk == self.pk:
                errors["group"] = "A component cannot be its own group."
            elif group.page_id != self.page_id:
                errors["group"] = "The group belongs to another page."
        if not self.is_group and self.pk and Component.objects.filter(group=self.pk).exists():
            errors["is_group"] = "This group still has components; move them before making it a component."
        if errors:
            raise ValidationError(errors)


class StatusSource(models.TextChoices):
    MANUAL = "manual", "Manual"
    INCIDENT = "incident", "Incident"
    MAINTENANCE = "maintenance", "Maintenance"
    AUTOMATION = "automation", "Automation"
    API = "api", "API"


class ComponentStatusChange(models.Model):
    """The status log: every change of a component's status, the source of the uptime bars."""

    component = models.ForeignKey(Component, on_delete=models.CASCADE, related_name="status_changes")
    old_status = models.CharField(max_length=24, choices=ComponentStatus.choices, blank=True)
    new_status = models.CharField(max_length=24, choices=ComponentStatus.choices)
    source = models.CharField(max_length=16, choices=StatusSource.choices)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    reason = models.CharField(max_length=500, blank=True)
    incident = models.ForeignKey("Incident", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    created = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created", "-id"]
        indexes = [
            # uptime_by_day(): changes of a page's components inside the 90-day window.
            models.Index(fields=["component", "created"], name="statuschange_component_time"),
        ]

    def __str__(self) -> str:
        return f"{self.component}: {self.old_status or '-'} -> {self.new_status}"


class IncidentKind(models.TextChoices):
    INCIDENT = "incident", "Incident"
    MAINTENANCE = "maintenance", "Scheduled maintenance"


class IncidentStatus(models.TextChoices):
    INVESTIGATING = "investigating", "Investigating"
    IDENTIFIED = "identified", "Identified"
    MONITORING = "monitoring", "Monitoring"
    RESOLVED = "resolved", "Resolved"
    POSTMORTEM = "postmortem", "Postmortem"


class MaintenanceStatus(models.TextChoices):
    SCHEDULED = "scheduled", "Scheduled"
    IN_PROGRESS = "in_progress", "In progress"
    VERIFYING = "verifying", "Verifying"
    COMPLETED = "completed", "Completed"


ALL_STATUS_CHOICES = IncidentStatus.choices + MaintenanceStatus.choices
OPEN_INCIDENT_STATUSES = (IncidentStatus.INVESTIGATING, IncidentStatus.IDENTIFIED, IncidentStatus.MONITORING)
CLOSED_INCIDENT_STATUSES = (IncidentStatus.RESOLVED, IncidentStatus.POSTMORTEM)
ACTIVE_MAINTENANCE_STATUSES = (MaintenanceStatus.IN_PROGRESS, MaintenanceStatus.VERIFYING)
STATUS_LABELS = dict(ALL_STATUS_CHOICES)


class Impact(models.TextChoices):
    NONE = "none", "None"
    MINOR = "minor", "Minor"
    MAJOR = "major", "Major"
    CRITICAL = "critical", "Critical"
    MAINTENANCE = "maintenance", "Maintenance"


IMPACT_RANK = {Impact.NONE: 0, Impact.MAINTENANCE: 0, Impact.MINOR: 1, Impact.MAJOR: 2, Impact.CRITICAL: 3}


class Severity(models.TextChoices):
    P1 = "P1", "P1 Critical"
    P2 = "P2", "P2 High"
    P3 = "P3", "P3 Medium"
    P4 = "P4", "P4 Low"


def default_reminder_leads() -> list[int]:
    """Remind maintenance subscribers a day and an hour before the window opens."""
    return [24 * 60, 60]


class IncidentQuerySet(models.QuerySet):
    def incidents(self):
        return self.filter(kind=IncidentKind.INCIDENT)

    def maintenances(self):
        return self.filter(kind=IncidentKind.MAINTENANCE)

    def unresolved(self):
        return self.filter(kind=IncidentKind.INCIDENT, status__in=OPEN_INCIDENT_STATUSES)


class Incident(models.Model):
    """An incident or a scheduled maintenance: Statuspage serves both from one shape.

    They share the update time line, the affected components and every field of the v2
    incident object; a maintenance adds its window. One table keeps the API, the feeds and
    the history page to one query each.
    """

    public_id = public_id_field()
    page = models.ForeignKey(Page, on_delete=models.CASCADE, related_name="incidents")
    kind = models.CharField(max_length=12, choices=IncidentKind.choices, default=IncidentKind.INCIDENT)
    name = models.CharField(max_length=200)
    status = models.CharField(max_length=16, choices=ALL_STATUS_CHOICES, default=IncidentStatus.INVESTIGATING)
    impact = models.CharField(max_length=12, choices=Impact.choices, default=Impact.NONE)
    severity = models.CharField(max_length=2, choices=Severity.choices, default=Severity.P3, help_text="Internal only.")
    regions = models.ManyToManyField(Region, blank=True, related_name="incidents")
    components = models.ManyToManyField(Component, through="IncidentComponent", related_name="incidents", blank=True)
    started_at = models.DateTimeField(default=timezone.now, help_text="When the impact began; may be backdated.")
    monitoring_at = models.DateTimeField(null=True, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    next_update_at = models.DateTimeField(null=True, blank=True, help_text="When the next public update is promised.")
    scheduled_for = models.DateTimeField(null=True, blank=True)
    scheduled_until = models.DateTimeField(null=True, blank=True)
    auto_start = models.BooleanField(default=True, help_text="Start the maintenance automatically at its start time.")
    auto_complete = models.BooleanField(default=True, help_text="Complete the maintenance automatically at its end time.")
    # Cascades: an incident caused by another one hangs under it. Only the parent's thread
    # notifies subscribers; children are for the page and the responders. One level deep.
    parent = models.ForeignKey(
        "self", on_delete=models.SET_NULL, null=True, blank=True, related_name="children",
        help_text="The incident this one is a consequence of; its subscribers hear through the parent.",
    )
    # --- editorial control (internal only; never on the page or in the v2 API) ---
    category = models.CharField(max_length=20, choices=IncidentCategory.choices, default=IncidentCategory.OUTAGE)
    commander = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+",
        help_text="The one incident commander; hand-offs are logged on the incident.",
    )
    eta = models.DateTimeField(null=True, blank=True, help_text="When we expect the fix; empty while nobody knows.")
    vendor_caused = models.BooleanField(default=False, help_text="Caused by a third party: needs a disclosure review.")
    disclosure_reviewed_at = models.DateTimeField(null=True, blank=True)
    disclosure_reviewed_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    false_alarm = models.BooleanField(default=False, editable=False)
    extended_at = models.DateTimeField(null=True, blank=True, editable=False, help_text="When it became an extended outage.")
    sla_credit_review = models.BooleanField(default=False, help_text="Flagged for an SLA credit review.")
    # Maintenance: subscriber reminders this many minutes before the window (per window), and
    # those already sent; the end first announced, kept when an overrun moves scheduled_until.
    reminder_leads = models.JSONField(default=default_reminder_leads, blank=True, help_text="Minutes before the start, e.g. [1440, 60].")
    reminders_sent = models.JSONField(default=list, blank=True, editable=False)
    planned_until = models.DateTimeField(null=True, blank=True, editable=False)
    created = models.DateTimeField(default=timezone.now, editable=False)
    updated = models.DateTimeField(default=timezone.now, editable=False)

    objects = IncidentQuerySet.as_manager()

    class Meta:
        ordering = ["-started_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=(
                    Q(kind=IncidentKind.INCIDENT, status__in=IncidentStatus.values)
                    | Q(kind=IncidentKind.MAINTENANCE, status__in=MaintenanceStatus.values)
                ),
                name="incident_status_matches_kind",
            ),
            models.CheckConstraint(
                condition=Q(kind=IncidentKind.INCIDENT)
                | Q(scheduled_for__isnull=False, scheduled_until__isnull=False, scheduled_until__gt=models.F("scheduled_for")),
                name="maintenance_has_window",
            ),
            models.CheckConstraint(
                condition=~Q(status__in=[IncidentStatus.RESOLVED, IncidentStatus.POSTMORTEM, MaintenanceStatus.COMPLETED])
                | Q(resolved_at__isnull=False),
                name="closed_incident_has_resolved_at",
            ),
        ]
        indexes = [
            # Open incidents and due maintenances of a page, for the snapshot and the scheduler.
            models.Index(fields=["page", "kind", "status"], name="incident_page_kind_status"),
            models.Index(fields=["kind", "status", "scheduled_for"], name="maintenance_due"),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def is_maintenance(self) -> bool:
        return self.kind == IncidentKind.MAINTENANCE

    @property
    def is_open(self) -> bool:
        if self.is_maintenance:
            return self.status != MaintenanceStatus.COMPLETED
        return self.status in OPEN_INCIDENT_STATUSES

    def clean(self) -> None:
        errors: dict[str, str] = {}
        valid = MaintenanceStatus.values if self.is_maintenance else IncidentStatus.values
        if self.status not in valid:
            errors["status"] = f"A {self.get_kind_display().lower()} cannot have the status {self.status}."
        if self.is_maintenance:
            if not self.scheduled_for:
                errors["scheduled_for"] = "A maintenance needs a start time."
            if not self.scheduled_until:
                errors["scheduled_until"] = "A maintenance needs an end time."
            if self.scheduled_for and self.scheduled_until and self.scheduled_until <= self.scheduled_for:
                errors["scheduled_until"] = "The maintenance must end after it starts."
        closed = self.status in (IncidentStatus.RESOLVED, IncidentStatus.POSTMORTEM, MaintenanceStatus.COMPLETED)
        if closed and not self.resolved_at:
            errors["resolved_at"] = "A resolved incident needs a resolution time."
        if self.resolved_at and self.started_at and self.resolved_at < self.started_at:
            errors["resolved_at"] = "The resolution cannot come before the start."
        if self.started_at and self.started_at > timezone.now() + timezone.timedelta(minutes=5) and not self.is_maintenance:
            errors["started_at"] = "An incident cannot start in the future."
        if self.parent_id:
            parent_error = self._parent_error()
            if parent_error:
                errors["parent"] = parent_error
        if errors:
            raise ValidationError(errors)

    def _parent_error(self) -> str:
        parent = self.parent
        if self.pk and parent.pk == self.pk:
            return "An incident cannot be its own parent."
        if parent.page_id != self.page_id:
            return "The parent incident must be on the same page."
        if parent.is_maintenance or self.is_maintenance:
            return "Only incidents can be linked in a cascade, not maintenances."
        if parent.parent_id:
            return "The parent is itself a child incident; link to its parent instead."
        if self.pk and Incident.objects.filter(parent_id=self.pk).exists():
            return "This incident has child incidents of its own, so it cannot become a child."
        return ""


class IncidentComponent(models.Model):
    """An affected component, with the status the incident sets it to."""

    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="affected")
    component = models.ForeignKey(Component, on_delete=models.CASCADE, related_name="+")
    status = models.CharField(max_length=24, choices=ComponentStatus.choices, default=ComponentStatus.PARTIAL_OUTAGE)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["incident", "component"], name="incident_component_once")]

    def __str__(self) -> str:
        return f"{self.component} ({self.status})"


class IncidentUpdate(models.Model):
    """One entry of an incident's public time line."""

    public_id = public_id_field()
    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="updates")
    status = models.CharField(max_length=16, choices=ALL_STATUS_CHOICES)
    body = models.TextField(help_text="Markdown. Rendered to sanitised HTML.")
    body_html = models.TextField(editable=False, blank=True)
    display_at = models.DateTimeField(default=timezone.now)
    deliver_notifications = models.BooleanField(default=True)
    affected_components = models.JSONField(null=True, blank=True, editable=False)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    created = models.DateTimeField(default=timezone.now, editable=False)
    updated = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["-display_at", "-id"]
        indexes = [models.Index(fields=["incident", "display_at"], name="update_incident_time")]

    def __str__(self) -> str:
        return f"{self.incident}: {self.get_status_display()}"


class ComponentGroup(Component):
    """The group rows of Component, so the admin can edit a group with its members."""

    class Meta:
        proxy = True
        verbose_name = "component group"


class Maintenance(Incident):
    """The maintenance rows of Incident, for their own admin changelist and actions."""

    class Meta:
        proxy = True
        verbose_name = "scheduled maintenance"


# --- editorial control: severity policy, templates, the update workflow -------------------------


class ApprovalRole(models.TextChoices):
    LEGAL = "legal", "Legal"
    PR = "pr", "PR"
    EXECUTIVE = "executive", "Executive"


class PostmortemVisibility(models.TextChoices):
    PUBLIC = "public", "Public"
    INTERNAL = "internal", "Internal"
    NONE = "none", "None"


class SeverityPolicy(models.Model):
    """The rules for one severity, edited in the admin. Every save writes a new PolicyVersion
    (incidents.editorial.policy_save), and messages record the version they went out under."""

    severity = models.CharField(max_length=2, choices=Severity.choices, unique=True)
    criteria = models.TextField(blank=True, help_text="When to choose this severity.")
    channels = models.JSONField(default=list, blank=True, help_text="Subscriber channels: email, sms, webhook, slack, teams.")
    sms_tiers = models.JSONField(default=list, blank=True, help_text="Account tiers that get SMS (when sms is a channel).")
    update_cadence_minutes = models.PositiveIntegerField(null=True, blank=True, help_text="Empty: no promised cadence.")
    target_resolution_minutes = models.PositiveIntegerField(null=True, blank=True)
    escalation = models.TextField(blank=True, help_text="Internal escalation steps.")
    escalation_contacts = models.TextField(blank=True, help_text="Email addresses told on escalation, one per line.")
    approvals = models.JSONField(default=list, blank=True, help_text="Approval roles every update needs: legal, pr, executive.")
    large_audience = models.PositiveIntegerField(
        null=True, blank=True, help_text="From this many recipients on, an executive approval is needed too.",
    )
    postmortem_visibility = models.CharField(max_length=8, choices=PostmortemVisibility.choices, default=PostmortemVisibility.NONE)
    postmortem_deadline_hours = models.PositiveIntegerField(null=True, blank=True)
    updated = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["severity"]
        verbose_name_plural = "severity policies"

    def __str__(self) -> str:
        return self.get_severity_display()


class PolicyVersion(models.Model):
    """A frozen copy of the whole severity policy, numbered from 1; never changed."""

    number = models.PositiveIntegerField(unique=True)
    rules = models.JSONField()
    note = models.CharField(max_length=200, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    created = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["-number"]

    def __str__(self) -> str:
        return f"policy v{self.number}"


class MessageTemplate(models.Model):
    """One version of a message template for a kind and language; edits make a new version."""

    kind = models.CharField(max_length=24, choices=MessageKind.choices)
    language = models.CharField(max_length=8, default="en")
    version = models.PositiveIntegerField(default=1, editable=False)
    subject = models.CharField(max_length=200)
    body = models.TextField(help_text="Markdown with {placeholders}.")
    pre_approved_legal = models.BooleanField(
        default=False, help_text="Approved by legal: a use left unchanged needs no legal approval.",
    )
    is_current = models.BooleanField(default=True, editable=False)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    created = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["kind", "language", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["kind", "language", "version"], name="template_version_once"),
            models.UniqueConstraint(fields=["kind", "language"], condition=Q(is_current=True), name="template_one_current"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} ({self.language}) v{self.version}"

    @property
    def label(self) -> str:
        return f"{self.kind}/{self.language}/v{self.version}"


class DraftState(models.TextChoices):
    DRAFT = "draft", "Draft"
    IN_REVIEW = "in_review", "In review"
    APPROVED = "approved", "Approved"
    PUBLISHED = "published", "Published"
    DISCARDED = "discarded", "Discarded"


class UpdateDraft(models.Model):
    """An update on its way to the page: draft -> in review -> approved -> published.

    Published text is frozen in the IncidentUpdate it became; a correction is a new draft
    that names the update it corrects.
    """

    public_id = public_id_field()
    page = models.ForeignKey(Page, on_delete=models.CASCADE, related_name="drafts")
    # Empty for an initial alert: the incident is opened, from `proposal`, when it is published,
    # so nothing reaches the page or a subscriber before its approvals are in.
    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, null=True, blank=True, related_name="drafts")
    proposal = models.JSONField(
        default=dict, blank=True, editable=False,
        help_text="For an initial alert: name, severity, category, impact, components and regions of the incident to open.",
    )
    kind = models.CharField(max_length=24, choices=MessageKind.choices, default=MessageKind.PROGRESS_UPDATE)
    status = models.CharField(max_length=16, choices=ALL_STATUS_CHOICES, help_text="The incident status it publishes.")
    body = models.TextField()
    state = models.CharField(max_length=10, choices=DraftState.choices, default=DraftState.DRAFT)
    revision = models.PositiveIntegerField(default=1, editable=False)
    template = models.ForeignKey(MessageTemplate, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    # The template as filled when the draft was made: a body still equal to it is an unchanged use.
    template_text = models.TextField(blank=True, editable=False)
    corrects = models.ForeignKey(
        IncidentUpdate, on_delete=models.PROTECT, null=True, blank=True, related_name="corrections",
        help_text="The published update this one corrects.",
    )
    deliver_notifications = models.BooleanField(default=True)
    talking_points = models.TextField(
        blank=True, help_text="For the support team with the update: approved answers to expected questions. Never public.",
    )
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    redaction_override = models.TextField(blank=True, editable=False, help_text="Why it was published despite findings.")
    emergency_reason = models.TextField(blank=True, editable=False)
    published_update = models.OneToOneField(
        IncidentUpdate, on_delete=models.PROTECT, null=True, blank=True, related_name="draft", editable=False,
    )
    policy_version = models.ForeignKey(PolicyVersion, on_delete=models.PROTECT, null=True, blank=True, related_name="+", editable=False)
    published_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+", editable=False)
    published_at = models.DateTimeField(null=True, blank=True, editable=False)
    created = models.DateTimeField(default=timezone.now, editable=False)
    updated = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["-created", "-id"]
        permissions = [
            ("publish_updatedraft", "Can publish an approved update"),
            ("emergency_publish_updatedraft", "Can publish without approval in an emergency"),
            ("override_redaction_updatedraft", "Can publish despite redaction findings"),
        ]

    def __str__(self) -> str:
        about = self.incident or self.proposal.get("name", "a new incident")
        return f"{self.get_kind_display()} for {about} ({self.get_state_display()})"


class DraftRevision(models.Model):
    """Every saved text of a draft, in order; what diffs in the admin are made of."""

    draft = models.ForeignKey(UpdateDraft, on_delete=models.CASCADE, related_name="revisions")
    number = models.PositiveIntegerField()
    status = models.CharField(max_length=16, choices=ALL_STATUS_CHOICES)
    body = models.TextField()
    talking_points = models.TextField(blank=True)
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    created = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["draft", "number"]
        constraints = [models.UniqueConstraint(fields=["draft", "number"], name="draft_revision_once")]

    def __str__(self) -> str:
        return f"revision {self.number} of {self.draft_id}"


class Approval(models.Model):
    """One approver's yes to one revision of a draft; an edit withdraws it."""

    draft = models.ForeignKey(UpdateDraft, on_delete=models.CASCADE, related_name="approvals")
    role = models.CharField(max_length=10, choices=ApprovalRole.choices)
    approver = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    revision = models.PositiveIntegerField()
    note = models.CharField(max_length=500, blank=True)
    created = models.DateTimeField(default=timezone.now, editable=False)
    withdrawn_at = models.DateTimeField(null=True, blank=True)
    withdrawn_reason = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["created", "id"]
        permissions = [
            ("approve_legal", "Can approve updates for legal"),
            ("approve_pr", "Can approve updates for PR"),
            ("approve_executive", "Can approve updates for the executive team"),
        ]

    def __str__(self) -> str:
        return f"{self.get_role_display()} approval of revision {self.revision}"


class NearMissKind(models.TextChoices):
    EMERGENCY_PUBLISH = "emergency_publish", "Published without approval"
    FORBIDDEN = "forbidden", "Forbidden action attempted"
    REDACTION_OVERRIDE = "redaction_override", "Published despite redaction findings"


class NearMiss(models.Model):
    """Something the post-incident review must look at: an unapproved or unauthorised message."""

    kind = models.CharField(max_length=20, choices=NearMissKind.choices)
    incident = models.ForeignKey(Incident, on_delete=models.SET_NULL, null=True, blank=True, related_name="near_misses")
    draft = models.ForeignKey(UpdateDraft, on_delete=models.SET_NULL, null=True, blank=True, related_name="near_misses")
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    action = models.CharField(max_length=64, blank=True)
    reason = models.TextField(blank=True)
    created = models.DateTimeField(default=timezone.now, editable=False)
    reviewed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created", "-id"]
        verbose_name_plural = "near misses"

    def __str__(self) -> str:
        return f"{self.get_kind_display()} ({self.created:%Y-%m-%d %H:%M})"


class NoteKind(models.TextChoices):
    NOTE = "note", "Internal note"
    DECISION = "decision", "Decision"
    HANDOFF = "handoff", "Commander hand-off"


class IncidentNote(models.Model):
    """The incident's internal log: notes, decisions and hand-offs. Never public."""

    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="notes")
    kind = models.CharField(max_length=10, choices=NoteKind.choices, default=NoteKind.NOTE)
    body = models.TextField()
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    handed_to = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    created = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["created", "id"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} on {self.incident}"


class StaffReminderKind(models.TextChoices):
    UPDATE_DUE = "update_due", "Update due soon"
    UPDATE_OVERDUE = "update_overdue", "Update overdue"
    EXTENDED_OUTAGE = "extended_outage", "Extended outage"
    POSTMORTEM_DUE = "postmortem_due", "Post-mortem due soon"
    POSTMORTEM_OVERDUE = "postmortem_overdue", "Post-mortem overdue"
    MAINTENANCE_ENDING = "maintenance_ending", "Maintenance still open near its end"


class StaffReminder(models.Model):
    """A reminder or escalation sent to staff; unique per incident, kind and due time, so the
    per-minute check sends each one once however often it runs."""

    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="staff_reminders")
    kind = models.CharField(max_length=20, choices=StaffReminderKind.choices)
    due_at = models.DateTimeField()
    recipients = models.JSONField(default=list)
    created = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["-created", "-id"]
        constraints = [models.UniqueConstraint(fields=["incident", "kind", "due_at"], name="staff_reminder_once")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} for {self.incident}"


class Postmortem(models.Model):
    """The incident review: drafted, approved like an update, published on the incident page."""

    incident = models.OneToOneField(Incident, on_delete=models.CASCADE, related_name="postmortem")
    body = models.TextField(blank=True)
    state = models.CharField(max_length=10, choices=DraftState.choices, default=DraftState.DRAFT)
    visibility = models.CharField(max_length=8, choices=PostmortemVisibility.choices, default=PostmortemVisibility.PUBLIC)
    due_at = models.DateTimeField(null=True, blank=True)
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    published_at = models.DateTimeField(null=True, blank=True, editable=False)
    notify_subscribers = models.BooleanField(default=False)
    created = models.DateTimeField(default=timezone.now, editable=False)
    updated = models.DateTimeField(default=timezone.now, editable=False)

    def __str__(self) -> str:
        return f"Post-mortem of {self.incident}"


class BlackoutWindow(models.Model):
    """A stretch of critical remediation: internal pings (staff reminders, support chat) wait
    until it ends. The customer cadence is kept, or its waiver is recorded with a reason."""

    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="blackouts")
    starts_at = models.DateTimeField(default=timezone.now)
    ends_at = models.DateTimeField()
    reason = models.CharField(max_length=500)
    cadence_waived = models.BooleanField(default=False, help_text="Customer updates are paused too (recorded).")
    waiver_reason = models.CharField(max_length=500, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    created = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["-starts_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(ends_at__gt=models.F("starts_at")), name="blackout_ends_after_start"),
            models.CheckConstraint(
                condition=Q(cadence_waived=False) | ~Q(waiver_reason=""), name="blackout_waiver_has_reason",
            ),
        ]

    def __str__(self) -> str:
        return f"Blackout on {self.incident} until {self.ends_at:%Y-%m-%d %H:%M}"
