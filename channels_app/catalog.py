"""The model catalog: resolving names and aliases, and importing catalogs idempotently.

Formats `import_models` reads:
- TokenHub JSON: a list (or {"models": [...]}) of objects with `name`, prices per 1M tokens
  (`input_price`, `output_price`, `cache_read_price`, `cache_write_price`, `reasoning_price`),
  `provider`, `display_name`, `mode`, `context_window`, `default_output_tokens`,
  `max_output_tokens`, `aliases` (a list).
- CSV with the same column names (`aliases` separated by `|`).
- LiteLLM's public price map (`model_prices_and_context_window.json`): an object keyed by model
  name with per-token prices. Numbers are parsed as Decimal and multiplied by 1,000,000, never
  through float. Modes imported: `chat`, `responses` (as chat) and `embedding`; others (images,
  audio, rerank…) are skipped and counted. A key `<litellm_provider>/<name>` differs from `<name>`
  only by its provider prefix, so it becomes an alias of `<name>` rather than a second model.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from django.core.exceptions import ValidationError
from django.db import transaction

from .models import CAPABILITIES, CatalogModel, ModelAlias

PER_MILLION = Decimal(1_000_000)
PRICE_FIELDS = ("input_price", "output_price", "cache_read_price", "cache_write_price", "reasoning_price")
INT_FIELDS = ("context_window", "default_output_tokens", "max_output_tokens")
TEXT_FIELDS = ("provider", "display_name", "mode")
LITELLM_MODES = {"chat": "chat", "responses": "chat", "embedding": "embedding"}
# litellm_provider -> TokenHub provider (informational on the model; channels decide where calls go).
LITELLM_PROVIDERS = {
    "openai": "openai",
    "text-completion-openai": "openai",
    "azure": "openai",
    "anthropic": "anthropic",
    "gemini": "gemini",
    "vertex_ai-language-models": "gemini",
    "deepseek": "deepseek",
}


@dataclass
class Row:
    line: str  # where the row came from, for error messages ("line 7", "key gpt-4o")
    name: str
    values: dict
    aliases: list[str] = field(default_factory=list)


@dataclass
class ImportReport:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    aliases_created: int = 0
    skipped: int = 0
    errors: list[str] = field(default_factory=list)


class CatalogFormatError(ValueError):
    pass


def _price(value, per_token: bool = False) -> Decimal | None:
    if value is None or value == "":
        return None
    if isinstance(value, float):  # only reachable if someone parsed JSON with floats
        raise CatalogFormatError("prices must be parsed as decimals")
    try:
        price = Decimal(str(value).strip())
    except InvalidOperation:
        raise CatalogFormatError(f"price {value!r} is not a number") from None
    if price < 0:
        raise CatalogFormatError(f"price {value} is negative")
    price = price * PER_MILLION if per_token else price
    return price.quantize(Decimal("0.00000001"))


def _int(value) -> int | None:
    if value is None or value == "":
        return None
    try:
        number = int(Decimal(str(value)))
    except (InvalidOperation, ValueError):
        raise CatalogFormatError(f"{value!r} is not a whole number") from None
    if number < 0:
        raise CatalogFormatError(f"{value} is negative")
    return number


def clean_name(name) -> str:
    cleaned = str(name or "").strip()
    if not cleaned or any(ch.isspace() for ch in cleaned):
        raise CatalogFormatError(f"model name {name!r} is empty or contains whitespace")
    return cleaned


def _row_from_mapping(line: str, data: dict) -> Row:
    name = clean_name(data.get("name"))
    values: dict = {}
    for key in PRICE_FIELDS:
        if key in data:
            values[key] = _price(data[key])
    for key in INT_FIELDS:
        if key in data and data[key] not in (None, ""):
            values[key] = _int(data[key])
    for key in TEXT_FIELDS:
        if data.get(key):
            values[key] = str(data[key]).strip()
    if "capabilities" in data:
        values["capabilities"] = _capabilities(data["capabilities"])
    aliases = data.get("aliases") or []
    if isinstance(aliases, str):
        aliases = aliases.split("|")
    return Row(line, name, values, [clean_name(a) for a in aliases if str(a).strip()])


def _capabilities(value) -> list[str]:
    """A list, or "vision|tools" in a CSV cell; only the known names (CAPABILITIES), in their order."""
    names = value.split("|") if isinstance(value, str) else list(value or [])
    unknown = {str(n).strip() for n in names if str(n).strip()} - set(CAPABILITIES)
    if unknown:
        raise CatalogFormatError(f"unknown capabilities {sorted(unknown)} (known: {', '.join(CAPABILITIES)})")
    chosen = {str(n).strip() for n in names}
    return [name for name in CAPABILITIES if name in chosen]


# LiteLLM's flags -> TokenHub's capability names.
LITELLM_CAPABILITIES = {
    "supports_vision": "vision",
    "supports_function_calling": "tools",
    "supports_reasoning": "reasoning",
    "supports_prompt_caching": "caching",
}


def rows_from_tokenhub_json(data) -> Iterable[Row | CatalogFormatError]:
    items = data["models"] if isinstance(data, dict) else data
    for index, item in enumerate(items, start=1):
        try:
            yield _row_from_mapping(f"entry {index}", item)
        except (CatalogFormatError, AttributeError, TypeError) as exc:
            yield CatalogFormatError(f"entry {index}: {exc}")


def rows_from_csv(text: str) -> Iterable[Row | CatalogFormatError]:
    reader = csv.DictReader(io.StringIO(text))
    for row in reader:
        line = f"line {reader.line_num}"
        try:
            yield _row_from_mapping(line, row)
        except CatalogFormatError as exc:
            yield CatalogFormatError(f"{line}: {exc}")


def _strip_provider_prefix(name: str, provider: str) -> str:
    prefix = f"{provider}/"
    return name[len(prefix) :] if provider and name.startswith(prefix) else name


def rows_from_litellm(data: dict, report: ImportReport) -> Iterable[Row | CatalogFormatError]:
    groups: dict[str, list[tuple[str, dict]]] = {}
    for key, spec in data.items():
        if key == "sample_spec" or not isinstance(spec, dict):
            continue
        if spec.get("mode") not in LITELLM_MODES:
            report.skipped += 1
            continue
        base = _strip_provider_prefix(key.strip(), str(spec.get("litellm_provider", "")))
        groups.setdefault(base, []).append((key.strip(), spec))
    for base, entries in groups.items():
        # The unprefixed entry's prices win; prefixed twins become aliases.
        entries.sort(key=lambda entry: entry[0] != base)
        key, spec = entries[0]
        try:
            values = {
                "input_price": _price(spec.get("input_cost_per_token"), per_token=True),
                "output_price": _price(spec.get("output_cost_per_token"), per_token=True),
                "cache_read_price": _price(spec.get("cache_read_input_token_cost"), per_token=True),
                "cache_write_price": _price(spec.get("cache_creation_input_token_cost"), per_token=True),
                "reasoning_price": _price(spec.get("output_cost_per_reasoning_token"), per_token=True),
                "provider": LITELLM_PROVIDERS.get(spec.get("litellm_provider"), "openai-compatible"),
                "mode": LITELLM_MODES[spec["mode"]],
                "context_window": _int(spec.get("max_input_tokens")),
                "max_output_tokens": _int(spec.get("max_output_tokens") or spec.get("max_tokens")),
                "capabilities": [name for flag, name in LITELLM_CAPABILITIES.items() if spec.get(flag) is True],
            }
            aliases = [clean_name(other) for other, _spec in entries if other != base]
            yield Row(f"key {key}", clean_name(base), values, aliases)
        except CatalogFormatError as exc:
            yield CatalogFormatError(f"key {key}: {exc}")


def parse(text: str, filename: str, report: ImportReport) -> list[Row | CatalogFormatError]:
    if filename.lower().endswith(".csv"):
        return list(rows_from_csv(text))
    try:
        data = json.loads(text, parse_float=Decimal)
    except json.JSONDecodeError as exc:
        raise CatalogFormatError(f"{filename} is not valid JSON: {exc}") from exc
    if isinstance(data, dict) and "models" not in data:
        return list(rows_from_litellm(data, report))
    return list(rows_from_tokenhub_json(data))


def apply_row(row: Row, report: ImportReport) -> None:
    clash = ModelAlias.objects.filter(alias=row.name).select_related("model").first()
    if clash is not None and clash.model.name != row.name:
        raise CatalogFormatError(f'"{row.name}" is already an alias of "{clash.model.name}"')
    model = CatalogModel.objects.filter(name=row.name).first()
    if model is None:
        fields = {k: v for k, v in row.values.items() if v is not None or k in PRICE_FIELDS}
        model = CatalogModel.objects.create(name=row.name, **fields)
        report.created += 1
    else:
        changed = {k: v for k, v in row.values.items() if getattr(model, k) != v}
        if changed:
            for key, value in changed.items():
                setattr(model, key, value)
            model.save()
            report.updated += 1
        else:
            report.unchanged += 1
    for alias in row.aliases:
        add_alias(model, alias, report)


def add_alias(model: CatalogModel, alias: str, report: ImportReport | None = None) -> ModelAlias:
    """Point `alias` at `model`; a name already used elsewhere is a clear error, never a UNIQUE crash."""
    existing = ModelAlias.objects.filter(alias=alias).select_related("model").first()
    if existing is not None:
        if existing.model_id != model.pk:
            raise CatalogFormatError(f'alias "{alias}" already points to "{existing.model.name}"')
        return existing
    if CatalogModel.objects.filter(name=alias).exclude(pk=model.pk).exists():
        raise CatalogFormatError(f'"{alias}" is a model of its own and cannot be an alias of "{model.name}"')
    if alias == model.name:
        raise CatalogFormatError(f'"{alias}" cannot be an alias of itself')
    created = ModelAlias.objects.create(alias=alias, model=model)
    if report is not None:
        report.aliases_created += 1
    return created


def import_catalog(text: str, filename: str, progress: Callable[[int, int], None] | None = None) -> ImportReport:
    """Load a catalog; re-running it updates, never duplicates. Bad rows are reported, good rows kept."""
    report = ImportReport()
    rows = parse(text, filename, report)
    for index, row in enumerate(rows, start=1):
        if isinstance(row, CatalogFormatError):
            report.errors.append(str(row))
        else:
            try:
                with transaction.atomic():
                    apply_row(row, report)
            except (CatalogFormatError, ValidationError) as exc:
                report.errors.append(f"{row.line}: {exc}")
        if progress:
            progress(index, len(rows))
    return report
