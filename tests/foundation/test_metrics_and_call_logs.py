"""/metrics (prometheus-client, multiprocess across gunicorn workers) and the one log line per relayed
call, through the real server with two workers, PostgreSQL, Redis and the fake provider."""

from __future__ import annotations

import json
import re
from decimal import Decimal

import httpx
import openai
import pytest

from accounts import keys
from accounts.models import User
from billing import ledger
from billing.models import Hold, HoldStatus, TransactionKind, UsageRecord
from channels_app import routing
from channels_app.catalog import import_catalog
from tests.channels.conftest import DEFAULT_CATALOG
from tests.conftest import wait_for
from tests.relay.conftest import add_channel
from tests.servers import LOG_DIR, ROOT, asgi_server

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

TOKEN = "metrics-token-for-tests"
CALLS = 12
PROMPT = [{"role": "user", "content": "a secret prompt nobody may log"}]


@pytest.fixture
def market(transactional_db, fake_upstream):
    import_catalog(DEFAULT_CATALOG.read_text(), "default_catalog.json")
    alice, bob = User.objects.create_user("alice"), User.objects.create_user("bob")
    ledger.grant(user_id=alice.pk, amount=Decimal("10"), memo="test", actor="test", kind=TransactionKind.GRANT)
    _key, raw = keys.create_key(alice, "metrics")
    channel = add_channel(bob, fake_upstream, models=("gpt-4o-mini",), name="bob-openai")
    failing = add_channel(bob, fake_upstream, models=("deepseek-chat",), keys_=("fail-500",), name="bob-failing")
    routing.invalidate()
    return raw, channel, failing


@pytest.fixture
def server():
    with asgi_server(
        workers=2, TOKENHUB_METRICS_TOKEN=TOKEN, LOG_FORMAT="json", TOKENHUB_ROUTING_CHECK_SECONDS="0"
    ) as url:
        yield url


def scrape(url: str, token: str | None = TOKEN) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.get(f"{url}/metrics", headers=headers, timeout=10)


def value(text: str, name: str, **labels) -> float:
    """The sample `name{labels…}` in the exposition (labels may be a subset), summed."""
    total, found = 0.0, False
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all(f'{key}="{val}"' in line for key, val in labels.items()):
            total, found = total + float(line.rsplit(" ", 1)[1]), True
    assert found, f"no {name} {labels} in:\n{text[:3000]}"
    return total


def test_metrics_are_404_until_a_token_is_set_and_401_without_it(market):
    with asgi_server(TOKENHUB_METRICS_TOKEN="") as url:
        assert scrape(url).status_code == 404
    with asgi_server(TOKENHUB_METRICS_TOKEN=TOKEN) as url:
        assert scrape(url, None).status_code == 401
        assert scrape(url, "wrong").status_code == 401
        assert scrape(url).status_code == 200


def test_calls_are_counted_across_both_workers_with_latency_and_state(market, server):
    raw, channel, failing = market
    client = openai.OpenAI(base_url=f"{server}/v1", api_key=raw, max_retries=0)
    for index in range(CALLS):
        # A fresh connection a call, so that both workers serve some: the counts are their files merged.
        with openai.OpenAI(base_url=f"{server}/v1", api_key=raw, max_retries=0) as fresh:
            answer = fresh.chat.completions.create(model="gpt-4o-mini", messages=PROMPT, stream=index % 2 == 1)
            if index % 2 == 1:
                assert list(answer)  # read to its end: a stream left unread is cut, and billed partial
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{server}/v1", api_key="sk-hub-" + "x" * 48, max_retries=0).models.list()
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{server}/v1", api_key="sk-hub-" + "y" * 48, max_retries=0).chat.completions.create(
            model="gpt-4o-mini", messages=PROMPT
        )
    with pytest.raises(openai.APIStatusError):
        client.chat.completions.create(model="deepseek-chat", messages=PROMPT)
    wait_for(
        lambda: UsageRecord.objects.count() == CALLS + 1 and not Hold.objects.filter(status=HoldStatus.OPEN), timeout=30
    )

    ok = {"model": "gpt-4o-mini", "caller_format": "openai", "channel": channel.public_id, "status": "ok"}
    # A call is counted just after its settlement commits (the record can be seen a moment before), the
    # failed one too: wait for both before reading the rest.
    failed = {"model": "deepseek-chat", "channel": "-", "status": "failed"}

    def counted() -> bool:
        text = scrape(server).text
        try:
            return (
                value(text, "tokenhub_relay_requests_total", **ok) == CALLS
                and value(text, "tokenhub_relay_requests_total", **failed) == 1
                and value(text, "tokenhub_relay_latency_seconds_count", caller_format="openai") == CALLS + 1
            )
        except AssertionError:  # a series not there yet
            return False

    wait_for(counted, timeout=30)
    text = scrape(server).text
    assert value(text, "tokenhub_relay_requests_total", status="refused_401") == 1
    # A call no channel answered belongs to no channel; its channels' failures are counted by class.
    assert value(text, "tokenhub_relay_requests_total", model="deepseek-chat", channel="-", status="failed") == 1
    assert value(text, "tokenhub_upstream_errors_total", channel=failing.public_id, kind="server") >= 1
    assert value(text, "tokenhub_relay_latency_seconds_count", caller_format="openai") == CALLS + 1
    assert value(text, "tokenhub_relay_ttfb_seconds_count", stream="true") == CALLS // 2
    assert value(text, "tokenhub_holds_in_flight") == 0
    # Only open breakers have a series (a channel's healthy one adds nothing to the exposition).
    assert f'tokenhub_breaker_open{{channel="{channel.public_id}"}}' not in text
    assert value(text, "tokenhub_ledger_usd", kind="revenue") > 0
    assert value(text, "tokenhub_settlement_backlog") == 0
    # The Grafana dashboard in docs/ asks only for series this exposition has.
    dashboard = json.loads((ROOT / "docs" / "grafana-dashboard.json").read_text())
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    asked = {name for expr in exprs for name in re.findall(r"tokenhub_[a-z_]+", expr)}
    assert asked
    metric_names = set(re.findall(r"^# TYPE (tokenhub_[a-z_]+)", text, re.M))
    assert {re.sub(r"_(bucket|count|sum|total)$", "", name) for name in asked} <= {
        re.sub(r"_total$", "", name) for name in metric_names
    }


