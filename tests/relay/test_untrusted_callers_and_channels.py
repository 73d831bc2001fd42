"""Strangers' input through the real server: a channel's bad data or a caller's bad body fails that attempt or
that call alone, answers in the caller's format, and returns every hold and counter it took."""

from __future__ import annotations

import json
import socket
import time
from decimal import Decimal
from urllib.parse import urlsplit

import anthropic
import httpx
import openai
import pytest
from django.core.cache import cache

from billing import ledger
from billing.models import Hold, HoldStatus, UsageRecord, UsageStatus
from billing.reconcile import reconcile
from channels_app import crypto, routing
from channels_app.models import Channel, ChannelKey
from tests.conftest import wait_for
from tests.relay.conftest import add_channel
from tests.relay.test_relay_calls import PROMPT, settled
from tests.relay.test_relay_failures import only_channel

pytestmark = pytest.mark.services


def store_raw_key(channel: Channel, plaintext: str) -> None:
    """A key as it may sit in the database from before entry validation existed (or written by a bug)."""
    box = crypto.encrypt(plaintext)
    ChannelKey.objects.filter(channel=channel).update(key_id=box.key_id, ciphertext=box.ciphertext)
    routing.invalidate()


def limited(channel: Channel, concurrency: int) -> Channel:
    Channel.objects.filter(pk=channel.pk).update(concurrency_limit=concurrency)
    routing.invalidate()
    return channel


def in_flight(channel: Channel) -> int:
    return cache.get(f"inflight:{channel.pk}") or 0


def assert_nothing_charged(world) -> None:
    settled()
    assert ledger.balance_of(world.alice.pk) == Decimal("10")
    assert not Hold.objects.filter(status=HoldStatus.OPEN).exists()
    assert reconcile().problems == []


@pytest.mark.parametrize(
    "poison",
    [
        pytest.param({"key": "kéy-non-ascii"}, id="non-ascii-key"),
        pytest.param({"key": "k\r\nx-evil: 1"}, id="crlf-key"),
        pytest.param({"base_url": "/v1\r\nx-evil: 1"}, id="crlf-base-url"),
    ],
)
def test_a_poisoned_channel_fails_its_attempt_and_the_call_fails_over(world, poison):
    broken = limited(only_channel(world, name="poisoned", priority=10), 2)
    if "key" in poison:
        store_raw_key(broken, poison["key"])
    else:
        Channel.objects.filter(pk=broken.pk).update(base_url=broken.base_url + poison["base_url"])
        routing.invalidate()
    healthy = add_channel(world.bob, world.upstream, name="healthy", priority=1)
    for _ in range(3):  # more calls than the poisoned channel's concurrency limit
        reply = world.openai().chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=PROMPT)
        assert reply.parse().choices[0].message.content
        settled()
        assert UsageRecord.objects.get(request_id=reply.headers["x-request-id"]).channel == healthy.public_id
    assert in_flight(broken) == 0  # every attempt gave its in-flight count back


def test_a_poisoned_sole_channel_answers_in_the_callers_format_and_refunds(world):
    broken = limited(only_channel(world, name="poisoned"), 1)
    store_raw_key(broken, "kéy")
    for _ in range(2):
        with pytest.raises(openai.InternalServerError) as info:
            world.openai().chat.completions.create(model="gpt-4o-mini", messages=PROMPT)
        assert info.value.status_code == 502 and "could not be called" in info.value.message
    assert in_flight(broken) == 0
    assert_nothing_charged(world)
    assert {r.status for r in UsageRecord.objects.all()} == {UsageStatus.FAILED}


def test_a_non_ascii_anthropic_header_from_the_caller_is_a_400(world):
    response = httpx.post(
        f"{world.relay}/v1/messages",
        json={"model": "claude-haiku-4-5", "max_tokens": 5, "messages": PROMPT},
        headers={"x-api-key": world.key, "anthropic-version": "2023-06-01", "anthropic-beta": b"\xff"},
    )
    assert response.status_code == 400 and response.json()["type"] == "error"
    assert "anthropic-beta" in response.json()["error"]["message"]
    assert_nothing_charged(world)


