from django.core.management.base import BaseCommand

from incidents.schedules import schedules_upsert


class Command(BaseCommand):
    help = "Create or update the recurring django-q2 schedules (idempotent; run at every start-up)."

    def handle(self, *args, **options):
        for name, created in schedules_upsert():
            self.stdout.write(f"{'created' if created else 'updated'} schedule {name}")