def test_one_json_line_per_call_with_no_secret_prompt_or_answer(market, server):
    raw, channel, _failing = market
    client = openai.OpenAI(base_url=f"{server}/v1", api_key=raw, max_retries=0)
    answer = client.chat.completions.create(model="gpt-4o-mini", messages=PROMPT)
    wait_for(lambda: UsageRecord.objects.filter(request_id=answer.id).exists() or UsageRecord.objects.exists())
    record = UsageRecord.objects.get()
    port = server.rsplit(":", 1)[1]
    log_path = LOG_DIR / f"gunicorn-{port}.log"

    def call_lines():
        lines = [json.loads(line) for line in log_path.read_text().splitlines() if line.startswith("{")]
        return [line for line in lines if line.get("logger") == "tokenhub.calls"]

    wait_for(lambda: call_lines())
    (line,) = call_lines()
    expected = {"request_id", "user_id", "key_prefix", "model", "channel", "attempts", "status", "latency_ms"}
    assert expected | {"ttfb_ms", "input_tokens", "output_tokens", "cost_usd"} <= set(line)
    assert line["request_id"] == record.request_id and line["channel"] == channel.public_id
    assert (line["status"], line["attempts"], line["cost_usd"]) == ("ok", 1, format(record.cost_usd, "f"))
    assert line["key_prefix"] and raw.startswith(line["key_prefix"]) and line["key_prefix"] != raw
    log = log_path.read_text()
    assert raw not in log and "a secret prompt" not in log and answer.choices[0].message.content not in log
    gunicorn_lines = [json.loads(x) for x in log.splitlines() if x.startswith("{") and '"gunicorn.error"' in x]
    assert gunicorn_lines, "gunicorn's own lines are JSON too"


def test_observing_many_at_once_counts_as_observing_each():
    from prometheus_client import CollectorRegistry, Histogram

    from tokenhub.metrics import LATENCY_BUCKETS, observe_many

    values = [0.001, 0.005, 0.0051, 0.3, 2.5, 7.0, 1000.0, 0.005]
    one, many = CollectorRegistry(), CollectorRegistry()
    each = Histogram("h", "h", buckets=LATENCY_BUCKETS, registry=one)
    grouped = Histogram("h", "h", buckets=LATENCY_BUCKETS, registry=many)
    for value in values:
        each.observe(value)
    observe_many(grouped, values)

    def samples(registry):
        return sorted(
            (s.name, tuple(s.labels.items()), s.value)
            for m in registry.collect()
            for s in m.samples
            if not s.name.endswith("_created")
        )

    assert samples(one) == samples(many)


def test_batched_call_lines_are_written_whole_at_a_flush_and_at_capacity():
    import io
    import logging

    from tokenhub.lib.logs import BatchedStreamHandler, Fields, JsonFormatter

    stream = io.StringIO()
    handler = BatchedStreamHandler(stream, capacity=3)
    handler.setFormatter(JsonFormatter())
    log = logging.getLogger("tests.batched")
    log.handlers, log.propagate = [handler], False
    log.setLevel(logging.INFO)
    for n in range(2):
        log.info("call %s", Fields({"n": n}), extra={"fields": {"n": n}})
    assert stream.getvalue() == ""  # kept, not yet formatted or written
    handler.flush()
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [(line["message"], line["n"]) for line in lines] == [("call n=0", 0), ("call n=1", 1)]
    for n in range(3):
        log.info("call %s", Fields({"n": n}), extra={"fields": {"n": n}})
    assert len(stream.getvalue().splitlines()) == 5  # the third record filled the batch


def test_a_masters_metrics_directory_is_its_own_and_nothing_else_is_deleted(tmp_path):
    import os
    import subprocess
    import sys

    (tmp_path / "notes.txt").write_text("an operator's file")
    (tmp_path / "tokenhub-master-999999-gone").mkdir()  # a master that is not running any more
    probe = "import os, runpy; runpy.run_path('gunicorn.conf.py'); print(os.environ['PROMETHEUS_MULTIPROC_DIR'])"
    done = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=ROOT,
        env={**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        check=True,
    )
    own = done.stdout.strip()
    assert own.startswith(str(tmp_path / "tokenhub-master-")) and os.path.isdir(own)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["notes.txt", os.path.basename(own)])