BAD_BODIES = {
    "chat": [
        {"stream_options": "x", "stream": True},
        {"n": "2"},
        {"stop": 5},
        {"stop": [1]},
        {"response_format": "x"},
        {"tools": [{"function": 1}]},
        {"tools": "x"},
        {"metadata": "x"},
        {"messages": [{"role": "assistant", "tool_calls": "x"}]},
        {"messages": [{"role": "assistant", "tool_calls": [{"function": "x"}]}]},
        {"messages": ["hello"]},
        {"messages": [{"role": "user", "content": 5}]},
        {"temperature": "hot"},
        {"n": 10**30},  # a hold of that many answers overflowed the estimate: a 500
        {"n": 129},
        {"max_tokens": 10**30},
    ],
    "messages": [
        {"stop_sequences": 5},
        {"stop_sequences": [5]},
        {"metadata": "x"},
        {"system": 5},
        {"tools": [{"name": 5}]},
        {"messages": [{"role": "user", "content": [5]}]},
    ],
    "responses": [{"text": "x"}, {"tools": [5]}, {"input": 5}, {"instructions": 5}],
}
BASE = {
    "chat": ("/v1/chat/completions", {"model": "claude-haiku-4-5", "messages": PROMPT}),
    "messages": ("/v1/messages", {"model": "gpt-4o-mini", "max_tokens": 5, "messages": PROMPT}),
    "responses": ("/v1/responses", {"model": "claude-haiku-4-5", "input": "hello"}),
}


@pytest.mark.parametrize(
    ("operation", "change"), [(op, change) for op, changes in BAD_BODIES.items() for change in changes], ids=repr
)
def test_a_field_of_the_wrong_type_is_a_400_in_the_callers_format_and_charges_nothing(world, operation, change):
    # Cross-format on purpose: these bodies reach the translators, which must never see them.
    path, body = BASE[operation]
    response = httpx.post(f"{world.relay}{path}", json={**body, **change}, headers={"x-api-key": world.key})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["message"]
    assert ledger.balance_of(world.alice.pk) == Decimal("10")
    assert not Hold.objects.exists()


def test_deeply_nested_json_is_a_400(world):
    deep = '{"model": "gpt-4o-mini", "messages": ' + "[" * 100_000 + "]" * 100_000 + "}"
    response = httpx.post(
        f"{world.relay}/v1/chat/completions", content=deep, headers={"authorization": f"Bearer {world.key}"}
    )
    assert response.status_code == 400 and "nested too deeply" in response.json()["error"]["message"]


