from __future__ import annotations

import functools

from django.views.decorators.csrf import csrf_exempt

from . import local_endpoints, pipeline
from .call import new_request_id
from .errors import ANTHROPIC, OPENAI, caller_format, error_response


def relay_endpoint(method: str | None):
    """Async endpoint taking one method (None: any); a wrong method is a 405 in the caller's format.

    Every answer carries the call's `x-request-id` (the id its usage record and logs have), whether
    relayed, answered here or refused. The relay authenticates sk-hub keys, not cookies: CSRF does
    not apply (and /v1 runs without the site's middleware).
    """

    def decorate(view):
        @csrf_exempt
        @functools.wraps(view)
        async def wrapper(request, *args, **kwargs):
            request.request_id = new_request_id()
            if method is not None and request.method != method:
                response = error_response(caller_format(request), 405, f"{request.path} takes {method} only.")
                response["allow"] = method
            else:
                response = await view(request, *args, **kwargs)
            response["x-request-id"] = request.request_id
            return response

        return wrapper

    return decorate


@relay_endpoint("POST")
async def chat_completions(request):
    return await pipeline.handle(request, "chat", OPENAI)


@relay_endpoint("POST")
async def messages(request):
    return await pipeline.handle(request, "messages", ANTHROPIC)


@relay_endpoint("POST")
async def embeddings(request):
    return await pipeline.handle(request, "embeddings", OPENAI)


@relay_endpoint("POST")
async def responses(request):
    return await pipeline.handle(request, "responses", OPENAI)


@relay_endpoint("POST")
async def count_tokens(request):
    return await local_endpoints.count_tokens(request)


@relay_endpoint("GET")
async def models(request):
    return await local_endpoints.list_models(request)


@relay_endpoint("GET")
async def usage(request):
    return await local_endpoints.key_usage(request)


@relay_endpoint(None)
async def not_served(request, path: str = ""):
    """Any /v1 route TokenHub does not serve: a clear 404 in the caller's format."""
    return error_response(
        caller_format(request),
        404,
        f"TokenHub does not serve {request.method} {request.path}. It serves /v1/chat/completions, /v1/messages, "
        "/v1/messages/count_tokens, /v1/models, /v1/embeddings, /v1/responses and /v1/usage.",
        code="unknown_endpoint",
    )
