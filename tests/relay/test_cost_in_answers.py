"""The amount charged, in every answer (relay/cost_reporting.py): `usage.cost_usd`, 8 decimals, in plain
answers and in the event with a stream's final usage, same-format and translated, for Chat Completions,
Messages and Responses callers; the official SDKs still parse them; the usage record and /v1/usage agree
within a second of the answer's end."""

from __future__ import annotations

import time
from decimal import Decimal

import httpx
import pytest

from billing.models import UsageRecord

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]
PROMPT = [{"role": "user", "content": "hello"}]
ANTHROPIC_MODEL, OPENAI_MODEL = "claude-haiku-4-5", "gpt-4o-mini"


def extra(model_object, name: str = "cost_usd"):
    """A field the SDK's model does not declare (pydantic keeps it as an extra)."""
    value = getattr(model_object, name, None)
    return value if value is not None else (model_object.model_extra or {}).get(name)


def billed(world, request_id: str) -> Decimal:
    """The charge as the ledger booked it, seen through /v1/usage within a second of the answer's end."""
    deadline = time.monotonic() + 1.0
    while True:
        rows = httpx.get(f"{world.relay}/v1/usage", headers={"Authorization": f"Bearer {world.key}"}).json()["data"]
        found = [r for r in rows if r["request_id"] == request_id]
        if found:
            assert UsageRecord.objects.get(request_id=request_id).cost_usd == Decimal(found[0]["cost_usd"])
            return Decimal(found[0]["cost_usd"])
        assert time.monotonic() < deadline, f"{request_id} not in /v1/usage within 1 s"
        time.sleep(0.05)


def eight_places(text: str) -> Decimal:
    assert isinstance(text, str) and len(text.split(".")[1]) == 8, text
    return Decimal(text)


@pytest.mark.parametrize("model", [OPENAI_MODEL, ANTHROPIC_MODEL], ids=["same-format", "translated"])
def test_openai_callers_see_the_cost_in_usage_and_the_header(world, model):
    client = world.openai()
    raw = client.chat.completions.with_raw_response.create(model=model, messages=PROMPT, max_tokens=32)
    answer = raw.parse()
    cost = eight_places(extra(answer.usage))
    assert cost == Decimal(raw.headers["x-tokenhub-cost"]) == billed(world, raw.headers["x-request-id"]) > 0

    with client.chat.completions.with_streaming_response.create(
        model=model, messages=PROMPT, max_tokens=32, stream=True, stream_options={"include_usage": True}
    ) as streamed:
        chunks = list(streamed.parse())
        request_id = streamed.headers["x-request-id"]
    final = [c for c in chunks if c.usage is not None]
    assert len(final) == 1 and eight_places(extra(final[0].usage)) == billed(world, request_id)


@pytest.mark.parametrize("model", [ANTHROPIC_MODEL, OPENAI_MODEL], ids=["same-format", "translated"])
def test_anthropic_callers_see_the_cost_in_usage_and_message_delta(world, model):
    client = world.anthropic()
    raw = client.messages.with_raw_response.create(model=model, max_tokens=32, messages=PROMPT)
    message = raw.parse()
    cost = eight_places(extra(message.usage))
    assert cost == Decimal(raw.headers["x-tokenhub-cost"]) == billed(world, raw.headers["x-request-id"])

    with client.messages.with_streaming_response.create(
        model=model, max_tokens=32, messages=PROMPT, stream=True
    ) as streamed:
        events = list(streamed.parse())
        request_id = streamed.headers["x-request-id"]
    deltas = [e for e in events if e.type == "message_delta"]
    assert len(deltas) == 1 and eight_places(extra(deltas[0].usage)) == billed(world, request_id)


