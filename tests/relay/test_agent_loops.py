"""Coding agents' tool loops through the relay, in process: the request Codex CLI 0.169.1 sends (Responses
API, streamed, its own tools) and a Claude-Code-like Messages loop, each across two turns — the model
calls a tool, the client sends the tool's result back with the whole history — on a chat-only
channel, an Anthropic channel and OpenAI's own Responses API, billed exactly on every turn."""

from __future__ import annotations

import json
from decimal import Decimal

import httpx2
import pytest

from accounts import keys
from accounts.models import User
from billing import ledger
from billing.models import TransactionKind, UsageRecord, UsageStatus
from billing.reconcile import reconcile
from channels_app import routing
from channels_app.catalog import import_catalog
from channels_app.models import CatalogModel
from relay.translate.responses_tools import DROPPED_TOOLS_HEADER
from tests.channels.conftest import DEFAULT_CATALOG
from tests.relay.conftest import add_channel
from tests.relay.test_in_process import Caller, anthropic_client, billed_at_catalog_prices, in_process, openai_client
from tests.servers import ROOT

pytestmark = pytest.mark.django_db(transaction=True)

CODEX = json.loads((ROOT / "tests" / "data" / "codex-0.169-request.json").read_text())
COMMAND = "echo tokenhub-tool-loop"
FUNDS = Decimal("10")

# model -> the kind of channel serving it
CHANNELS = {"deepseek-chat": "deepseek", "claude-haiku-4-5": "anthropic", "gpt-4o-mini": "openai"}


@pytest.fixture
def caller(transactional_db, fake_upstream) -> Caller:
    import_catalog(DEFAULT_CATALOG.read_text(), "default_catalog.json")
    alice, bob = User.objects.create_user("alice"), User.objects.create_user("bob")
    ledger.grant(user_id=alice.pk, amount=FUNDS, memo="test", actor="test", kind=TransactionKind.GRANT)
    _key, raw = keys.create_key(alice, "agent")
    for model, provider in CHANNELS.items():
        add_channel(bob, fake_upstream, provider=provider, models=(model,), name=f"bob-{provider}")
    routing.invalidate()
    return Caller(alice, raw)


def codex_turn(caller: Caller, body: dict) -> tuple[dict, dict[str, str]]:
    """One streamed Responses call as Codex makes it; the completed response and the answer's headers."""

    async def use(http_client):
        client = openai_client(caller, http_client)
        # The body exactly as Codex sends it (the SDK does not know every field: client_metadata).
        rest = {k: v for k, v in body.items() if k not in ("model", "stream")}
        raw = await client.responses.with_raw_response.create(model=body["model"], stream=True, extra_body=rest)
        events = [event async for event in raw.parse()]
        assert events[-1].type == "response.completed"
        return events[-1].response.model_dump(exclude_none=True), dict(raw.headers)

    return in_process(use)


def turns_billed_exactly(caller: Caller, turns: int) -> list[UsageRecord]:
    records = list(UsageRecord.objects.order_by("id"))
    assert len(records) == turns
    for record in records:
        assert record.status == UsageStatus.OK and not record.estimated
        assert record.cost_usd == billed_at_catalog_prices(record) > 0
    assert caller.spent() == sum(r.cost_usd for r in records)
    assert reconcile().problems == []
    return records


@pytest.mark.parametrize("model", ["deepseek-chat", "claude-haiku-4-5", "gpt-4o-mini"])
def test_a_codex_tool_loop_runs_on_every_kind_of_channel(caller, model):
    first = {**CODEX, "model": model, "stream": True}
    response, headers = codex_turn(caller, first)
    (call,) = [item for item in response["output"] if item["type"] == "function_call"]
    assert call["name"] == "exec_command" and json.loads(call["arguments"]) == {"cmd": COMMAND}
    if CHANNELS[model] == "openai":
        assert DROPPED_TOOLS_HEADER not in headers  # OpenAI runs web_search itself
    else:
        assert headers[DROPPED_TOOLS_HEADER] == "web_search"

    # store: false — Codex resends the whole history with the tool's output.
    history = [*first["input"], call, {"type": "function_call_output", "call_id": call["call_id"], "output": "ok"}]
    response, _headers = codex_turn(caller, {**first, "input": history})
    assert [item["type"] for item in response["output"]] == ["message"]
    assert response["output"][0]["content"][0]["text"]

    first_turn, second_turn = turns_billed_exactly(caller, 2)
    assert first_turn.output_tokens == response_tokens_of_a_call()
    assert second_turn.input_tokens > first_turn.input_tokens  # the history grew
    assert {r.channel for r in (first_turn, second_turn)} == {channel_of(model)}


def test_a_namespaced_tool_chosen_by_codex_comes_back_with_its_namespace_on_a_chat_channel(caller):
    body = {
        **CODEX,
        "model": "deepseek-chat",
        "stream": True,
        "tool_choice": {"type": "function", "name": "spawn_agent", "namespace": "multi_agent_v1"},
    }
    response, _headers = codex_turn(caller, body)
    (call,) = response["output"]
    assert (call["type"], call["name"], call["namespace"]) == ("function_call", "spawn_agent", "multi_agent_v1")
    turns_billed_exactly(caller, 1)


BASH = {
    "name": "Bash",
    "description": "Executes a bash command.",
    "input_schema": {
        "type": "object",
        "properties": {"command": {"type": "string"}, "description": {"type": "string"}},
        "required": ["command"],
    },
}


@pytest.mark.parametrize("model", ["deepseek-chat", "claude-haiku-4-5"])
def test_a_claude_code_style_tool_loop_over_messages(caller, model):
    prompt = [{"role": "user", "content": "Run the check."}]

    def turn(messages):
        async def use(http_client):
            client = anthropic_client(caller, http_client)
            async with client.messages.stream(model=model, max_tokens=512, tools=[BASH], messages=messages) as stream:
                return await stream.get_final_message()

        return in_process(use, httpx2)

    first = turn(prompt)
    (use,) = [block for block in first.content if block.type == "tool_use"]
    assert (use.name, use.input) == ("Bash", {"command": COMMAND})
    assert first.stop_reason == "tool_use"
    result = {"type": "tool_result", "tool_use_id": use.id, "content": "tokenhub-tool-loop"}
    history = [
        *prompt,
        {"role": "assistant", "content": [block.model_dump(exclude_none=True) for block in first.content]},
        {"role": "user", "content": [result]},
    ]
    second = turn(history)
    assert second.stop_reason == "end_turn" and second.content[0].text
    turns_billed_exactly(caller, 2)


def response_tokens_of_a_call() -> int:
    from devtools.fake_provider.tools import ToolCall

    return ToolCall("exec_command", json.dumps({"cmd": COMMAND})).output_tokens


def channel_of(model: str) -> str:
    from channels_app.models import Channel

    return Channel.objects.get(name=f"bob-{CHANNELS[model]}").public_id


def test_every_model_here_has_catalog_prices(caller):
    assert all(CatalogModel.objects.get(name=name).priced for name in CHANNELS)
