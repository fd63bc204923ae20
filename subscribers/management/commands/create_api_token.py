"""Create a management API key for a staff user and print it once (only its SHA-256 is stored)."""
from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from subscribers import services
from subscribers.models import ApiToken


class Command(BaseCommand):
    help = "Create a management API key (read or write scope) for a staff user; the key is printed once."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--user", required=True, help="The staff user's email address.")
        parser.add_argument("--name", required=True, help="What the key is for, e.g. 'CRM sync'.")
        parser.add_argument("--scope", required=True, choices=ApiToken.Scope.values, help="read: GET only; write: everything.")

    def handle(self, *args, user: str, name: str, scope: str, **options) -> None:
        users = list(get_user_model().objects.filter(email__iexact=user.strip())[:2])
        if not users:
            raise CommandError(f"No user with the email address {user!r}.")
        if len(users) > 1:
            raise CommandError(f"Several users have the email address {user!r}; fix that first.")
        account = users[0]
        if not (account.is_active and account.is_staff):
            # The API refuses keys of anyone else, so a key for them would never work.
            raise CommandError(f"{user} is not an active staff user; API keys act for staff only.")
        try:
            token, key = services.api_token_create(user=account, name=name, scope=scope)
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from None
        self.stderr.write(f"Created API key {token.name!r} ({token.prefix}…, scope {token.scope}) for {account.email}.")
        self.stderr.write("Store it now: it is not shown again. Send it as 'Authorization: OAuth <key>' or 'Bearer <key>'.")
        self.stdout.write(key)
