"""django-q2 entry points. Thin: they call one service and take ids or nothing."""
from __future__ import annotations

from incidents import services


def advance_maintenances() -> dict[str, int]:
    """Run every minute: start and complete maintenances whose window has come."""
    return services.maintenances_advance()


def support_notify(update_id: int) -> dict[str, str]:
    """After a publish: brief the support team and the helpdesk (incidents.support)."""
    from incidents import support

    return support.support_notify(update_id=update_id)


def check_reminders() -> dict[str, int]:
    """Run every minute: remind staff of updates and post-mortems coming due, escalate overdue ones."""
    from incidents import reminders

    return reminders.reminders_check()
