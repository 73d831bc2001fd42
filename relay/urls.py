from __future__ import annotations

from django.urls import re_path

from . import views

app_name = "relay"

urlpatterns = [
    re_path(r"^(?P<path>.*)$", views.not_served, name="not_served"),
]
