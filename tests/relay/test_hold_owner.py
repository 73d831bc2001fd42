"""The task that takes a call over (the stream's pump, a non-streamed answer) owns its hold on every exit."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from types import SimpleNamespace

import pytest

from billing import ledger
from billing.models import Hold, HoldStatus
from relay import settlement
from tests.billing.conftest import fund
from tests.billing.test_batched import in_one_loop

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]


@pytest.mark.parametrize("when", ["before-its-first-step", "while-it-runs"])
def test_a_task_owning_a_call_releases_its_hold_however_it_is_cancelled(alice, when):
    # A task cancelled before its first step never enters its own try/finally: only its end is sure.
    fund(alice, "1.00")
    hold = ledger.hold(user_id=alice.pk, amount=Decimal("0.10"), request_id="owned-1")
    call = SimpleNamespace(owned=False, delegated=False, attempt=None, hold=hold, latency_ms=lambda: 0)

    async def the_rest_of_the_call():
        await asyncio.sleep(10)

    async def run():
        task = settlement.hand_over(call, the_rest_of_the_call())
        if when == "while-it-runs":
            await asyncio.sleep(0.01)
        task.cancel()
        await asyncio.sleep(0)
        assert await settlement.finish_background(5) == 0

    in_one_loop(run)
    assert call.delegated and Hold.objects.get(request_id="owned-1").status == HoldStatus.RELEASED
    assert ledger.balance_of(alice.pk) == Decimal("1.00")
