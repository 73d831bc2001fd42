"""Errors in the caller's own API format, so the official SDKs raise their proper exception classes."""

from __future__ import annotations

import json

from django.http import HttpResponse

OPENAI = "openai"
ANTHROPIC = "anthropic"

# HTTP status -> (OpenAI error type, Anthropic error type)
ERROR_TYPES = {
    400: ("invalid_request_error", "invalid_request_error"),
    401: ("authentication_error", "authentication_error"),
    402: ("insufficient_quota", "billing_error"),
    403: ("permission_error", "permission_error"),
    404: ("not_found_error", "not_found_error"),
    413: ("invalid_request_error", "request_too_large"),
    429: ("rate_limit_error", "rate_limit_error"),
    500: ("api_error", "api_error"),
    502: ("api_error", "api_error"),
    503: ("api_error", "overloaded_error"),
    504: ("api_error", "api_error"),
}


def caller_format(request) -> str:
    """Anthropic's SDK sends anthropic-version (and x-api-key); everything else is OpenAI-style."""
    return caller_format_of(request.path, request.headers)


def caller_format_of(path: str, headers) -> str:
    if "anthropic-version" in headers or path.startswith("/v1/messages"):
        return ANTHROPIC
    return OPENAI


def error_body(api_format: str, status: int, message: str, code: str | None = None) -> dict:
    openai_type, anthropic_type = ERROR_TYPES.get(status, ("api_error", "api_error"))
    if api_format == ANTHROPIC:
        return {"type": "error", "error": {"type": anthropic_type, "message": message}}
    return {"error": {"message": message, "type": openai_type, "param": None, "code": code or openai_type}}


def error_response(
    api_format: str, status: int, message: str, *, code: str | None = None, headers: dict | None = None
) -> HttpResponse:
    response = HttpResponse(
        json.dumps(error_body(api_format, status, message, code)), status=status, content_type="application/json"
    )
    for name, value in (headers or {}).items():
        response[name] = value
    return response
