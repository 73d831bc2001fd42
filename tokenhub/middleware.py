from __future__ import annotations

import warnings

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.http import JsonResponse
from django.utils import translation
from django.utils.cache import patch_vary_headers
from django.utils.translation.trans_real import parse_accept_lang_header
from whitenoise.middleware import WhiteNoiseMiddleware


class DualMiddleware:
    """A middleware Django may call in a sync or an async chain: an async chain is awaited directly
    (one sync-only middleware would make Django hop threads on every /v1 request). Subclasses give
    `call_sync` and `__acall__`."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request):
        if self.is_async:
            return self.__acall__(request)
        return self.call_sync(request)

    def call_sync(self, request):
        raise NotImplementedError

    async def __acall__(self, request):
        raise NotImplementedError


class AnsweringMiddleware(DualMiddleware):
    """A middleware that answers some requests itself (`answer` returns a response) and passes the rest
    on, sync or async alike: an async chain is awaited directly, with no thread hop for the rest."""

    def answer(self, request):
        raise NotImplementedError

    async def aanswer(self, request):
        return self.answer(request)

    def call_sync(self, request):
        return self.answer(request) or self.get_response(request)

    async def __acall__(self, request):
        response = await self.aanswer(request)
        if response is not None:
            return response
        return await self.get_response(request)


class StaticFilesMiddleware(AnsweringMiddleware):
    """whitenoise behind an async-capable front.

    WhiteNoiseMiddleware is sync-only, so in the middleware chain it would make
    Django hop to a thread and back on every request, /v1 included. Here only
    paths under the static prefix reach whitenoise; everything else is awaited
    directly. The lookup is a dict access (a stat() with autorefresh in DEBUG) and
    the body is streamed by Django's ASGI handler, so no thread is needed.
    """

    def __init__(self, get_response):
        super().__init__(get_response)
        with warnings.catch_warnings():
            # STATIC_ROOT exists only after collectstatic; finders serve without it.
            warnings.filterwarnings("ignore", message="No directory at", category=UserWarning)
            self.whitenoise = WhiteNoiseMiddleware(get_response=None)
        self.prefix = self.whitenoise.static_prefix

    def answer(self, request):
        path = request.path_info
        if not path.startswith(self.prefix):
            return None
        if self.whitenoise.autorefresh:
            static_file = self.whitenoise.find_file(path)
        else:
            static_file = self.whitenoise.files.get(path)
        if static_file is None:
            return None
        return self.whitenoise.serve(static_file, request)


class ProbeEndpoints(AnsweringMiddleware):
    """/healthz and /metrics answered before the rest of the stack, Host check included.

    Load balancers, compose's health check and Prometheus ask a node by its address, which
    ALLOWED_HOSTS (the public name) rightly refuses elsewhere; these two answers build no URL from
    the Host header, so nothing is lost by not checking it, and they need no session or CSRF.
    """

    def __init__(self, get_response):
        from . import views

        super().__init__(get_response)
        self.probes = {"/healthz": views.healthz, "/metrics": views.metrics}

    def answer(self, request):
        probe = self.probes.get(request.path_info)
        return probe(request) if probe else None

    async def aanswer(self, request):
        probe = self.probes.get(request.path_info)
        if probe is None:
            return None
        return await sync_to_async(probe)(request)  # as Django runs a sync view (its connection closed after)


class ApiErrorShape(DualMiddleware):
    """The JSON API answers an unknown path or a wrong method in its own error shape, not Django's HTML.

    (django-ninja answers a method its path does not take with a bare text 405; unknown paths under
    /api/ reach tokenhub.views.api_not_found.)
    """

    def call_sync(self, request):
        return self.reshaped(request, self.get_response(request))

    async def __acall__(self, request):
        return self.reshaped(request, await self.get_response(request))

    @staticmethod
    def reshaped(request, response):
        if response.status_code != 405 or not request.path.startswith("/api/"):
            return response
        allowed = response.get("Allow", "")
        reshaped = JsonResponse(
            {"error": {"code": "method_not_allowed", "message": f"{request.path} takes {allowed or 'other methods'}."}},
            status=405,
        )
        reshaped["Allow"] = allowed
        return reshaped


class AuditOrigin(DualMiddleware):
    """Keeps the request for the audit log (accounts/audit.py), which reads who acted and from where
    only when a change writes an entry; reset after the response, as a sync thread serves many."""

    def call_sync(self, request):
        from accounts import audit

        with audit.from_request(request):
            return self.get_response(request)

    async def __acall__(self, request):
        from accounts import audit

        with audit.from_request(request):
            return await self.get_response(request)


class SiteLocale(DualMiddleware):
    """The language of the site and the JSON API; /v1 is left alone (its errors stay English, and the hot
    path pays nothing for this).

    In order: the signed-in user's own choice (`User.language`), the header's switch (Django's language
    cookie, set by /i18n/setlang/), then Accept-Language, where any zh* tag (zh, zh-CN, zh-TW, zh-Hant…)
    means zh-Hans, the one Chinese the site speaks. English otherwise.
    """

    def call_sync(self, request):
        if request.path_info.startswith("/v1/"):
            return self.get_response(request)
        with self._activated(request):
            return self._tagged(request, self.get_response(request))

    async def __acall__(self, request):
        if request.path_info.startswith("/v1/"):
            return await self.get_response(request)
        language = await sync_to_async(language_for)(request)
        with translation.override(language):
            request.LANGUAGE_CODE = language
            return self._tagged(request, await self.get_response(request))

    def _activated(self, request):
        language = language_for(request)
        request.LANGUAGE_CODE = language
        return translation.override(language)

    @staticmethod
    def _tagged(request, response):
        patch_vary_headers(response, ("Accept-Language", "Cookie"))
        response.headers.setdefault("Content-Language", request.LANGUAGE_CODE)
        return response


def language_for(request) -> str:
    from django.conf import settings

    known = {code for code, _name in settings.LANGUAGES}
    user = getattr(request, "user", None)
    chosen = getattr(user, "language", "") if user is not None and user.is_authenticated else ""
    if chosen in known:
        return chosen
    cookie = request.COOKIES.get(settings.LANGUAGE_COOKIE_NAME, "")
    if cookie in known:
        return cookie
    for tag, _quality in parse_accept_lang_header(request.headers.get("Accept-Language", "")):
        tag = tag.lower()
        if tag.startswith("zh"):
            return "zh-hans"
        if tag.split("-")[0] == "en":
            return "en"
    return settings.LANGUAGE_CODE
