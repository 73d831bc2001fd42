"""The fault matrix as a soak: every upstream fault and caller disconnect, both formats, from several callers
at once for TOKENHUB_SOAK_MINUTES (default 2), then the books. Not in the default run: `pytest -m soak`."""

from __future__ import annotations

import contextlib
import itertools
import os
import random
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from accounts import keys
from billing import ledger
from billing.models import TransactionKind, UsageRecord
from tests.guarantees.conftest import assert_books_whole
from tests.guarantees.test_faults import ANTHROPIC, DEAD, DISCONNECTS, FAULTS, OPENAI, call, leave
from tests.relay.conftest import add_channel
from tests.servers import asgi_server, free_port

pytestmark = [pytest.mark.services, pytest.mark.soak]

CALLERS = 8


def test_the_fault_matrix_under_concurrency_for_minutes_leaves_the_books_whole(cast):
    minutes = float(os.environ.get("TOKENHUB_SOAK_MINUTES", "2"))
    ledger.grant(user_id=cast.alice.pk, amount=1000, memo="soak", actor="test", kind=TransactionKind.GRANT)
    # A channel per fault, all serving the one model: routing and failover pick among them at random.
    faults = [f.upstream_key for f in FAULTS.values()] + [key for key, _billed in DISCONNECTS.values()]
    for index, upstream_key in enumerate(dict.fromkeys(faults)):
        base_url = f"http://127.0.0.1:{free_port()}/v1" if upstream_key == DEAD else cast.upstream
        add_channel(cast.bob, base_url, models=("gpt-4o-mini",), keys_=(upstream_key,), name=f"soak-{index}")
    key_pool = [keys.create_key(cast.alice, f"soak-{n}")[1] for n in range(CALLERS)]
    deadline = time.monotonic() + minutes * 60
    server = {"TOKENHUB_UPSTREAM_READ_TIMEOUT": "1", "TOKENHUB_KEY_RPM": "0", "TOKENHUB_ROUTING_CHECK_SECONDS": "1"}

    def caller(key: str) -> int:
        for made in itertools.count():
            if time.monotonic() > deadline:
                return made
            if made % 5 == 4:
                with contextlib.suppress(AssertionError):  # a healthy channel answered before the caller left
                    leave(relay, key, random.choice([OPENAI, ANTHROPIC]), random.choice(list(DISCONNECTS)))
            else:
                call(relay, key, random.choice([OPENAI, ANTHROPIC]), stream=random.random() < 0.5)
        return 0

    with asgi_server(workers=2, **server) as relay, ThreadPoolExecutor(CALLERS) as pool:
        made = sum(pool.map(caller, key_pool))
    assert_books_whole(cast.alice, timeout=60)
    assert 0 < UsageRecord.objects.count() <= made  # one record per call that got a hold, never two
