"""django-q2 entry points: ids in, one service call each."""
from __future__ import annotations

from notifications import services


def dispatch_expand(dispatch_id: int) -> int:
    return services.dispatch_expand(dispatch_id=dispatch_id)


def deliveries_send(ids: list[int]) -> dict[str, int]:
    return services.deliveries_send(ids=list(ids))


def sweep_deliveries() -> dict[str, int]:
    return services.deliveries_sweep()
