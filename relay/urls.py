from __future__ import annotations

from django.urls import path, re_path

from . import views

app_name = "relay"

urlpatterns = [
    path("chat/completions", views.chat_completions, name="chat_completions"),
    path("messages", views.messages, name="messages"),
    path("messages/count_tokens", views.count_tokens, name="count_tokens"),
    path("embeddings", views.embeddings, name="embeddings"),
    path("responses", views.responses, name="responses"),
    path("models", views.models, name="models"),
    path("usage", views.usage, name="usage"),
    re_path(r"^(?P<path>.*)$", views.not_served, name="not_served"),
]
