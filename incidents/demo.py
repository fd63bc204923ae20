"""Demo data: one realistic status page with 90 days of history, rebuilt from scratch each run.

Current statuses, incidents and maintenances are written through incidents.services, exactly
as staff would write them; the services stamp everything "now", so past events are moved back
to their time afterwards. Background blips (monitoring noise) are plain status-log rows.
"""
from __future__ import annotations

import random
import secrets
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.db.models import Max, OuterRef, Subquery
from django.utils import timezone

from incidents import services
from incidents.models import (
    Component,
    ComponentStatus,
    ComponentStatusChange,
    Incident,
    IncidentStatus,
    IncidentUpdate,
    OPEN_INCIDENT_STATUSES,
    Page,
    Region,
    StatusSource,
)

# A fixed public id marks the demo page, so a second run finds and replaces it.
DEMO_PAGE_ID = "acmeclouddmo"
DEMO_NAME = "Acme Cloud"
FALLBACK_URL = "https://status.acme-cloud.example"
ADMIN_EMAIL = "admin@example.com"
HISTORY_DAYS = 90
MIN_COMPONENTS = 5
DEFAULT_COMPONENTS = 20

CS = ComponentStatus
IS = IncidentStatus

REGIONS = [("eu", "Europe"), ("us", "North America"), ("apac", "Asia Pacific")]

# Group -> components, most important first: --components N takes them round-robin.
CATALOGUE: list[tuple[str, str, list[tuple[str, str]]]] = [
    ("API", "The public APIs and what calls back out of them.", [
        ("REST API", "Create, read and update everything in your account over HTTPS."),
        ("Webhooks", "Event callbacks to the endpoints you registered."),
        ("Authentication", "API keys, OAuth tokens and session sign-in."),
        ("GraphQL API", "The query endpoint used by the dashboard and integrations."),
        ("Rate limiting", "Per-key request quotas and their headers."),
        ("API documentation", "The reference and the interactive console."),
    ]),
    ("Dashboard", "The web and mobile apps your team works in.", [
        ("Web app", "The dashboard at app.acme-cloud.example."),
        ("Mobile apps", "The iOS and Android apps."),
        ("Reporting", "Scheduled and on-demand reports and exports."),
        ("Search", "Search across projects, customers and invoices."),
        ("Single sign-on", "SAML and OIDC sign-in for enterprise accounts."),
        ("File uploads", "Attachments and imports."),
    ]),
    ("Payments", "Money in and money out.", [
        ("Card processing", "Authorisations and captures for card payments."),
        ("Invoicing", "Invoice generation and delivery."),
        ("Payouts", "Transfers to your bank account."),
        ("Fraud checks", "Risk scoring on incoming payments."),
        ("Billing portal", "Where your customers manage their subscriptions."),
        ("Bank transfers", "SEPA and ACH collections."),
    ]),
    ("Notifications", "Messages we send on your behalf.", [
        ("Email delivery", "Transactional email to your customers."),
        ("SMS delivery", "Text messages and one-time codes."),
        ("Push notifications", "Notifications to the mobile apps."),
        ("In-app messages", "Banners and inbox messages in the dashboard."),
        ("Slack integration", "Alerts posted to your Slack workspace."),
        ("Outbound webhooks queue", "Retries of failed webhook deliveries."),
    ]),
    ("Regions", "Where your data is stored and served from.", [
        ("EU (Frankfurt)", "Primary region for European accounts."),
        ("US East (Virginia)", "Primary region for North American accounts."),
        ("Asia Pacific (Singapore)", "Primary region for Asia Pacific accounts."),
        ("US West (Oregon)", "Standby region for North America."),
        ("EU (Dublin)", "Standby region for Europe."),
        ("Asia Pacific (Sydney)", "Standby region for Asia Pacific."),
    ]),
]
MAX_COMPONENTS = sum(len(items) for _g, _d, items in CATALOGUE)


@dataclass(frozen=True)
class Step:
    minutes: int
    status: str
    body: str
    components: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class PastIncident:
    name: str
    days_ago: int
    hour: int
    severity: str
    regions: tuple[str, ...]
    steps: tuple[Step, ...]  # the last one resolves


