from __future__ import annotations

from django.urls import path

from . import views

app_name = "billing"

urlpatterns = [
    path("dashboard/", views.dashboard, name="dashboard"),
    path("balance/", views.wallet, name="wallet"),
    path("balance/checkin/", views.checkin, name="checkin"),
    path("balance/redeem/", views.redeem, name="redeem"),
    path("usage/", views.usage, name="usage"),
    path("usage.csv", views.usage_csv, name="usage_csv"),
    path("statement/", views.statement, name="statement"),
    path("earnings/", views.earnings, name="earnings"),
    path("earnings/move/", views.move_earnings, name="move_earnings"),
    path("earnings/payout/", views.request_payout, name="request_payout"),
]
