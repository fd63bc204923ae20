from django.apps import AppConfig


class IncidentsConfig(AppConfig):
    name = "incidents"
    verbose_name = "Incidents and status"

    def ready(self) -> None:
        from statuspage import checks  # noqa: F401  (registers the system checks)
