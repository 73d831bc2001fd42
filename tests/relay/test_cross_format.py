"""Either SDK reaches any channel: OpenAI callers on Anthropic channels and the reverse, end to end."""

from __future__ import annotations

import json
from decimal import Decimal

import anthropic
import httpx
import openai
import pytest
from asgiref.sync import async_to_sync

from billing.models import UsageRecord
from channels_app import channels, routing
from tests.relay.test_relay_calls import (
    HAIKU_IN,
    HAIKU_OUT,
    MINI_IN,
    MINI_OUT,
    PROMPT,
    assert_charged,
    expected_cost,
    settled,
)

pytestmark = pytest.mark.services

CITY_SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
WEATHER_OPENAI = {
    "type": "function",
    "function": {"name": "get_weather", "description": "Weather by city", "parameters": CITY_SCHEMA},
}
WEATHER_ANTHROPIC = {"name": "get_weather", "description": "Weather by city", "input_schema": CITY_SCHEMA}
PIXEL = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="


def upstream_saw(world) -> dict:
    return httpx.get(world.upstream.removesuffix("/v1") + "/_stats").json()["last_body"]


def test_openai_sdk_reaches_an_anthropic_only_model(world):
    reply = world.openai().chat.completions.create(model="claude-haiku-4-5", messages=PROMPT, max_tokens=50)
    assert reply.object == "chat.completion" and reply.model == "claude-haiku-4-5"
    assert reply.choices[0].message.content.startswith("alpha bravo") and reply.choices[0].finish_reason == "stop"
    assert reply.usage.prompt_tokens == 10 and reply.usage.completion_tokens == 20
    assert upstream_saw(world)["max_tokens"] == 50 and "messages" in upstream_saw(world)
    # Billed on the channel's own usage numbers, exactly.
    assert_charged(world, expected_cost(10, 20, HAIKU_IN, HAIKU_OUT))


def test_openai_sdk_stream_from_an_anthropic_channel(world):
    stream = world.openai().chat.completions.create(
        model="claude-haiku-4-5", messages=PROMPT, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert len(text.split()) == 20
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage.completion_tokens == 20 and chunks[-1].usage.prompt_tokens == 10
    assert_charged(world, expected_cost(10, 20, HAIKU_IN, HAIKU_OUT))


def test_anthropic_sdk_reaches_an_openai_only_model(world):
    message = world.anthropic().messages.create(model="gpt-4o-mini", max_tokens=50, system="Be brief.", messages=PROMPT)
    assert message.type == "message" and message.model == "gpt-4o-mini" and message.stop_reason == "end_turn"
    assert message.content[0].text.startswith("alpha") and message.usage.output_tokens == 20
    sent = upstream_saw(world)
    assert sent["messages"][0] == {"role": "system", "content": "Be brief."}
    # 10 prompt tokens + 2 words and 4 for the system message the OpenAI side counts
    assert message.usage.input_tokens == 16
    assert_charged(world, expected_cost(16, 20, MINI_IN, MINI_OUT))


def test_anthropic_sdk_stream_from_an_openai_channel(world):
    with world.anthropic().messages.stream(model="deepseek-chat", max_tokens=7, messages=PROMPT) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert len(text.split()) == 7 and final.stop_reason == "max_tokens"
    assert final.usage.output_tokens == 7 and final.usage.input_tokens == 10
    settled()
    record = UsageRecord.objects.get()
    assert (record.input_tokens, record.output_tokens, record.estimated) == (10, 7, False)


def test_async_clients_cross_both_ways(world):
    async def go():
        oai = await world.async_openai().chat.completions.create(
            model="claude-haiku-4-5", messages=PROMPT, max_tokens=3
        )
        ant = await world.async_anthropic().messages.create(model="gpt-4o-mini", max_tokens=3, messages=PROMPT)
        return oai, ant

    oai, ant = async_to_sync(go)()
    assert oai.choices[0].finish_reason == "length" and ant.stop_reason == "max_tokens"


def test_tool_calling_round_trip_openai_caller_anthropic_channel(world):
    client = world.openai()
    messages = [{"role": "user", "content": "Weather in Paris?"}]
    first = client.chat.completions.create(model="claude-haiku-4-5", messages=messages, tools=[WEATHER_OPENAI])
    call = first.choices[0].message.tool_calls[0]
    assert first.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "get_weather" and json.loads(call.function.arguments) == {"city": "Paris"}
    assert upstream_saw(world)["tools"] == [WEATHER_ANTHROPIC]
    messages += [
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "18°C and sunny"},
    ]
    second = client.chat.completions.create(model="claude-haiku-4-5", messages=messages, tools=[WEATHER_OPENAI])
    assert second.choices[0].finish_reason == "stop" and second.choices[0].message.content
    sent = upstream_saw(world)["messages"]
    assert sent[1]["content"][-1] == {
        "type": "tool_use",
        "id": call.id,
        "name": "get_weather",
        "input": {"city": "Paris"},
    }
    assert sent[2] == {
        "role": "user",
        "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "18°C and sunny"}],
    }


