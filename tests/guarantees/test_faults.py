"""Issue 15, "Faults": every way an upstream or a caller can fail a call, through the real server, and the
books stay whole after each (tests/guarantees/conftest.py: assert_books_whole).

Single faults have their own tests with exact figures (tests/relay/test_relay_failures.py and its
neighbours); this matrix proves the one rule for all of them, in both callers' formats: every hold ends
in one settlement or one release, nobody is charged more than was held, and the ledger balances.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import anthropic
import httpx
import openai
import pytest

from billing import ledger
from billing.models import UsageRecord, UsageStatus
from tests.guarantees.conftest import CREDIT, assert_books_whole
from tests.servers import free_port

pytestmark = pytest.mark.services

MODEL = "gpt-4o-mini"
PROMPT = [{"role": "user", "content": "Say hello to the whole world"}]
OPENAI, ANTHROPIC = "openai", "anthropic"

# What the caller sees, and what the call's usage record says.
ANSWERED = "answered"  # an answer; settled on usage (the upstream's or TokenHub's estimate), at most the hold
CUT = "cut"  # an error after some output (an error event mid-stream); billed for what was delivered
REFUSED = "refused"  # an error in the caller's format before any output; the hold released, nothing charged
# Known gap (reported, not yet decided): an OpenAI caller on an OpenAI-format channel is passed the channel's
# events as they come, so an event that is not JSON reaches the caller's SDK, which cannot parse it; the
# stream then runs to its end and is billed as complete.
GARBLED = "garbled"
RECORDED = {ANSWERED: UsageStatus.OK, CUT: UsageStatus.PARTIAL, REFUSED: UsageStatus.FAILED, GARBLED: UsageStatus.OK}


@dataclass(frozen=True)
class Fault:
    upstream_key: str  # the fake upstream's fault knob (devtools/fake_provider/app.py)
    plain: str  # the outcome of a non-streamed call
    streamed: str  # and of a streamed one
    translated: tuple[str, str] | None = None  # (plain, streamed) for an Anthropic caller, when they differ

    def expected(self, caller_format: str, stream: bool) -> str:
        plain, streamed = (
            self.translated if self.translated and caller_format == ANTHROPIC else (self.plain, self.streamed)
        )
        return streamed if stream else plain


DEAD = "dead-port"  # not a knob: the channel's base URL is a port nothing listens on
FAULTS = {
    "refuses-connections": Fault(DEAD, REFUSED, REFUSED),
    "hangs-before-first-byte": Fault("slow-3000", REFUSED, REFUSED),  # beyond the server's 1 s read timeout
    "429": Fault("fail-429", REFUSED, REFUSED),
    "500": Fault("fail-500", REFUSED, REFUSED),
    "503": Fault("fail-503", REFUSED, REFUSED),
    "dies-mid-stream": Fault("cut-3", ANSWERED, CUT),
    "malformed-sse": Fault("badevent", ANSWERED, GARBLED, translated=(ANSWERED, CUT)),
    "invalid-json": Fault("html-200", REFUSED, REFUSED),
    "body-never-comes": Fault("slowbody-3000", REFUSED, ANSWERED),  # slowbody delays non-streamed bodies only
    "huge-answer": Fault("huge-8000", ANSWERED, ANSWERED),  # 8,000 words: a 2 MB stream, a 50 kB body
    "no-usage": Fault("nousage", ANSWERED, ANSWERED),
    "absurd-usage": Fault("absurd", ANSWERED, ANSWERED),
    "negative-usage": Fault("negusage", ANSWERED, ANSWERED),
    "float-usage": Fault("floatusage", ANSWERED, ANSWERED),
    # Translated answers read usage as plain ones do (relay/usage.py): unreadable counts are reported
    # as zero and the call is billed on TokenHub's estimate, in every format.
    "infinite-usage": Fault("infusage", ANSWERED, ANSWERED),
    "text-usage": Fault("textusage", ANSWERED, ANSWERED),
    "2xx-not-200": Fault("status-205", ANSWERED, ANSWERED),
}


def call(relay: str, key: str, caller_format: str, stream: bool) -> str:
    """One call through the caller's official SDK: answered, error (in the caller's format) or garbled."""
    try:
        if caller_format == OPENAI:
            client = openai.OpenAI(base_url=f"{relay}/v1", api_key=key, max_retries=0, timeout=30)
            if stream:
                for _chunk in client.chat.completions.create(model=MODEL, messages=PROMPT, stream=True):
                    pass
            else:
                assert client.chat.completions.create(model=MODEL, messages=PROMPT).choices[0].message.content
        else:
            client = anthropic.Anthropic(base_url=relay, api_key=key, max_retries=0, timeout=30)
            if stream:
                with client.messages.stream(model=MODEL, max_tokens=16384, messages=PROMPT) as answer:
                    for _text in answer.text_stream:
                        pass
            else:
                assert client.messages.create(model=MODEL, max_tokens=16384, messages=PROMPT).content
    except (openai.APIConnectionError, anthropic.APIConnectionError):
        raise  # TokenHub always answers: a dropped connection is a failure
    except (openai.APIError, anthropic.APIError):
        return "error"
    except ValueError:
        return GARBLED
    return ANSWERED


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("caller_format", [OPENAI, ANTHROPIC])
@pytest.mark.parametrize("fault", FAULTS.values(), ids=FAULTS.keys())
def test_every_upstream_fault_leaves_the_books_whole(cast, guarantees_relay, fault, caller_format, stream):
    if fault.upstream_key == DEAD:
        cast.channel("good", base_url=f"http://127.0.0.1:{free_port()}/v1")
    else:
        cast.channel(fault.upstream_key)
    seen = call(guarantees_relay, cast.key, caller_format, stream)
    assert_books_whole(cast.alice)
    record = UsageRecord.objects.get()
    charged = CREDIT - ledger.balance_of(cast.alice.pk)
    expected = fault.expected(caller_format, stream)
    assert (seen, record.status) == ("error" if expected in (CUT, REFUSED) else expected, RECORDED[expected])
    assert charged == record.cost_usd
    assert (charged == 0) == (expected == REFUSED)


# --- The caller leaves ---------------------------------------------------------------------------


def _request(relay: str, key: str, caller_format: str, stream: bool) -> dict:
    if caller_format == OPENAI:
        body = {"model": MODEL, "messages": PROMPT, "stream": stream}
        return {"url": f"{relay}/v1/chat/completions", "json": body, "headers": {"authorization": f"Bearer {key}"}}
    body = {"model": MODEL, "max_tokens": 100, "messages": PROMPT, "stream": stream}
    return {"url": f"{relay}/v1/messages", "json": body, "headers": {"x-api-key": key}}


def leave(relay: str, key: str, caller_format: str, when: str) -> None:
    """Hang up at `when`: before the stream's first byte, after 3 of its events, as soon as its last
    content event arrived (before the end marker), or while a non-streamed answer's body is awaited."""
    stream = when != "reading-a-plain-answer"
    patient = when in ("mid-stream", "after-the-answer")
    timeout = httpx.Timeout(10 if patient else 0.5, connect=5)
    with httpx.Client(timeout=timeout) as client:
        try:
            with client.stream("POST", **_request(relay, key, caller_format, stream)) as response:
                seen = 0
                for line in response.iter_lines():
                    seen += line.startswith("data:")
                    if when == "mid-stream" and seen == 3:
                        return
                    if when == "after-the-answer" and ('"stop"' in line or "message_delta" in line):
                        return
        except httpx.ReadTimeout:
            return
    raise AssertionError(f"the caller never got to leave {when}")


# (when the caller leaves, the upstream's knob, what the call is billed)
DISCONNECTS = {
    "before-the-first-byte": ("slow-2000", "nothing"),
    "mid-stream": ("drip-100", "delivered"),
    "after-the-answer": ("good", "delivered"),
    "reading-a-plain-answer": ("slowbody-2000", "nothing"),
}


@pytest.mark.parametrize("caller_format", [OPENAI, ANTHROPIC])
@pytest.mark.parametrize("when", DISCONNECTS.keys())
def test_a_caller_leaving_at_any_moment_leaves_the_books_whole(cast, guarantees_relay, when, caller_format):
    upstream_key, billed = DISCONNECTS[when]
    cast.channel(upstream_key)
    leave(guarantees_relay, cast.key, caller_format, when)
    assert_books_whole(cast.alice)
    record = UsageRecord.objects.get()
    charged = CREDIT - ledger.balance_of(cast.alice.pk)
    if billed == "nothing":
        assert charged == record.cost_usd == 0
    else:
        assert Decimal(0) < charged == record.cost_usd
