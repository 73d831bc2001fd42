"""The real coding agents, run non-interactively against the real server and the fake provider: OpenAI's
Codex CLI (`codex exec`, the Responses API) and Anthropic's Claude Code (`claude -p`, Messages), each
on an OpenAI channel, a chat-only channel and an Anthropic channel, through a tool round trip (the
fake model asks for `echo tokenhub-tool-loop`, the agent runs it and sends the output back, the
model answers), with the ledger checked afterwards.

The agents come from npm at pinned versions (scripts/ensure-agents, run by `make test`); these tests
skip only where npm's registry could not be reached, saying so.
"""

from __future__ import annotations

import json
import os
import subprocess
from decimal import Decimal

import httpx
import pytest

from accounts import keys
from accounts.models import User
from billing import ledger
from billing.models import Hold, HoldStatus, TransactionKind, UsageRecord, UsageStatus
from billing.reconcile import reconcile
from channels_app import routing
from channels_app.catalog import import_catalog
from channels_app.models import Channel
from tests.channels.conftest import DEFAULT_CATALOG
from tests.conftest import wait_for
from tests.relay.conftest import add_channel
from tests.servers import ROOT

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

AGENTS = ROOT / ".agents"
BIN = AGENTS / "node_modules" / ".bin"
TOOL_OUTPUT = "tokenhub-tool-loop"
# model -> the kind of channel serving it (each model on one channel, so the route is known)
CHANNELS = {"gpt-4o-mini": "openai", "deepseek-chat": "deepseek", "claude-haiku-4-5": "anthropic"}
PROMPT = "Run the project's check command and tell me what it printed."


def agent(name: str) -> str:
    unreachable = AGENTS / "unreachable"
    if unreachable.exists():
        pytest.skip(f"the coding agents are not installed: {unreachable.read_text().strip()}")
    path = BIN / name
    assert path.exists(), f"{path} is missing: run scripts/ensure-agents (make test does)"
    return str(path)


@pytest.fixture
def market(transactional_db, relay_url, fake_upstream):
    import_catalog(DEFAULT_CATALOG.read_text(), "default_catalog.json")
    alice, bob = User.objects.create_user("alice"), User.objects.create_user("bob")
    ledger.grant(user_id=alice.pk, amount=Decimal("10"), memo="test", actor="test", kind=TransactionKind.GRANT)
    _key, raw = keys.create_key(alice, "agent")
    for model, provider in CHANNELS.items():
        add_channel(bob, fake_upstream, provider=provider, models=(model,), name=f"bob-{provider}")
    routing.invalidate()
    httpx.post(fake_upstream.removesuffix("/v1") + "/_stats", timeout=5)  # forget earlier tests' tool results
    yield relay_url, raw, alice
    wait_for(lambda: not Hold.objects.filter(status=HoldStatus.OPEN).exists(), timeout=15)


def upstream_saw_the_tool_output(fake_upstream: str) -> bool:
    """A request the fake provider got carried the command's output back (the loop's second turn)."""
    stats = httpx.get(fake_upstream.removesuffix("/v1") + "/_stats", timeout=5).json()
    return any(TOOL_OUTPUT in result for result in stats["tool_results"])


def the_calls_were_billed(user, model: str) -> list[UsageRecord]:
    wait_for(lambda: not Hold.objects.filter(status=HoldStatus.OPEN).exists(), timeout=15)
    records = list(UsageRecord.objects.filter(user=user).order_by("id"))
    assert len(records) >= 2, [(r.model, r.status, r.error) for r in records]  # the tool call, then the answer
    assert all(r.status == UsageStatus.OK for r in records), [(r.status, r.error) for r in records]
    channel = Channel.objects.get(name=f"bob-{CHANNELS[model]}").public_id
    assert {r.channel for r in records} == {channel}
    assert Decimal("10") - ledger.balance_of(user.pk) == sum(r.cost_usd for r in records)
    assert reconcile().problems == []
    return records


def run(command: list[str], env: dict, cwd) -> subprocess.CompletedProcess:
    done = subprocess.run(
        command, env=env, cwd=cwd, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL
    )
    assert done.returncode == 0, f"exit {done.returncode}\nstdout: {done.stdout[-2000:]}\nstderr: {done.stderr[-3000:]}"
    return done


@pytest.mark.parametrize("model", list(CHANNELS))
def test_codex_cli_runs_a_tool_loop_through_tokenhub(market, fake_upstream, tmp_path, model):
    relay, key, alice = market
    codex = agent("codex")
    home = tmp_path / "codex-home"
    home.mkdir()
    (home / "config.toml").write_text(
        f'model = "{model}"\n'
        'model_provider = "tokenhub"\n'
        "[model_providers.tokenhub]\n"
        'name = "TokenHub"\n'
        f'base_url = "{relay}/v1"\n'
        'env_key = "TOKENHUB_API_KEY"\n'
        'wire_api = "responses"\n'
        "request_max_retries = 0\n"
        "stream_max_retries = 0\n"
    )
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "CODEX_HOME": str(home), "TOKENHUB_API_KEY": key}
    done = run(
        [codex, "exec", "--skip-git-repo-check", "--dangerously-bypass-approvals-and-sandbox", PROMPT],
        env,
        tmp_path,
    )
    assert done.stdout.strip()  # the model's closing answer
    assert upstream_saw_the_tool_output(fake_upstream), done.stderr[-3000:]
    the_calls_were_billed(alice, model)


@pytest.mark.parametrize("model", list(CHANNELS))
def test_claude_code_runs_a_tool_loop_through_tokenhub(market, fake_upstream, tmp_path, model):
    relay, key, alice = market
    claude = agent("claude")
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "ANTHROPIC_BASE_URL": relay,
        "ANTHROPIC_API_KEY": key,
        "ANTHROPIC_MODEL": model,
        "ANTHROPIC_DEFAULT_HAIKU_MODEL": model,
        "ANTHROPIC_SMALL_FAST_MODEL": model,
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_AUTOUPDATER": "1",
    }
    done = run(
        [claude, "-p", PROMPT, "--model", model, "--allowedTools", "Bash(echo:*)", "--output-format", "json"],
        env,
        tmp_path,
    )
    result = json.loads(done.stdout)
    assert result.get("is_error") is False and result.get("num_turns", 0) >= 2, result
    assert upstream_saw_the_tool_output(fake_upstream), done.stdout[-3000:]
    the_calls_were_billed(alice, model)
