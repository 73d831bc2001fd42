"""Golden request mappings, both directions, written from the providers' public API references."""

from __future__ import annotations

import pytest

from relay.translate import ModelDefaults, TranslationError, anthropic_to_openai, openai_to_anthropic

MODEL = ModelDefaults("claude-haiku-4-5", default_output_tokens=4096, max_output_tokens=64000)
PNG = "data:image/png;base64,iVBORw0KGgo="
WEATHER_TOOL_OPENAI = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather by city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
WEATHER_TOOL_ANTHROPIC = {
    "name": "get_weather",
    "description": "Weather by city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


# --- OpenAI caller -> Anthropic channel ----------------------------------------------------------


def test_system_developer_and_multi_turn_with_images():
    body = {
        "model": "claude-haiku-4-5",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "developer", "content": [{"type": "text", "text": "Answer in French."}]},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is this?"},
                    {"type": "image_url", "image_url": {"url": PNG}},
                    {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg", "detail": "high"}},
                ],
            },
            {"role": "assistant", "content": "Un chat."},
            {"role": "user", "content": "Sûr ?"},
        ],
        "max_completion_tokens": 100,
        "temperature": 0.5,
        "top_p": 0.9,
        "stop": "END",
        "user": "u-42",
    }
    assert openai_to_anthropic.request(body, MODEL) == {
        "model": "claude-haiku-4-5",
        "system": "Be brief.\n\nAnswer in French.",
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is this?"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
                    {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
                ],
            },
            {"role": "assistant", "content": [{"type": "text", "text": "Un chat."}]},
            {"role": "user", "content": [{"type": "text", "text": "Sûr ?"}]},
        ],
        "max_tokens": 100,
        "temperature": 0.5,
        "top_p": 0.9,
        "stop_sequences": ["END"],
        "metadata": {"user_id": "u-42"},
    }


def test_tools_parallel_calls_and_several_results_in_one_turn():
    body = {
        "model": "m",
        "messages": [
            {"role": "user", "content": "Weather in Paris and Rome?"},
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
            {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "error: station offline"}]},
        ],
        "tools": [WEATHER_TOOL_OPENAI],
        "tool_choice": "required",
        "parallel_tool_calls": False,
    }
    out = openai_to_anthropic.request(body, MODEL)
    assert out["max_tokens"] == 4096  # Anthropic requires one: the model's default
    assert out["tools"] == [WEATHER_TOOL_ANTHROPIC]
    assert out["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}
    assert out["messages"][1] == {
        "role": "assistant",
        "content": [
            {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}},
            {"type": "tool_use", "id": "call_2", "name": "get_weather", "input": {"city": "Rome"}},
        ],
    }
    assert out["messages"][2] == {
        "role": "user",
        "content": [
            {"type": "tool_result", "tool_use_id": "call_1", "content": "18°C"},
            {"type": "tool_result", "tool_use_id": "call_2", "content": "error: station offline"},
        ],
    }


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ("auto", {"type": "auto"}),
        ("none", {"type": "none"}),
        ("required", {"type": "any"}),
        ({"type": "function", "function": {"name": "get_weather"}}, {"type": "tool", "name": "get_weather"}),
    ],
)
def test_tool_choice_mapping(choice, expected):
    body = {
        "model": "m",
        "messages": [{"role": "user", "content": "hi"}],
        "tools": [WEATHER_TOOL_OPENAI],
        "tool_choice": choice,
    }
    assert openai_to_anthropic.request(body, MODEL)["tool_choice"] == expected


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"n": 2}, "n"),
        ({"temperature": 1.5}, "temperature"),
        ({"response_format": {"type": "json_schema", "json_schema": {}}}, "response_format"),
        ({"tools": [{"type": "code_interpreter"}]}, "tools[0]"),
        (
            {"messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}]},
            "messages[0].content[0]",
        ),
        (
            {
                "messages": [
                    {
                        "role": "assistant",
                        "content": None,
                        "tool_calls": [
                            {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{not json"}}
                        ],
                    }
                ]
            },
            "messages[0].tool_calls[0].function.arguments",
        ),
    ],
)
def test_what_anthropic_cannot_take_is_a_clear_error_naming_the_field(change, field):
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], **change}
    with pytest.raises(TranslationError) as info:
        openai_to_anthropic.request(body, MODEL)
    assert info.value.field == field


def test_json_object_is_honoured_with_an_instruction_and_max_tokens_is_clamped():
    body = {
        "model": "m",
        "messages": [{"role": "user", "content": "hi"}],
        "response_format": {"type": "json_object"},
        "max_tokens": 999999,
    }
    out = openai_to_anthropic.request(body, MODEL)
    assert "JSON object" in out["system"] and out["max_tokens"] == 64000


# --- Anthropic caller -> OpenAI-compatible channel -----------------------------------------------


