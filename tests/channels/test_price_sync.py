"""`sync_prices FILE|URL` and its beat task: a diff first (changed, new, vanished, old → new), nothing
applied without --yes (or TOKENHUB_PRICE_SYNC_APPLY=1), vanished models never deleted."""

from __future__ import annotations

import json
import threading
from decimal import Decimal
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from io import StringIO

import pytest
from django.core.management import call_command

from channels_app.models import CatalogModel
from channels_app.tasks import sync_prices
from tests.conftest import make_user
from tests.servers import ROOT

LITELLM = ROOT / "tests" / "data" / "litellm_model_prices.json"


@pytest.fixture
def price_map(tmp_path, catalog):
    """A TokenHub price file: gpt-4o-mini dearer, one new model, claude-haiku-4-5 left out."""
    models = [
        {"name": "gpt-4o-mini", "input_price": "0.20", "output_price": "0.60", "cache_read_price": "0.075"},
        {"name": "deepseek-chat", "input_price": "0.28", "output_price": "0.42"},
        {"name": "brand-new-model", "input_price": "1", "output_price": "4", "context_window": 32000},
    ]
    path = tmp_path / "prices.json"
    path.write_text(json.dumps({"models": models}))
    return path


def sync(*args) -> str:
    out = StringIO()
    call_command("sync_prices", *map(str, args), stdout=out)
    return out.getvalue()


def price(name: str) -> Decimal:
    return CatalogModel.objects.get(name=name).input_price


def test_the_diff_shows_old_and_new_prices_and_changes_nothing(price_map):
    before = CatalogModel.objects.count()
    out = sync(price_map)
    assert "~ gpt-4o-mini: input_price 0.15 → 0.2" in out
    assert "+ brand-new-model: input_price 1, output_price 4" in out
    assert "- claude-haiku-4-5: not in the source (kept)" in out
    assert "Nothing applied: run again with --yes" in out
    assert price("gpt-4o-mini") == Decimal("0.15") and CatalogModel.objects.count() == before


def test_yes_applies_changed_and_new_models_and_keeps_vanished_ones(price_map):
    out = sync(price_map, "--yes")
    assert "Applied: 1 created, 1 updated." in out
    assert price("gpt-4o-mini") == Decimal("0.2") and price("brand-new-model") == Decimal("1")
    assert CatalogModel.objects.filter(name="claude-haiku-4-5").exists()
    assert sync(price_map).startswith("0 changed, 0 new,")  # in sync now


def test_litellms_own_map_is_read_with_aliases_counted_as_present(catalog):
    out = sync(LITELLM)
    first = out.splitlines()[0]
    assert "changed" in first and "new" in first and "vanished (kept)" in first
    # openai/gpt-4o-mini in LiteLLM's map is an alias of gpt-4o-mini: the model has not vanished.
    assert "- gpt-4o-mini:" not in out


def test_a_url_is_fetched(price_map):
    handler = partial(SimpleHTTPRequestHandler, directory=str(price_map.parent))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        out = sync(f"http://127.0.0.1:{server.server_port}/prices.json")
    finally:
        server.shutdown()
    assert "~ gpt-4o-mini: input_price 0.15 → 0.2" in out


def test_a_missing_source_is_a_clear_error(catalog):
    from django.core.management import CommandError

    with pytest.raises(CommandError, match=r"no such file: /nope\.json"):
        sync("/nope.json")


def test_the_beat_task_mails_staff_the_diff_and_applies_only_when_allowed(price_map, settings, mailoutbox):
    make_user("operator", is_staff=True)
    settings.TOKENHUB_PRICE_SYNC_URL = str(price_map)
    assert sync_prices.apply().get() == "reported"
    (mail,) = mailoutbox
    assert mail.to == ["operator@example.test"] and mail.subject.startswith("TokenHub price sync: 1 changed, 1 new")
    assert "~ gpt-4o-mini: input_price 0.15 → 0.2" in mail.body and "run sync_prices --yes" in mail.body
    assert price("gpt-4o-mini") == Decimal("0.15")

    settings.TOKENHUB_PRICE_SYNC_APPLY = True
    assert sync_prices.apply().get() == "applied"
    assert price("gpt-4o-mini") == Decimal("0.2")


def test_the_beat_task_is_off_without_a_url(settings, db):
    settings.TOKENHUB_PRICE_SYNC_URL = ""
    assert sync_prices.apply().get() == "off"
