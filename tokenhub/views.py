from __future__ import annotations

import hmac

from django.conf import settings
from django.http import Http404, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from . import health


def home(request):
    """The front page: what TokenHub is, the SDK snippet, and the models available now."""
    from channels_app import marketplace

    user_id = request.user.pk if request.user.is_authenticated else 0
    available = marketplace.rows(user_id, marketplace.Filters(only_available=True))
    available.sort(key=lambda row: (-row.channels, row.model.name))
    context = {"models": available[:12], "more": max(len(available) - 12, 0), "origin": site_origin(request)}
    return render(request, "home.html", context)


@require_POST
def set_language(request):
    """Django's /i18n/setlang/ (the language cookie), and for a signed-in user their own choice too, so
    it follows them to other browsers and into their e-mail."""
    from django.views.i18n import set_language as django_set_language

    response = django_set_language(request)
    language = request.POST.get("language", "")
    if request.user.is_authenticated and language in dict(settings.LANGUAGES):
        from accounts.models import User

        User.objects.filter(pk=request.user.pk).update(language=language)
    return response


def site_origin(request) -> str:
    return settings.TOKENHUB_PUBLIC_URL or request.build_absolute_uri("/").rstrip("/")


def docs(request):
    context = {
        "origin": site_origin(request),
        "max_body_mb": settings.TOKENHUB_MAX_BODY_BYTES / 1_000_000,
        "key_rpm": settings.TOKENHUB_KEY_RPM,
        "key_tpm": settings.TOKENHUB_KEY_TPM,
        "attempts": settings.TOKENHUB_MAX_ATTEMPTS,
        "disconnect_policy": settings.TOKENHUB_DISCONNECT_POLICY,
    }
    return render(request, "docs.html", context)


@never_cache
def healthz(request):
    state = health.overall_state()
    return JsonResponse(state, status=200 if state["ok"] else 503)


def api_not_found(request, rest: str = ""):
    """Any /api/ path the API does not have: a 404 in the API's own error shape."""
    return JsonResponse(
        {"error": {"code": "not_found", "message": f"The API has no {request.path}; see /api/docs."}}, status=404
    )


@never_cache
def metrics(request):
    """Prometheus' scrape: 404 while TOKENHUB_METRICS_TOKEN is unset, 401 without the right bearer token."""
    from . import metrics as exposition

    token = settings.TOKENHUB_METRICS_TOKEN
    if not token:
        raise Http404("metrics are off (set TOKENHUB_METRICS_TOKEN)")
    presented = request.headers.get("Authorization", "")
    if not hmac.compare_digest(presented.encode(), f"Bearer {token}".encode()):
        response = HttpResponse("a bearer token is required\n", status=401, content_type="text/plain")
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    body, content_type = exposition.exposition()
    return HttpResponse(body, content_type=content_type)
