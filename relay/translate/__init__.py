"""Format translation between OpenAI Chat Completions and Anthropic Messages, both directions.

Pure functions and stream state machines, no I/O. The relay picks a translator from
(caller format, channel format); same-format calls are passed through untouched.

What is dropped, by design (no equivalent on the other side):
- OpenAI → Anthropic: `reasoning_content` on assistant turns (Anthropic needs its own signed
  thinking blocks), `logprobs`, `seed`, `presence/frequency_penalty`, `logit_bias`, `metadata`,
  `reasoning_effort`, `stream_options` (usage is always reported).
- Anthropic → OpenAI: `top_k`, `thinking` settings, `cache_control` markers, redacted thinking
  blocks, `service_tier`.
Thinking content is mapped both ways where both sides have a form: Anthropic `thinking` blocks ⇄
the `reasoning_content` field that DeepSeek-style OpenAI-compatible providers use.
"""

from __future__ import annotations

from dataclasses import dataclass


class TranslationError(ValueError):
    """The request cannot be expressed in the channel's format; the message names the field."""

    def __init__(self, field: str, message: str):
        self.field = field
        super().__init__(f"{field}: {message}")


@dataclass(frozen=True)
class ModelDefaults:
    """What a translation needs to know about the model."""

    name: str  # the name the caller used, echoed back in responses
    default_output_tokens: int
    max_output_tokens: int | None = None

    def output_budget(self, requested: int | None) -> int:
        budget = requested or self.default_output_tokens
        return min(budget, self.max_output_tokens) if self.max_output_tokens else budget


OPENAI_TO_ANTHROPIC_STOP = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}
ANTHROPIC_TO_OPENAI_STOP = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
    "pause_turn": "stop",
    "model_context_window_exceeded": "length",
}
