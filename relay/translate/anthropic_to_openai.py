"""An Anthropic Messages caller (the `anthropic` SDK, Claude Code…) reaching an OpenAI-compatible channel.

request: messages body → chat.completions body; response: chat.completion → message;
StreamTranslator: chat.completion.chunk events → Anthropic events, one event at a time.
"""

from __future__ import annotations

import json
import uuid

from .. import usage as usage_of
from ..sse import Event, encode
from . import OPENAI_TO_ANTHROPIC_STOP, ModelDefaults, TranslationError

# --- Request ------------------------------------------------------------------------------------


def _system_text(system, field: str) -> str:
    if system is None:
        return ""
    if isinstance(system, str):
        return system
    if isinstance(system, list):
        texts = []
        for index, block in enumerate(system):
            if not isinstance(block, dict) or block.get("type") != "text":
                raise TranslationError(f"{field}[{index}]", "system blocks must be text")
            texts.append(str(block.get("text", "")))
        return "\n\n".join(t for t in texts if t)
    raise TranslationError(field, "must be a string or a list of text blocks")


def image_url(source: dict, field: str) -> dict:
    kind = source.get("type")
    if kind == "base64":
        return {
            "type": "image_url",
            "image_url": {"url": f"data:{source.get('media_type')};base64,{source.get('data', '')}"},
        }
    if kind == "url":
        return {"type": "image_url", "image_url": {"url": source.get("url", "")}}
    raise TranslationError(f"{field}.source.type", f"image source {kind!r} cannot be sent to an OpenAI-style model")


def _tool_result_text(block: dict, field: str) -> str:
    content = block.get("content")
    if content is None:
        text = ""
    elif isinstance(content, str):
        text = content
    elif isinstance(content, list):
        pieces = []
        for index, part in enumerate(content):
            if isinstance(part, dict) and part.get("type") == "text":
                pieces.append(str(part.get("text", "")))
            elif isinstance(part, dict) and part.get("type") == "image":
                pieces.append("[image omitted: the model's API takes images only in user turns]")
            else:
                raise TranslationError(f"{field}.content[{index}]", "tool results may hold text or images")
        text = "\n".join(pieces)
    else:
        raise TranslationError(f"{field}.content", "must be a string or a list of blocks")
    return f"Error: {text}" if block.get("is_error") else text


def _user_turn(content, field: str) -> list[dict]:
    """A user turn becomes tool messages (results first, as OpenAI requires) and then one user message."""
    if isinstance(content, str):
        return [{"role": "user", "content": content}]
    if not isinstance(content, list):
        raise TranslationError(field, "must be a string or a list of content blocks")
    tool_messages, parts = [], []
    for index, block in enumerate(content):
        kind = block.get("type") if isinstance(block, dict) else None
        where = f"{field}[{index}]"
        if kind == "text":
            if block.get("text"):  # Claude Code sends empty text blocks
                parts.append({"type": "text", "text": block["text"]})
        elif kind == "image":
            parts.append(image_url(block.get("source") or {}, where))
        elif kind == "tool_result":
            tool_messages.append(
                {
                    "role": "tool",
                    "tool_call_id": block.get("tool_use_id", ""),
                    "content": _tool_result_text(block, where),
                }
            )
        elif kind in ("thinking", "redacted_thinking"):
            continue
        else:
            raise TranslationError(where, f"block type {kind!r} cannot be sent to an OpenAI-style model")
    messages = list(tool_messages)
    if parts:
        only_text = all(p["type"] == "text" for p in parts)
        messages.append({"role": "user", "content": "\n".join(p["text"] for p in parts) if only_text else parts})
    return messages


def _assistant_turn(content, field: str) -> dict:
    if isinstance(content, str):
        return {"role": "assistant", "content": content}
    if not isinstance(content, list):
        raise TranslationError(field, "must be a string or a list of content blocks")
    text, reasoning, tool_calls = [], [], []
    for index, block in enumerate(content):
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            text.append(block.get("text", ""))
        elif kind == "thinking":
            reasoning.append(block.get("thinking", ""))
        elif kind == "redacted_thinking":
            continue
        elif kind == "tool_use":
            tool_calls.append(
                {
                    "id": block.get("id", ""),
                    "type": "function",
                    "function": {"name": block.get("name", ""), "arguments": json.dumps(block.get("input") or {})},
                }
            )
        else:
            raise TranslationError(f"{field}[{index}]", f"block type {kind!r} cannot be sent to an OpenAI-style model")
    message: dict = {"role": "assistant", "content": "".join(text) or None}
    if tool_calls:
        message["tool_calls"] = tool_calls
    if reasoning or tool_calls:
        # DeepSeek-style thinking models demand reasoning_content back on assistant tool-call turns.
        message["reasoning_content"] = "".join(reasoning)
    return message


