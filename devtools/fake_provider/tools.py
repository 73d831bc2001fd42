"""Which tool the fake model calls, and with what arguments: deterministic, from the request alone.

A request that offers tools and whose last turn is the user's gets a call of one tool; once the
tool's result is the last turn, the answer is text. So an agent's loop (call → result → answer)
runs the same way every time. The tool: the one `tool_choice` names, else the first shell-like tool
(`exec_command`, `shell`, `Bash`, `local_shell`: coding agents' own), else the first. Its
arguments fill the schema's required fields (a command is `echo tokenhub-tool-loop`); a tool whose
schema requires nothing gets {"city": "Paris"}, as the fake always answered.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

PREFERRED = ("exec_command", "shell", "Bash", "local_shell")
COMMAND = "echo tokenhub-tool-loop"
LEGACY_ARGUMENTS = '{"city": "Paris"}'
LEGACY_OUTPUT_TOKENS = 9


@dataclass(frozen=True)
class ToolCall:
    name: str
    arguments: str  # JSON text
    namespace: str | None = None

    @property
    def output_tokens(self) -> int:
        return LEGACY_OUTPUT_TOKENS if self.arguments == LEGACY_ARGUMENTS else max(1, len(self.arguments) // 4)


def _value(name: str, schema) -> object:
    kind = schema.get("type") if isinstance(schema, dict) else None
    if name in ("cmd", "command"):
        return COMMAND.split() if kind == "array" else COMMAND
    if name == "city":
        return "Paris"
    if isinstance(schema, dict) and schema.get("enum"):
        return schema["enum"][0]
    return {"string": "x", "integer": 1, "number": 1, "boolean": False, "array": [], "object": {}}.get(kind, "x")


def arguments_for(schema) -> str:
    schema = schema if isinstance(schema, dict) else {}
    required = [name for name in schema.get("required") or [] if isinstance(name, str)]
    if not required:
        return LEGACY_ARGUMENTS
    properties = schema.get("properties") if isinstance(schema.get("properties"), dict) else {}
    return json.dumps({name: _value(name, properties.get(name)) for name in required})


def _pick(offered: list[tuple[str, object, str | None]], choice_name: str | None) -> ToolCall | None:
    """offered: (name, schema, namespace) of each callable tool."""
    if not offered:
        return None
    by_name = {name: (name, schema, namespace) for name, schema, namespace in offered}
    chosen = by_name.get(choice_name) or next((by_name[n] for n in PREFERRED if n in by_name), offered[0])
    name, schema, namespace = chosen
    return ToolCall(name, arguments_for(schema), namespace)


def _last_turn(messages) -> dict:
    """The last message that is a turn: system and developer messages between turns do not count
    (Claude Code 2.1 puts its environment in a `system` message after the user's)."""
    turns = [m for m in messages or [] if isinstance(m, dict) and m.get("role") not in ("system", "developer")]
    return turns[-1] if turns else {}


def _declined(choice) -> bool:
    return choice in ("none", {"type": "none"})


def chat_tool(body: dict) -> ToolCall | None:
    tools = body.get("tools") or []
    last = _last_turn(body.get("messages"))
    if not tools or _declined(body.get("tool_choice")) or last.get("role") != "user":
        return None
    offered = [
        ((t.get("function") or {}).get("name"), (t.get("function") or {}).get("parameters"), None)
        for t in tools
        if isinstance(t, dict)
    ]
    choice = body.get("tool_choice")
    named = ((choice.get("function") or {}).get("name")) if isinstance(choice, dict) else None
    return _pick([o for o in offered if o[0]], named)


def anthropic_tool(body: dict) -> ToolCall | None:
    tools = body.get("tools") or []
    last = _last_turn(body.get("messages"))
    content = last.get("content")
    answered = isinstance(content, list) and any(
        isinstance(block, dict) and block.get("type") == "tool_result" for block in content
    )
    if not tools or _declined(body.get("tool_choice")) or last.get("role") != "user" or answered:
        return None
    choice = body.get("tool_choice")
    named = choice.get("name") if isinstance(choice, dict) and choice.get("type") == "tool" else None
    offered = [(t.get("name"), t.get("input_schema"), None) for t in tools if isinstance(t, dict) and t.get("name")]
    return _pick(offered, named)


def responses_tool(body: dict) -> ToolCall | None:
    items = body.get("input")
    last = items[-1] if isinstance(items, list) and items else {}
    if not isinstance(last, dict) or str(last.get("type", "message")).endswith("_output"):
        return None
    if _declined(body.get("tool_choice")):
        return None
    offered = []
    for tool in body.get("tools") or []:
        if not isinstance(tool, dict):
            continue
        if tool.get("type") == "function":
            offered.append((tool.get("name"), tool.get("parameters"), None))
        elif tool.get("type") == "namespace":
            offered += [(t.get("name"), t.get("parameters"), tool.get("name")) for t in tool.get("tools") or []]
    choice = body.get("tool_choice")
    named = choice.get("name") if isinstance(choice, dict) else None
    return _pick([o for o in offered if o[0]], named)


def tool_result_in(body: dict) -> str | None:
    """The text of the last tool result a request sends back (any of the three formats), if any."""
    if not isinstance(body, dict):
        return None
    turns = body.get("messages") if isinstance(body.get("messages"), list) else body.get("input")
    last = turns[-1] if isinstance(turns, list) and turns and isinstance(turns[-1], dict) else {}
    if last.get("role") == "tool" or str(last.get("type", "")).endswith("_output"):
        return json.dumps(last.get("content", last.get("output")))
    content = last.get("content")
    if isinstance(content, list):
        results = [b for b in content if isinstance(b, dict) and b.get("type") == "tool_result"]
        if results:
            return json.dumps(results[-1].get("content"))
    return None
