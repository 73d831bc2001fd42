"""The payment providers TokenHub knows, by name; each is offered only when its keys are configured."""

from __future__ import annotations

from functools import cache

from .base import Provider


@cache
def _all() -> dict[str, Provider]:
    # Imported on first use: each provider's library is loaded only by the processes that take payments.
    from .alipay_pay import AlipayProvider
    from .stripe_pay import StripeProvider
    from .wechat_pay import WeChatProvider

    return {provider.name: provider for provider in (StripeProvider(), AlipayProvider(), WeChatProvider())}


def get(name: str) -> Provider:
    try:
        return _all()[name]
    except KeyError:
        raise LookupError(f"no payment provider {name!r}") from None


def available() -> list[Provider]:
    """The configured providers, in the order the checkout offers them."""
    return [provider for provider in _all().values() if provider.configured()]


def checkout_origins() -> list[str]:
    """Origins the buy form may be redirected to (the CSP's form-action): the configured providers' pages."""
    origins = []
    for provider in available():
        origins += provider.checkout_origins()
    return sorted(set(origins))
