"""Token usage from upstream answers, in billing's terms, and local estimates when none is sent."""

from __future__ import annotations

import math

from billing.pricing import Usage

# A count above this (or negative, fractional, not a number) is not a count: the call is billed on
# TokenHub's own estimate instead. Large but whole counts are read, billed at most at the hold, and
# their excess counts against the channel; this bound only keeps costs within Decimal's precision.
MAX_TOKENS = 10**12


class UnreadableUsage(ValueError):
    """An upstream's usage that is not a count of tokens."""


def _count(value) -> int:
    if value is None:
        return 0
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_TOKENS:
        raise UnreadableUsage(f"token count {str(value)[:40]} is not a whole number from 0 to {MAX_TOKENS:,}")
    return value


def _object(value) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise UnreadableUsage("usage details are not an object")
    return value


def _first(usage: dict, *names: str):
    return next((usage[name] for name in names if usage.get(name) is not None), None)


def from_openai(usage) -> Usage | None:
    """Chat Completions / Embeddings usage. prompt_tokens includes cached tokens; completion includes reasoning.

    None when the upstream sent none, or sent counts that are not counts (then the call is estimated).
    """
    if not usage:
        return None
    try:
        usage = _object(usage)
        prompt = _count(_first(usage, "prompt_tokens", "input_tokens"))
        completion = _count(_first(usage, "completion_tokens", "output_tokens"))
        prompt_details = _object(_first(usage, "prompt_tokens_details", "input_tokens_details"))
        completion_details = _object(_first(usage, "completion_tokens_details", "output_tokens_details"))
        cached = min(_count(prompt_details.get("cached_tokens")), prompt)
        reasoning = min(_count(completion_details.get("reasoning_tokens")), completion)
    except UnreadableUsage:
        return None
    return Usage(
        input_tokens=prompt - cached, output_tokens=completion, cache_read_tokens=cached, reasoning_tokens=reasoning
    )


def from_anthropic(usage) -> Usage | None:
    """Messages usage: input_tokens excludes cached reads and cache writes, which are reported apart."""
    if not usage:
        return None
    try:
        usage = _object(usage)
        return Usage(
            input_tokens=_count(usage.get("input_tokens")),
            output_tokens=_count(usage.get("output_tokens")),
            cache_read_tokens=_count(usage.get("cache_read_input_tokens")),
            cache_write_tokens=_count(usage.get("cache_creation_input_tokens")),
        )
    except UnreadableUsage:
        return None


def merge_anthropic(start: Usage | None, delta) -> Usage | None:
    """message_start carries input counts; message_delta the final output count (and, lately, input too)."""
    if delta is None:
        return start
    base = start or Usage()
    try:
        delta = _object(delta)
        return Usage(
            input_tokens=_count(delta.get("input_tokens")) or base.input_tokens,
            output_tokens=_count(delta.get("output_tokens")) or base.output_tokens,
            cache_read_tokens=_count(delta.get("cache_read_input_tokens")) or base.cache_read_tokens,
            cache_write_tokens=_count(delta.get("cache_creation_input_tokens")) or base.cache_write_tokens,
        )
    except UnreadableUsage:
        return None


# --- Usage in each caller format (a translated answer reports the channel's usage in the caller's terms)


def as_openai(usage: Usage | None) -> dict:
    """Chat Completions usage: prompt_tokens counts cached reads and cache writes too."""
    usage = usage or Usage()
    prompt = usage.input_tokens + usage.cache_read_tokens + usage.cache_write_tokens
    return {
        "prompt_tokens": prompt,
        "completion_tokens": usage.output_tokens,
        "total_tokens": prompt + usage.output_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cache_read_tokens},
    }


def as_anthropic(usage: Usage | None) -> dict:
    usage = usage or Usage()
    return {
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "cache_read_input_tokens": usage.cache_read_tokens,
        "cache_creation_input_tokens": usage.cache_write_tokens,
    }


