"""Builders for tests. Writes go through the services, as in production."""
from __future__ import annotations

import itertools
from datetime import timedelta

from django.utils import timezone

from incidents import services
from incidents.models import Component, ComponentStatus, Page

_seq = itertools.count(1)


def make_page(*, name: str = "Acme", url: str = "https://status.example.com", time_zone: str = "Etc/UTC", **fields) -> Page:
    return services.page_save(page=Page(name=name, url=url, time_zone=time_zone, **fields))


def make_group(*, page: Page, name: str | None = None, position: int = 1, **fields) -> Component:
    return services.component_save(
        component=Component(page=page, is_group=True, name=name or f"Group {next(_seq)}", position=position, **fields)
    )


def make_component(
    *, page: Page, name: str | None = None, group: Component | None = None, position: int = 1,
    status: str = ComponentStatus.OPERATIONAL, **fields,
) -> Component:
    fields.setdefault("created", timezone.now() - timedelta(days=120))
    component = services.component_save(
        component=Component(page=page, group=group, name=name or f"Component {next(_seq)}", position=position, **fields)
    )
    if status != ComponentStatus.OPERATIONAL:
        services.component_set_status(component=component, status=status, source="manual")
    return component


def open_incident(*, page: Page, name: str = "Elevated error rates", components=None, **kwargs):
    kwargs.setdefault("body", "We are investigating reports of errors.")
    return services.incident_open(page=page, name=name, components=components or {}, **kwargs)


def schedule_maintenance(*, page: Page, name: str = "Database upgrade", starts_in=timedelta(days=2),
                         lasts=timedelta(hours=2), components=(), **kwargs):
    start = timezone.now() + starts_in
    kwargs.setdefault("body", "We will upgrade the primary database.")
    return services.maintenance_schedule(
        page=page, name=name, scheduled_for=start, scheduled_until=start + lasts, components=components, **kwargs
    )


def split_datetime(name: str, when) -> dict[str, str]:
    """The two POST fields of an admin SplitDateTimeWidget, in the current time zone."""
    when = timezone.localtime(when)
    return {f"{name}_0": when.strftime("%Y-%m-%d"), f"{name}_1": when.strftime("%H:%M:%S")}
