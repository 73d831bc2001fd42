"""Admission: read the body, authenticate the key, validate, route, and prepare what each kind of
channel is sent. Everything here happens before money moves; a refusal is a RelayError."""

from __future__ import annotations

import json
import re

from django.conf import settings
from django.core.exceptions import RequestDataTooBig

from accounts import keys
from accounts.keys import KeyIdentity
from channels_app import routing

from . import translate, validation
from .call import OPERATIONS, Prepared, RelayError
from .translate import select


def presented_key(request) -> str:
    auth = request.headers.get("authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip()
    return request.headers.get("x-api-key", "").strip()


async def authenticate(request) -> KeyIdentity:
    raw = presented_key(request)
    if not raw:
        raise RelayError(
            401, "Missing API key: send it as 'Authorization: Bearer sk-hub-…' or 'x-api-key'.", "missing_api_key"
        )
    identity = await keys.alookup(raw)
    if identity is None:
        raise RelayError(401, "Invalid API key: no TokenHub key matches it.", "invalid_api_key")
    refusal = identity.refusal()
    if refusal:
        if identity.payment_hold and identity.user_active:  # a known key of an account that owes money
            raise RelayError(403, refusal, "account_on_hold")
        raise RelayError(401, refusal, "invalid_api_key")
    return identity


def read_json(request) -> tuple[dict, int]:
    try:
        raw = request.body
    except RequestDataTooBig:
        raise _too_large() from None
    if len(raw) > settings.TOKENHUB_MAX_BODY_BYTES:
        raise _too_large()
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise RelayError(400, f"The request body is not valid JSON: {exc}.", "invalid_json") from None
    except RecursionError:
        raise RelayError(400, "The request body is nested too deeply to be read.", "invalid_json") from None
    if not isinstance(body, dict):
        raise RelayError(400, "The request body must be a JSON object.", "invalid_json")
    if _LONE_SURROGATE_HINT.search(raw) and _has_lone_surrogate(body):
        raise RelayError(400, "The request body holds a lone UTF-16 surrogate, which is not text.", "invalid_json")
    return body, len(raw)


# A surrogate as a \u escape or as (invalid) UTF-8 bytes: json.loads lets both through, and the body then
# cannot be encoded for the upstream (a UnicodeEncodeError there was the channel's 502 and health event).
_LONE_SURROGATE_HINT = re.compile(rb"\\u[dD][89a-fA-F]|\xed[\xa0-\xbf]")


def _has_lone_surrogate(body: dict) -> bool:
    try:
        json.dumps(body, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _too_large() -> RelayError:
    limit_mb = settings.TOKENHUB_MAX_BODY_BYTES / 1_000_000
    return RelayError(413, f"The request body is larger than TokenHub's limit of {limit_mb:g} MB.", "request_too_large")


def validate(operation: str, body: dict) -> None:
    try:
        validation.check(operation, body, needs_messages=OPERATIONS[operation][1])
    except validation.InvalidBody as exc:
        raise RelayError(400, str(exc), "invalid_request") from None


FORWARDED_HEADERS = ("anthropic-version", "anthropic-beta")


def forwarded_headers(request) -> dict[str, str]:
    """The caller's Anthropic headers an Anthropic channel is sent; visible ASCII only (they go on a wire)."""
    found = {}
    for name in FORWARDED_HEADERS:
        value = request.headers.get(name)
        if value is None:
            continue
        if not value.isascii() or not value.isprintable():
            raise RelayError(400, f"{name}: the header must be printable ASCII.", "invalid_request")
        found[name] = value
    return found


def requested_output(body: dict) -> int | None:
    """The caller's own cap on the answer's length: the largest of the fields set, since a translator
    or an upstream may read any one of them (validation.check made each a positive integer)."""
    caps = [body[name] for name in validation.TOKEN_LIMITS if body.get(name)]
    return max(caps) if caps else None


def output_budget(operation: str, body: dict, model: routing.ModelInfo) -> int:
    """The most output tokens one answer may have, which the hold pays for: the caller's cap (never
    above the model's maximum), else the model's maximum, else its default. When the caller set no
    cap, the upstream is told this one (failover.bind_output), so it cannot answer beyond the hold."""
    if operation == "embeddings":
        return 0
    budget = requested_output(body) or model.max_output_tokens or model.default_output_tokens
    return min(budget, model.max_output_tokens) if model.max_output_tokens else budget


def held_output_tokens(operation: str, body: dict, budget: int) -> int:
    """Output tokens the hold covers: the budget for each of the `n` answers a chat call asks for."""
    return budget * ((body.get("n") or 1) if operation == "chat" else 1)


async def plan_routes(
    operation: str, identity: KeyIdentity, model_name: str
) -> tuple[routing.Plan, list[routing.Route]]:
    try:
        plan = await routing.aplan(model_name, identity.allowed_models, user_id=identity.user_id)
    except routing.Refusal as refusal:
        raise RelayError(refusal.status, refusal.message, refusal.code) from None
    routes = [r for r in plan.routes if select.reachable(operation, r.api_format, r.provider)]
    if not routes:
        formats = ", ".join(sorted({r.api_format for r in plan.routes}))
        raise RelayError(
            503,
            f'"{model_name}" is served only by {formats}-format channels, which cannot take a '
            f"{operation} call from this endpoint.",
            "no_compatible_channel",
        )
    return plan, routes


def prepare(operation: str, body: dict, model: translate.ModelDefaults, routes, include_usage: bool, budget: int):
    """What each kind of channel among the routes is sent; a request that cannot be translated
    is refused here, before any money moves. `budget`: the output budget the hold pays for."""
    # Translators always write a cap (at most the budget); a passed-through body needs one if it has none.
    unbounded = budget if budget and not requested_output(body) else None
    prepared = {}
    for route in routes:
        key = select.key(operation, route.api_format, route.provider)
        if key in prepared:
            continue
        try:
            found = select.translation(operation, route.api_format, route.provider, model, body, include_usage)
            upstream_body = found.request(body) if found else body
        except translate.TranslationError as exc:
            raise RelayError(400, str(exc), "invalid_request") from None
        except (TypeError, AttributeError, KeyError, ValueError, IndexError, RecursionError):
            # validation.check covers the fields translators read; this catches a shape it missed.
            raise RelayError(
                400,
                "The request has a field of an unexpected type or shape, so it cannot be translated for "
                "this model's channels.",
                "invalid_request",
            ) from None
        upstream_operation = found.upstream_operation if found else operation
        prepared[key] = Prepared(upstream_operation, upstream_body, found, None if found else unbounded)
    return prepared


def translation_growth(prepared: dict, caller_bytes: int) -> int:
    """How many bytes more than the caller sent the largest translated body has (0 when none is larger).

    The hold bounds input tokens by bytes; a translation can write more than it was given (a
    namespace's functions under longer names, a free-form tool's schema), and the upstream bills
    what it is sent.
    """
    sizes = [
        len(json.dumps(p.body, separators=(",", ":"), ensure_ascii=False).encode())
        for p in prepared.values()
        if p.translation is not None
    ]
    return max(0, max(sizes, default=0) - caller_bytes)
