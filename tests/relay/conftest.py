"""The real ASGI app (gunicorn + uvicorn worker, in a subprocess) against the fake upstream,
driven by the official SDKs."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import anthropic
import openai
import pytest

from accounts import keys
from accounts.models import User
from billing import ledger
from billing.models import TransactionKind
from channels_app import routing
from channels_app.catalog import import_catalog
from channels_app.channels import ChannelDraft, create_channel
from tests.channels.conftest import DEFAULT_CATALOG
from tests.conftest import make_user
from tests.servers import asgi_server

pytestmark = pytest.mark.services


@pytest.fixture(scope="session")
def relay_url(django_db_setup, django_db_blocker, fake_upstream):
    """TokenHub on a free port for the whole session; it reads the test database and Redis."""
    with asgi_server(DB_POOL_MAX_SIZE="4", TOKENHUB_ROUTING_CHECK_SECONDS="0", TOKENHUB_KEY_RPM="0") as url:
        yield url


@dataclass
class World:
    relay: str
    upstream: str
    alice: User
    bob: User
    key: str
    openai_channel: object
    anthropic_channel: object

    def openai(self, key: str | None = None, **kwargs) -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{self.relay}/v1", api_key=key or self.key, max_retries=0, **kwargs)

    def async_openai(self, key: str | None = None) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(base_url=f"{self.relay}/v1", api_key=key or self.key, max_retries=0)

    def anthropic(self, key: str | None = None) -> anthropic.Anthropic:
        return anthropic.Anthropic(base_url=self.relay, api_key=key or self.key, max_retries=0)

    def async_anthropic(self, key: str | None = None) -> anthropic.AsyncAnthropic:
        return anthropic.AsyncAnthropic(base_url=self.relay, api_key=key or self.key, max_retries=0)


def add_channel(
    owner, upstream: str, *, provider="openai", models=("gpt-4o-mini", "deepseek-chat"), keys_=("good",), **extra
):
    base_url = upstream if provider != "anthropic" else upstream.removesuffix("/v1")
    channel, _ = create_channel(
        ChannelDraft(
            owner_id=owner.pk,
            provider=provider,
            base_url=base_url,
            model_names=list(models),
            upstream_keys=list(keys_),
            owner_cut=extra.pop("owner_cut", Decimal("0.2")),
            **extra,
        )
    )
    routing.invalidate()
    return channel


@pytest.fixture
def world(transactional_db, relay_url, fake_upstream) -> World:
    import_catalog(DEFAULT_CATALOG.read_text(), "default_catalog.json")
    alice, bob = make_user("alice"), make_user("bob", two_factor=True)
    ledger.grant(user_id=alice.pk, amount=Decimal("10"), memo="test", actor="test", kind=TransactionKind.GRANT)
    _key, raw = keys.create_key(alice, "sdk")
    oai = add_channel(bob, fake_upstream, name="bob-openai")
    ant = add_channel(bob, fake_upstream, provider="anthropic", models=("claude-haiku-4-5",), name="bob-anthropic")
    routing.invalidate()
    yield World(relay_url, fake_upstream, alice, bob, raw, oai, ant)
    # Streams settle just after their last byte: let the server finish before the tables are flushed.
    from billing.models import Hold, HoldStatus
    from tests.conftest import wait_for

    wait_for(lambda: not Hold.objects.filter(status=HoldStatus.OPEN).exists(), timeout=15)
