"""Golden responses and streams: hand-written wire examples, fed in chunks split at awkward places."""

from __future__ import annotations

import json

import pytest

from relay.sse import SSEParser, encode
from relay.translate import ModelDefaults, anthropic_to_openai, openai_to_anthropic

MODEL = ModelDefaults("the-model-the-caller-named", default_output_tokens=1024)


# --- Non-streamed responses ---------------------------------------------------------------------


ANTHROPIC_MESSAGE = {
    "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
    "type": "message",
    "role": "assistant",
    "model": "claude-haiku-4-5",
    "content": [
        {"type": "thinking", "thinking": "The user wants weather.", "signature": "EqQB…"},
        {"type": "text", "text": "Let me check."},
        {"type": "tool_use", "id": "toolu_01A", "name": "get_weather", "input": {"city": "Paris"}},
    ],
    "stop_reason": "tool_use",
    "stop_sequence": None,
    "usage": {
        "input_tokens": 100,
        "output_tokens": 30,
        "cache_read_input_tokens": 50,
        "cache_creation_input_tokens": 10,
    },
}


def test_anthropic_message_becomes_a_chat_completion():
    out = openai_to_anthropic.response(ANTHROPIC_MESSAGE, MODEL)
    assert out["object"] == "chat.completion" and out["model"] == "the-model-the-caller-named"
    assert out["id"] == "chatcmpl-01XFDUDYJgAACzvnptvVoYEL"
    choice = out["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"] == {
        "role": "assistant",
        "content": "Let me check.",
        "reasoning_content": "The user wants weather.",
        "tool_calls": [
            {
                "id": "toolu_01A",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
            }
        ],
    }
    # prompt tokens include cached reads and cache writes, as OpenAI counts them
    assert out["usage"] == {
        "prompt_tokens": 160,
        "completion_tokens": 30,
        "total_tokens": 190,
        "prompt_tokens_details": {"cached_tokens": 50},
    }


@pytest.mark.parametrize(
    ("stop", "finish"),
    [
        ("end_turn", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
        ("stop_sequence", "stop"),
        ("refusal", "content_filter"),
    ],
)
def test_stop_reasons_map_to_finish_reasons(stop, finish):
    message = {**ANTHROPIC_MESSAGE, "stop_reason": stop, "content": [{"type": "text", "text": "x"}]}
    assert openai_to_anthropic.response(message, MODEL)["choices"][0]["finish_reason"] == finish


OPENAI_COMPLETION = {
    "id": "chatcmpl-abc123",
    "object": "chat.completion",
    "created": 1,
    "model": "deepseek-reasoner",
    "choices": [
        {
            "index": 0,
            "finish_reason": "tool_calls",
            "message": {
                "role": "assistant",
                "content": "Checking.",
                "reasoning_content": "Need the tool.",
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
        }
    ],
    "usage": {
        "prompt_tokens": 120,
        "completion_tokens": 40,
        "total_tokens": 160,
        "prompt_tokens_details": {"cached_tokens": 20},
    },
}


def test_chat_completion_becomes_an_anthropic_message():
    out = anthropic_to_openai.response(OPENAI_COMPLETION, MODEL)
    assert out == {
        "id": "msg_abc123",
        "type": "message",
        "role": "assistant",
        "model": "the-model-the-caller-named",
        "content": [
            {"type": "thinking", "thinking": "Need the tool.", "signature": ""},
            {"type": "text", "text": "Checking."},
            {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}},
            {"type": "tool_use", "id": "call_2", "name": "get_weather", "input": {"city": "Rome"}},
        ],
        "stop_reason": "tool_use",
        "stop_sequence": None,
        "usage": {
            "input_tokens": 100,
            "output_tokens": 40,
            "cache_read_input_tokens": 20,
            "cache_creation_input_tokens": 0,
        },
    }


@pytest.mark.parametrize(
    ("finish", "stop"),
    [("stop", "end_turn"), ("length", "max_tokens"), ("tool_calls", "tool_use"), ("content_filter", "refusal")],
)
def test_finish_reasons_map_to_stop_reasons(finish, stop):
    completion = {
        **OPENAI_COMPLETION,
        "choices": [{"index": 0, "finish_reason": finish, "message": {"role": "assistant", "content": "x"}}],
    }
    assert anthropic_to_openai.response(completion, MODEL)["stop_reason"] == stop


# --- Streams ------------------------------------------------------------------------------------


def anthropic_event(name: str, data: dict) -> bytes:
    return encode(json.dumps({"type": name, **data}, ensure_ascii=False), name)


ANTHROPIC_STREAM = b"".join(
    [
        anthropic_event(
            "message_start",
            {
                "message": {
                    "id": "msg_1",
                    "type": "message",
                    "role": "assistant",
                    "model": "claude",
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": {"input_tokens": 25, "output_tokens": 1, "cache_read_input_tokens": 5},
                }
            },
        ),
        anthropic_event("content_block_start", {"index": 0, "content_block": {"type": "thinking", "thinking": ""}}),
        anthropic_event("content_block_delta", {"index": 0, "delta": {"type": "thinking_delta", "thinking": "Hmm…"}}),
        anthropic_event("content_block_delta", {"index": 0, "delta": {"type": "signature_delta", "signature": "abc"}}),
        anthropic_event("content_block_stop", {"index": 0}),
        anthropic_event("ping", {}),
        anthropic_event("content_block_start", {"index": 1, "content_block": {"type": "text", "text": ""}}),
        anthropic_event("content_block_delta", {"index": 1, "delta": {"type": "text_delta", "text": "Café "}}),
        anthropic_event("content_block_delta", {"index": 1, "delta": {"type": "text_delta", "text": "😀 ok"}}),
        anthropic_event("content_block_stop", {"index": 1}),
        anthropic_event(
            "content_block_start",
            {"index": 2, "content_block": {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}}},
        ),
        anthropic_event(
            "content_block_delta", {"index": 2, "delta": {"type": "input_json_delta", "partial_json": '{"ci'}}
        ),
        anthropic_event(
            "content_block_delta", {"index": 2, "delta": {"type": "input_json_delta", "partial_json": 'ty": "Zürich"}'}}
        ),
        anthropic_event("content_block_stop", {"index": 2}),
        anthropic_event(
            "message_delta",
            {"delta": {"stop_reason": "tool_use", "stop_sequence": None}, "usage": {"output_tokens": 42}},
        ),
        anthropic_event("message_stop", {}),
    ]
)


