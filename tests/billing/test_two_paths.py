"""The ledger's two write paths write the same money: each scenario goes through the per-call path
(`ledger.hold`/`settle`/`release`) for one caller and the batched path (`ledger.batched`, PostgreSQL's
statements) for another, and the transactions, entries, usage records and key counters they leave
must be the same once the callers' ids are taken out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal

import pytest
from asgiref.sync import async_to_sync

from accounts import keys
from accounts.models import ApiKey
from billing import ledger
from billing.ledger import batched
from billing.models import Entry, UsageRecord
from billing.pricing import Prices, Usage
from tests.billing.conftest import fund
from tests.conftest import make_user

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

PRICES = Prices(input=Decimal("1"), output=Decimal("2"))  # $ per 1M tokens


@dataclass(frozen=True)
class Scenario:
    name: str
    held: str
    usage: Usage | None  # None: the call failed and its hold is released
    owner_cut: str | None = None  # None: the channel has no owner to pay
    spend_cap: str | None = None


SCENARIOS = [
    Scenario("settled with the owner's cut", "0.01", Usage(input_tokens=1000, output_tokens=500), owner_cut="0.2"),
    Scenario("settled without an owner", "0.01", Usage(input_tokens=1000, output_tokens=500)),
    Scenario("settled at the hold when the usage costs more", "0.001", Usage(output_tokens=10_000), owner_cut="0.5"),
    Scenario("released after a failure", "0.01", None, owner_cut="0.2"),
    Scenario("settled under a spend cap", "0.05", Usage(input_tokens=3000, output_tokens=1000), spend_cap="0.06"),
    Scenario("a free call (nothing held)", "0", Usage(input_tokens=10), owner_cut="0.1"),
]


def run_per_call(scenario: Scenario, caller, key_id, owner) -> None:
    request_id = f"call-{caller.pk}"
    ledger.hold(
        user_id=caller.pk,
        amount=Decimal(scenario.held),
        request_id=request_id,
        api_key_id=key_id,
        model="m",
        prices=PRICES,
    )
    if scenario.usage is None:
        ledger.release(request_id=request_id, error="upstream failed", channel="ch")
    else:
        owner_id = owner.pk if scenario.owner_cut else None
        cut = Decimal(scenario.owner_cut or "0")
        ledger.settle(request_id=request_id, usage=scenario.usage, owner_id=owner_id, owner_cut=cut, channel="ch")


def run_batched(scenario: Scenario, caller, key_id, owner) -> None:
    async def call():
        try:
            hold = await batched.hold(
                user_id=caller.pk,
                amount=Decimal(scenario.held),
                request_id=f"call-{caller.pk}",
                api_key_id=key_id,
                model="m",
                prices=PRICES,
            )
            if scenario.usage is None:
                await batched.release(hold, error="upstream failed", channel="ch")
            else:
                owner_id = owner.pk if scenario.owner_cut else None
                cut = Decimal(scenario.owner_cut or "0")
                await batched.settle(hold, usage=scenario.usage, owner_id=owner_id, owner_cut=cut, channel="ch")
        finally:
            await batched.close()

    async_to_sync(call)()


def written(caller, owner) -> dict:
    """What the call left in the ledger, with the caller's and owner's ids replaced by names."""
    ids = {str(caller.pk): "caller", str(owner.pk): "owner"}

    def named(text: str) -> str:
        text = re.sub(r"call-\d+", "call", text)
        return re.sub(r"(user|hold|owner|payout):(\d+)", lambda m: f"{m[1]}:{ids.get(m[2], m[2])}", text)

    entries = Entry.objects.filter(transaction__idempotency_key__endswith=f"call-{caller.pk}").select_related(
        "transaction", "account"
    )
    record = UsageRecord.objects.get(request_id=f"call-{caller.pk}")
    key = ApiKey.objects.filter(user=caller).values("spent_usd", "reserved_usd").first()
    return {
        "entries": sorted(
            (named(e.transaction.idempotency_key), e.transaction.kind, named(e.account.code), e.amount) for e in entries
        ),
        "record": {
            field: getattr(record, field)
            for field in (
                "cost_usd",
                "owner_cut_usd",
                "platform_usd",
                "excess_usd",
                "status",
                "input_tokens",
                "output_tokens",
                "channel",
                "model",
                "error",
            )
        }
        | {"owner": "owner" if record.owner_id == owner.pk else record.owner_id},
        "key": key,
        "balance": ledger.balance_of(caller.pk),
    }


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
def test_both_paths_write_the_same_money(scenario, assert_ledger_whole):
    owner = make_user("owner")
    ledger.owner_account(owner.pk)
    ledger.platform_account("revenue")
    results = {}
    for path, run in (("per-call", run_per_call), ("batched", run_batched)):
        caller = make_user(f"caller-{path}")
        fund(caller, "1")
        # The holds account exists (a first call makes it), so that the batch takes this call itself.
        ledger.accounts.account(*ledger.accounts.hold_spec(caller.pk))
        key_id = None
        if scenario.spend_cap:
            key, _raw = keys.create_key(caller, "k", spend_cap_usd=Decimal(scenario.spend_cap))
            key_id = key.pk
        statements_before, refused_before = batched.stats.statements, batched.stats.refused
        run(scenario, caller, key_id, owner)
        if path == "batched":
            assert batched.stats.refused == refused_before
            assert batched.stats.statements - statements_before == (2 if Decimal(scenario.held) else 1)
        results[path] = written(caller, owner)

    assert results["per-call"] == results["batched"]
    assert sum(amount for *_rest, amount in results["batched"]["entries"]) == 0
    assert_ledger_whole()