def _raw_request(url: str, head: str, body_chunks=(), *, wait: float = 10.0) -> bytes:
    """Send a request by hand (a declared length the client never sends, or a chunked stream) and read the answer."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=wait) as sock:
        sock.sendall(head.encode())
        try:
            for chunk in body_chunks:
                sock.sendall(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server stopped reading: the answer is already there
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            data = sock.recv(65536)
            if not data:
                break
            answer += data
    return answer


def test_a_declared_oversized_body_is_refused_before_it_is_read(world):
    started = time.monotonic()
    answer = _raw_request(
        world.relay,
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        "Content-Length: 500000000\r\n\r\n",
    )
    assert answer.startswith(b"HTTP/1.1 413")
    assert time.monotonic() - started < 5  # answered without waiting for 500 MB that never came
    assert json.loads(answer.split(b"\r\n\r\n", 1)[1])["error"]["type"] == "invalid_request_error"


def test_a_chunked_body_is_cut_at_the_limit_while_it_arrives(world):
    chunk = b"x" * 1_000_000
    encoded = b"%x\r\n%s\r\n" % (len(chunk), chunk)
    answer = _raw_request(
        world.relay,
        "POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
        "anthropic-version: 2023-06-01\r\n\r\n",
        (encoded for _ in range(60)),  # 60 MB offered, 20 MB allowed
    )
    assert answer.startswith(b"HTTP/1.1 413")
    assert json.loads(answer.split(b"\r\n\r\n", 1)[1])["error"]["type"] == "request_too_large"


def test_the_json_api_refuses_an_oversized_body_in_its_own_shape(world):
    answer = _raw_request(
        world.relay,
        "POST /api/keys HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        "Content-Length: 90000000\r\n\r\n",
    )
    assert answer.startswith(b"HTTP/1.1 413")
    assert json.loads(answer.split(b"\r\n\r\n", 1)[1])["error"]["code"] == "request_too_large"


def test_a_channels_html_error_page_is_never_served_from_tokenhubs_origin(world):
    only_channel(world, keys_=("html-400",))
    response = httpx.post(
        f"{world.relay}/v1/chat/completions",
        json={"model": "gpt-4o-mini", "messages": PROMPT},
        headers={"authorization": f"Bearer {world.key}"},
    )
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/json"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "<script>" not in response.text and response.json()["error"]["type"] == "invalid_request_error"
    assert_nothing_charged(world)


def test_a_channels_html_page_as_a_success_is_a_502_and_charges_nothing(world):
    only_channel(world, keys_=("html-200",))
    with pytest.raises(openai.InternalServerError, match="could not read") as info:
        world.openai().chat.completions.create(model="gpt-4o-mini", messages=PROMPT)
    assert info.value.response.headers["content-type"] == "application/json"
    assert_nothing_charged(world)


def test_an_unreadable_stream_event_ends_a_translated_stream_with_an_error_and_settles(world):
    only_channel(world, keys_=("badevent",))  # an OpenAI-format channel, read by an Anthropic caller
    with (
        pytest.raises(anthropic.APIStatusError, match="could not read"),
        world.anthropic().messages.stream(model="gpt-4o-mini", max_tokens=50, messages=PROMPT) as stream,
    ):
        for _text in stream.text_stream:
            pass
    settled()
    assert UsageRecord.objects.get().status == UsageStatus.PARTIAL
    assert reconcile().problems == []


def test_a_final_event_nested_past_the_recursion_limit_ends_the_stream_and_settles(world):
    only_channel(world, keys_=("deepusage",))  # passed through: the usage chunk itself cannot be read
    with pytest.raises(openai.APIError, match="could not read"):
        for _chunk in world.openai().chat.completions.create(model="gpt-4o-mini", messages=PROMPT, stream=True):
            pass
    settled()
    record = UsageRecord.objects.get()
    assert record.status == UsageStatus.PARTIAL and record.estimated  # billed on TokenHub's own count
    assert Hold.objects.get().status == HoldStatus.SETTLED
    assert reconcile().problems == []


def _leave_after(url: str, body: dict, headers: dict, seconds: float) -> None:
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(url, json=body, headers=headers, timeout=httpx.Timeout(seconds))


@pytest.mark.parametrize("key", ["slow-3000", "slowbody-3000"], ids=["before-first-byte", "while-body-is-read"])
def test_a_caller_leaving_a_non_streamed_call_is_billed_for_the_answer_the_upstream_made(world, key):
    channel = limited(only_channel(world, keys_=(key,)), 5)
    body = {"model": "gpt-4o-mini", "messages": PROMPT}
    _leave_after(f"{world.relay}/v1/chat/completions", body, {"authorization": f"Bearer {world.key}"}, 1.0)
    # The upstream made the whole answer (and its owner pays for it): billed on its usage once it
    # arrives, not refunded in full half an hour later by the sweeper, nor given away.
    wait_for(lambda: Hold.objects.filter(status=HoldStatus.SETTLED).exists(), timeout=8)
    settled()
    record = UsageRecord.objects.get()
    assert (record.input_tokens, record.output_tokens) == (10, 20) and not record.estimated
    assert ledger.balance_of(world.alice.pk) == Decimal("10") - record.cost_usd
    assert in_flight(channel) == 0
    assert reconcile().problems == []


def test_a_stream_caller_leaving_before_the_first_byte_releases_at_once(world):
    only_channel(world, keys_=("slow-4000",))
    body = {"model": "gpt-4o-mini", "messages": PROMPT, "stream": True}
    _leave_after(f"{world.relay}/v1/chat/completions", body, {"authorization": f"Bearer {world.key}"}, 1.0)
    wait_for(lambda: Hold.objects.filter(status=HoldStatus.RELEASED).exists(), timeout=2.5)
    assert_nothing_charged(world)


def test_refusals_show_amounts_as_plain_decimals(world):
    ledger.grant(user_id=world.alice.pk, amount=Decimal("-10"), memo="empty", actor="test")
    with pytest.raises(anthropic.APIStatusError) as info:
        world.anthropic().messages.create(model="claude-haiku-4-5", max_tokens=5, messages=PROMPT)
    assert info.value.status_code == 402
    assert "have $0.00" in info.value.message and "E-" not in info.value.message


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("knob", ["negusage", "floatusage", "infusage", "textusage"])
def test_usage_that_is_not_a_count_is_estimated_and_the_hold_always_closes(world, knob, stream):
    only_channel(world, keys_=(knob,))
    body = {"model": "gpt-4o-mini", "messages": PROMPT, "stream": stream}
    response = httpx.post(
        f"{world.relay}/v1/chat/completions", json=body, headers={"authorization": f"Bearer {world.key}"}
    )
    assert response.status_code == 200
    if not stream:
        assert "E" not in response.headers["x-tokenhub-cost"] and Decimal(response.headers["x-tokenhub-cost"]) >= 0
    settled()
    record = UsageRecord.objects.get()
    hold = Hold.objects.get()
    assert record.estimated and 0 < record.cost_usd <= hold.amount  # billed on TokenHub's own count
    assert hold.status == HoldStatus.SETTLED
    assert reconcile().problems == []


def test_the_hold_covers_the_largest_output_cap_a_body_sets(world):
    def hold_for(body: dict) -> Decimal:
        before = set(Hold.objects.values_list("pk", flat=True))
        response = httpx.post(
            f"{world.relay}/v1/messages",
            json={"model": "gpt-4o-mini", "messages": PROMPT, **body},
            headers={"x-api-key": world.key, "anthropic-version": "2023-06-01"},
        )
        assert response.status_code == 200, response.text
        settled()
        return Hold.objects.exclude(pk__in=before).get().amount

    both = hold_for({"max_tokens": 8000, "max_completion_tokens": 1})
    # 7,999 more output tokens at $0.60 per million; the bodies' few extra bytes are noise beside that.
    assert both - hold_for({"max_tokens": 1}) > Decimal("0.0047")
    assert abs(both - hold_for({"max_tokens": 8000})) < Decimal("0.00001")


def test_a_channels_own_2xx_status_is_answered_as_200(world):
    only_channel(world, keys_=("status-205",))
    response = httpx.post(
        f"{world.relay}/v1/chat/completions",
        json={"model": "gpt-4o-mini", "messages": PROMPT},
        headers={"authorization": f"Bearer {world.key}"},
    )
    assert response.status_code == 200 and response.json()["choices"][0]["message"]["content"]


def test_count_tokens_refuses_a_non_ascii_header_and_ignores_a_channels_non_json_answer(world):
    headers = {"x-api-key": world.key, "anthropic-version": "2023-06-01"}
    body = {"model": "claude-haiku-4-5", "messages": PROMPT}
    bad_header = httpx.post(
        f"{world.relay}/v1/messages/count_tokens", json=body, headers={**headers, "anthropic-beta": b"\xc3\xa9"}
    )
    assert bad_header.status_code == 400 and bad_header.json()["type"] == "error"
    Channel.objects.filter(pk=world.anthropic_channel.pk).delete()
    add_channel(world.bob, world.upstream, provider="anthropic", models=("claude-haiku-4-5",), keys_=("html-200",))
    counted = httpx.post(f"{world.relay}/v1/messages/count_tokens", json=body, headers=headers)
    assert counted.status_code == 200 and counted.json()["estimated"] is True
