"""System checks for settings that would silently lose or duplicate work."""
from __future__ import annotations

from django.conf import settings
from django.core.checks import Error, Tags, register


@register(Tags.compatibility)
def queue_settings(app_configs=None, **kwargs) -> list[Error]:
    conf = getattr(settings, "Q_CLUSTER", {})
    errors = []
    timeout, retry = conf.get("timeout"), conf.get("retry")
    if timeout is None or retry is None or retry <= timeout:
        errors.append(Error(
            "Q_CLUSTER['retry'] must be greater than Q_CLUSTER['timeout'].",
            hint="Otherwise the broker hands a task that is still running to a second worker, which runs it twice.",
            id="statuspage.E001",
        ))
    if not conf.get("max_attempts"):
        errors.append(Error(
            "Q_CLUSTER['max_attempts'] must be a positive number.",
            hint="0 retries a failing task forever; our own tables and the sweeper already re-queue due work.",
            id="statuspage.E002",
        ))
    return errors