def _tools(tools) -> list[dict]:
    converted = []
    for index, tool in enumerate(tools):
        if not isinstance(tool, dict) or "input_schema" not in tool or tool.get("type") not in (None, "custom"):
            raise TranslationError(
                f"tools[{index}]", "only client tools with an input_schema can be sent to an OpenAI-style model"
            )
        function = {"name": tool.get("name", ""), "parameters": tool["input_schema"]}
        if tool.get("description"):
            function["description"] = tool["description"]
        converted.append({"type": "function", "function": function})
    return converted


def _tool_choice(choice) -> tuple[object, bool | None]:
    if not choice:
        return None, None
    kind = choice.get("type")
    parallel = False if choice.get("disable_parallel_tool_use") else None
    if kind == "auto":
        return "auto", parallel
    if kind == "any":
        return "required", parallel
    if kind == "none":
        return "none", None
    if kind == "tool":
        return {"type": "function", "function": {"name": choice.get("name", "")}}, parallel
    raise TranslationError("tool_choice.type", "must be auto, any, tool or none")


def request(body: dict, model: ModelDefaults) -> dict:
    messages: list[dict] = []
    system = _system_text(body.get("system"), "system")
    if system:
        messages.append({"role": "system", "content": system})
    for index, message in enumerate(body.get("messages") or []):
        field = f"messages[{index}]"
        role = message.get("role") if isinstance(message, dict) else None
        if role == "user":
            messages.extend(_user_turn(message.get("content"), f"{field}.content"))
        elif role == "assistant":
            messages.append(_assistant_turn(message.get("content"), f"{field}.content"))
        elif role == "system":  # some agents put the system prompt inside messages
            messages.append({"role": "system", "content": _system_text(message.get("content"), f"{field}.content")})
        else:
            raise TranslationError(f"{field}.role", f"{role!r} is not a Messages API role")
    out: dict = {
        "model": body["model"],
        "messages": messages,
        "max_tokens": model.output_budget(body.get("max_tokens")),
    }
    for name in ("temperature", "top_p"):
        if body.get(name) is not None:
            out[name] = body[name]
    if body.get("stop_sequences"):
        out["stop"] = list(body["stop_sequences"])
    user_id = (body.get("metadata") or {}).get("user_id")
    if user_id:
        out["user"] = str(user_id)
    if body.get("tools"):
        out["tools"] = _tools(body["tools"])
        choice, parallel = _tool_choice(body.get("tool_choice"))
        if choice is not None:
            out["tool_choice"] = choice
        if parallel is not None:
            out["parallel_tool_calls"] = parallel
    if body.get("stream"):
        out["stream"] = True
        out["stream_options"] = {"include_usage": True}
    return out


# --- Response -----------------------------------------------------------------------------------


def usage(openai_usage: dict | None) -> dict:
    return usage_of.as_anthropic(usage_of.from_openai(openai_usage))


def _tool_input(arguments: str) -> dict:
    try:
        parsed = json.loads(arguments or "{}")
    except ValueError:
        return {"_raw_arguments": arguments}
    return parsed if isinstance(parsed, dict) else {"value": parsed}


def response(completion: dict, model: ModelDefaults) -> dict:
    choice = (completion.get("choices") or [{}])[0]
    message = choice.get("message") or {}
    content: list[dict] = []
    if message.get("reasoning_content"):
        content.append({"type": "thinking", "thinking": message["reasoning_content"], "signature": ""})
    if message.get("content"):
        content.append({"type": "text", "text": message["content"]})
    for call in message.get("tool_calls") or []:
        function = call.get("function") or {}
        tool_id = call.get("id") or f"toolu_{uuid.uuid4().hex[:24]}"
        arguments = _tool_input(function.get("arguments", ""))
        content.append({"type": "tool_use", "id": tool_id, "name": function.get("name", ""), "input": arguments})
    return {
        "id": "msg_" + str(completion.get("id", uuid.uuid4().hex)).removeprefix("chatcmpl-"),
        "type": "message",
        "role": "assistant",
        "model": model.name,
        "content": content,
        "stop_reason": OPENAI_TO_ANTHROPIC_STOP.get(choice.get("finish_reason") or "stop", "end_turn"),
        "stop_sequence": None,
        "usage": usage(completion.get("usage")),
    }


