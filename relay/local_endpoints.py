"""The /v1 endpoints that answer from TokenHub itself: models, token counting, the key's usage."""

from __future__ import annotations

import json

import httpx
from asgiref.sync import sync_to_async
from django.db import connection
from django.http import HttpResponse, JsonResponse

from billing import ledger
from billing.models import UsageRecord
from channels_app import providers, routing
from channels_app.models import ChannelStatus
from channels_app.providers import client
from channels_app.urlcheck import UnsafeUpstream

from . import usage as usage_of
from .admission import authenticate, forwarded_headers, read_json
from .call import RelayError
from .errors import ANTHROPIC, OPENAI, error_response
from .usage import MAX_TOKENS

USAGE_ROWS = 20


def _error(api_format: str, exc: RelayError):
    return error_response(api_format, exc.status, exc.message, code=exc.code, headers=exc.headers)


def available_models(snap: routing.Snapshot, allowed: tuple[str, ...], user_id: int) -> list[routing.ModelInfo]:
    found = []
    for name, info in sorted(snap.models.items()):
        active = any(r.status == ChannelStatus.ACTIVE and r.open_to(user_id) for r in snap.routes.get(name, ()))
        if active and info.prices is not None and (not allowed or any(n in allowed for n in info.names)):
            found.append(info)
    return found


async def _caller(request):
    """(caller format, identity or an error response): Anthropic's SDK sends anthropic-version."""
    api_format = ANTHROPIC if "anthropic-version" in request.headers else OPENAI
    try:
        return api_format, await authenticate(request)
    except RelayError as exc:
        return api_format, _error(api_format, exc)


async def list_models(request):
    api_format, identity = await _caller(request)
    if isinstance(identity, HttpResponse):
        return identity
    models = available_models(await routing.asnapshot(), identity.allowed_models, identity.user_id)
    if api_format == ANTHROPIC:
        data = [
            {"type": "model", "id": m.name, "display_name": m.name, "created_at": "2025-01-01T00:00:00Z"}
            for m in models
        ]
        first, last = (data[0]["id"], data[-1]["id"]) if data else (None, None)
        return JsonResponse({"data": data, "has_more": False, "first_id": first, "last_id": last})
    data = [{"id": m.name, "object": "model", "created": 0, "owned_by": "tokenhub"} for m in models]
    return JsonResponse({"object": "list", "data": data})


async def count_tokens(request):
    """Forwarded to an Anthropic channel when one serves the model; estimated locally otherwise.

    An answer that is not a token count (a hostile or broken channel) is ignored like a failure.
    """
    try:
        body, body_bytes = read_json(request)
        identity = await authenticate(request)
        if not isinstance(body.get("model"), str):
            raise RelayError(400, "model: a model name (string) is required.", "invalid_request")
        forward = forwarded_headers(request)
        plan = await routing.aplan(body["model"], identity.allowed_models, user_id=identity.user_id)
    except RelayError as exc:
        return _error(ANTHROPIC, exc)
    except routing.Refusal as refusal:
        return error_response(ANTHROPIC, refusal.status, refusal.message, code=refusal.code)
    for route in (r for r in plan.routes if r.api_format == ANTHROPIC):
        counted = await _count_upstream(plan, route, body, forward)
        if counted is not None:
            return JsonResponse({"input_tokens": counted})
    return JsonResponse({"input_tokens": usage_of.estimate_tokens_from_bytes(body_bytes), "estimated": True})


async def _count_upstream(plan, route, body: dict, forward: dict[str, str]) -> int | None:
    keys = plan.upstream_keys(route.channel_id)
    if not keys:
        return None
    spec = providers.get(route.provider)
    headers = {**spec.auth_headers(keys[0]), **forward, "content-type": "application/json"}
    content = json.dumps({**body, "model": route.upstream_model}).encode()
    url = spec.endpoint(route.base_url, "count_tokens")
    try:
        response = await client.post_streaming(url, headers, content, route.channel_id)
        try:
            answer = await response.aread()
        finally:
            await response.aclose()
        if not response.is_success:
            return None
        count = json.loads(answer).get("input_tokens")
    except (httpx.HTTPError, UnsafeUpstream, ValueError, AttributeError, RecursionError):
        return None
    return count if isinstance(count, int) and not isinstance(count, bool) and 0 <= count <= MAX_TOKENS else None


def _usage_payload(user_id: int, key_id: int) -> dict:
    try:
        from accounts.models import ApiKey

        spent = ApiKey.objects.filter(pk=key_id).values_list("spent_usd", flat=True).first()
        rows = UsageRecord.objects.filter(api_key_id=key_id).order_by("-created_at", "-id")[:USAGE_ROWS]
        return {
            "object": "usage",
            "balance_usd": format(ledger.balance_of(user_id), "f"),
            "key_spent_usd": format(spent, "f"),
            "data": [
                {
                    "request_id": r.request_id,
                    "created_at": r.created_at.isoformat(),
                    "model": r.model,
                    "input_tokens": r.input_tokens,
                    "output_tokens": r.output_tokens,
                    "cache_read_tokens": r.cache_read_tokens,
                    "cache_write_tokens": r.cache_write_tokens,
                    "cost_usd": format(r.cost_usd, "f"),
                    "status": r.status,
                    "estimated": r.estimated,
                }
                for r in rows
            ],
        }
    finally:
        connection.close()


async def key_usage(request):
    _api_format, identity = await _caller(request)
    if isinstance(identity, HttpResponse):
        return identity
    payload = await sync_to_async(_usage_payload, thread_sensitive=False)(identity.user_id, identity.key_id)
    return JsonResponse(payload)
