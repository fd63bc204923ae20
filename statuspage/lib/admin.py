"""Admin building blocks shared by the apps."""
from __future__ import annotations


class ReadOnlyAdminMixin:
    """For logs and ledgers: visible to staff, changed by nobody (not even superusers)."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
