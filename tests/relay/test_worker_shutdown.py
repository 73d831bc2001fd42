"""A deploy (SIGTERM to gunicorn) never gives away the streams in flight: they end with an error event and are
settled for what was delivered before the worker exits."""

from __future__ import annotations

import json
import signal
import time

import httpx
import pytest

from billing.models import Hold, HoldStatus, UsageRecord, UsageStatus
from billing.reconcile import reconcile
from tests.relay.test_relay_calls import PROMPT
from tests.relay.test_relay_failures import only_channel
from tests.servers import asgi_server_process

pytestmark = pytest.mark.services


def test_a_stopping_worker_cuts_open_streams_with_an_error_event_and_settles_them(world):
    only_channel(world, keys_=("drip-400",))  # 20 chunks, 8 s: longer than the grace
    body = {"model": "gpt-4o-mini", "messages": PROMPT, "stream": True}
    server = asgi_server_process(TOKENHUB_SHUTDOWN_STREAM_GRACE_SECONDS="1", TOKENHUB_ROUTING_CHECK_SECONDS="0")
    with server as (url, process):
        events, signalled = [], None
        headers = {"authorization": f"Bearer {world.key}"}
        with httpx.stream("POST", f"{url}/v1/chat/completions", json=body, headers=headers, timeout=20) as response:
            for line in response.iter_lines():
                if line.startswith("data:"):
                    events.append(line.removeprefix("data: "))
                if len(events) == 3 and signalled is None:
                    process.send_signal(signal.SIGTERM)
                    signalled = time.monotonic()
        ended = time.monotonic() - signalled
        assert process.wait(timeout=20) == 0  # the worker exited on its own, within gunicorn's grace
    assert ended < 4  # cut after the 1 s grace, not run to its 8 s end (nor killed at 30 s)
    last = json.loads(events[-1])
    assert "restarting" in last["error"]["message"]
    record = UsageRecord.objects.get()
    assert record.status == UsageStatus.PARTIAL and "worker was stopping" in record.error
    assert 0 < record.output_tokens < 20 and record.cost_usd > 0
    assert not Hold.objects.filter(status=HoldStatus.OPEN).exists()
    assert reconcile().problems == []