def test_tool_calling_stream_anthropic_caller_openai_channel(world):
    client = world.anthropic()
    messages = [{"role": "user", "content": "Weather in Paris?"}]
    with client.messages.stream(
        model="gpt-4o-mini", max_tokens=100, messages=messages, tools=[WEATHER_ANTHROPIC]
    ) as stream:
        final = stream.get_final_message()
    tool_use = next(block for block in final.content if block.type == "tool_use")
    assert final.stop_reason == "tool_use" and tool_use.input == {"city": "Paris"} and tool_use.name == "get_weather"
    assert upstream_saw(world)["tools"] == [WEATHER_OPENAI]
    result = {"type": "tool_result", "tool_use_id": tool_use.id, "content": "18°C"}
    messages += [
        {"role": "assistant", "content": [b.model_dump() for b in final.content]},
        {"role": "user", "content": [result]},
    ]
    answer = client.messages.create(model="gpt-4o-mini", max_tokens=100, messages=messages, tools=[WEATHER_ANTHROPIC])
    assert answer.stop_reason == "end_turn" and answer.content[0].text
    sent = upstream_saw(world)["messages"]
    assert sent[1]["tool_calls"][0]["id"] == tool_use.id and sent[2] == {
        "role": "tool",
        "tool_call_id": tool_use.id,
        "content": "18°C",
    }


def test_an_image_crosses_in_both_directions(world):
    world.openai().chat.completions.create(
        model="claude-haiku-4-5",
        max_tokens=5,
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is it?"},
                    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PIXEL}"}},
                ],
            }
        ],
    )
    assert upstream_saw(world)["messages"][0]["content"][1] == {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": PIXEL},
    }
    world.anthropic().messages.create(
        model="gpt-4o-mini",
        max_tokens=5,
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PIXEL}},
                    {"type": "text", "text": "What?"},
                ],
            }
        ],
    )
    assert upstream_saw(world)["messages"][0]["content"][0] == {
        "type": "image_url",
        "image_url": {"url": f"data:image/png;base64,{PIXEL}"},
    }


def test_untranslatable_requests_get_a_400_naming_the_field_and_cost_nothing(world):
    with pytest.raises(openai.BadRequestError, match="n: Anthropic models return one choice"):
        world.openai().chat.completions.create(model="claude-haiku-4-5", messages=PROMPT, n=2)
    with pytest.raises(openai.BadRequestError, match="temperature: Anthropic models accept 0 to 1"):
        world.openai().chat.completions.create(model="claude-haiku-4-5", messages=PROMPT, temperature=1.7)
    with pytest.raises(anthropic.BadRequestError, match=r"tools\[0\]"):
        world.anthropic().messages.create(
            model="gpt-4o-mini",
            max_tokens=5,
            messages=PROMPT,
            tools=[{"type": "web_search_20250305", "name": "web_search"}],
        )
    from billing.models import Hold

    assert not Hold.objects.exists()


def test_a_caller_caused_upstream_error_comes_back_in_the_callers_format(world):
    # The Anthropic channel rejects this stop sequence with an Anthropic-shaped 400.
    with pytest.raises(openai.BadRequestError) as info:
        world.openai().chat.completions.create(model="claude-haiku-4-5", messages=PROMPT, stop=["BAD"])
    assert "stop_sequences: each sequence must contain non-whitespace" in info.value.message
    assert info.value.body["type"] == "invalid_request_error"  # OpenAI's error shape


def test_a_failing_channel_in_the_other_format_is_a_503_or_502_for_the_caller(world):
    from billing import ledger
    from tests.relay.conftest import add_channel

    channels.pause(world.anthropic_channel)
    add_channel(world.bob, world.upstream, provider="anthropic", models=("claude-haiku-4-5",), keys_=("fail-529",))
    routing.invalidate()
    with pytest.raises(openai.InternalServerError) as info:
        world.openai().chat.completions.create(model="claude-haiku-4-5", messages=PROMPT)
    assert info.value.status_code == 502 and "No upstream could answer" in info.value.message
    assert ledger.balance_of(world.alice.pk) == Decimal("10")


def chat_only(world) -> None:
    """The default OpenAI channel is provider "openai" (native Responses API); make it a chat-only one."""
    from channels_app.models import Channel

    Channel.objects.filter(pk=world.openai_channel.pk).update(provider="openai-compatible")
    routing.invalidate()


def test_responses_api_over_a_chat_only_channel_and_an_anthropic_channel(world):
    chat_only(world)
    client = world.openai()
    for model in ("gpt-4o-mini", "claude-haiku-4-5"):  # openai-compatible (chat only), then anthropic
        response = client.responses.create(
            model=model, input="Say hello to the whole world", instructions="Be brief.", max_output_tokens=6
        )
        assert response.status == "incomplete" and response.output_text.split()[:2] == ["alpha", "bravo"]
        assert response.usage.output_tokens == 6
        events = list(client.responses.create(model=model, input="Say hello", stream=True))
        assert events[0].type == "response.created" and events[-1].type == "response.completed"
        assert len("".join(e.delta for e in events if e.type == "response.output_text.delta").split()) == 20
        with client.responses.stream(model=model, input="Say hello") as stream:
            final = stream.get_final_response()
        assert len(final.output_text.split()) == 20
    settled()
    assert UsageRecord.objects.count() == 6 and not UsageRecord.objects.filter(estimated=True).exists()


def test_responses_api_function_call_round_trip_over_a_chat_channel(world):
    chat_only(world)
    client = world.openai()
    tool = {"type": "function", "name": "get_weather", "description": "Weather", "parameters": CITY_SCHEMA}
    first = client.responses.create(model="gpt-4o-mini", input="Weather in Paris?", tools=[tool])
    call = next(item for item in first.output if item.type == "function_call")
    assert json.loads(call.arguments) == {"city": "Paris"}
    second = client.responses.create(
        model="gpt-4o-mini",
        tools=[tool],
        input=[
            {"role": "user", "content": "Weather in Paris?"},
            call.model_dump(exclude_none=True),
            {"type": "function_call_output", "call_id": call.call_id, "output": "18°C"},
        ],
    )
    assert second.output_text
    with pytest.raises(openai.BadRequestError, match="previous_response_id"):
        client.responses.create(model="gpt-4o-mini", input="more", previous_response_id=first.id)
