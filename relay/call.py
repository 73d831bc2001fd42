"""The data of one /v1 call as it moves through the stages (relay/pipeline.py tells the order)."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .errors import ANTHROPIC, OPENAI
from .translate import select

if TYPE_CHECKING:
    from accounts.keys import KeyIdentity
    from billing.models import Hold
    from billing.pricing import Prices
    from channels_app import routing

    from . import translate
    from .failover import Attempt

# operation -> (wire format the channel must speak, whether the body carries messages)
OPERATIONS = {
    "chat": (OPENAI, True),
    "messages": (ANTHROPIC, True),
    "embeddings": (OPENAI, False),
    "responses": (OPENAI, False),
}


def new_request_id() -> str:
    return "req_" + uuid.uuid4().hex


class RelayError(Exception):
    """A refusal the caller is answered with, in their own API format."""

    def __init__(self, status: int, message: str, code: str = "", headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.code, self.headers = status, message, code, headers or {}


@dataclass(frozen=True)
class Prepared:
    operation: str  # called upstream: chat, messages, embeddings or responses
    body: dict
    translation: select.Translation | None  # None: same format, passed through
    # The output cap the upstream is told when the caller set none (None: the body has one already).
    output_budget: int | None = None


@dataclass
class Call:
    request_id: str
    operation: str
    caller_format: str
    identity: KeyIdentity
    body: dict
    body_bytes: int
    stream: bool
    plan: routing.Plan
    routes: list[routing.Route]
    prices: Prices
    forward_headers: dict[str, str]
    caller_wants_usage: bool
    model: translate.ModelDefaults
    hold: Hold
    # select.key(route) -> what that kind of channel is sent; same format passes the body through.
    prepared: dict[str, Prepared] = field(default_factory=dict)
    started: float = field(default_factory=time.perf_counter)
    attempt: Attempt | None = None  # the channel answering, once one does
    attempts: int = 0  # channels tried
    answered_at: float = 0.0  # perf_counter when the answering upstream's headers came
    # True once the hold's settlement or release is under way (or the stream's pump owns it):
    # from then on nothing else may end it. See settlement.end_unowned.
    owned: bool = False
    delegated: bool = False  # a task of its own (the pump, a non-streamed answer) owns the hold: hand_over

    def prepared_for(self, route: routing.Route) -> Prepared:
        return self.prepared[select.key(self.operation, route.api_format, route.provider)]

    def latency_ms(self) -> int:
        return int((time.perf_counter() - self.started) * 1000)