PAST_INCIDENTS = [
    PastIncident("Elevated error rates on the REST API", 74, 14, "P2", ("eu", "us"), (
        Step(0, IS.INVESTIGATING, "Some API requests fail with 5xx errors. We are investigating.",
             {"REST API": CS.PARTIAL_OUTAGE, "GraphQL API": CS.DEGRADED_PERFORMANCE}),
        Step(25, IS.IDENTIFIED, "A configuration change to the load balancers caused the errors. We are rolling it back."),
        Step(60, IS.MONITORING, "The rollback is complete and error rates are back to normal. We are monitoring.",
             {"REST API": CS.DEGRADED_PERFORMANCE, "GraphQL API": CS.OPERATIONAL}),
        Step(95, IS.RESOLVED, "Resolved. Between 14:00 and 15:00 UTC about 8% of API requests failed. "
             "We now roll out load balancer changes one zone at a time."),
    )),
    PastIncident("Delayed email delivery", 51, 8, "P3", ("eu",), (
        Step(0, IS.INVESTIGATING, "Transactional emails are delayed by up to 30 minutes.", {"Email delivery": CS.DEGRADED_PERFORMANCE}),
        Step(110, IS.MONITORING, "Our email provider has cleared its backlog. Delivery times are recovering."),
        Step(170, IS.RESOLVED, "All queued emails were delivered. No email was lost."),
    )),
    PastIncident("Card payments failing", 27, 19, "P1", ("eu", "us", "apac"), (
        Step(0, IS.INVESTIGATING, "Card payments are being declined. We are working with our acquirer.", {"Card processing": CS.MAJOR_OUTAGE}),
        Step(18, IS.IDENTIFIED, "An expired certificate on the acquirer connection blocks authorisations. A new one is being deployed."),
        Step(42, IS.RESOLVED, "Card payments work again. Declined payments can be retried safely; none were charged."),
    )),
    PastIncident("Dashboard slow to load", 9, 10, "P3", ("apac",), (
        Step(0, IS.INVESTIGATING, "The dashboard takes a long time to load for some customers.", {"Web app": CS.DEGRADED_PERFORMANCE}),
        Step(125, IS.RESOLVED, "A slow database query was fixed. Page load times are back to normal."),
    )),
]

PAST_MAINTENANCES = [
    # name, days ago, hour (UTC), hours long, components
    ("Database engine upgrade", 60, 1, 2, ("REST API", "Web app", "Reporting")),
    ("Payout provider switch-over", 18, 3, 1, ("Payouts",)),
]


@dataclass
class DemoResult:
    page: Page
    groups: int
    components: int
    history_rows: int
    incidents: int
    maintenances: int
    admin_email: str
    admin_password: str
    login_url: str


def demo_admin_ensure(*, password: str) -> object:
    """The demo's superuser, found by its email; its password is set on every run."""
    from allauth.account.models import EmailAddress

    User = get_user_model()
    user = User.objects.filter(email__iexact=ADMIN_EMAIL).order_by("pk").first()
    if user is None:
        username = "admin" if not User.objects.filter(username="admin").exists() else f"admin-{secrets.token_hex(3)}"
        user = User(username=username, email=ADMIN_EMAIL)
    user.is_staff = user.is_superuser = user.is_active = True
    user.set_password(password)
    user.save()
    # allauth refuses to turn on two-factor sign-in for an unverified address.
    EmailAddress.objects.update_or_create(user=user, email=ADMIN_EMAIL, defaults={"verified": True, "primary": True})
    return user


# One account per editorial role, so the approval workflow can be tried from the admin (same
# password as the admin). Found by email, so a second run updates them instead of adding more.
ROLE_ACCOUNTS = (
    ("communicator", "Communicators"),
    ("legal", "Legal approvers"),
    ("pr", "PR approvers"),
    ("commander", "Incident commanders"),
    ("executive", "Executives"),
)


def demo_roles_ensure(*, password: str) -> dict[str, object]:
    """The demo's staff accounts, one per role group, keyed by role."""
    from allauth.account.models import EmailAddress
    from django.contrib.auth.models import Group

    User = get_user_model()
    accounts = {}
    for role, group_name in ROLE_ACCOUNTS:
        email = f"{role}@example.com"
        user = User.objects.filter(email__iexact=email).order_by("pk").first()
        if user is None:
            username = role if not User.objects.filter(username=role).exists() else f"{role}-{secrets.token_hex(3)}"
            user = User(username=username, email=email)
        user.is_staff, user.is_superuser, user.is_active = True, False, True
        user.set_password(password)
        user.save()
        user.groups.set([Group.objects.get(name=group_name)])
        EmailAddress.objects.update_or_create(user=user, email=email, defaults={"verified": True, "primary": True})
        accounts[role] = user
    return accounts


