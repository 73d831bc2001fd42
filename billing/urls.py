from __future__ import annotations

from django.urls import path

from . import views

app_name = "billing"

urlpatterns = [
    path("", views.wallet, name="wallet"),
    path("checkin/", views.checkin, name="checkin"),
    path("redeem/", views.redeem, name="redeem"),
]
