"""A Responses API caller (`POST /v1/responses`) reaching a Chat-Completions-only channel.

Stateless: TokenHub stores no responses, so `previous_response_id` is refused unless the channel
serves the Responses API natively. Anthropic channels are reached by composing this translation
with Chat Completions ⇄ Messages.

request: responses body → chat.completions body; response: chat.completion → response object;
StreamTranslator: chat.completion.chunk events → Responses streaming events.
"""

from __future__ import annotations

import json
import time
import uuid

from .. import usage as usage_of
from ..sse import Event, encode
from . import ModelDefaults, TranslationError
from .responses_tools import ToolMap

# --- Request ------------------------------------------------------------------------------------


def _content_parts(content, field: str, role: str):
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise TranslationError(field, "must be a string or a list of content parts")
    parts = []
    for index, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("input_text", "output_text", "text"):
            parts.append({"type": "text", "text": part.get("text", "")})
        elif kind == "input_image" and role == "user":
            url = part.get("image_url")
            if not url:
                raise TranslationError(f"{field}[{index}]", "only images given by image_url can be relayed")
            parts.append({"type": "image_url", "image_url": {"url": url}})
        else:
            raise TranslationError(f"{field}[{index}]", f"content type {kind!r} cannot be relayed to this model")
    if all(p["type"] == "text" for p in parts):
        return "\n".join(p["text"] for p in parts)
    return parts


CALLS = ("function_call", "custom_tool_call", "local_shell_call")
OUTPUTS = ("function_call_output", "custom_tool_call_output", "local_shell_call_output")


def _messages(items, field: str, tools: ToolMap) -> list[dict]:
    if isinstance(items, str):
        return [{"role": "user", "content": items}]
    if not isinstance(items, list):
        raise TranslationError(field, "must be a string or a list of items")
    messages: list[dict] = []
    for index, item in enumerate(items):
        where = f"{field}[{index}]"
        if not isinstance(item, dict):
            raise TranslationError(where, "must be an object")
        kind = item.get("type", "message")
        if kind == "message":
            role = item.get("role")
            if role not in ("user", "assistant", "system", "developer"):
                raise TranslationError(f"{where}.role", f"{role!r} is not a message role")
            messages.append({"role": role, "content": _content_parts(item.get("content"), f"{where}.content", role)})
        elif kind in CALLS:
            call = tools.history_call(item)
            last = messages[-1] if messages else None
            if last and last["role"] == "assistant" and "tool_calls" in last:
                last["tool_calls"].append(call)
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind in OUTPUTS:
            output = item.get("output")
            messages.append(
                {
                    "role": "tool",
                    "tool_call_id": item.get("call_id") or item.get("id") or "",
                    "content": output if isinstance(output, str) else json.dumps(output),
                }
            )
        elif kind == "reasoning":
            continue
        else:
            raise TranslationError(
                where, f"item type {kind!r} needs the Responses API itself, which this channel lacks"
            )
    return messages


def request(body: dict, model: ModelDefaults, tools: ToolMap | None = None) -> dict:
    """The chat.completions body; `tools`: the request's tools as the channel takes them (built if None).

    `include`, `store`, `reasoning`, `prompt_cache_key`, `service_tier`, `client_metadata` and
    `text.verbosity` mean nothing to a chat-only channel and are left out.
    """
    tools = tools if tools is not None else ToolMap(body.get("tools"))
    if body.get("previous_response_id"):
        raise TranslationError(
            "previous_response_id", "TokenHub keeps no responses; send the whole conversation in input instead"
        )
    messages = []
    if body.get("instructions"):
        messages.append({"role": "system", "content": str(body["instructions"])})
    messages += _messages(body.get("input"), "input", tools)
    out: dict = {
        "model": body["model"],
        "messages": messages,
        "max_tokens": model.output_budget(body.get("max_output_tokens")),
    }
    for name in ("temperature", "top_p", "user"):
        if body.get(name) is not None:
            out[name] = body[name]
    text_format = ((body.get("text") or {}).get("format") or {}).get("type")
    if text_format == "json_object":
        out["response_format"] = {"type": "json_object"}
    elif text_format == "json_schema":
        fmt = body["text"]["format"]
        out["response_format"] = {
            "type": "json_schema",
            "json_schema": {
                "name": fmt.get("name", "schema"),
                "schema": fmt.get("schema", {}),
                "strict": fmt.get("strict", False),
            },
        }
    choice = tools.tool_choice(body.get("tool_choice"))  # refuses a choice no tool left can meet
    if tools.chat_tools:
        out["tools"] = tools.chat_tools
        if choice is not None:
            out["tool_choice"] = choice
        if body.get("parallel_tool_calls") is not None:  # chat APIs take it only beside tools
            out["parallel_tool_calls"] = body["parallel_tool_calls"]
    if body.get("stream"):
        out["stream"] = True
        out["stream_options"] = {"include_usage": True}
    return out


