"""DeepSeek: OpenAI's wire format; its balance at /user/balance, beside the versioned API."""

from decimal import Decimal

from .spec import Balance, ProviderSpec, origin


def parse_balance(data: dict) -> Decimal:
    infos = data["balance_infos"]
    usd = next((i for i in infos if i.get("currency") == "USD"), infos[0])
    return Decimal(str(usd["total_balance"]))


SPEC = ProviderSpec(
    name="deepseek",
    label="DeepSeek (OpenAI-compatible)",
    default_base_url="https://api.deepseek.com",
    balance=Balance(url=lambda base: origin(base) + "/user/balance", parse=parse_balance),
)
