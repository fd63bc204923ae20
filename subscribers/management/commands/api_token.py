"""Management API keys from the shell: create (the key is printed once), list, revoke.

    manage.py api_token create --user ops@example.com --scopes read,write,publish [--name "Pager sync"]
    manage.py api_token list [--user ops@example.com]
    manage.py api_token revoke <id or prefix>
"""
from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db.models import Q

from subscribers import services
from subscribers.models import ApiScope, ApiToken


def staff_user(email: str):
    users = list(get_user_model().objects.filter(email__iexact=email.strip())[:2])
    if not users:
        raise CommandError(f"No user with the email address {email!r}.")
    if len(users) > 1:
        raise CommandError(f"Several users have the email address {email!r}; fix that first.")
    account = users[0]
    if not (account.is_active and account.is_staff):
        # The API refuses keys of anyone else, so a key for them would never work.
        raise CommandError(f"{email} is not an active staff user; API keys act for staff only.")
    return account


def create_key(command: BaseCommand, *, user: str, name: str, scopes: str) -> None:
    account = staff_user(user)
    try:
        token, key = services.api_token_create(user=account, name=name, scopes=scopes)
    except ValidationError as exc:
        raise CommandError("; ".join(exc.messages)) from None
    # Everything but the key goes to stderr, so `... > key.txt` captures the key alone.
    command.stderr.write(
        f"Created API key {token.name!r} (id {token.pk}, {token.prefix}…, scopes {','.join(token.scopes)}) for {account.email}."
    )
    command.stderr.write("Store it now: it is not shown again. Send it as 'Authorization: OAuth <key>' or 'Bearer <key>'.")
    command.stdout.write(key)


class Command(BaseCommand):
    help = "Create, list or revoke management API keys. A new key is printed once; only its SHA-256 is stored."

    def add_arguments(self, parser) -> None:
        actions = parser.add_subparsers(dest="action", required=True, metavar="{create,list,revoke}")
        create = actions.add_parser("create", help="Create a key for a staff user and print it once.")
        create.add_argument("--user", required=True, help="The staff user's email address; the key acts as them.")
        create.add_argument(
            "--scopes", required=True,
            help=f"Comma-separated: {', '.join(ApiScope.values)} (write includes read; publish includes write).",
        )
        create.add_argument("--name", default="Management API", help="What the key is for, e.g. 'Pager sync'.")
        listing = actions.add_parser("list", help="List keys: id, prefix, scopes, last use, revocation.")
        listing.add_argument("--user", help="Only this user's keys (email address).")
        revoke = actions.add_parser("revoke", help="Refuse a key from now on.")
        revoke.add_argument("key_id", help="The key's id or its prefix (as `list` shows them).")

    def handle(self, *args, action: str, **options) -> None:
        if action == "create":
            create_key(self, user=options["user"], name=options["name"], scopes=options["scopes"])
        elif action == "list":
            self.list_keys(user=options.get("user"))
        else:
            self.revoke_key(options["key_id"])

    def list_keys(self, *, user: str | None) -> None:
        tokens = ApiToken.objects.select_related("user").order_by("-created")
        if user:
            tokens = tokens.filter(user__email__iexact=user.strip())
        for token in tokens:
            last_used = token.last_used_at.isoformat(timespec="seconds") if token.last_used_at else "never"
            state = f"revoked {token.revoked_at.isoformat(timespec='seconds')}" if token.revoked_at else "active"
            self.stdout.write(
                f"{token.pk}\t{token.prefix}…\t{token.name}\t{token.user.email}\t{','.join(token.scopes)}\t"
                f"last used {last_used}\t{state}"
            )

    def revoke_key(self, key_id: str) -> None:
        key_id = key_id.strip().rstrip("…")
        matches = list(ApiToken.objects.filter(Q(prefix=key_id) | Q(pk=int(key_id)) if key_id.isdigit() else Q(prefix=key_id))[:2])
        if not matches:
            raise CommandError(f"No API key with the id or prefix {key_id!r}.")
        if len(matches) > 1:
            raise CommandError(f"Several keys start with {key_id!r}; revoke by id (see `api_token list`).")
        token = matches[0]
        if services.api_token_revoke(token=token):
            self.stdout.write(f"Revoked API key {token.name!r} ({token.prefix}…).")
        else:
            self.stdout.write(f"API key {token.name!r} ({token.prefix}…) was already revoked.")
