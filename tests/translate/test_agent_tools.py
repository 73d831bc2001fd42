"""The tools coding agents send over the Responses API, carried to chat-only and Anthropic channels and
their calls mapped back (relay/translate/responses_tools.py). The Codex request is the one Codex CLI
0.169.1 really sent (tests/data/codex-0.169-request.json)."""

from __future__ import annotations

import json
import re

import pytest

from relay.sse import SSEParser
from relay.translate import ModelDefaults, TranslationError, openai_to_anthropic, responses_to_chat, select
from relay.translate.responses_tools import DROPPED_TOOLS_HEADER, ToolMap
from tests.servers import ROOT
from tests.translate.test_responses_and_streams import chat_chunk, run_translator, splits

MODEL = ModelDefaults("deepseek-chat", default_output_tokens=1024)
CODEX = json.loads((ROOT / "tests" / "data" / "codex-0.169-request.json").read_text())
# Both providers' rule for a function's name.
FUNCTION_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")

APPLY_PATCH = {
    "type": "custom",
    "name": "apply_patch",
    "description": "Apply a patch to files.",
    "format": {"type": "grammar", "syntax": "lark", "definition": 'start: "*** Begin Patch" LF'},
}


def completion_calling(name: str, arguments: str, call_id: str = "call_1") -> dict:
    message = {"role": "assistant", "content": None, "tool_calls": []}
    message["tool_calls"].append(
        {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}
    )
    return {
        "id": "chatcmpl-1",
        "choices": [{"index": 0, "finish_reason": "tool_calls", "message": message}],
        "usage": {"prompt_tokens": 100, "completion_tokens": 9},
    }


def stream_calling(name: str, arguments: str) -> bytes:
    half = len(arguments) // 2
    return b"".join(
        [
            chat_chunk({"role": "assistant", "content": None}),
            chat_chunk({"tool_calls": [{"index": 0, "id": "call_s", "type": "function", "function": {"name": name}}]}),
            chat_chunk({"tool_calls": [{"index": 0, "function": {"arguments": arguments[:half]}}]}),
            chat_chunk({"tool_calls": [{"index": 0, "function": {"arguments": arguments[half:]}}]}),
            chat_chunk({}, "tool_calls"),
            chat_chunk(None, usage={"prompt_tokens": 100, "completion_tokens": 9}),
            b"data: [DONE]\n\n",
        ]
    )


def events_of(body: dict, stream: bytes) -> list[tuple[str, dict]]:
    out = run_translator(responses_to_chat.StreamTranslator(MODEL, body), [stream])
    return [(e.name, e.json()) for e in SSEParser().feed(out)]


# --- Codex CLI's own request ------------------------------------------------------------------------


def test_codex_request_reaches_a_chat_channel_with_every_tool_it_can_run():
    chat = responses_to_chat.request(CODEX, MODEL)
    names = [tool["function"]["name"] for tool in chat["tools"]]
    assert "exec_command" in names and "update_goal" in names
    assert "multi_agent_v1__spawn_agent" in names and "multi_agent_v1__wait_agent" in names
    assert all(FUNCTION_NAME.match(name) for name in names)
    assert not {"include", "store", "reasoning", "prompt_cache_key", "client_metadata"} & set(chat)
    assert chat["parallel_tool_calls"] == CODEX["parallel_tool_calls"]
    assert chat["tool_choice"] == "auto"


def test_codex_request_reaches_an_anthropic_channel_too():
    messages = openai_to_anthropic.request(responses_to_chat.request(CODEX, MODEL), MODEL)
    names = [tool["name"] for tool in messages["tools"]]
    assert "multi_agent_v1__close_agent" in names and "exec_command" in names
    assert messages["system"] and messages["messages"][0]["role"] == "user"


def test_hosted_tools_are_dropped_and_named_in_a_header():
    translation = select.translation("responses", "openai", "deepseek", MODEL, CODEX, True)
    assert translation.headers == {DROPPED_TOOLS_HEADER: "web_search"}
    mcp = {**CODEX, "tools": [{"type": "mcp", "server_label": "deepwiki"}, {"type": "file_search"}]}
    assert ToolMap(mcp["tools"]).headers() == {DROPPED_TOOLS_HEADER: "mcp-deepwiki, file_search"}
    assert "tools" not in responses_to_chat.request({**mcp, "input": "hi", "tool_choice": "auto"}, MODEL)


