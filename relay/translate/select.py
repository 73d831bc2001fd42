"""Which translation a (caller operation, channel) pair needs, behind one small interface.

A `Translation` turns the caller's request into the channel's, and the channel's answer and
stream events back into the caller's format; `None` means a same-format pass-through.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from channels_app import providers

from ..sse import SSEParser
from . import ModelDefaults, anthropic_to_openai, openai_to_anthropic, responses_to_chat
from .responses_tools import ToolMap


@dataclass(frozen=True)
class Translation:
    upstream_operation: str
    request: Callable[[dict], dict]
    response: Callable[[dict], dict]
    stream: Callable[[], object]  # a fresh stream translator with feed(event) -> list[bytes]
    headers: dict[str, str] = field(default_factory=dict)  # added to the caller's answer


class Chained:
    """Two stream translators in a row (Anthropic events → chat chunks → Responses events)."""

    def __init__(self, first, second):
        self.first, self.second, self.parser = first, second, SSEParser()

    def feed(self, event) -> list[bytes]:
        out = []
        for produced in self.parser.feed(b"".join(self.first.feed(event))):
            out += self.second.feed(produced)
        return out

    def finish(self) -> list[bytes]:
        return self.second.finish()


def key(operation: str, api_format: str, provider: str) -> str:
    """Routes sharing a key take the same upstream body."""
    if operation == "responses" and api_format == "openai":
        return "native" if providers.get(provider).native_responses else "openai"
    return api_format


def reachable(operation: str, api_format: str, provider: str) -> bool:
    if operation == "embeddings":
        return api_format == "openai"
    return True


def translation(
    operation: str, api_format: str, provider: str, model: ModelDefaults, body: dict, include_usage: bool
) -> Translation | None:
    if operation == "chat" and api_format == "anthropic":
        return Translation(
            "messages",
            lambda b: openai_to_anthropic.request(b, model),
            lambda data: openai_to_anthropic.response(data, model),
            lambda: openai_to_anthropic.StreamTranslator(model, include_usage),
        )
    if operation == "messages" and api_format == "openai":
        return Translation(
            "chat",
            lambda b: anthropic_to_openai.request(b, model),
            lambda data: anthropic_to_openai.response(data, model),
            lambda: anthropic_to_openai.StreamTranslator(model),
        )
    if operation == "responses" and key(operation, api_format, provider) == "openai":
        tools = ToolMap(body.get("tools"))  # raises TranslationError for tools that cannot be mapped
        return Translation(
            "chat",
            lambda b: responses_to_chat.request(b, model, tools),
            lambda data: responses_to_chat.response(data, model, body, tools),
            lambda: responses_to_chat.StreamTranslator(model, body, tools),
            tools.headers(),
        )
    if operation == "responses" and api_format == "anthropic":
        tools = ToolMap(body.get("tools"))
        return Translation(
            "messages",
            lambda b: openai_to_anthropic.request(responses_to_chat.request(b, model, tools), model),
            lambda data: responses_to_chat.response(openai_to_anthropic.response(data, model), model, body, tools),
            lambda: Chained(
                openai_to_anthropic.StreamTranslator(model, True),
                responses_to_chat.StreamTranslator(model, body, tools),
            ),
            tools.headers(),
        )
    return None