# --- Stream -------------------------------------------------------------------------------------


def _event(name: str, data: dict) -> bytes:
    return encode(json.dumps({"type": name, **data}, separators=(",", ":")), name)


class StreamTranslator:
    """chat.completion.chunk events in, Anthropic events out (message_start … message_stop)."""

    def __init__(self, model: ModelDefaults, include_usage: bool = True):
        self.model = model
        self.started = False
        self.block_index = -1
        self.block_kind: str | None = None  # "text", "thinking" or "tool_use"
        self.tool_blocks: dict[int, int] = {}  # OpenAI tool_call index -> our block index
        self.stop_reason = "end_turn"
        self.usage: dict | None = None
        self.done = False

    def _start(self, chunk: dict) -> list[bytes]:
        self.started = True
        message = {
            "id": "msg_" + str(chunk.get("id", uuid.uuid4().hex)).removeprefix("chatcmpl-"),
            "type": "message",
            "role": "assistant",
            "model": self.model.name,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0},
        }
        return [_event("message_start", {"message": message}), _event("ping", {})]

    def _close_block(self) -> list[bytes]:
        if self.block_kind is None:
            return []
        self.block_kind = None
        return [_event("content_block_stop", {"index": self.block_index})]

    def _open_block(self, kind: str, block: dict) -> list[bytes]:
        out = self._close_block()
        self.block_index += 1
        self.block_kind = kind
        return [*out, _event("content_block_start", {"index": self.block_index, "content_block": block})]

    @staticmethod
    def _delta(index: int, delta: dict) -> bytes:
        return _event("content_block_delta", {"index": index, "delta": delta})

    def feed(self, event: Event) -> list[bytes]:
        if self.done:
            return []
        if event.data == b"[DONE]":
            return self.finish()
        chunk = event.json()
        if "error" in chunk and not chunk.get("choices"):
            error = chunk["error"] if isinstance(chunk["error"], dict) else {"message": str(chunk["error"])}
            self.done = True
            return [
                _event("error", {"error": {"type": "api_error", "message": error.get("message", "upstream error")}})
            ]
        out = [] if self.started else self._start(chunk)
        if chunk.get("usage"):
            self.usage = chunk["usage"]
        for choice in chunk.get("choices") or []:
            delta = choice.get("delta") or {}
            if delta.get("reasoning_content"):
                if self.block_kind != "thinking":
                    out += self._open_block("thinking", {"type": "thinking", "thinking": ""})
                out.append(
                    self._delta(self.block_index, {"type": "thinking_delta", "thinking": delta["reasoning_content"]})
                )
            if delta.get("content"):
                if self.block_kind != "text":
                    out += self._open_block("text", {"type": "text", "text": ""})
                out.append(self._delta(self.block_index, {"type": "text_delta", "text": delta["content"]}))
            for call in delta.get("tool_calls") or []:
                index = call.get("index", 0)
                function = call.get("function") or {}
                if index not in self.tool_blocks:
                    block = {
                        "type": "tool_use",
                        "id": call.get("id") or f"toolu_{uuid.uuid4().hex[:24]}",
                        "name": function.get("name", ""),
                        "input": {},
                    }
                    out += self._open_block("tool_use", block)
                    self.tool_blocks[index] = self.block_index
                if function.get("arguments"):
                    json_delta = {"type": "input_json_delta", "partial_json": function["arguments"]}
                    out.append(self._delta(self.tool_blocks[index], json_delta))
            if choice.get("finish_reason"):
                self.stop_reason = OPENAI_TO_ANTHROPIC_STOP.get(choice["finish_reason"], "end_turn")
        return out

    def finish(self) -> list[bytes]:
        if self.done:
            return []
        self.done = True
        out = [] if self.started else self._start({})
        out += self._close_block()
        totals = usage(self.usage)
        delta_usage = {
            "output_tokens": totals["output_tokens"],
            "input_tokens": totals["input_tokens"],
            "cache_read_input_tokens": totals["cache_read_input_tokens"],
        }
        out.append(
            _event(
                "message_delta",
                {"delta": {"stop_reason": self.stop_reason, "stop_sequence": None}, "usage": delta_usage},
            )
        )
        out.append(_event("message_stop", {}))
        return out
