from __future__ import annotations

import os
import secrets

from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from incidents import demo


class Command(BaseCommand):
    help = (
        "Build the demo status page (Acme Cloud: components in groups, 90 days of history, past incidents, "
        "one open incident, one upcoming maintenance) and a demo admin. Replaces the previous demo page; "
        "other pages are left alone. The admin password comes from DEMO_ADMIN_PASSWORD, or a new one is "
        "made and printed on every run."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--components", type=int, default=demo.DEFAULT_COMPONENTS,
            help=f"How many components (not counting groups), {demo.MIN_COMPONENTS}-{demo.MAX_COMPONENTS}. Default {demo.DEFAULT_COMPONENTS}.",
        )

    def handle(self, *args, **options) -> None:
        count = options["components"]
        if not demo.MIN_COMPONENTS <= count <= demo.MAX_COMPONENTS:
            raise CommandError(f"--components must be between {demo.MIN_COMPONENTS} and {demo.MAX_COMPONENTS}, not {count}.")
        password = os.environ.get("DEMO_ADMIN_PASSWORD", "")
        if password:
            try:
                # The demo admin is a superuser; a weak password set on purpose is still refused.
                validate_password(password, get_user_model()(username="admin", email=demo.ADMIN_EMAIL))
            except ValidationError as exc:
                raise CommandError(f"DEMO_ADMIN_PASSWORD is not usable: {' '.join(exc.messages)}") from None
        else:
            password = secrets.token_urlsafe(12)

        def progress(done: int, total: int) -> None:
            self.stdout.write(f"\rWriting {demo.HISTORY_DAYS} days of status history: {done}/{total} components", ending="")
            if done == total:
                self.stdout.write("")

        try:
            with transaction.atomic():
                result = demo.demo_build(password=password, component_count=count, progress=progress)
        except ValidationError as exc:
            raise CommandError(f"The demo data was refused: {' '.join(exc.messages)}") from None

        self.stdout.write(
            f"Demo page “{result.page.name}” at {result.page.url}: {result.components} components in {result.groups} groups, "
            f"{result.history_rows} background status changes, {result.incidents} incidents (1 open), "
            f"{result.maintenances} maintenances (1 upcoming)."
        )
        self.stdout.write(self.style.SUCCESS("Sign in to the admin:"))
        self.stdout.write(f"  {result.login_url}")
        self.stdout.write(f"  email:    {result.admin_email}")
        self.stdout.write(f"  password: {result.admin_password}")
        self.stdout.write(
            "Editorial roles, same password: " + ", ".join(f"{role}@example.com" for role, _group in demo.ROLE_ACCOUNTS)
            + ". A P2 alert drafted by communicator@ waits for pr@'s approval; commander@ publishes it."
        )
