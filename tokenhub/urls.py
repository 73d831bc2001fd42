from __future__ import annotations

from django.contrib import admin
from django.urls import include, path, re_path

from accounts import views as accounts_views

from . import views
from .api import api

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("metrics", views.metrics, name="metrics"),
    path("accounts/", include("accounts.urls")),
    path("", include("billing.urls")),
    path("", include("billing.payments.urls")),
    path("", include("channels_app.urls")),
    path("docs/", views.docs, name="docs"),
    path("i18n/setlang/", views.set_language, name="set_language"),
    path("playground/", accounts_views.playground, name="playground"),
    path("playground/key/", accounts_views.playground_key, name="playground_key"),
    path("api/", api.urls),
    re_path(r"^api/(?P<rest>.*)$", views.api_not_found),
    path("admin/", admin.site.urls),
    path("v1/", include("relay.urls")),
]
