"""The models page, the marketplace's front window: each model with its prices, how many channels
serve it (for this visitor: private channels count only for those they are shared with), and how those
calls went over the last 24 hours (billing's usage records, cached)."""

from __future__ import annotations

from dataclasses import dataclass

from . import routing
from .models import CAPABILITIES, CatalogModel, ChannelStatus


@dataclass(frozen=True)
class ModelRow:
    model: CatalogModel
    channels: int
    calls: int
    success_rate: object  # Decimal percentage or None
    median_latency_ms: int | None

    @property
    def available(self) -> bool:
        return self.channels > 0


@dataclass(frozen=True)
class Filters:
    query: str = ""
    provider: str = ""
    capability: str = ""
    only_available: bool = False


def rows(user_id: int, filters: Filters) -> list[ModelRow]:
    from billing.reports import model_health  # a read of billing's records (cached), as spend.py does

    snap = routing.snapshot()
    serving = {
        name: sum(1 for r in routes if r.status == ChannelStatus.ACTIVE and r.open_to(user_id))
        for name, routes in snap.routes.items()
    }
    health = model_health()
    models = CatalogModel.objects.prefetch_related("aliases").order_by("name")
    if filters.query:
        models = models.filter(name__icontains=filters.query) | models.filter(aliases__alias__icontains=filters.query)
    if filters.provider:
        models = models.filter(provider=filters.provider)
    found = []
    for model in models.distinct():
        if filters.capability and filters.capability not in model.all_capabilities:
            continue
        seen = health.get(model.name)
        row = ModelRow(
            model=model,
            channels=serving.get(model.name, 0),
            calls=seen.calls if seen else 0,
            success_rate=seen.success_rate if seen else None,
            median_latency_ms=seen.median_latency_ms if seen else None,
        )
        if filters.only_available and not row.available:
            continue
        found.append(row)
    return found


def providers() -> list[str]:
    return list(
        CatalogModel.objects.exclude(provider="").values_list("provider", flat=True).distinct().order_by("provider")
    )


def capability_choices() -> list[tuple[str, str]]:
    return list(CAPABILITIES.items())