def test_the_dropped_tools_header_names_each_once_only_from_safe_characters_and_not_without_end():
    hostile = [{"type": "web_search"}, {"type": "web_search"}, {"type": "x\r\nSet-Cookie: a=b"}]
    hostile += [{"type": f"hosted_{n}"} for n in range(40)]
    header = ToolMap(hostile).headers()[DROPPED_TOOLS_HEADER]
    assert header.startswith("web_search, x__Set-Cookie-_a_b, hosted_0,") and header.endswith(", and 22 more")
    assert "\r" not in header and "\n" not in header


def test_openai_itself_gets_codex_request_unchanged():
    assert select.translation("responses", "openai", "openai", MODEL, CODEX, True) is None


# --- Namespaces -------------------------------------------------------------------------------------


def test_a_call_of_a_namespaced_function_comes_back_with_its_namespace():
    answer = responses_to_chat.response(
        completion_calling("multi_agent_v1__spawn_agent", '{"message":"go"}'), MODEL, CODEX
    )
    (item,) = answer["output"]
    assert (item["type"], item["name"], item["namespace"]) == ("function_call", "spawn_agent", "multi_agent_v1")
    assert item["call_id"] == "call_1" and item["arguments"] == '{"message":"go"}'


@pytest.mark.parametrize("chunks", list(splits(stream_calling("multi_agent_v1__wait_agent", '{"targets":["a"]}'))))
def test_a_streamed_call_of_a_namespaced_function_comes_back_with_its_namespace(chunks):
    out = run_translator(responses_to_chat.StreamTranslator(MODEL, CODEX), chunks)
    events = [(e.name, e.json()) for e in SSEParser().feed(out)]
    added = next(data["item"] for name, data in events if name == "response.output_item.added")
    assert (added["name"], added["namespace"]) == ("wait_agent", "multi_agent_v1")
    deltas = "".join(data["delta"] for name, data in events if name == "response.function_call_arguments.delta")
    assert deltas == '{"targets":["a"]}'
    (final_item,) = events[-1][1]["response"]["output"]
    assert final_item["namespace"] == "multi_agent_v1" and final_item["arguments"] == '{"targets":["a"]}'


def test_resent_history_of_a_namespaced_call_goes_up_under_its_flat_name():
    body = {
        **CODEX,
        "input": [
            *CODEX["input"],
            {
                "type": "function_call",
                "call_id": "c1",
                "name": "spawn_agent",
                "namespace": "multi_agent_v1",
                "arguments": "{}",
            },
            {"type": "function_call_output", "call_id": "c1", "output": "agent a1"},
        ],
    }
    messages = responses_to_chat.request(body, MODEL)["messages"]
    assert messages[-2]["tool_calls"][0]["function"]["name"] == "multi_agent_v1__spawn_agent"
    assert messages[-1] == {"role": "tool", "tool_call_id": "c1", "content": "agent a1"}


def test_long_and_clashing_flat_names_stay_valid_and_distinct():
    tools = [
        {"type": "function", "name": "ns__f", "parameters": {}},
        {"type": "namespace", "name": "ns", "tools": [{"type": "function", "name": "f"}]},
        {"type": "namespace", "name": "n" * 60, "tools": [{"type": "function", "name": "g.h"}]},
    ]
    mapped = ToolMap(tools)
    names = [tool["function"]["name"] for tool in mapped.chat_tools]
    assert len(set(names)) == 3 and all(FUNCTION_NAME.match(name) for name in names)
    item = mapped.output_item("fc_1", "c", names[2], "{}")
    assert (item["name"], item["namespace"]) == ("g.h", "n" * 60)


# --- Custom (free-form) tools and local_shell ----------------------------------------------------------


def test_a_custom_tool_is_a_function_of_one_string_whose_calls_are_custom_tool_calls():
    body = {"model": "m", "input": "patch it", "tools": [APPLY_PATCH]}
    (tool,) = responses_to_chat.request(body, MODEL)["tools"]
    assert tool["function"]["parameters"]["required"] == ["input"]
    assert "lark grammar" in tool["function"]["parameters"]["properties"]["input"]["description"]
    patch = "*** Begin Patch\n*** End Patch"
    answer = responses_to_chat.response(completion_calling("apply_patch", json.dumps({"input": patch})), MODEL, body)
    (item,) = answer["output"]
    assert (item["type"], item["name"], item["input"], item["call_id"]) == (
        "custom_tool_call",
        "apply_patch",
        patch,
        "call_1",
    )


