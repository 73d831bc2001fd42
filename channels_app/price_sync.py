"""Re-importing a price map with a diff first: what would change, what is new, what vanished.

`sync_prices FILE|URL` prints the diff and changes nothing unless told `--yes`; the beat task
(`channels_app.tasks.sync_prices`) reads TOKENHUB_PRICE_SYNC_URL, sends the diff to staff and
applies it only with TOKENHUB_PRICE_SYNC_APPLY=1. Models missing from the source are reported,
never deleted: channels may serve them, and a price map that lost a line must not take a model
out of the marketplace.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import httpx
from django.core.exceptions import ValidationError
from django.db import transaction

from .catalog import PRICE_FIELDS, CatalogFormatError, ImportReport, Row, apply_row, parse
from .models import CatalogModel, ModelAlias

MAX_SOURCE_BYTES = 64 * 1024 * 1024  # LiteLLM's map is ~1.5 MB
FETCH_TIMEOUT = 60.0


@dataclass
class Change:
    name: str
    fields: dict[str, tuple[object, object]]  # field -> (old, new)


@dataclass
class PriceDiff:
    new: list[Row] = field(default_factory=list)
    changed: list[tuple[Row, Change]] = field(default_factory=list)
    vanished: list[str] = field(default_factory=list)
    unchanged: int = 0
    errors: list[str] = field(default_factory=list)
    skipped: int = 0

    @property
    def empty(self) -> bool:
        return not (self.new or self.changed)

    def summary(self) -> str:
        return (
            f"{len(self.changed)} changed, {len(self.new)} new, {len(self.vanished)} vanished (kept), "
            f"{self.unchanged} unchanged, {len(self.errors)} rejected"
        )


def read_source(source: str) -> tuple[str, str]:
    """(text, filename) of a local file or an http(s) URL; CatalogFormatError if it cannot be read."""
    if source.startswith(("http://", "https://")):
        try:
            with httpx.stream("GET", source, timeout=FETCH_TIMEOUT, follow_redirects=True) as response:
                response.raise_for_status()
                chunks, size = [], 0
                for chunk in response.iter_bytes():
                    size += len(chunk)
                    if size > MAX_SOURCE_BYTES:
                        raise CatalogFormatError(f"{source} is larger than {MAX_SOURCE_BYTES} bytes")
                    chunks.append(chunk)
        except httpx.HTTPError as exc:
            raise CatalogFormatError(f"cannot fetch {source}: {type(exc).__name__}: {exc}") from None
        name = source.rsplit("?", 1)[0].rsplit("/", 1)[-1] or "prices.json"
        return b"".join(chunks).decode("utf-8", "replace"), name
    path = Path(source)
    if not path.is_file():
        raise CatalogFormatError(f"no such file: {source}")
    return path.read_text(encoding="utf-8"), path.name


def _plain(value):
    return format(value.normalize(), "f") if isinstance(value, Decimal) else value


def diff(text: str, filename: str) -> tuple[PriceDiff, list[Row]]:
    """What importing `text` would do to the catalog, and the rows it would apply."""
    report = ImportReport()
    rows = parse(text, filename, report)
    result = PriceDiff(skipped=report.skipped)
    good = [row for row in rows if not isinstance(row, CatalogFormatError)]
    result.errors = [str(row) for row in rows if isinstance(row, CatalogFormatError)]
    existing = {model.name: model for model in CatalogModel.objects.filter(name__in=[row.name for row in good])}
    for row in good:
        model = existing.get(row.name)
        if model is None:
            result.new.append(row)
            continue
        fields = {k: (getattr(model, k), v) for k, v in row.values.items() if getattr(model, k) != v}
        if fields:
            result.changed.append((row, Change(row.name, fields)))
        else:
            result.unchanged += 1
    named = {row.name for row in good} | {alias for row in good for alias in row.aliases}
    aliases = dict(ModelAlias.objects.values_list("alias", "model__name"))
    in_source = named | {model for alias, model in aliases.items() if alias in named}
    result.vanished = sorted(set(CatalogModel.objects.values_list("name", flat=True)) - in_source)
    to_apply = {row.name for row in result.new} | {change.name for _row, change in result.changed}
    return result, [row for row in good if row.name in to_apply]


def format_diff(result: PriceDiff, limit: int | None = None) -> str:
    """The diff as text, prices as per 1M tokens: `model: input_price 2.5 → 3`."""
    lines = [result.summary()]
    for row, change in result.changed[:limit]:
        parts = ", ".join(f"{k} {_plain(old)} → {_plain(new)}" for k, (old, new) in sorted(change.fields.items()))
        lines.append(f"~ {row.name}: {parts}")
    for row in result.new[:limit]:
        prices = ", ".join(f"{k} {_plain(row.values[k])}" for k in PRICE_FIELDS if row.values.get(k) is not None)
        lines.append(f"+ {row.name}: {prices or 'no prices'}")
    for name in result.vanished[:limit]:
        lines.append(f"- {name}: not in the source (kept)")
    for error in result.errors[:limit]:
        lines.append(f"! rejected {error}")
    if limit is not None and max(len(result.changed), len(result.new), len(result.vanished)) > limit:
        lines.append(f"(first {limit} of each kind shown)")
    return "\n".join(lines)


def apply(rows: list[Row]) -> ImportReport:
    """Write the new and changed rows (each in its own transaction: one bad row spoils no other)."""
    report = ImportReport()
    for row in rows:
        try:
            with transaction.atomic():
                apply_row(row, report)
        except (CatalogFormatError, ValidationError) as exc:
            report.errors.append(f"{row.line}: {exc}")
    return report