def chat_chunk(delta: dict | None, finish=None, usage=None) -> bytes:
    data = {
        "id": "chatcmpl-9",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "deepseek",
        "choices": [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    if usage:
        data["usage"] = usage
    return encode(json.dumps(data, ensure_ascii=False))


OPENAI_STREAM = b"".join(
    [
        chat_chunk({"role": "assistant", "content": ""}),
        chat_chunk({"reasoning_content": "Think "}),
        chat_chunk({"reasoning_content": "more."}),
        chat_chunk({"content": "Naïve "}),
        chat_chunk({"content": "😀"}),
        chat_chunk(
            {
                "tool_calls": [
                    {
                        "index": 0,
                        "id": "call_a",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": ""},
                    }
                ]
            }
        ),
        chat_chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"city": "Pa'}}]}),
        chat_chunk(
            {
                "tool_calls": [
                    {
                        "index": 1,
                        "id": "call_b",
                        "type": "function",
                        "function": {"name": "get_time", "arguments": '{"tz"'},
                    }
                ]
            }
        ),
        chat_chunk({"tool_calls": [{"index": 0, "function": {"arguments": 'ris"}'}}]}),
        chat_chunk({"tool_calls": [{"index": 1, "function": {"arguments": ': "CET"}'}}]}),
        chat_chunk({}, finish="tool_calls"),
        chat_chunk(
            None,
            usage={
                "prompt_tokens": 50,
                "completion_tokens": 12,
                "total_tokens": 62,
                "prompt_tokens_details": {"cached_tokens": 8},
            },
        ),
        encode("[DONE]"),
    ]
)


def splits(data: bytes):
    """Chunkings of a byte stream: one byte at a time, inside UTF-8 characters, inside JSON, odd sizes."""
    yield [data]
    yield [data[i : i + 1] for i in range(len(data))]
    for size in (3, 7, 64):
        yield [data[i : i + size] for i in range(0, len(data), size)]
    emoji = data.find("😀".encode())
    yield [data[: emoji + 2], data[emoji + 2 :]]  # inside a 4-byte character
    json_cut = data.find(b'"ci') if b'"ci' in data else data.find(b'"city')
    yield [data[: json_cut + 2], data[json_cut + 2 :]]  # inside the JSON of tool arguments


def run_translator(translator, chunks: list[bytes]) -> bytes:
    parser, out = SSEParser(), []
    for chunk in chunks:
        for event in parser.feed(chunk):
            out += translator.feed(event)
    assert parser.pending == b""
    return b"".join(out)


def read_openai(stream: bytes) -> dict:
    """What an OpenAI client accumulates from chat.completion.chunk events."""
    result = {"role": None, "content": "", "reasoning": "", "tools": {}, "finish": None, "usage": None, "done": False}
    for event in SSEParser().feed(stream):
        if event.data == b"[DONE]":
            result["done"] = True
            continue
        chunk = event.json()
        assert chunk["object"] == "chat.completion.chunk" and chunk["model"] == MODEL.name
        result["usage"] = chunk.get("usage") or result["usage"]
        for choice in chunk["choices"]:
            delta = choice["delta"]
            result["role"] = delta.get("role") or result["role"]
            result["content"] += delta.get("content") or ""
            result["reasoning"] += delta.get("reasoning_content") or ""
            for call in delta.get("tool_calls") or []:
                entry = result["tools"].setdefault(call["index"], {"id": None, "name": None, "arguments": ""})
                entry["id"] = call.get("id") or entry["id"]
                entry["name"] = (call.get("function") or {}).get("name") or entry["name"]
                entry["arguments"] += (call.get("function") or {}).get("arguments") or ""
            result["finish"] = choice.get("finish_reason") or result["finish"]
    return result


@pytest.mark.parametrize("chunks", list(splits(ANTHROPIC_STREAM)))
def test_anthropic_stream_becomes_chat_completion_chunks(chunks):
    out = run_translator(openai_to_anthropic.StreamTranslator(MODEL, include_usage=True), chunks)
    result = read_openai(out)
    assert result["role"] == "assistant" and result["content"] == "Café 😀 ok" and result["reasoning"] == "Hmm…"
    assert result["tools"] == {0: {"id": "toolu_1", "name": "get_weather", "arguments": '{"city": "Zürich"}'}}
    assert result["finish"] == "tool_calls" and result["done"]
    assert result["usage"] == {
        "prompt_tokens": 30,
        "completion_tokens": 42,
        "total_tokens": 72,
        "prompt_tokens_details": {"cached_tokens": 5},
    }


def test_usage_chunk_only_when_the_caller_asked():
    out = run_translator(openai_to_anthropic.StreamTranslator(MODEL, include_usage=False), [ANTHROPIC_STREAM])
    assert read_openai(out)["usage"] is None


def test_anthropic_error_event_becomes_an_openai_error():
    stream = anthropic_event("error", {"error": {"type": "overloaded_error", "message": "Overloaded"}})
    out = run_translator(openai_to_anthropic.StreamTranslator(MODEL, include_usage=False), [stream])
    assert json.loads(SSEParser().feed(out)[0].data) == {
        "error": {"message": "Overloaded", "type": "overloaded_error", "code": None}
    }


def read_anthropic(stream: bytes) -> dict:
    """What the Anthropic SDK accumulates: blocks by index, stop reason, usage, event order."""
    blocks, names, result = {}, [], {}
    for event in SSEParser().feed(stream):
        data = event.json()
        assert data["type"] == event.name
        names.append(event.name)
        if event.name == "message_start":
            result["message"] = data["message"]
        elif event.name == "content_block_start":
            blocks[data["index"]] = {**data["content_block"], "json": ""}
        elif event.name == "content_block_delta":
            block, delta = blocks[data["index"]], data["delta"]
            block["text"] = block.get("text", "") + delta.get("text", "")
            block["thinking"] = block.get("thinking", "") + delta.get("thinking", "")
            block["json"] += delta.get("partial_json", "")
        elif event.name == "message_delta":
            result["stop_reason"] = data["delta"]["stop_reason"]
            result["usage"] = data["usage"]
    result["blocks"], result["names"] = blocks, names
    return result


@pytest.mark.parametrize("chunks", list(splits(OPENAI_STREAM)))
def test_chat_completion_chunks_become_anthropic_events(chunks):
    out = run_translator(anthropic_to_openai.StreamTranslator(MODEL), chunks)
    result = read_anthropic(out)
    names = result["names"]
    assert names[0] == "message_start" and names[-2:] == ["message_delta", "message_stop"]
    assert names.count("content_block_start") == names.count("content_block_stop") == 4
    blocks = result["blocks"]
    assert blocks[0]["type"] == "thinking" and blocks[0]["thinking"] == "Think more."
    assert blocks[1]["type"] == "text" and blocks[1]["text"] == "Naïve 😀"
    assert (blocks[2]["type"], blocks[2]["id"], blocks[2]["name"], json.loads(blocks[2]["json"])) == (
        "tool_use",
        "call_a",
        "get_weather",
        {"city": "Paris"},
    )
    assert (blocks[3]["id"], blocks[3]["name"], json.loads(blocks[3]["json"])) == ("call_b", "get_time", {"tz": "CET"})
    assert result["stop_reason"] == "tool_use"
    assert result["usage"] == {"output_tokens": 12, "input_tokens": 42, "cache_read_input_tokens": 8}
    assert result["message"]["model"] == MODEL.name


def test_an_openai_stream_that_ends_without_done_is_still_closed_properly():
    translator = anthropic_to_openai.StreamTranslator(MODEL)
    run_translator(translator, [chat_chunk({"role": "assistant", "content": "Hi"})])
    tail = b"".join(translator.finish())
    names = [e.name for e in SSEParser().feed(tail)]
    assert names == ["content_block_stop", "message_delta", "message_stop"]


def test_sse_parser_handles_crlf_comments_and_multiline_data():
    parser = SSEParser()
    events = parser.feed(b": keep-alive\r\n\r\nevent: x\r\ndata: a\r\ndata: b\r\n\r\ndata: tail")
    assert [(e.name, e.data) for e in events] == [("x", b"a\nb")]
    assert parser.pending == b"data: tail"


def test_an_openai_error_chunk_becomes_an_anthropic_error_event():
    translator = anthropic_to_openai.StreamTranslator(MODEL)
    out = run_translator(
        translator, [encode(json.dumps({"error": {"message": "quota exceeded", "type": "insufficient_quota"}}))]
    )
    (event,) = SSEParser().feed(out)
    assert event.name == "error" and event.json() == {
        "type": "error",
        "error": {"type": "api_error", "message": "quota exceeded"},
    }
