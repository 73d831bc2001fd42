"""What TokenHub knows about one provider: a `ProviderSpec`, one per provider module in this package.

Everything that differs between providers is a field here (the wire format, the default base URL, the
paths of each operation, the auth headers, the output-budget field, the markers in an error body that
say the key is dead or out of credit, the balance API and how to read its answer, the body of a
one-token probe), so the relay, the checks and the forms ask the spec and never test a provider's name.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal

OPENAI, ANTHROPIC = "openai", "anthropic"  # the wire formats
ANTHROPIC_VERSION = "2023-06-01"
MAX_BALANCE_ANSWER = 64 * 1024  # bytes
MAX_BALANCE = Decimal(10) ** 11  # USD: the column holds 12 digits before the point

# Operation -> path under the channel's base URL, per wire format.
OPENAI_PATHS = {
    "chat": "/chat/completions",
    "models": "/models",
    "embeddings": "/embeddings",
    "responses": "/responses",
}
ANTHROPIC_PATHS = {"messages": "/v1/messages", "count_tokens": "/v1/messages/count_tokens", "models": "/v1/models"}

# Text in an error body that marks the key, not the request, as the problem (any provider may say it).
AUTH_MARKERS = ("deactivated", "invalid_api_key")
QUOTA_MARKERS = ("insufficient_quota", "credit balance is too low")


def bearer(api_key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {api_key}"}


def probe_chat(model: str) -> tuple[str, dict]:
    return "chat", {"model": model, "max_tokens": 1, "messages": [{"role": "user", "content": "ping"}]}


def origin(base_url: str) -> str:
    """The base URL without a trailing /v1 (for APIs that live beside the versioned one)."""
    base = base_url.rstrip("/")
    return base[:-3] if base.endswith("/v1") else base


@dataclass(frozen=True)
class Balance:
    """A provider's balance API: where to ask, how to read the answer (USD), whether a 404 means "none"."""

    url: Callable[[str], str]  # base URL -> balance URL
    parse: Callable[[dict], Decimal]  # the JSON answer (floats read as Decimal) -> remaining USD
    absent_on_404: bool = False

    def read(self, content: bytes) -> Decimal:
        """The remaining USD in an answer; ValueError for one that is not a plausible amount.

        The answer comes from wherever a stranger's base URL points: size, nesting and numbers are
        all checked before the figure is trusted (it is stored, and can pause the channel).
        """
        if len(content) > MAX_BALANCE_ANSWER:
            raise ValueError("the balance answer is too large")
        try:
            found = self.parse(json.loads(content, parse_float=Decimal))
        except (ArithmeticError, RecursionError) as exc:
            raise ValueError(f"the balance answer is not an amount: {type(exc).__name__}") from None
        if not isinstance(found, Decimal) or not found.is_finite() or abs(found) >= MAX_BALANCE:
            raise ValueError("the balance answer is not an amount")
        return found.quantize(Decimal("0.00000001"))


@dataclass(frozen=True)
class ProviderSpec:
    name: str  # stored on channels: never rename
    label: str
    wire_format: str = OPENAI
    default_base_url: str = ""
    paths: dict[str, str] = field(default_factory=lambda: OPENAI_PATHS)
    auth_headers: Callable[[str], dict[str, str]] = bearer
    # The field that caps a Chat Completions answer (OpenAI's reasoning models refuse max_tokens).
    chat_output_field: str = "max_tokens"
    # Whether the channel serves OpenAI's Responses API itself (else Responses calls are translated).
    native_responses: bool = False
    balance: Balance | None = None
    probe: Callable[[str], tuple[str, dict]] = probe_chat
    auth_markers: tuple[str, ...] = AUTH_MARKERS
    quota_markers: tuple[str, ...] = QUOTA_MARKERS

    def endpoint(self, base_url: str, operation: str) -> str:
        base = base_url.rstrip("/")
        path = self.paths[operation]
        # A base URL given with the version the paths already carry (Anthropic's /v1) is tolerated.
        if path.startswith("/v1/") and base.endswith("/v1"):
            base = base[:-3]
        return base + path
