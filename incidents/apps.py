from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _editorial_defaults(sender, using: str = "default", **kwargs) -> None:
    """Role groups, the default severity policy and the shipped templates, after every migrate
    (and test-database flush). Each step creates only what is missing."""
    from incidents import editorial

    editorial.roles_sync()
    editorial.policy_seed()
    editorial.templates_seed()


class IncidentsConfig(AppConfig):
    name = "incidents"
    verbose_name = "Incidents and status"

    def ready(self) -> None:
        from statuspage import checks  # noqa: F401  (registers the system checks)

        # After auth's own post_migrate handler, which creates the permissions the groups need
        # (incidents comes after django.contrib.auth in INSTALLED_APPS).
        post_migrate.connect(_editorial_defaults, sender=self, dispatch_uid="incidents.editorial_defaults")
