from __future__ import annotations

from .errors import caller_format, error_response


async def not_served(request, path: str = ""):
    """Any /v1 route TokenHub does not serve: a clear 404 in the caller's format."""
    return error_response(
        caller_format(request),
        404,
        f"TokenHub does not serve {request.method} {request.path}. "
        "It serves /v1/chat/completions, /v1/messages and /v1/models (see /docs).",
        code="unknown_endpoint",
    )
