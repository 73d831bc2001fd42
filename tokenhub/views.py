from __future__ import annotations

from django.http import JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache

from . import health


def home(request):
    return render(request, "home.html")


@never_cache
def healthz(request):
    state = health.overall_state()
    return JsonResponse(state, status=200 if state["ok"] else 503)