def test_system_blocks_images_and_params():
    body = {
        "model": "deepseek-chat",
        "max_tokens": 200,
        "system": [
            {"type": "text", "text": "You are Claude Code.", "cache_control": {"type": "ephemeral"}},
            {"type": "text", "text": "Be careful."},
        ],
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": ""},  # Claude Code sends empty text blocks
                    {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "AAAA"}},
                    {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}},
                    {"type": "text", "text": "Describe", "cache_control": {"type": "ephemeral"}},
                ],
            },
        ],
        "temperature": 0.2,
        "top_p": 0.8,
        "top_k": 5,
        "stop_sequences": ["###"],
        "metadata": {"user_id": "u-1"},
    }
    assert anthropic_to_openai.request(body, MODEL) == {
        "model": "deepseek-chat",
        "max_tokens": 200,
        "messages": [
            {"role": "system", "content": "You are Claude Code.\n\nBe careful."},
            {
                "role": "user",
                "content": [
                    {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,AAAA"}},
                    {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
                    {"type": "text", "text": "Describe"},
                ],
            },
        ],
        "temperature": 0.2,
        "top_p": 0.8,
        "stop": ["###"],
        "user": "u-1",
    }


def test_claude_code_turns_with_thinking_tool_use_and_results():
    body = {
        "model": "deepseek-reasoner",
        "max_tokens": 100,
        "messages": [
            {"role": "system", "content": "System inside messages."},
            {"role": "user", "content": "List files"},
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "I should call ls.", "signature": "sig"},
                    {"type": "text", "text": "Checking."},
                    {"type": "tool_use", "id": "toolu_1", "name": "bash", "input": {"cmd": "ls"}},
                    {"type": "tool_use", "id": "toolu_2", "name": "bash", "input": {"cmd": "pwd"}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "text", "text": "a.py"}]},
                    {"type": "tool_result", "tool_use_id": "toolu_2", "content": "denied", "is_error": True},
                    {"type": "text", "text": "Go on", "cache_control": {"type": "ephemeral"}},
                ],
            },
        ],
        "tools": [{**WEATHER_TOOL_ANTHROPIC, "cache_control": {"type": "ephemeral"}}],
        "tool_choice": {"type": "any", "disable_parallel_tool_use": True},
        "stream": True,
    }
    out = anthropic_to_openai.request(body, MODEL)
    assert out["messages"] == [
        {"role": "system", "content": "System inside messages."},
        {"role": "user", "content": "List files"},
        {
            "role": "assistant",
            "content": "Checking.",
            "reasoning_content": "I should call ls.",
            "tool_calls": [
                {"id": "toolu_1", "type": "function", "function": {"name": "bash", "arguments": '{"cmd": "ls"}'}},
                {"id": "toolu_2", "type": "function", "function": {"name": "bash", "arguments": '{"cmd": "pwd"}'}},
            ],
        },
        {"role": "tool", "tool_call_id": "toolu_1", "content": "a.py"},
        {"role": "tool", "tool_call_id": "toolu_2", "content": "Error: denied"},
        {"role": "user", "content": "Go on"},
    ]
    assert out["tools"] == [WEATHER_TOOL_OPENAI]
    assert out["tool_choice"] == "required" and out["parallel_tool_calls"] is False
    assert out["stream"] is True and out["stream_options"] == {"include_usage": True}


def test_a_tool_call_turn_without_thinking_still_carries_reasoning_content():
    body = {
        "model": "deepseek-reasoner",
        "max_tokens": 10,
        "messages": [
            {"role": "user", "content": "x"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "f", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": "ok"}]},
        ],
    }
    assistant = anthropic_to_openai.request(body, MODEL)["messages"][1]
    assert assistant["reasoning_content"] == "" and assistant["content"] is None


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ({"type": "auto"}, "auto"),
        ({"type": "any"}, "required"),
        ({"type": "none"}, "none"),
        ({"type": "tool", "name": "get_weather"}, {"type": "function", "function": {"name": "get_weather"}}),
    ],
)
def test_anthropic_tool_choice_mapping(choice, expected):
    body = {
        "model": "m",
        "max_tokens": 5,
        "messages": [{"role": "user", "content": "hi"}],
        "tools": [WEATHER_TOOL_ANTHROPIC],
        "tool_choice": choice,
    }
    assert anthropic_to_openai.request(body, MODEL)["tool_choice"] == expected


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"tools": [{"type": "web_search_20250305", "name": "web_search"}]}, "tools[0]"),
        ({"messages": [{"role": "user", "content": [{"type": "document", "source": {}}]}]}, "messages[0].content[0]"),
        (
            {
                "messages": [
                    {"role": "user", "content": [{"type": "image", "source": {"type": "file", "file_id": "f"}}]}
                ]
            },
            "messages[0].content[0].source.type",
        ),
        ({"messages": [{"role": "tool", "content": "x"}]}, "messages[0].role"),
    ],
)
def test_what_an_openai_style_model_cannot_take_is_a_clear_error(change, field):
    body = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}], **change}
    with pytest.raises(TranslationError) as info:
        anthropic_to_openai.request(body, MODEL)
    assert info.value.field == field
