"""django-q2 entry points: ids in, one service call each."""
from __future__ import annotations

from notifications import services


def dispatch_expand(dispatch_id: int) -> int:
    return services.dispatch_expand(dispatch_id=dispatch_id)


def deliveries_send(ids: list[int]) -> dict[str, int]:
    return services.deliveries_send(ids=list(ids))


def sweep_deliveries() -> dict[str, int]:
    return services.deliveries_sweep()


def purge_archive() -> dict[str, int | None]:
    from notifications.archive import archive_purge, retention_cutoff

    result = archive_purge(before=retention_cutoff())
    return {"purged": result.count, "through_sequence": result.through_sequence, "held_sequence": result.held_sequence}
