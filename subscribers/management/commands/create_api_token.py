"""The former name of `api_token create`, kept for scripts that use it (one scope: read or write)."""
from __future__ import annotations

from django.core.management.base import BaseCommand

from subscribers.management.commands.api_token import create_key
from subscribers.models import ApiScope


class Command(BaseCommand):
    help = "Deprecated alias of `api_token create`: create a key (read or write scope) and print it once."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--user", required=True, help="The staff user's email address.")
        parser.add_argument("--name", required=True, help="What the key is for, e.g. 'CRM sync'.")
        parser.add_argument("--scope", required=True, choices=[ApiScope.READ, ApiScope.WRITE], help="read: GET only; write: everything.")

    def handle(self, *args, user: str, name: str, scope: str, **options) -> None:
        create_key(self, user=user, name=name, scopes=scope)
