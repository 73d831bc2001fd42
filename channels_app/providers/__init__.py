"""The provider registry: one module per provider, each with its `ProviderSpec` (see `spec`).

Adding a provider is one module with its SPEC and one line in `_SPECS` below; channels store the
provider's name, and the forms, the admin, the relay and the checks read everything else from its spec.
The outbound HTTP lives beside it: `client` (the pooled client), `pinning` (the SSRF check at connect
time), `http11` (the HTTP/1.1 transport), `probes` (test calls, balances, error classes).
"""

from __future__ import annotations

from . import anthropic, deepseek, gemini, openai, openai_compatible
from .spec import ProviderSpec

_SPECS = (
    openai.SPEC,
    anthropic.SPEC,
    gemini.SPEC,
    deepseek.SPEC,
    openai_compatible.SPEC,
)
PROVIDERS: dict[str, ProviderSpec] = {spec.name: spec for spec in _SPECS}


def get(name: str) -> ProviderSpec:
    """The spec of a registered provider (KeyError for a name that is not one)."""
    return PROVIDERS[name]


def names() -> list[str]:
    return list(PROVIDERS)


def choices() -> list[tuple[str, str]]:
    """(name, label) of every provider: the channel's `provider` field's choices."""
    return [(spec.name, spec.label) for spec in _SPECS]
