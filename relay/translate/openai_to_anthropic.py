"""An OpenAI Chat Completions caller reaching an Anthropic Messages channel.

request: chat.completions body → messages body; response: message → chat.completion;
StreamTranslator: Anthropic SSE events → chat.completion.chunk events, one event at a time.
"""

from __future__ import annotations

import json
import time

from .. import usage as usage_of
from ..sse import Event, encode
from . import ANTHROPIC_TO_OPENAI_STOP, ModelDefaults, TranslationError

# --- Request ------------------------------------------------------------------------------------


def _text_of(content, field: str) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for index, part in enumerate(content):
            if isinstance(part, dict) and part.get("type") == "text":
                parts.append(str(part.get("text", "")))
            else:
                raise TranslationError(f"{field}[{index}]", "only text parts are allowed here")
        return "\n".join(parts)
    raise TranslationError(field, "must be a string or a list of content parts")


def image_block(url: str, field: str) -> dict:
    if url.startswith("data:"):
        header, _, data = url.partition(",")
        media_type = header[5:].split(";")[0]
        if ";base64" not in header or not media_type.startswith("image/"):
            raise TranslationError(field, "data URLs must be base64-encoded images")
        return {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}
    if url.startswith(("http://", "https://")):
        return {"type": "image", "source": {"type": "url", "url": url}}
    raise TranslationError(field, "an image URL must be http(s) or a data URL")


def _user_blocks(content, field: str) -> list[dict]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    if not isinstance(content, list):
        raise TranslationError(field, "must be a string or a list of content parts")
    blocks = []
    for index, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            if part.get("text"):
                blocks.append({"type": "text", "text": part["text"]})
        elif kind == "image_url":
            image = part.get("image_url") or {}
            blocks.append(
                image_block(image.get("url", "") if isinstance(image, dict) else str(image), f"{field}[{index}]")
            )
        else:
            raise TranslationError(
                f"{field}[{index}]", f"content part type {kind!r} cannot be sent to an Anthropic model"
            )
    return blocks


def _assistant_blocks(message: dict, field: str) -> list[dict]:
    blocks = []
    text = _text_of(message.get("content"), f"{field}.content")
    if text:
        blocks.append({"type": "text", "text": text})
    for index, call in enumerate(message.get("tool_calls") or []):
        function = call.get("function") or {}
        arguments = function.get("arguments") or "{}"
        try:
            parsed = json.loads(arguments) if isinstance(arguments, str) else arguments
        except ValueError:
            raise TranslationError(f"{field}.tool_calls[{index}].function.arguments", "is not valid JSON") from None
        if not isinstance(parsed, dict):
            raise TranslationError(f"{field}.tool_calls[{index}].function.arguments", "must be a JSON object")
        blocks.append(
            {
                "type": "tool_use",
                "id": call.get("id") or f"toolu_{index}",
                "name": function.get("name", ""),
                "input": parsed,
            }
        )
    return blocks


def _tool_result(message: dict, field: str) -> dict:
    content = message.get("content")
    if isinstance(content, list):
        text = _text_of(content, f"{field}.content")
    else:
        text = "" if content is None else str(content)
    if not message.get("tool_call_id"):
        raise TranslationError(f"{field}.tool_call_id", "is required for a tool message")
    return {"type": "tool_result", "tool_use_id": message["tool_call_id"], "content": text}


def _append(messages: list[dict], role: str, blocks: list[dict]) -> None:
    """Merge consecutive turns of one role (several tool results become one user turn)."""
    if not blocks:
        return
    if messages and messages[-1]["role"] == role:
        messages[-1]["content"].extend(blocks)
    else:
        messages.append({"role": role, "content": list(blocks)})


