"""What the pricing page shows of each plan: its name in the reader's language and the price per method."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from django.utils.translation import get_language

from ..models import ExchangeRate, PaymentProvider, Plan
from . import registry
from .base import CENT


@dataclass
class Price:
    method: str
    label: str
    amount: Decimal | None  # None: the method cannot charge this plan (no exchange rate)
    currency: str


@dataclass
class Offer:
    plan: Plan
    name: str
    description: str
    prices: list[Price] = field(default_factory=list)


def in_language(plan: Plan) -> tuple[str, str]:
    if (get_language() or "").startswith("zh"):
        return plan.name_zh or plan.name, plan.description_zh or plan.description
    return plan.name, plan.description


def offers(plans) -> list[Offer]:
    rates = {rate.currency: rate.cny_per_unit for rate in ExchangeRate.objects.all()}
    methods = registry.available()
    found = []
    for plan in plans:
        name, description = in_language(plan)
        offer = Offer(plan=plan, name=name, description=description)
        for method in methods:
            label = str(PaymentProvider(method.name).label)
            currency = method.charge_currency or plan.currency
            rate = Decimal(1) if currency == plan.currency else rates.get(plan.currency)
            if plan.chosen_amount:
                amount = None if rate is None else (rate).quantize(Decimal("0.0001"))
            else:
                amount = None if rate is None else (plan.price * rate).quantize(CENT)
            offer.prices.append(Price(method=method.name, label=label, amount=amount, currency=currency))
        found.append(offer)
    return found
