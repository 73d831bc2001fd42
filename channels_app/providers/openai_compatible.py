"""Any other host that speaks OpenAI's wire format; its balance where it has OpenRouter's /credits."""

from decimal import Decimal

from .spec import Balance, ProviderSpec


def parse_credits(data: dict) -> Decimal:
    credits = data["data"]
    return Decimal(str(credits["total_credits"])) - Decimal(str(credits["total_usage"]))


SPEC = ProviderSpec(
    name="openai-compatible",
    label="Other OpenAI-compatible",
    balance=Balance(url=lambda base: base.rstrip("/") + "/credits", parse=parse_credits, absent_on_404=True),
)
