from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

from . import views
from .api import api

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("accounts/", include("accounts.urls")),
    path("balance/", include("billing.urls")),
    path("api/", api.urls),
    path("admin/", admin.site.urls),
    path("v1/", include("relay.urls")),
]