@pytest.mark.parametrize("model", [OPENAI_MODEL, ANTHROPIC_MODEL], ids=["chat-channel", "messages-channel"])
def test_responses_callers_see_the_cost_in_the_completed_response(world, model):
    client = world.openai()
    raw = client.responses.with_raw_response.create(model=model, input="hello", max_output_tokens=32)
    response = raw.parse()
    assert eight_places(extra(response.usage)) == billed(world, raw.headers["x-request-id"])

    with client.responses.with_streaming_response.create(
        model=model, input="hello", max_output_tokens=32, stream=True
    ) as streamed:
        events = list(streamed.parse())
        request_id = streamed.headers["x-request-id"]
    completed = [e for e in events if e.type == "response.completed"]
    assert len(completed) == 1 and eight_places(extra(completed[0].response.usage)) == billed(world, request_id)


def test_a_channels_own_cost_in_an_early_event_is_taken_out_and_the_final_one_is_tokenhubs():
    import json

    from relay.cost_reporting import add_to_events
    from relay.sse import encode, parse_block

    hostile = [
        encode(
            '{"type":"message_start","message":{"usage":{"input_tokens":3,"cost_usd":"0.00000001"}}}', "message_start"
        ),
        encode('{"type":"response.created","response":{"usage":{"cost_usd":"0"}}}', "response.created"),
        encode('{"type":"content_block_delta","delta":{"text":"cost_usd"}}', "content_block_delta"),
        encode('{"type":"message_delta","usage":{"output_tokens":5,"cost_usd":"0"}}', "message_delta"),
    ]
    out = [json.loads(parse_block(piece).data) for piece in add_to_events(hostile, lambda: Decimal("0.25"))]
    assert "cost_usd" not in out[0]["message"]["usage"] and out[0]["message"]["usage"]["input_tokens"] == 3
    assert "cost_usd" not in out[1]["response"]["usage"]
    assert out[2]["delta"]["text"] == "cost_usd"  # text that merely mentions it is untouched
    assert out[3]["usage"]["cost_usd"] == "0.25000000"


def test_a_channels_cost_in_any_json_spelling_is_taken_out_and_a_failed_response_gets_tokenhubs():
    import json

    from relay.cost_reporting import add_to_events
    from relay.sse import encode, parse_block

    escaped = '{"type":"message_start","message":{"usage" : {"input_tokens":5,"cost\\u005fusd":"777.0"}}}'
    spaced = '{"id":"c","choices":[],"usage" : {"prompt_tokens":3,"cost_usd":"99.0"}}'
    failed = '{"type":"response.failed","response":{"usage":{"input_tokens":1,"cost_usd":"99.0"}}}'
    plain_chunk = encode('{"id":"c","choices":[{"delta":{"content":"hi"}}],"usage":null}', "")
    pieces = [encode(escaped, "message_start"), encode(spaced, ""), encode(failed, "response.failed"), plain_chunk]
    out = add_to_events(pieces, lambda: Decimal("0.5"))
    start, chunk, failure = (json.loads(parse_block(piece).data) for piece in out[:3])
    assert "cost_usd" not in start["message"]["usage"] and start["message"]["usage"]["input_tokens"] == 5
    assert chunk["usage"]["cost_usd"] == failure["response"]["usage"]["cost_usd"] == "0.50000000"
    assert out[3] is plain_chunk  # OpenAI's "usage":null on every chunk: not parsed, the bytes as they came
    # Before any usage is known (a Responses stream's response.created), a channel's figure is taken out too.
    early = encode('{"type":"response.created","response":{"usage":{"cost_usd":"777"}}}', "response.created")
    [stripped] = add_to_events([early], lambda: None)
    assert "cost_usd" not in json.loads(parse_block(stripped).data)["response"]["usage"]


def test_a_hostile_events_shape_passes_as_it_came_instead_of_breaking_the_stream():
    from relay.cost_reporting import add_to_events
    from relay.sse import encode

    deep = encode('{"usage":' + "[" * 100_000 + "]" * 100_000 + "}", "message_start")
    broken = encode('{"usage": {"cost_usd": "1"', "message_delta")
    nul = encode('{"type":"x","usage":{"cost_usd":"1\\u0000"},"t":"\\u0000"}', "ping")
    out = add_to_events([deep, broken, nul], lambda: Decimal("0.5"))
    assert out[0] is deep and out[1] is broken  # no figure added to what is not JSON; nothing raised
    assert b"cost_usd" not in out[2]  # an unknown event's channel figure is still taken out
