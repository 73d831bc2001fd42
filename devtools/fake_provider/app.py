"""A small, fast fake provider speaking the OpenAI and Anthropic wire formats.

Deterministic: the answer is the first K words of a fixed cycle, K = min(answer
length, max_tokens); output tokens = K; input tokens = words of every text part
+ 4 per message (+ 4 for an Anthropic top-level `system`).

Faults are chosen by the upstream key the caller presents, so one server can
play a healthy channel and a broken one side by side:
  fail-<status>   answer every call with that HTTP status (401, 429, 500, 503…)
  cut-<n>         streams stop (connection dropped) after n content chunks
  slow-<ms>       wait that long before the first byte
  drip-<ms>       wait that long between stream chunks
  nousage         never report usage
  html-<status>   answer with an HTML page (text/html) and that status, e.g. html-200, html-400
  slowbody-<ms>   send a non-streamed answer's headers, then wait that long before its body
  badevent        streams send one content chunk, then an event whose data is not JSON
  deepusage       a chat completion stream's usage chunk is nested 100,000 levels deep (past any parser's
                  recursion limit)
  negusage, floatusage, infusage, textusage
                  chat completions report usage that is not a count (negative, 1.5e30, Infinity, "lots")
  status-<code>   a non-streamed chat completion answers with that 2xx status (e.g. status-205)
  overby-<n>      chat completions report n more prompt tokens than the request had
  absurd          chat completions report absurd usage (prompt 1e9, completion 2e9 tokens), whatever
                  the request's max_tokens: a channel over-reporting to take a caller's balance
  huge-<n>        the answer is n words instead of --tokens (still at most max_tokens), e.g. huge-20000
                  for a multi-megabyte stream or body
Tools: when a request offers tools and its last turn is the user's (not a tool result), the
answer is a call of one of them; after the tool's result, text (devtools/fake_provider/tools.py says
which tool and what arguments, deterministically).
Any other key succeeds. Paths are matched by suffix, so base URLs with or
without `/v1` both work.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from dataclasses import dataclass, field

from . import tools

WORDS = [
    "alpha",
    "bravo",
    "charlie",
    "delta",
    "echo",
    "foxtrot",
    "golf",
    "hotel",
    "india",
    "juliet",
    "kilo",
    "lima",
    "mike",
    "november",
]


@dataclass
class Options:
    tokens: int = 20  # answer length in words (= stream chunks)
    ttft_ms: float = 0.0
    delay_ms: float = 0.0
    models: tuple[str, ...] = ("gpt-4o-mini", "claude-sonnet-4-5", "deepseek-chat")
    balance_usd: str = "42.50"


@dataclass
class Stats:
    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    by_path: dict = field(default_factory=dict)
    last_headers: dict = field(default_factory=dict)
    last_body: dict = field(default_factory=dict)
    tool_results: list = field(default_factory=list)  # the last tool results sent back, newest last


# Keys that make chat completions report usage that is not a count of tokens.
NONSENSE_USAGE = {
    "negusage": {"completion_tokens": -100_000_000},
    "floatusage": {"prompt_tokens": 1.5e30},
    "infusage": {"prompt_tokens": float("inf")},  # sent as the bare word Infinity, which Python's json reads
    "textusage": {"completion_tokens": "lots"},
}


def answer_words(count: int) -> list[str]:
    return [word + " " for word in itertools.islice(itertools.cycle(WORDS), count)]


def _text_words(content) -> int:
    if isinstance(content, str):
        return len(content.split())
    if isinstance(content, list):
        total = 0
        for part in content:
            if isinstance(part, dict):
                if isinstance(part.get("text"), str):
                    total += len(part["text"].split())
                elif "content" in part:
                    total += _text_words(part["content"])
        return total
    return 0


def count_input_tokens(body: dict, anthropic: bool) -> int:
    messages = body.get("messages") or []
    tokens = sum(_text_words(message.get("content")) + 4 for message in messages if isinstance(message, dict))
    if anthropic and body.get("system"):
        tokens += _text_words(body["system"]) + 4
    return tokens


class FakeProvider:
    def __init__(self, options: Options | None = None):
        self.options = options or Options()
        self.stats = Stats()
        self.counter = itertools.count(1)

    # --- ASGI plumbing ------------------------------------------------------------
    async def __call__(self, scope, receive, send):
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        await self.route(scope["method"], scope["path"], headers, body, send)

    async def respond_json(self, send, status: int, payload, extra_headers=(), body_wait_ms: int | None = None):
        data = json.dumps(payload).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers + list(extra_headers)})
        if body_wait_ms:
            await asyncio.sleep(body_wait_ms / 1000)
        await send({"type": "http.response.body", "body": data})

    async def start_stream(self, send):
        headers = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})

    # --- Routing ------------------------------------------------------------------
    async def route(self, method, path, headers, raw_body, send):
        stats = self.stats
        stats.by_path[path] = stats.by_path.get(path, 0) + 1
        if path == "/health":
            return await self.respond_json(send, 200, {"ok": True})
        if path == "/_stats":
            if method == "POST":
                self.stats = Stats()
                return await self.respond_json(send, 200, {"reset": True})
            return await self.respond_json(send, 200, self.stats_payload())
        stats.requests += 1
        stats.last_headers = headers
        key = self.presented_key(headers)
        if path.endswith("/user/balance"):
            return await self.deepseek_balance(send, key)
        if path.endswith("/credits"):
            return await self.openrouter_credits(send, key)
        if path.endswith("/models") and method == "GET":
            return await self.model_list(send, headers)
        if method != "POST":
            return await self.respond_json(send, 404, {"error": {"message": f"no route {path}", "type": "not_found"}})
        try:
            body = json.loads(raw_body or b"{}")
        except ValueError:
            return await self.respond_json(
                send, 400, {"error": {"message": "bad JSON", "type": "invalid_request_error"}}
            )
        stats.last_body = body
        if (result := tools.tool_result_in(body)) is not None:
            stats.tool_results = [*stats.tool_results[-19:], result]
        anthropic = path.endswith("/messages") or path.endswith("/messages/count_tokens")
        fault = await self.fault_for(key, anthropic, send)
        if fault:
            return
        if path.endswith("/chat/completions"):
            return await self.chat_completions(body, key, send)
        if path.endswith("/messages/count_tokens"):
            return await self.respond_json(send, 200, {"input_tokens": count_input_tokens(body, True)})
        if path.endswith("/messages"):
            return await self.messages(body, key, send)
        if path.endswith("/embeddings"):
            return await self.embeddings(body, send)
        if path.endswith("/responses"):
            return await self.responses(body, key, send)
        return await self.respond_json(send, 404, {"error": {"message": f"no route {path}", "type": "not_found"}})

    @staticmethod
    def presented_key(headers) -> str:
        auth = headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            return auth[7:].strip()
        return headers.get("x-api-key", "").strip()

    async def fault_for(self, key: str, anthropic: bool, send) -> bool:
        if not key:
            await self.error(send, 401, "missing API key", anthropic)
            return True
        if key.startswith("fail-"):
            status = int(key.split("-")[1])
            await self.error(send, status, f"simulated upstream status {status}", anthropic)
            return True
        if key.startswith("html-"):
            page = b"<html><body><script>document.title='owned'</script>not an API answer</body></html>"
            headers = [(b"content-type", b"text/html"), (b"content-length", str(len(page)).encode())]
            await send({"type": "http.response.start", "status": int(key.split("-")[1]), "headers": headers})
            await send({"type": "http.response.body", "body": page})
            return True
        return False

    async def error(self, send, status: int, message: str, anthropic: bool):
        kinds = {
            400: "invalid_request_error",
            401: "authentication_error",
            402: "billing_error",
            403: "permission_error",
            404: "not_found_error",
            429: "rate_limit_error",
            529: "overloaded_error",
        }
        kind = kinds.get(status, "api_error")
        extra = [(b"retry-after", b"1")] if status == 429 else []
        if anthropic:
            payload = {"type": "error", "error": {"type": kind, "message": message}}
        else:
            payload = {"error": {"message": message, "type": kind, "code": str(status)}}
        await self.respond_json(send, status, payload, extra)

    def stats_payload(self) -> dict:
        s = self.stats
        return {
            "requests": s.requests,
            "input_tokens": s.input_tokens,
            "output_tokens": s.output_tokens,
            "by_path": s.by_path,
            "last_host": s.last_headers.get("host"),
            "last_anthropic_beta": s.last_headers.get("anthropic-beta"),
            "last_body": s.last_body,
            "tool_results": s.tool_results,
        }

    # --- Behaviour knobs from the key ---------------------------------------------
    @staticmethod
    def key_number(key: str, prefix: str) -> int | None:
        for part in key.split(","):
            if part.startswith(prefix):
                return int(part[len(prefix) :])
        return None

    async def first_byte_wait(self, key: str):
        slow = self.key_number(key, "slow-")
        wait_ms = slow if slow is not None else self.options.ttft_ms
        if wait_ms:
            await asyncio.sleep(wait_ms / 1000)

    async def chunk_wait(self, key: str = ""):
        drip = self.key_number(key, "drip-") if "drip-" in key else None
        delay = drip if drip is not None else self.options.delay_ms
        if delay:
            await asyncio.sleep(delay / 1000)

    def full_length(self, key: str) -> int:
        """Words in an answer nothing cuts short: --tokens, or n for a `huge-<n>` key."""
        return self.key_number(key, "huge-") or self.options.tokens

    def answer_length(self, body: dict, default_max: int | None, key: str = "") -> int:
        full = self.full_length(key)
        limit = body.get("max_completion_tokens") or body.get("max_tokens") or default_max or full
        return max(0, min(full, int(limit)))

    # --- OpenAI -------------------------------------------------------------------
    async def chat_completions(self, body: dict, key: str, send):
        model = body.get("model", "unknown")
        temperature = body.get("temperature")
        if isinstance(temperature, int | float) and temperature > 2:
            return await self.error(send, 400, f"Invalid 'temperature': {temperature} is greater than 2.", False)
        tool = tools.chat_tool(body)
        if tool:
            return await self.openai_tool_call(body, key, tool, send)
        words = answer_words(self.answer_length(body, None, key))
        prompt_tokens = count_input_tokens(body, False)
        self.stats.input_tokens += prompt_tokens
        self.stats.output_tokens += len(words)
        finish = "length" if len(words) < self.full_length(key) else "stop"
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": len(words),
            "total_tokens": prompt_tokens + len(words),
            "prompt_tokens_details": {"cached_tokens": 0},
        }
        if "absurd" in key:
            usage.update(prompt_tokens=10**9, completion_tokens=2 * 10**9, total_tokens=3 * 10**9)
        extra = self.key_number(key, "overby-")
        if extra:
            usage.update(prompt_tokens=prompt_tokens + extra, total_tokens=usage["total_tokens"] + extra)
        for knob, counts in NONSENSE_USAGE.items():
            if knob in key:
                usage.update(counts)
        completion_id = f"chatcmpl-fake{next(self.counter)}"
        created = int(time.time())
        await self.first_byte_wait(key)
        if not body.get("stream"):
            payload = {
                "id": completion_id,
                "object": "chat.completion",
                "created": created,
                "model": model,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "".join(words)},
                        "finish_reason": finish,
                        "logprobs": None,
                    }
                ],
                "system_fingerprint": "fp_fake",
            }
            if "nousage" not in key:
                payload["usage"] = usage
            status = self.key_number(key, "status-") or 200
            return await self.respond_json(send, status, payload, body_wait_ms=self.key_number(key, "slowbody-"))
        await self.start_stream(send)
        cut_after = self.key_number(key, "cut-")

        def chunk(delta, finish_reason=None, usage_value=None, choices=True):
            data = {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "system_fingerprint": "fp_fake",
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}]
                if choices
                else [],
            }
            if usage_value is not None:
                data["usage"] = usage_value
            elif wants_usage:
                data["usage"] = None  # as OpenAI does on every chunk once usage is requested
            return b"data: " + json.dumps(data).encode() + b"\n\n"

        wants_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        await send(
            {"type": "http.response.body", "body": chunk({"role": "assistant", "content": ""}), "more_body": True}
        )
        for index, word in enumerate(words):
            if cut_after is not None and index >= cut_after:
                raise ConnectionAbortedError("simulated upstream drop")
            await self.chunk_wait(key)
            await send({"type": "http.response.body", "body": chunk({"content": word}), "more_body": True})
            if "badevent" in key:
                await send({"type": "http.response.body", "body": b"data: {not json\n\n", "more_body": True})
        await send({"type": "http.response.body", "body": chunk({}, finish), "more_body": True})
        include_usage = (body.get("stream_options") or {}).get("include_usage")
        if include_usage and "deepusage" in key:
            nested = b'{"id": "%s", "object": "chat.completion.chunk", "choices": [], "usage": %s%s}' % (
                completion_id.encode(),
                b"[" * 100_000,
                b"]" * 100_000,
            )
            await send({"type": "http.response.body", "body": b"data: " + nested + b"\n\n", "more_body": True})
        elif include_usage and "nousage" not in key:
            await send(
                {"type": "http.response.body", "body": chunk(None, usage_value=usage, choices=False), "more_body": True}
            )
        await send({"type": "http.response.body", "body": b"data: [DONE]\n\n"})

    async def responses(self, body: dict, key: str, send):
        """The OpenAI Responses API: input as a string or a list of message items."""
        tool = tools.responses_tool(body)
        if tool:
            return await self.responses_tool_call(body, key, tool, send)
        items = body.get("input")
        messages = [{"content": items}] if isinstance(items, str) else [i for i in items or [] if isinstance(i, dict)]
        input_tokens = count_input_tokens({"messages": messages}, False) + (
            len(str(body.get("instructions") or "").split())
        )
        words = answer_words(self.answer_length({"max_tokens": body.get("max_output_tokens")}, None, key))
        usage = {
            "input_tokens": input_tokens,
            "output_tokens": len(words),
            "total_tokens": input_tokens + len(words),
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens_details": {"reasoning_tokens": 0},
        }
        response_id, item_id = f"resp_fake{next(self.counter)}", f"msg_fake{next(self.counter)}"
        text = "".join(words)
        message = {
            "id": item_id,
            "type": "message",
            "role": "assistant",
            "status": "completed",
            "content": [{"type": "output_text", "text": text, "annotations": []}],
        }
        full = {
            "id": response_id,
            "object": "response",
            "created_at": int(time.time()),
            "status": "completed",
            "model": body.get("model"),
            "output": [message],
            "usage": usage,
        }
        await self.first_byte_wait(key)
        if not body.get("stream"):
            return await self.respond_json(send, 200, full)
        await self.start_stream(send)

        def event(data):
            return f"event: {data['type']}\ndata: {json.dumps(data)}\n\n".encode()

        created = {**full, "status": "in_progress", "output": [], "usage": None}
        opening = [
            {"type": "response.created", "response": created},
            {"type": "response.output_item.added", "output_index": 0, "item": {**message, "content": []}},
            {
                "type": "response.content_part.added",
                "item_id": item_id,
                "output_index": 0,
                "content_index": 0,
                "part": {"type": "output_text", "text": "", "annotations": []},
            },
        ]
        for number, data in enumerate(opening):
            body_part = event({**data, "sequence_number": number})
            await send({"type": "http.response.body", "more_body": True, "body": body_part})
        for index, word in enumerate(words, start=len(opening)):
            await self.chunk_wait(key)
            await send(
                {
                    "type": "http.response.body",
                    "more_body": True,
                    "body": event(
                        {
                            "type": "response.output_text.delta",
                            "sequence_number": index,
                            "item_id": item_id,
                            "output_index": 0,
                            "content_index": 0,
                            "delta": word,
                        }
                    ),
                }
            )
        closing = [
            {
                "type": "response.output_text.done",
                "item_id": item_id,
                "output_index": 0,
                "content_index": 0,
                "text": text,
            },
            {
                "type": "response.content_part.done",
                "item_id": item_id,
                "output_index": 0,
                "content_index": 0,
                "part": message["content"][0],
            },
            {"type": "response.output_item.done", "output_index": 0, "item": message},
            {"type": "response.completed", "response": full},
        ]
        for number, data in enumerate(closing, start=len(opening) + len(words)):
            last = data["type"] == "response.completed"
            await send(
                {
                    "type": "http.response.body",
                    "more_body": not last,
                    "body": event({**data, "sequence_number": number}),
                }
            )

    async def responses_tool_call(self, body: dict, key: str, tool: tools.ToolCall, send):
        items = body.get("input")
        messages = [i for i in items if isinstance(i, dict)] if isinstance(items, list) else [{"content": items}]
        input_tokens = count_input_tokens({"messages": messages}, False)
        usage = {
            "input_tokens": input_tokens,
            "output_tokens": tool.output_tokens,
            "total_tokens": input_tokens + tool.output_tokens,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens_details": {"reasoning_tokens": 0},
        }
        item = {
            "type": "function_call",
            "id": f"fc_fake{next(self.counter)}",
            "call_id": f"call_fake{next(self.counter)}",
            "name": tool.name,
            "arguments": tool.arguments,
            "status": "completed",
        }
        if tool.namespace:
            item["namespace"] = tool.namespace
        full = {
            "id": f"resp_fake{next(self.counter)}",
            "object": "response",
            "created_at": int(time.time()),
            "status": "completed",
            "model": body.get("model"),
            "output": [item],
            "usage": usage,
        }
        await self.first_byte_wait(key)
        if not body.get("stream"):
            return await self.respond_json(send, 200, full)
        await self.start_stream(send)
        started = {**item, "status": "in_progress", "arguments": ""}
        events = [
            {"type": "response.created", "response": {**full, "status": "in_progress", "output": [], "usage": None}},
            {"type": "response.output_item.added", "output_index": 0, "item": started},
            {
                "type": "response.function_call_arguments.delta",
                "item_id": item["id"],
                "output_index": 0,
                "delta": tool.arguments,
            },
            {
                "type": "response.function_call_arguments.done",
                "item_id": item["id"],
                "output_index": 0,
                "arguments": tool.arguments,
            },
            {"type": "response.output_item.done", "output_index": 0, "item": item},
            {"type": "response.completed", "response": full},
        ]
        for number, data in enumerate(events):
            payload = f"event: {data['type']}\ndata: {json.dumps({**data, 'sequence_number': number})}\n\n"
            await send({"type": "http.response.body", "body": payload.encode(), "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    async def openai_tool_call(self, body: dict, key: str, tool: tools.ToolCall, send):
        prompt_tokens = count_input_tokens(body, False)
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": tool.output_tokens,
            "total_tokens": prompt_tokens + tool.output_tokens,
            "prompt_tokens_details": {"cached_tokens": 0},
        }
        call_id = f"call_fake{next(self.counter)}"
        base = {"id": f"chatcmpl-fake{next(self.counter)}", "created": int(time.time()), "model": body.get("model")}
        if not body.get("stream"):
            message = {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": call_id, "type": "function", "function": {"name": tool.name, "arguments": tool.arguments}}
                ],
            }
            return await self.respond_json(
                send,
                200,
                {
                    **base,
                    "object": "chat.completion",
                    "usage": usage,
                    "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls", "logprobs": None}],
                },
            )
        await self.start_stream(send)

        def chunk(delta, finish=None, usage_value=None):
            data = {
                **base,
                "object": "chat.completion.chunk",
                "choices": [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}],
            }
            if usage_value:
                data["usage"] = usage_value
            return b"data: " + json.dumps(data).encode() + b"\n\n"

        half = len(tool.arguments) // 2
        parts = [
            chunk(
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "index": 0,
                            "id": call_id,
                            "type": "function",
                            "function": {"name": tool.name, "arguments": ""},
                        }
                    ],
                }
            ),
            chunk({"tool_calls": [{"index": 0, "function": {"arguments": tool.arguments[:half]}}]}),
            chunk({"tool_calls": [{"index": 0, "function": {"arguments": tool.arguments[half:]}}]}),
            chunk({}, "tool_calls"),
        ]
        if (body.get("stream_options") or {}).get("include_usage"):
            parts.append(chunk(None, usage_value=usage))
        parts.append(b"data: [DONE]\n\n")
        for part in parts:
            await send({"type": "http.response.body", "body": part, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    async def anthropic_tool_call(self, body: dict, key: str, tool: tools.ToolCall, send):
        input_tokens = count_input_tokens(body, True)
        usage = {
            "input_tokens": input_tokens,
            "output_tokens": tool.output_tokens,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
        }
        tool_id = f"toolu_fake{next(self.counter)}"
        message = {
            "id": f"msg_fake{next(self.counter)}",
            "type": "message",
            "role": "assistant",
            "model": body.get("model"),
            "stop_sequence": None,
        }
        if not body.get("stream"):
            content = [
                {"type": "text", "text": "Let me check."},
                {"type": "tool_use", "id": tool_id, "name": tool.name, "input": json.loads(tool.arguments)},
            ]
            return await self.respond_json(
                send, 200, {**message, "content": content, "stop_reason": "tool_use", "usage": usage}
            )
        await self.start_stream(send)

        def event(name, data):
            return f"event: {name}\ndata: {json.dumps({'type': name, **data})}\n\n".encode()

        half = len(tool.arguments) // 2
        parts = [
            event(
                "message_start",
                {"message": {**message, "content": [], "stop_reason": None, "usage": {**usage, "output_tokens": 1}}},
            ),
            event("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}}),
            event("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": "Let me check."}}),
            event("content_block_stop", {"index": 0}),
            event(
                "content_block_start",
                {"index": 1, "content_block": {"type": "tool_use", "id": tool_id, "name": tool.name, "input": {}}},
            ),
            event(
                "content_block_delta",
                {"index": 1, "delta": {"type": "input_json_delta", "partial_json": tool.arguments[:half]}},
            ),
            event(
                "content_block_delta",
                {"index": 1, "delta": {"type": "input_json_delta", "partial_json": tool.arguments[half:]}},
            ),
            event("content_block_stop", {"index": 1}),
            event(
                "message_delta",
                {
                    "delta": {"stop_reason": "tool_use", "stop_sequence": None},
                    "usage": {"output_tokens": tool.output_tokens},
                },
            ),
            event("message_stop", {}),
        ]
        for part in parts:
            await send({"type": "http.response.body", "body": part, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    async def embeddings(self, body: dict, send):
        inputs = body.get("input")
        items = inputs if isinstance(inputs, list) else [inputs]
        tokens = sum(len(str(item).split()) for item in items)
        data = [{"object": "embedding", "index": i, "embedding": [0.1, 0.2, 0.3]} for i in range(len(items))]
        await self.respond_json(
            send,
            200,
            {
                "object": "list",
                "data": data,
                "model": body.get("model"),
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            },
        )

    async def model_list(self, send, headers):
        if "anthropic-version" in headers:
            data = [
                {"type": "model", "id": m, "display_name": m, "created_at": "2025-01-01T00:00:00Z"}
                for m in self.options.models
            ]
            return await self.respond_json(
                send, 200, {"data": data, "has_more": False, "first_id": data[0]["id"], "last_id": data[-1]["id"]}
            )
        data = [{"id": m, "object": "model", "created": 1735689600, "owned_by": "fake"} for m in self.options.models]
        return await self.respond_json(send, 200, {"object": "list", "data": data})

    async def deepseek_balance(self, send, key: str):
        if key.startswith("fail-"):
            return await self.error(send, int(key.split("-")[1]), "simulated", False)
        return await self.respond_json(
            send,
            200,
            {
                "is_available": True,
                "balance_infos": [
                    {
                        "currency": "USD",
                        "total_balance": self.options.balance_usd,
                        "granted_balance": "0.00",
                        "topped_up_balance": self.options.balance_usd,
                    }
                ],
            },
        )

    async def openrouter_credits(self, send, key: str):
        if key.startswith("fail-"):
            return await self.error(send, int(key.split("-")[1]), "simulated", False)
        return await self.respond_json(send, 200, {"data": {"total_credits": 100, "total_usage": 57.5}})

    # --- Anthropic ----------------------------------------------------------------
    async def messages(self, body: dict, key: str, send):
        model = body.get("model", "unknown")
        if not body.get("max_tokens"):
            return await self.error(send, 400, "max_tokens: Field required", True)
        temperature = body.get("temperature")
        if isinstance(temperature, int | float) and temperature > 1:
            return await self.error(send, 400, "temperature: Input should be less than or equal to 1", True)
        if "BAD" in (body.get("stop_sequences") or []):
            return await self.error(send, 400, "stop_sequences: each sequence must contain non-whitespace", True)
        tool = tools.anthropic_tool(body)
        if tool:
            return await self.anthropic_tool_call(body, key, tool, send)
        words = answer_words(self.answer_length(body, body.get("max_tokens"), key))
        input_tokens = count_input_tokens(body, True)
        self.stats.input_tokens += input_tokens
        self.stats.output_tokens += len(words)
        stop_reason = "max_tokens" if len(words) < self.full_length(key) else "end_turn"
        message_id = f"msg_fake{next(self.counter)}"
        usage = {
            "input_tokens": input_tokens,
            "output_tokens": len(words),
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
        }
        await self.first_byte_wait(key)
        if not body.get("stream"):
            payload = {
                "id": message_id,
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": [{"type": "text", "text": "".join(words)}],
                "stop_reason": stop_reason,
                "stop_sequence": None,
                "usage": usage,
            }
            if "nousage" in key:
                payload["usage"] = {"input_tokens": 0, "output_tokens": 0}
            return await self.respond_json(send, 200, payload)
        await self.start_stream(send)
        cut_after = self.key_number(key, "cut-")

        def event(name, data):
            return f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()

        start_usage = {
            "input_tokens": input_tokens,
            "output_tokens": 1,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
        }
        if "nousage" in key:
            start_usage = {"input_tokens": 0, "output_tokens": 0}
        head = event(
            "message_start",
            {
                "type": "message_start",
                "message": {
                    "id": message_id,
                    "type": "message",
                    "role": "assistant",
                    "model": model,
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": start_usage,
                },
            },
        )
        head += event(
            "content_block_start",
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        )
        head += event("ping", {"type": "ping"})
        await send({"type": "http.response.body", "body": head, "more_body": True})
        for index, word in enumerate(words):
            if cut_after is not None and index >= cut_after:
                raise ConnectionAbortedError("simulated upstream drop")
            await self.chunk_wait(key)
            await send(
                {
                    "type": "http.response.body",
                    "more_body": True,
                    "body": event(
                        "content_block_delta",
                        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": word}},
                    ),
                }
            )
        output_tokens = 0 if "nousage" in key else len(words)
        tail = event("content_block_stop", {"type": "content_block_stop", "index": 0})
        tail += event(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                "usage": {"output_tokens": output_tokens},
            },
        )
        tail += event("message_stop", {"type": "message_stop"})
        await send({"type": "http.response.body", "body": tail})