# --- Response -----------------------------------------------------------------------------------


def usage(chat_usage: dict | None) -> dict:
    return usage_of.as_responses(usage_of.from_openai(chat_usage))


def _shell(response_id: str, model: ModelDefaults, body: dict, status: str) -> dict:
    return {
        "id": response_id,
        "object": "response",
        "created_at": int(time.time()),
        "status": status,
        "model": model.name,
        "output": [],
        "parallel_tool_calls": body.get("parallel_tool_calls", True),
        "tool_choice": body.get("tool_choice") or "auto",
        "tools": body.get("tools") or [],
        "temperature": body.get("temperature"),
        "top_p": body.get("top_p"),
        "error": None,
        "incomplete_details": None,
        "instructions": body.get("instructions"),
        "metadata": {},
        "usage": None,
        "text": {"format": {"type": "text"}},
        "store": False,
    }


def _message_item(item_id: str, text: str, status: str = "completed") -> dict:
    return {
        "type": "message",
        "id": item_id,
        "status": status,
        "role": "assistant",
        "content": [{"type": "output_text", "text": text, "annotations": []}],
    }


def _finish(response: dict, finish_reason: str | None) -> dict:
    if finish_reason == "length":
        response["status"] = "incomplete"
        response["incomplete_details"] = {"reason": "max_output_tokens"}
    elif finish_reason == "content_filter":
        response["status"] = "incomplete"
        response["incomplete_details"] = {"reason": "content_filter"}
    else:
        response["status"] = "completed"
    return response


def response(completion: dict, model: ModelDefaults, body: dict, tools: ToolMap | None = None) -> dict:
    tools = tools if tools is not None else ToolMap(body.get("tools"))
    choice = (completion.get("choices") or [{}])[0]
    message = choice.get("message") or {}
    result = _shell("resp_" + uuid.uuid4().hex, model, body, "completed")
    if message.get("content"):
        result["output"].append(_message_item("msg_" + uuid.uuid4().hex, message["content"]))
    for call in message.get("tool_calls") or []:
        function = call.get("function") or {}
        result["output"].append(
            tools.output_item(
                "fc_" + uuid.uuid4().hex, call.get("id", ""), function.get("name", ""), function.get("arguments", "")
            )
        )
    result["usage"] = usage(completion.get("usage"))
    return _finish(result, choice.get("finish_reason"))


# --- Stream -------------------------------------------------------------------------------------