def test_a_streamed_custom_tool_call_ends_with_its_whole_input():
    body = {"model": "m", "input": "patch it", "tools": [APPLY_PATCH]}
    events = events_of(body, stream_calling("apply_patch", json.dumps({"input": "*** Begin Patch"})))
    names = [name for name, _ in events]
    assert "response.function_call_arguments.delta" not in names
    done = next(data for name, data in events if name == "response.custom_tool_call_input.done")
    assert done["input"] == "*** Begin Patch"
    (item,) = events[-1][1]["response"]["output"]
    assert item["type"] == "custom_tool_call" and item["input"] == "*** Begin Patch"


def test_local_shell_calls_come_back_as_exec_actions():
    body = {"model": "m", "input": "list", "tools": [{"type": "local_shell"}]}
    (tool,) = responses_to_chat.request(body, MODEL)["tools"]
    assert tool["function"]["name"] == "local_shell"
    arguments = json.dumps({"command": ["ls", "-la"], "working_directory": "/tmp", "timeout_ms": 5000})
    (item,) = responses_to_chat.response(completion_calling("local_shell", arguments), MODEL, body)["output"]
    assert item["type"] == "local_shell_call" and item["call_id"] == "call_1"
    assert item["action"] == {"type": "exec", "command": ["ls", "-la"], "working_directory": "/tmp", "timeout_ms": 5000}


def test_resent_custom_and_shell_history_maps_like_function_calls():
    body = {
        "model": "m",
        "tools": [APPLY_PATCH, {"type": "local_shell"}],
        "input": [
            {"role": "user", "content": "go"},
            {"type": "custom_tool_call", "call_id": "p1", "name": "apply_patch", "input": "*** Begin Patch"},
            {"type": "custom_tool_call_output", "call_id": "p1", "output": "Done!"},
            {
                "type": "local_shell_call",
                "call_id": "s1",
                "status": "completed",
                "action": {"type": "exec", "command": ["ls"]},
            },
            {"type": "local_shell_call_output", "call_id": "s1", "output": "a.txt"},
        ],
    }
    messages = responses_to_chat.request(body, MODEL)["messages"]
    patch_call, patch_result, shell_call, shell_result = messages[1:]
    assert patch_call["tool_calls"][0]["function"] == {
        "name": "apply_patch",
        "arguments": '{"input": "*** Begin Patch"}',
    }
    assert patch_result == {"role": "tool", "tool_call_id": "p1", "content": "Done!"}
    assert json.loads(shell_call["tool_calls"][0]["function"]["arguments"]) == {"command": ["ls"]}
    assert shell_result == {"role": "tool", "tool_call_id": "s1", "content": "a.txt"}


def test_reasoning_items_codex_resends_are_left_out_for_other_channels():
    body = {
        **CODEX,
        "input": [
            *CODEX["input"],
            {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "gAAAAB..."},
        ],
    }
    messages = responses_to_chat.request(body, MODEL)["messages"]
    assert "gAAAAB" not in json.dumps(messages)


# --- tool_choice ---------------------------------------------------------------------------------------


def test_a_tool_choice_that_needs_a_dropped_tool_is_refused_with_the_reason():
    with pytest.raises(TranslationError, match="requires web_search, a tool only OpenAI's own Responses API runs"):
        responses_to_chat.request({**CODEX, "tool_choice": {"type": "web_search"}}, MODEL)
    only_hosted = {"model": "m", "input": "hi", "tools": [{"type": "web_search"}], "tool_choice": "required"}
    with pytest.raises(TranslationError, match=r"requires a tool, but .*dropped: web_search"):
        responses_to_chat.request(only_hosted, MODEL)


