from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    name = "notifications"
    verbose_name = "Notifications"

    def ready(self) -> None:
        from anymail.signals import tracking

        from notifications.receivers import anymail_tracking_received

        # dispatch_uid: connected once even if ready() runs again (tests, autoreload).
        tracking.connect(anymail_tracking_received, dispatch_uid="notifications.anymail_tracking")
