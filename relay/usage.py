"""Token usage from upstream answers, in billing's terms, and local estimates when none is sent."""

from __future__ import annotations

import math

from billing.pricing import Usage


def from_openai(usage: dict | None) -> Usage | None:
    """Chat Completions / Embeddings usage. prompt_tokens includes cached tokens; completion includes reasoning."""
    if not usage:
        return None
    prompt = int(usage.get("prompt_tokens") or usage.get("input_tokens") or 0)
    completion = int(usage.get("completion_tokens") or usage.get("output_tokens") or 0)
    prompt_details = usage.get("prompt_tokens_details") or usage.get("input_tokens_details") or {}
    completion_details = usage.get("completion_tokens_details") or usage.get("output_tokens_details") or {}
    cached = int(prompt_details.get("cached_tokens") or 0)
    return Usage(
        input_tokens=max(prompt - cached, 0),
        output_tokens=completion,
        cache_read_tokens=cached,
        reasoning_tokens=int(completion_details.get("reasoning_tokens") or 0),
    )


def from_anthropic(usage: dict | None) -> Usage | None:
    """Messages usage: input_tokens excludes cached reads and cache writes, which are reported apart."""
    if not usage:
        return None
    return Usage(
        input_tokens=int(usage.get("input_tokens") or 0),
        output_tokens=int(usage.get("output_tokens") or 0),
        cache_read_tokens=int(usage.get("cache_read_input_tokens") or 0),
        cache_write_tokens=int(usage.get("cache_creation_input_tokens") or 0),
    )


def merge_anthropic(start: Usage | None, delta: dict | None) -> Usage | None:
    """message_start carries input counts; message_delta the final output count (and, lately, input too)."""
    if delta is None:
        return start
    base = start or Usage()
    return Usage(
        input_tokens=int(delta.get("input_tokens") or base.input_tokens),
        output_tokens=int(delta.get("output_tokens") or base.output_tokens),
        cache_read_tokens=int(delta.get("cache_read_input_tokens") or base.cache_read_tokens),
        cache_write_tokens=int(delta.get("cache_creation_input_tokens") or base.cache_write_tokens),
    )


def estimate_tokens_from_bytes(byte_count: int) -> int:
    """A rough local count (about 4 bytes a token) for upstreams that report nothing."""
    return math.ceil(byte_count / 4)
