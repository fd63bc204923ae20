"""Provider callbacks of the notifications app."""
from django.urls import path

from notifications import views

app_name = "notifications"

urlpatterns = [
    path("webhooks/sms/status", views.sms_status, name="sms-status"),
]