def _pending_alert(page: Page, accounts: dict[str, object]) -> None:
    """A P2 initial alert written by the communicator and waiting for PR's approval."""
    from incidents import editorial

    checkout = Component.objects.filter(page=page, name="Card processing").first() or Component.objects.filter(page=page, is_group=False).first()
    draft = editorial.draft_create(
        page=page, actor=accounts["communicator"],
        proposal={"name": "Card payments failing for some customers", "severity": "P2", "category": "outage",
                  "components": {str(checkout.pk): "partial_outage"}},
        body=(
            "Some card payments are failing at checkout since 09:40 UTC. About one in ten attempts is affected.\n\n"
            "**Impact:** customers may see an error when paying by card; other payment methods work.\n\n"
            "**ETA:** we do not have an estimate yet.\n\n"
            "**What you can do:** retry the payment, or choose another payment method.\n\n"
            "**Next update:** within the hour."
        ),
    )
    draft.talking_points = "No card was charged twice. Refunds are not needed for failed attempts."
    draft.save(update_fields=["talking_points"])
    editorial.draft_submit(draft=draft, actor=accounts["communicator"])


def _catalogue(count: int) -> list[tuple[tuple[str, str], list[tuple[str, str]]]]:
    chosen: dict[str, list[tuple[str, str]]] = {name: [] for name, _d, _i in CATALOGUE}
    taken = 0
    for index in range(max(len(items) for _g, _d, items in CATALOGUE)):
        for group, _description, items in CATALOGUE:
            if taken < count and index < len(items):
                chosen[group].append(items[index])
                taken += 1
    return [((group, description), chosen[group]) for group, description, _i in CATALOGUE if chosen[group]]


def _last_change_id() -> int:
    return ComponentStatusChange.objects.aggregate(last=Max("id"))["last"] or 0


@contextmanager
def _happened_at(at: datetime) -> Iterator[None]:
    """Move the status-log rows a service call writes to the moment it stands for."""
    before = _last_change_id()
    yield
    ComponentStatusChange.objects.filter(id__gt=before).update(created=at)


def _backdate_update(update: IncidentUpdate, at: datetime) -> None:
    IncidentUpdate.objects.filter(pk=update.pk).update(display_at=at, created=at, updated=at)


def _remove_previous_demo() -> None:
    page = Page.objects.filter(public_id=DEMO_PAGE_ID).first()
    if page is None:
        return
    # Groups protect their members, even from a cascade: members first.
    Component.objects.filter(page=page, is_group=False).delete()
    page.delete()


def _page_url() -> str:
    """SITE_URL, so the demo answers where the site runs, unless it is no valid page address
    (a bare host such as http://testserver) or another page serves that host already."""
    url = (getattr(settings, "SITE_URL", "") or FALLBACK_URL).rstrip("/")
    try:
        URLValidator()(url)
    except ValidationError:
        return FALLBACK_URL
    probe = Page(url=url)
    taken = set(probe.host_names())
    if any(taken & set(other.host_names()) for other in Page.objects.all()):
        return FALLBACK_URL
    return url