class StreamTranslator:
    """chat.completion.chunk events in, Responses events out (response.created … response.completed)."""

    def __init__(self, model: ModelDefaults, body: dict, tools: ToolMap | None = None):
        self.model, self.body = model, body
        self.tools = tools if tools is not None else ToolMap(body.get("tools"))
        self.response = _shell("resp_" + uuid.uuid4().hex, model, body, "in_progress")
        self.sequence = 0
        self.started = False
        self.text_item: dict | None = None  # {"id", "index", "text"}
        self.calls: dict[int, dict] = {}  # chat tool_call index -> {"id", "index", "call_id", "name", "arguments"}
        self.outputs: list[dict] = []
        self.finish_reason: str | None = None
        self.usage: dict | None = None
        self.done = False

    def _event(self, kind: str, **data) -> bytes:
        payload = {"type": kind, "sequence_number": self.sequence, **data}
        self.sequence += 1
        return encode(json.dumps(payload, separators=(",", ":")), kind)

    def _start(self) -> list[bytes]:
        self.started = True
        return [
            self._event("response.created", response=self.response),
            self._event("response.in_progress", response=self.response),
        ]

    def _open_text(self) -> list[bytes]:
        item_id = "msg_" + uuid.uuid4().hex
        self.text_item = {"id": item_id, "index": len(self.outputs), "text": ""}
        self.outputs.append({"kind": "text", "ref": self.text_item})
        return [
            self._event(
                "response.output_item.added",
                output_index=self.text_item["index"],
                item={"type": "message", "id": item_id, "status": "in_progress", "role": "assistant", "content": []},
            ),
            self._event(
                "response.content_part.added",
                item_id=item_id,
                output_index=self.text_item["index"],
                content_index=0,
                part={"type": "output_text", "text": "", "annotations": []},
            ),
        ]

    def _close_text(self) -> list[bytes]:
        item = self.text_item
        if item is None:
            return []
        self.text_item = None
        part = {"type": "output_text", "text": item["text"], "annotations": []}
        return [
            self._event(
                "response.output_text.done",
                item_id=item["id"],
                output_index=item["index"],
                content_index=0,
                text=item["text"],
            ),
            self._event(
                "response.content_part.done", item_id=item["id"], output_index=item["index"], content_index=0, part=part
            ),
            self._event(
                "response.output_item.done", output_index=item["index"], item=_message_item(item["id"], item["text"])
            ),
        ]

    def feed(self, event: Event) -> list[bytes]:
        if self.done:
            return []
        if event.data == b"[DONE]":
            return self.finish()
        chunk = event.json()
        out = [] if self.started else self._start()
        if chunk.get("usage"):
            self.usage = chunk["usage"]
        for choice in chunk.get("choices") or []:
            delta = choice.get("delta") or {}
            if delta.get("content"):
                if self.text_item is None:
                    out += self._open_text()
                self.text_item["text"] += delta["content"]
                out.append(
                    self._event(
                        "response.output_text.delta",
                        item_id=self.text_item["id"],
                        output_index=self.text_item["index"],
                        content_index=0,
                        delta=delta["content"],
                    )
                )
            for call in delta.get("tool_calls") or []:
                out += self._tool_call_delta(call)
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
        return out

    def _tool_call_delta(self, call: dict) -> list[bytes]:
        out = []
        function = call.get("function") or {}
        entry = self.calls.get(call.get("index", 0))
        if entry is None:
            out += self._close_text()
            entry = {
                "id": "fc_" + uuid.uuid4().hex,
                "index": len(self.outputs),
                "call_id": call.get("id", ""),
                "name": function.get("name", ""),
                "arguments": "",
            }
            self.calls[call.get("index", 0)] = entry
            self.outputs.append({"kind": "call", "ref": entry})
            item = self._item(entry, "in_progress", arguments="")
            out.append(self._event("response.output_item.added", output_index=entry["index"], item=item))
        if function.get("arguments"):
            entry["arguments"] += function["arguments"]
            # Only a function's arguments stream as they come: a custom tool's input and a shell
            # action are read out of the whole arguments, at the end.
            if self.tools.kind_of(entry["name"]) == "function":
                out.append(
                    self._event(
                        "response.function_call_arguments.delta",
                        item_id=entry["id"],
                        output_index=entry["index"],
                        delta=function["arguments"],
                    )
                )
        return out

    def _item(self, entry: dict, status: str = "completed", arguments: str | None = None) -> dict:
        arguments = entry["arguments"] if arguments is None else arguments
        return self.tools.output_item(entry["id"], entry["call_id"], entry["name"], arguments, status)

    def _close_call(self, entry: dict) -> list[bytes]:
        item, kind = self._item(entry), self.tools.kind_of(entry["name"])
        where = {"item_id": entry["id"], "output_index": entry["index"]}
        if kind == "function":
            done = [self._event("response.function_call_arguments.done", **where, arguments=entry["arguments"])]
        elif kind == "custom":
            done = [
                self._event("response.custom_tool_call_input.delta", **where, delta=item["input"]),
                self._event("response.custom_tool_call_input.done", **where, input=item["input"]),
            ]
        else:
            done = []
        return [*done, self._event("response.output_item.done", output_index=entry["index"], item=item)]

    def finish(self) -> list[bytes]:
        if self.done:
            return []
        self.done = True
        out = [] if self.started else self._start()
        out += self._close_text()
        for entry in self.calls.values():
            out += self._close_call(entry)
        final = dict(self.response)
        final["output"] = [
            _message_item(o["ref"]["id"], o["ref"]["text"]) if o["kind"] == "text" else self._item(o["ref"])
            for o in self.outputs
        ]
        final["usage"] = usage(self.usage)
        _finish(final, self.finish_reason)
        kind = "response.completed" if final["status"] == "completed" else "response.incomplete"
        out.append(self._event(kind, response=final))
        return out