def as_responses(usage: Usage | None) -> dict:
    """Responses API usage: input_tokens counts cached reads; output_tokens counts reasoning."""
    usage = usage or Usage()
    prompt = usage.input_tokens + usage.cache_read_tokens + usage.cache_write_tokens
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": usage.cache_read_tokens},
        "output_tokens": usage.output_tokens,
        "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
        "total_tokens": prompt + usage.output_tokens,
    }


def estimate_tokens_from_bytes(byte_count: int) -> int:
    """A rough local count (about 4 bytes a token) for upstreams that report nothing."""
    return math.ceil(byte_count / 4)


# --- The most input a call can be billed for -------------------------------------------------

# An image costs its provider's tokens whatever its URL's length: up to ~48,000 on gpt-4o-mini (a
# 768x2048 picture at high detail, by OpenAI's published rates), ~1,600 on Claude, 258 on Gemini.
IMAGE_PART_TOKENS = 50_000
# Offering tools makes providers add a system prompt of their own (Anthropic documents ~350-530 tokens).
TOOLS_OVERHEAD_TOKENS = 1_000
UNKNOWN_CONTEXT_TOKENS = 200_000
IMAGE_PARTS = frozenset({"image_url", "image", "input_image"})
FILE_PARTS = frozenset({"document", "file", "input_file", "input_audio"})
# Bytes that may name one of those part types; "\u" because an escaped type name reads the same.
_MARKERS = (*(f'"{name}"'.encode() for name in sorted(IMAGE_PARTS | FILE_PARTS)), b"\\u")


def input_token_bound(raw: bytes, body: dict, context_window: int | None) -> int:
    """The most input tokens a call can be billed for (the hold pays for this many).

    Text is at most one token per byte of the request, so its bytes bound it. A part the provider
    fetches or decodes itself (an image, document, file or audio part, given by URL or file id) is
    not bounded by its bytes: each adds an allowance, IMAGE_PART_TOKENS per image part and the
    model's context window (UNKNOWN_CONTEXT_TOKENS when unknown) per document, file or audio part,
    TOOLS_OVERHEAD_TOKENS when tools are offered, and the context window when the provider fetches
    or runs something itself (server-side tools, MCP servers, web search). All that is added is at
    most the context window, which no call's input can exceed. The body is walked for parts only
    when its bytes name such a part type, so a text call pays a byte scan.
    """
    window = context_window or UNKNOWN_CONTEXT_TOKENS
    extra = TOOLS_OVERHEAD_TOKENS if body.get("tools") else 0
    if _fetches_for_itself(body):
        extra += window
    if any(marker in raw for marker in _MARKERS):
        for part_type in _part_types(body):
            if part_type in IMAGE_PARTS:
                extra += IMAGE_PART_TOKENS
            elif part_type in FILE_PARTS:
                extra += window
    # Whatever the provider adds, one call's input cannot exceed the model's context window.
    return len(raw) + min(extra, window)


# Request fields that make the provider fetch or run something itself and bill what it read as input:
# MCP servers, a code container, OpenAI's web search, a stored conversation.
SELF_FETCHING_FIELDS = ("mcp_servers", "container", "web_search_options", "conversation")
CLIENT_TOOL_TYPES = frozenset({"function", "custom", "namespace", "local_shell"})  # run by the caller


def _fetches_for_itself(body: dict) -> bool:
    """Does the call let the provider read things of unknown size (server-side tools, MCP, search)?"""
    if any(body.get(name) is not None for name in SELF_FETCHING_FIELDS):  # `web_search_options: {}` turns it on
        return True
    tools = body.get("tools")
    if isinstance(tools, list):
        # A tool with a type of its own (web_search_20250305, web_fetch_…, code_execution_…, file_search)
        # runs at the provider; client tools have none, or "function" / "custom".
        return any(isinstance(t, dict) and t.get("type") not in (None, *CLIENT_TOOL_TYPES) for t in tools)
    return False


def _part_types(value):
    """The `type` of every object in the body, walked without recursion (bodies may nest deeply)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if isinstance(item.get("type"), str):
                yield item["type"]
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
