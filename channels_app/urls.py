from __future__ import annotations

from django.urls import path

from . import views

app_name = "channels"

urlpatterns = [
    path("models/", views.catalog, name="catalog"),
    path("channels/", views.channel_list, name="list"),
    path("channels/<str:public_id>/", views.channel_detail, name="detail"),
    path("channels/<str:public_id>/test/", views.channel_test, name="test"),
    path("channels/<str:public_id>/toggle/", views.channel_toggle, name="toggle"),
    path("channels/<str:public_id>/sharing/", views.channel_sharing, name="sharing"),
    path("channels/<str:public_id>/limits/", views.channel_limits, name="limits"),
    path("invitations/<str:token>/", views.invitation, name="invitation"),
]
