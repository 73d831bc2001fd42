"""Which translation a (caller operation, channel format) pair needs."""

from __future__ import annotations

from . import anthropic_to_openai, openai_to_anthropic

# caller operation -> {channel format: (upstream operation, translation module or None)}
ROUTES = {
    "chat": {"openai": ("chat", None), "anthropic": ("messages", openai_to_anthropic)},
    "messages": {"anthropic": ("messages", None), "openai": ("chat", anthropic_to_openai)},
    "embeddings": {"openai": ("embeddings", None)},
    "responses": {"openai": ("responses", None)},
}


def reachable(operation: str, channel_format: str) -> bool:
    return channel_format in ROUTES[operation]


def upstream_operation(operation: str, channel_format: str) -> str:
    return ROUTES[operation][channel_format][0]


def translator(operation: str, channel_format: str):
    """The translation module for this pair, or None for a same-format pass-through."""
    return ROUTES[operation][channel_format][1]