def test_a_tool_choice_naming_a_namespaced_or_custom_tool_names_its_upstream_function():
    named = {"type": "function", "name": "spawn_agent", "namespace": "multi_agent_v1"}
    chat = responses_to_chat.request({**CODEX, "tool_choice": named}, MODEL)
    assert chat["tool_choice"] == {"type": "function", "function": {"name": "multi_agent_v1__spawn_agent"}}
    body = {
        "model": "m",
        "input": "x",
        "tools": [APPLY_PATCH],
        "tool_choice": {"type": "custom", "name": "apply_patch"},
    }
    assert responses_to_chat.request(body, MODEL)["tool_choice"]["function"]["name"] == "apply_patch"
    with pytest.raises(TranslationError, match="not among tools"):
        responses_to_chat.request({**body, "tool_choice": {"type": "function", "name": "nope"}}, MODEL)


def test_allowed_tools_offers_the_model_only_those():
    tools = [{"type": "local_shell"}, APPLY_PATCH, {"type": "web_search"}]
    allowed = {"type": "allowed_tools", "mode": "required", "tools": [{"type": "custom", "name": "apply_patch"}]}
    chat = responses_to_chat.request({"model": "m", "input": "x", "tools": tools, "tool_choice": allowed}, MODEL)
    assert [t["function"]["name"] for t in chat["tools"]] == ["apply_patch"] and chat["tool_choice"] == "required"
    only_hosted = {**allowed, "tools": [{"type": "web_search"}]}
    with pytest.raises(TranslationError, match="requires a tool"):
        responses_to_chat.request({"model": "m", "input": "x", "tools": tools, "tool_choice": only_hosted}, MODEL)
    whole_namespace = {
        "type": "allowed_tools",
        "mode": "auto",
        "tools": [{"type": "namespace", "name": "multi_agent_v1"}],
    }
    chat = responses_to_chat.request({**CODEX, "tool_choice": whole_namespace}, MODEL)
    assert {t["function"]["name"] for t in chat["tools"]} == {
        f"multi_agent_v1__{n}" for n in ("close_agent", "resume_agent", "send_input", "spawn_agent", "wait_agent")
    }


def test_thousands_of_clashing_names_map_quickly_and_stay_valid():
    members = [{"type": "function", "name": "b" + chr(0x4E00 + i)} for i in range(500)]
    mapped = ToolMap([{"type": "namespace", "name": "a", "tools": members}])
    names = [t["function"]["name"] for t in mapped.chat_tools]
    assert len(set(names)) == 500 and all(FUNCTION_NAME.match(n) for n in names)
    assert mapped.output_item("fc", "c", names[-1], "{}")["name"] == "b" + chr(0x4E00 + 499)


def test_more_tools_than_can_be_relayed_is_a_clear_refusal():
    members = [{"type": "function", "name": f"f{i}"} for i in range(600)]
    with pytest.raises(TranslationError, match="at most 512 tools"):
        ToolMap([{"type": "namespace", "name": "big", "tools": members}])


@pytest.mark.parametrize("arguments", ['{"input": ' + "[" * 30_000 + "]" * 30_000 + "}", {"command": ["ls"]}, None])
def test_arguments_an_upstream_mangles_still_make_an_item(arguments):
    body = {"model": "m", "input": "x", "tools": [APPLY_PATCH, {"type": "local_shell"}]}
    for name in ("apply_patch", "local_shell", "not_offered"):
        completion = completion_calling(name, arguments)
        (item,) = responses_to_chat.response(completion, MODEL, body)["output"]
        assert item["call_id"] == "call_1"
        json.dumps(item)  # the caller's SDK gets plain JSON


def test_the_hold_counts_the_bytes_a_translation_adds():
    from relay.admission import translation_growth
    from relay.call import Prepared

    members = [{"type": "function", "name": f"f{i}"} for i in range(300)]
    body = {"model": "m", "input": "x", "tools": [{"type": "namespace", "name": "n" * 40, "tools": members}]}
    caller_bytes = len(json.dumps(body, separators=(",", ":")).encode())
    translation = select.translation("responses", "openai", "deepseek", MODEL, body, True)
    upstream = translation.request(body)
    prepared = {"openai": Prepared("chat", upstream, translation), "native": Prepared("responses", body, None)}
    growth = translation_growth(prepared, caller_bytes)
    assert growth == len(json.dumps(upstream, separators=(",", ":")).encode()) - caller_bytes > 10_000
    assert translation_growth({"native": prepared["native"]}, caller_bytes) == 0
