from __future__ import annotations

import io
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command

from channels_app.catalog import CatalogFormatError, add_alias, import_catalog
from channels_app.models import CatalogModel, ModelAlias
from tests.servers import ROOT

pytestmark = pytest.mark.django_db
LITELLM = ROOT / "tests" / "data" / "litellm_model_prices.json"


def run_import(path) -> str:
    out = io.StringIO()
    call_command("import_models", str(path), stdout=out, stderr=io.StringIO())
    return out.getvalue()


def test_litellm_price_map_imports_500_plus_models_twice_without_duplicates():
    first = run_import(LITELLM)
    count, aliases = CatalogModel.objects.count(), ModelAlias.objects.count()
    assert count >= 500
    assert "rejected 0" in first and "skipped (other modes) 101" in first
    second = run_import(LITELLM)
    assert CatalogModel.objects.count() == count and ModelAlias.objects.count() == aliases
    assert f"created 0, updated 0, unchanged {count}" in second


def test_litellm_prices_are_exact_decimals_per_million_and_prefixes_become_aliases():
    run_import(LITELLM)
    chat = CatalogModel.objects.get(name="deepseek-chat")
    # 2.8e-07 per token -> 0.28 per 1M, with no float rounding on the way.
    assert chat.input_price == Decimal("0.28") and chat.output_price == Decimal("0.42")
    assert chat.cache_read_price == Decimal("0.028")
    assert ModelAlias.objects.get(alias="deepseek/deepseek-chat").model == chat
    assert not CatalogModel.objects.filter(name="deepseek/deepseek-chat").exists()


def test_tokenhub_json_and_csv_formats_with_a_bad_row_kept_apart(tmp_path):
    csv_file = tmp_path / "models.csv"
    csv_file.write_text(
        "name,provider,input_price,output_price,aliases\n"
        "my-model,openai-compatible,1.5,2,vendor/my-model|my-model-latest\n"
        "broken,openai,cheap,2,\n"
        "other-model,openai,0.1,0.2,\n"
    )
    err = io.StringIO()
    out = io.StringIO()
    call_command("import_models", str(csv_file), stdout=out, stderr=err)
    assert "created 2" in out.getvalue() and "rejected 1" in out.getvalue()
    assert "line 3" in err.getvalue() and "'cheap' is not a number" in err.getvalue()
    assert ModelAlias.objects.get(alias="my-model-latest").model.name == "my-model"


def test_updates_are_counted(tmp_path):
    path = tmp_path / "c.json"
    path.write_text('[{"name": "m1", "input_price": "1", "output_price": "2"}]')
    run_import(path)
    path.write_text('[{"name": "m1", "input_price": "1.5", "output_price": "2"}]')
    assert "created 0, updated 1, unchanged 0" in run_import(path)
    assert CatalogModel.objects.get(name="m1").input_price == Decimal("1.5")


def test_alias_collisions_are_clear_errors_not_crashes():
    chat = CatalogModel.objects.create(name="deepseek-chat", input_price=1, output_price=1)
    other = CatalogModel.objects.create(name="gpt-4o", input_price=1, output_price=1)
    add_alias(chat, "deepseek/deepseek-chat")
    with pytest.raises(CatalogFormatError, match='already points to "deepseek-chat"'):
        add_alias(other, "deepseek/deepseek-chat")
    with pytest.raises(CatalogFormatError, match="is a model of its own"):
        add_alias(chat, "gpt-4o")
    alias = ModelAlias(alias="gpt-4o", model=chat)
    with pytest.raises(ValidationError, match="model name of its own"):
        alias.full_clean()
    report = import_catalog('[{"name": "deepseek/deepseek-chat", "input_price": "1", "output_price": "1"}]', "x.json")
    assert report.errors and "already an alias" in report.errors[0]


def test_a_json_file_that_is_not_json_fails_clearly(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text("{not json")
    from django.core.management import CommandError

    with pytest.raises(CommandError, match="not valid JSON"):
        run_import(path)