class DemoBuilder:
    def __init__(self, *, component_count: int, actor, now: datetime, progress: Callable[[int, int], None] | None = None) -> None:
        self.count = component_count
        self.actor = actor
        self.now = now
        self.progress = progress or (lambda done, total: None)
        self.components: dict[str, Component] = {}
        self.regions: dict[str, Region] = {}
        # Component pk -> windows already taken by incidents and maintenances (no overlapping blips).
        self.busy: dict[int, list[tuple[datetime, datetime]]] = {}

    def build(self) -> tuple[Page, int, int, int, int]:
        page = self._page()
        groups = self._components(page)
        for spec in PAST_INCIDENTS:
            self._past_incident(page, spec)
        for spec in PAST_MAINTENANCES:
            self._past_maintenance(page, *spec)
        history_rows = self._background_history()
        self._active_incident(page)
        self._upcoming_maintenance(page)
        # Component.updated says when the status last changed, now that the log is backdated.
        latest = ComponentStatusChange.objects.filter(component=OuterRef("pk")).order_by("-created").values("created")[:1]
        Component.objects.filter(page=page).update(updated=Subquery(latest))
        return page, groups, len(self.components), history_rows, len(PAST_INCIDENTS) + 1

    def _page(self) -> Page:
        page = services.page_save(page=Page(
            public_id=DEMO_PAGE_ID, name=DEMO_NAME, url=_page_url(),
            is_default=not Page.objects.filter(is_default=True).exists(), time_zone="Europe/Amsterdam",
            description="Live and past status of the Acme Cloud platform.",
            support_url="https://support.acme-cloud.example", brand_colour="#14213d", accent_colour="#fca311",
        ))
        for code, name in REGIONS:
            self.regions[code] = Region.objects.create(page=page, code=code, name=name)
        return page

    def _components(self, page: Page) -> int:
        # Created well before the 90-day window, so every day of it has data.
        created = self.now - timedelta(days=HISTORY_DAYS + 30)
        groups = 0
        for position, ((group_name, group_description), items) in enumerate(_catalogue(self.count), start=1):
            group = services.component_save(
                component=Component(page=page, is_group=True, name=group_name, description=group_description,
                                    position=position, created=created),
                actor=self.actor, reason="Demo data",
            )
            groups += 1
            for child_position, (name, description) in enumerate(items, start=1):
                self.components[name] = services.component_save(
                    component=Component(page=page, group=group, name=name, description=description,
                                        position=child_position, created=created),
                    actor=self.actor, reason="Demo data",
                )
        return groups

    def _changes(self, wanted: dict[str, str]) -> dict[Component, str]:
        return {self.components[name]: status for name, status in wanted.items() if name in self.components}

    def _mark_busy(self, names, start: datetime, end: datetime) -> None:
        for name in names:
            if name in self.components:
                self.busy.setdefault(self.components[name].pk, []).append((start, end))

    def _past_incident(self, page: Page, spec: PastIncident) -> None:
        day = (self.now - timedelta(days=spec.days_ago)).replace(hour=spec.hour, minute=0, second=0, microsecond=0)
        first, *middle, last = spec.steps
        started = day + timedelta(minutes=first.minutes)
        with _happened_at(started):
            incident = services.incident_open(
                page=page, name=spec.name, body=first.body, status=first.status, severity=spec.severity,
                components=self._changes(first.components), regions=[self.regions[c] for c in spec.regions],
                started_at=started, display_at=started, deliver_notifications=False, actor=self.actor,
            )
        _backdate_update(incident.updates.get(), started)
        monitoring_at = None
        for step in middle:
            at = day + timedelta(minutes=step.minutes)
            with _happened_at(at):
                update = services.incident_post_update(
                    incident=incident, status=step.status, body=step.body, components=self._changes(step.components),
                    display_at=at, deliver_notifications=False, actor=self.actor,
                )
            _backdate_update(update, at)
            if step.status == IS.MONITORING and monitoring_at is None:
                monitoring_at = at
        resolved = day + timedelta(minutes=last.minutes)
        with _happened_at(resolved):
            update = services.incident_resolve(
                incident=incident, body=last.body, resolved_at=resolved, display_at=resolved,
                deliver_notifications=False, actor=self.actor,
            )
        _backdate_update(update, resolved)
        Incident.objects.filter(pk=incident.pk).update(created=started, updated=resolved, monitoring_at=monitoring_at)
        touched = {name for step in spec.steps for name in step.components}
        self._mark_busy(touched, started, resolved)

    def _past_maintenance(self, page: Page, name: str, days_ago: int, hour: int, hours: int, names: tuple[str, ...]) -> None:
        start = (self.now - timedelta(days=days_ago)).replace(hour=hour, minute=0, second=0, microsecond=0)
        end = start + timedelta(hours=hours)
        announced = start - timedelta(days=7)
        maintenance = services.maintenance_schedule(
            page=page, name=name, body=f"We will carry out planned work: {name.lower()}. Expect short interruptions.",
            scheduled_for=start, scheduled_until=end, components=[self.components[n] for n in names if n in self.components],
            deliver_notifications=False, actor=self.actor,
        )
        _backdate_update(maintenance.updates.get(), announced)
        with _happened_at(start):
            _backdate_update(services.maintenance_start(maintenance=maintenance, actor=self.actor), start)
        with _happened_at(end):
            _backdate_update(services.maintenance_complete(maintenance=maintenance, actor=self.actor), end)
        Incident.objects.filter(pk=maintenance.pk).update(created=announced, updated=end, resolved_at=end)
        self._mark_busy(names, start, end)

    def _background_history(self) -> int:
        """Short blips monitoring caught, a few per component, never overlapping real events."""
        rows: list[ComponentStatusChange] = []
        total = len(self.components)
        for done, component in enumerate(self.components.values(), start=1):
            rng = random.Random(zlib.crc32(component.name.encode()))
            busy = self.busy.get(component.pk, [])
            for _ in range(rng.choice([0, 1, 1, 2, 3])):
                start = self.now - timedelta(days=rng.randint(2, HISTORY_DAYS - 2), hours=rng.randint(0, 23), minutes=rng.randint(0, 59))
                end = start + timedelta(minutes=rng.choice([8, 15, 25, 40, 70, 150]))
                if any(start < b_end + timedelta(hours=1) and b_start - timedelta(hours=1) < end for b_start, b_end in busy):
                    continue
                status = rng.choices([CS.DEGRADED_PERFORMANCE, CS.PARTIAL_OUTAGE, CS.MAJOR_OUTAGE], weights=[6, 3, 1])[0]
                reason = "Detected by monitoring"
                rows.append(ComponentStatusChange(component=component, old_status=CS.OPERATIONAL, new_status=status,
                                                  source=StatusSource.AUTOMATION, reason=reason, created=start))
                rows.append(ComponentStatusChange(component=component, old_status=status, new_status=CS.OPERATIONAL,
                                                  source=StatusSource.AUTOMATION, reason="Recovered", created=end))
                busy.append((start, end))
            self.progress(done, total)
        ComponentStatusChange.objects.bulk_create(rows)
        return len(rows)

    def _active_incident(self, page: Page) -> None:
        started = self.now - timedelta(minutes=50)
        target = "Webhooks" if "Webhooks" in self.components else next(iter(self.components))
        with _happened_at(started):
            incident = services.incident_open(
                page=page, name="Slow webhook deliveries", severity="P3", regions=[self.regions["eu"]],
                body="Webhook deliveries are arriving late, up to 15 minutes behind. We are investigating.",
                components={self.components[target]: CS.DEGRADED_PERFORMANCE},
                started_at=started, display_at=started, deliver_notifications=False, actor=self.actor,
            )
        _backdate_update(incident.updates.get(), started)
        identified = self.now - timedelta(minutes=30)
        _backdate_update(services.incident_post_update(
            incident=incident, status=IS.IDENTIFIED, display_at=identified, deliver_notifications=False, actor=self.actor,
            body="A queue worker pool in Frankfurt is running at reduced capacity. We are adding workers.",
        ), identified)
        monitoring = self.now - timedelta(minutes=10)
        _backdate_update(services.incident_post_update(
            incident=incident, status=IS.MONITORING, display_at=monitoring, deliver_notifications=False, actor=self.actor,
            body="Extra workers are processing the backlog and delays are shrinking. We are monitoring.",
        ), monitoring)
        Incident.objects.filter(pk=incident.pk).update(created=started, monitoring_at=monitoring)

    def _upcoming_maintenance(self, page: Page) -> None:
        start = (self.now + timedelta(days=4)).replace(hour=1, minute=0, second=0, microsecond=0)
        names = [n for n in ("EU (Frankfurt)", "REST API") if n in self.components]
        services.maintenance_schedule(
            page=page, name="Network upgrade in the Frankfurt region", scheduled_for=start,
            scheduled_until=start + timedelta(hours=2), components=[self.components[n] for n in names],
            body="We are replacing core network switches in Frankfurt. Requests may be slower, and a few may "
                 "fail and need a retry. No action is needed on your side.",
            deliver_notifications=False, actor=self.actor,
        )


def demo_build(
    *, password: str, component_count: int = DEFAULT_COMPONENTS, progress: Callable[[int, int], None] | None = None,
    now: datetime | None = None,
) -> DemoResult:
    """Replace the demo page with a fresh one and ensure the demo admin. Call inside a transaction."""
    if not MIN_COMPONENTS <= component_count <= MAX_COMPONENTS:
        raise ValueError(f"component_count must be between {MIN_COMPONENTS} and {MAX_COMPONENTS}")
    now = now or timezone.now()
    user = demo_admin_ensure(password=password)
    _remove_previous_demo()
    accounts = demo_roles_ensure(password=password)
    page, groups, components, history_rows, incidents = DemoBuilder(
        component_count=component_count, actor=user, now=now, progress=progress,
    ).build()
    Incident.objects.filter(page=page, status__in=OPEN_INCIDENT_STATUSES).update(commander=accounts["commander"])
    _pending_alert(page, accounts)
    return DemoResult(
        page=page, groups=groups, components=components, history_rows=history_rows, incidents=incidents,
        maintenances=len(PAST_MAINTENANCES) + 1, admin_email=ADMIN_EMAIL, admin_password=password,
        login_url=f"{settings.SITE_URL.rstrip('/')}/accounts/login/",
    )
