"""The Responses API over Chat-Completions-only channels (and, composed, Anthropic ones)."""

from __future__ import annotations

import json

import pytest

from relay.sse import SSEParser
from relay.translate import ModelDefaults, TranslationError, responses_to_chat
from tests.translate.test_responses_and_streams import OPENAI_STREAM, run_translator, splits

MODEL = ModelDefaults("gpt-4o-mini", default_output_tokens=1024)


def test_input_items_instructions_tools_and_outputs():
    body = {
        "model": "gpt-4o-mini",
        "instructions": "Be brief.",
        "max_output_tokens": 50,
        "temperature": 0.3,
        "input": [
            {
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "Weather?"},
                    {"type": "input_image", "image_url": "https://example.com/sky.png"},
                ],
            },
            {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": '{"city":"Paris"}'},
            {"type": "function_call", "call_id": "call_2", "name": "get_weather", "arguments": '{"city":"Rome"}'},
            {"type": "function_call_output", "call_id": "call_1", "output": "18°C"},
            {"type": "function_call_output", "call_id": "call_2", "output": {"temp": 21}},
            {"type": "reasoning", "id": "rs_1", "summary": []},
            {
                "type": "message",
                "role": "assistant",
                "content": [{"type": "output_text", "text": "Paris 18, Rome 21."}],
            },
            {"role": "user", "content": "Thanks"},
        ],
        "tools": [{"type": "function", "name": "get_weather", "description": "d", "parameters": {"type": "object"}}],
        "tool_choice": {"type": "function", "name": "get_weather"},
        "text": {"format": {"type": "json_object"}},
        "stream": True,
    }
    assert responses_to_chat.request(body, MODEL) == {
        "model": "gpt-4o-mini",
        "max_tokens": 50,
        "temperature": 0.3,
        "messages": [
            {"role": "system", "content": "Be brief."},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Weather?"},
                    {"type": "image_url", "image_url": {"url": "https://example.com/sky.png"}},
                ],
            },
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                    },
                    {
                        "id": "call_2",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"Rome"}'},
                    },
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "18°C"},
            {"role": "tool", "tool_call_id": "call_2", "content": '{"temp": 21}'},
            {"role": "assistant", "content": "Paris 18, Rome 21."},
            {"role": "user", "content": "Thanks"},
        ],
        "tools": [
            {
                "type": "function",
                "function": {"name": "get_weather", "parameters": {"type": "object"}, "description": "d"},
            }
        ],
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        "response_format": {"type": "json_object"},
        "stream": True,
        "stream_options": {"include_usage": True},
    }


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"previous_response_id": "resp_1"}, "previous_response_id"),
        ({"input": [{"type": "item_reference", "id": "msg_1"}]}, "input[0]"),
        ({"input": [{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}]}, "input[0].content[0]"),
    ],
)
def test_what_needs_the_real_responses_api_is_refused_clearly(change, field):
    with pytest.raises(TranslationError) as info:
        responses_to_chat.request({"model": "m", "input": "hi", **change}, MODEL)
    assert info.value.field == field


def test_chat_completion_becomes_a_response_object():
    completion = {
        "id": "chatcmpl-1",
        "choices": [
            {
                "index": 0,
                "finish_reason": "tool_calls",
                "message": {
                    "role": "assistant",
                    "content": "Checking.",
                    "tool_calls": [
                        {
                            "id": "call_9",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'},
                        }
                    ],
                },
            }
        ],
        "usage": {"prompt_tokens": 12, "completion_tokens": 7, "prompt_tokens_details": {"cached_tokens": 2}},
    }
    out = responses_to_chat.response(completion, MODEL, {"model": "gpt-4o-mini", "input": "x"})
    assert out["object"] == "response" and out["status"] == "completed" and out["model"] == "gpt-4o-mini"
    message, call = out["output"]
    assert message["type"] == "message" and message["content"][0] == {
        "type": "output_text",
        "text": "Checking.",
        "annotations": [],
    }
    assert (call["type"], call["call_id"], call["name"], call["arguments"]) == (
        "function_call",
        "call_9",
        "get_weather",
        '{"city":"Oslo"}',
    )
    assert out["usage"]["input_tokens"] == 12 and out["usage"]["output_tokens"] == 7
    assert out["usage"]["input_tokens_details"] == {"cached_tokens": 2} and out["usage"]["total_tokens"] == 19


def test_a_cut_answer_is_incomplete():
    completion = {
        "choices": [{"finish_reason": "length", "message": {"role": "assistant", "content": "abc"}}],
        "usage": {},
    }
    out = responses_to_chat.response(completion, MODEL, {})
    assert out["status"] == "incomplete" and out["incomplete_details"] == {"reason": "max_output_tokens"}


@pytest.mark.parametrize("chunks", list(splits(OPENAI_STREAM)))
def test_chat_chunks_become_responses_events(chunks):
    out = run_translator(responses_to_chat.StreamTranslator(MODEL, {"model": "gpt-4o-mini"}), chunks)
    events = [(e.name, e.json()) for e in SSEParser().feed(out)]
    names = [name for name, _ in events]
    assert names[:2] == ["response.created", "response.in_progress"] and names[-1] == "response.completed"
    assert [data["sequence_number"] for _, data in events] == list(range(len(events)))
    text = "".join(data["delta"] for name, data in events if name == "response.output_text.delta")
    assert text == "Naïve 😀"
    final = events[-1][1]["response"]
    kinds = [item["type"] for item in final["output"]]
    assert kinds == ["message", "function_call", "function_call"]
    assert json.loads(final["output"][1]["arguments"]) == {"city": "Paris"}
    assert json.loads(final["output"][2]["arguments"]) == {"tz": "CET"}
    assert final["usage"]["input_tokens"] == 50 and final["usage"]["output_tokens"] == 12
    argument_deltas = [d for n, d in events if n == "response.function_call_arguments.delta"]
    assert {d["item_id"] for d in argument_deltas} == {final["output"][1]["id"], final["output"][2]["id"]}
