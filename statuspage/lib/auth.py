"""Staff sign-in: accounts are created by administrators, never by self sign-up."""
from __future__ import annotations

from allauth.account.adapter import DefaultAccountAdapter


class StaffAccountAdapter(DefaultAccountAdapter):
    def is_open_for_signup(self, request) -> bool:
        return False
