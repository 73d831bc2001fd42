from __future__ import annotations

from decimal import Decimal

import pytest

from channels_app import routing
from channels_app.catalog import import_catalog
from channels_app.channels import ChannelDraft, approve, create_channel
from tests.servers import ROOT

DEFAULT_CATALOG = ROOT / "channels_app" / "data" / "default_catalog.json"


@pytest.fixture
def catalog(db):
    report = import_catalog(DEFAULT_CATALOG.read_text(), "default_catalog.json")
    assert report.errors == []
    routing.invalidate()
    return report


def make_channel(owner, models=("gpt-4o-mini",), keys=("sk-upstream-secret-0001",), approved=False, **extra):
    """A channel as its owner creates it (on probation), or established when `approved`."""
    draft = ChannelDraft(
        owner_id=owner.pk,
        provider=extra.pop("provider", "openai"),
        base_url=extra.pop("base_url", "http://127.0.0.1:9/v1"),
        model_names=list(models),
        upstream_keys=list(keys),
        owner_cut=extra.pop("owner_cut", Decimal("0.2")),
        **extra,
    )
    channel, _warnings = create_channel(draft)
    if approved:
        approve(channel)
    routing.invalidate()
    return channel
