"""The public subscriber pages (host-routed like the status page) and the SMS provider's webhook."""
from django.urls import path

from subscribers import views

app_name = "subscribers"

urlpatterns = [
    path("subscribe", views.subscribe, name="subscribe"),
    path("subscribers/sms/verify", views.sms_verify, name="sms-verify"),
    path("subscribers/confirm/<str:token>", views.confirm, name="confirm"),
    path("subscribers/manage/<str:token>", views.manage, name="manage"),
    path("subscribers/unsubscribe/<str:token>", views.unsubscribe, name="unsubscribe"),
    path("webhooks/sms/inbound", views.sms_inbound, name="sms-inbound"),
]
