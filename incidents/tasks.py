"""django-q2 entry points. Thin: they call one service and take ids or nothing."""
from __future__ import annotations

from incidents import services


def advance_maintenances() -> dict[str, int]:
    """Run every minute: start and complete maintenances whose window has come."""
    return services.maintenances_advance()