def _tools(tools) -> list[dict]:
    converted = []
    for index, tool in enumerate(tools):
        if not isinstance(tool, dict) or tool.get("type") != "function":
            raise TranslationError(f"tools[{index}]", "only function tools can be sent to an Anthropic model")
        function = tool.get("function") or {}
        entry = {
            "name": function.get("name", ""),
            "input_schema": function.get("parameters") or {"type": "object", "properties": {}},
        }
        if function.get("description"):
            entry["description"] = function["description"]
        converted.append(entry)
    return converted


def _tool_choice(choice, parallel: bool | None) -> dict | None:
    if choice is None:
        result = None
    elif choice == "auto":
        result = {"type": "auto"}
    elif choice == "none":
        result = {"type": "none"}
    elif choice == "required":
        result = {"type": "any"}
    elif isinstance(choice, dict) and choice.get("type") == "function":
        result = {"type": "tool", "name": (choice.get("function") or {}).get("name", "")}
    else:
        raise TranslationError("tool_choice", "must be auto, none, required or a named function")
    if parallel is False:
        result = {**(result or {"type": "auto"}), "disable_parallel_tool_use": True}
    return result


def request(body: dict, model: ModelDefaults) -> dict:
    if (body.get("n") or 1) > 1:
        raise TranslationError("n", "Anthropic models return one choice; n must be 1")
    system_parts: list[str] = []
    messages: list[dict] = []
    for index, message in enumerate(body.get("messages") or []):
        field = f"messages[{index}]"
        if not isinstance(message, dict):
            raise TranslationError(field, "must be an object")
        role = message.get("role")
        if role in ("system", "developer"):
            text = _text_of(message.get("content"), f"{field}.content")
            if text:
                system_parts.append(text)
        elif role == "user":
            _append(messages, "user", _user_blocks(message.get("content"), f"{field}.content"))
        elif role == "assistant":
            _append(messages, "assistant", _assistant_blocks(message, field))
        elif role == "tool":
            _append(messages, "user", [_tool_result(message, field)])
        else:
            raise TranslationError(f"{field}.role", f"{role!r} is not supported")
    if not messages:
        raise TranslationError("messages", "at least one user or assistant message is required")
    out: dict = {
        "model": body["model"],
        "messages": messages,
        "max_tokens": model.output_budget(body.get("max_completion_tokens") or body.get("max_tokens")),
    }
    response_format = body.get("response_format") or {}
    if response_format.get("type") == "json_object":
        system_parts.append("Respond with one valid JSON object and nothing else.")
    elif response_format.get("type") == "json_schema":
        raise TranslationError(
            "response_format", "json_schema cannot be enforced on an Anthropic model; use json_object"
        )
    if system_parts:
        out["system"] = "\n\n".join(system_parts)
    temperature = body.get("temperature")
    if temperature is not None:
        if not isinstance(temperature, int | float) or not 0 <= temperature <= 1:
            raise TranslationError("temperature", "Anthropic models accept 0 to 1")
        out["temperature"] = temperature
    if body.get("top_p") is not None:
        out["top_p"] = body["top_p"]
    stop = body.get("stop")
    if stop:
        out["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    if body.get("user"):
        out["metadata"] = {"user_id": str(body["user"])}
    if body.get("tools"):
        out["tools"] = _tools(body["tools"])
    choice = _tool_choice(body.get("tool_choice"), body.get("parallel_tool_calls"))
    if choice is not None and body.get("tools"):
        out["tool_choice"] = choice
    if body.get("stream"):
        out["stream"] = True
    return out


# --- Response -----------------------------------------------------------------------------------


def usage(anthropic_usage: dict | None) -> dict:
    return usage_of.as_openai(usage_of.from_anthropic(anthropic_usage))


def response(message: dict, model: ModelDefaults) -> dict:
    text, reasoning, tool_calls = [], [], []
    for block in message.get("content") or []:
        kind = block.get("type")
        if kind == "text":
            text.append(block.get("text", ""))
        elif kind == "thinking":
            reasoning.append(block.get("thinking", ""))
        elif kind == "tool_use":
            tool_calls.append(
                {
                    "id": block.get("id"),
                    "type": "function",
                    "function": {"name": block.get("name"), "arguments": json.dumps(block.get("input") or {})},
                }
            )
    reply: dict = {"role": "assistant", "content": "".join(text) if text or not tool_calls else None}
    if reasoning:
        reply["reasoning_content"] = "".join(reasoning)
    if tool_calls:
        reply["tool_calls"] = tool_calls
    return {
        "id": "chatcmpl-" + str(message.get("id", "")).removeprefix("msg_"),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model.name,
        "choices": [
            {
                "index": 0,
                "message": reply,
                "logprobs": None,
                "finish_reason": ANTHROPIC_TO_OPENAI_STOP.get(message.get("stop_reason") or "end_turn", "stop"),
            }
        ],
        "usage": usage(message.get("usage")),
    }


# --- Stream -------------------------------------------------------------------------------------


class StreamTranslator:
    """Anthropic events in, chat.completion.chunk events out."""

    def __init__(self, model: ModelDefaults, include_usage: bool):
        self.model, self.include_usage = model, include_usage
        self.id = "chatcmpl-tokenhub"
        self.created = int(time.time())
        self.tool_index: dict[int, int] = {}  # Anthropic block index -> OpenAI tool_call index
        self.usage: dict = {}
        self.finish_reason = "stop"
        self.done = False

    def _chunk(self, delta: dict | None, finish_reason=None, usage_value=None) -> bytes:
        choices = (
            [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}]
        )
        data = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model.name,
            "choices": choices,
        }
        if usage_value is not None:
            data["usage"] = usage_value
        return encode(json.dumps(data, separators=(",", ":")))

    def feed(self, event: Event) -> list[bytes]:
        name = event.name
        if name in ("ping", "") or self.done:
            return []
        data = event.json()
        if name == "message_start":
            message = data.get("message") or {}
            self.id = "chatcmpl-" + str(message.get("id", "")).removeprefix("msg_")
            self.usage = dict(message.get("usage") or {})
            return [self._chunk({"role": "assistant", "content": ""})]
        if name == "content_block_start":
            block = data.get("content_block") or {}
            if block.get("type") == "tool_use":
                index = self.tool_index.setdefault(data.get("index", 0), len(self.tool_index))
                call = {
                    "index": index,
                    "id": block.get("id"),
                    "type": "function",
                    "function": {"name": block.get("name"), "arguments": ""},
                }
                return [self._chunk({"tool_calls": [call]})]
            if block.get("type") == "text" and block.get("text"):
                return [self._chunk({"content": block["text"]})]
            return []
        if name == "content_block_delta":
            delta = data.get("delta") or {}
            kind = delta.get("type")
            if kind == "text_delta":
                return [self._chunk({"content": delta.get("text", "")})]
            if kind == "input_json_delta":
                index = self.tool_index.get(data.get("index", 0), 0)
                return [
                    self._chunk(
                        {"tool_calls": [{"index": index, "function": {"arguments": delta.get("partial_json", "")}}]}
                    )
                ]
            if kind == "thinking_delta":
                return [self._chunk({"reasoning_content": delta.get("thinking", "")})]
            return []  # signature_delta and future kinds
        if name == "message_delta":
            self.usage.update({k: v for k, v in (data.get("usage") or {}).items() if v is not None})
            stop = (data.get("delta") or {}).get("stop_reason")
            self.finish_reason = ANTHROPIC_TO_OPENAI_STOP.get(stop or "end_turn", "stop")
            return []
        if name == "message_stop":
            self.done = True
            out = [self._chunk({}, finish_reason=self.finish_reason)]
            if self.include_usage:
                out.append(self._chunk(None, usage_value=usage(self.usage)))
            return [*out, encode("[DONE]")]
        if name == "error":
            error = data.get("error") or {}
            message = error.get("message", "upstream error")
            return [
                encode(
                    json.dumps({"error": {"message": message, "type": error.get("type", "api_error"), "code": None}})
                )
            ]
        return []
