"""The tools a Responses API caller offers, as a Chat Completions channel (and through it an Anthropic
one) can take them — and the model's calls mapped back to the caller's kinds of tool.

Coding agents send more than plain functions (Codex CLI 0.169, captured in
tests/data/codex-0.169-request.json: functions, a `namespace` group of functions and a hosted
`web_search`; other releases `custom` free-form tools such as `apply_patch`, and `local_shell`):
- a function passes as itself;
- a namespace's functions are flattened to `<namespace>__<name>` and their calls come back as
  function calls carrying `namespace` again;
- a custom tool becomes a function of one string argument, `input`, whose calls come back as
  `custom_tool_call` items; `local_shell` a function of the exec action's fields, whose calls come
  back as `local_shell_call` items;
- hosted tools only OpenAI runs (web search, file search, code interpreter, image generation, MCP,
  computer use…) are dropped from the upstream request and named in `x-tokenhub-dropped-tools`.

The map is built from the caller's request alone, on the way up and again on the way down, so
nothing is stored between a call and its answer.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass

from . import TranslationError

DROPPED_TOOLS_HEADER = "x-tokenhub-dropped-tools"
NAMESPACE_SEPARATOR = "__"
MAX_NAME = 64  # OpenAI's limit for function names (Anthropic's is 128)
MAX_NAMED = 20  # dropped tools named in the header
MAX_TOOLS = 512  # functions one request may offer a channel (agents send dozens; providers cap near here)
_NOT_IN_A_NAME = re.compile(r"[^A-Za-z0-9_-]")

LOCAL_SHELL_PARAMETERS = {
    "type": "object",
    "properties": {
        "command": {"type": "array", "items": {"type": "string"}, "description": "The command and its arguments."},
        "working_directory": {"type": "string", "description": "Where to run it."},
        "timeout_ms": {"type": "integer", "description": "How long it may run."},
        "env": {"type": "object", "additionalProperties": {"type": "string"}},
    },
    "required": ["command"],
}
LOCAL_SHELL_DESCRIPTION = "Runs a shell command on the user's machine and returns its output."


@dataclass(frozen=True)
class Origin:
    """What an upstream function name stands for in the caller's request."""

    kind: str  # "function", "custom" or "local_shell"
    name: str
    namespace: str | None = None


def _flat_name(namespace: str, name: str) -> str:
    flat = _NOT_IN_A_NAME.sub("_", f"{namespace}{NAMESPACE_SEPARATOR}{name}")
    if len(flat) > MAX_NAME:
        flat = flat[: MAX_NAME - 9] + "_" + hashlib.sha256(flat.encode()).hexdigest()[:8]
    return flat


def _custom_parameters(tool: dict) -> dict:
    description = "The tool's whole input, as free-form text."
    fmt = tool.get("format") if isinstance(tool.get("format"), dict) else {}
    if fmt.get("type") == "grammar" and isinstance(fmt.get("definition"), str):
        syntax = fmt.get("syntax") if isinstance(fmt.get("syntax"), str) else "lark"
        description += f" It must follow this {syntax} grammar:\n{fmt['definition']}"
    return {
        "type": "object",
        "properties": {"input": {"type": "string", "description": description}},
        "required": ["input"],
    }


def _text(value, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise TranslationError(where, "must be a non-empty string")
    return value


class ToolMap:
    def __init__(self, tools):
        self.chat_tools: list[dict] = []
        self.origins: dict[str, Origin] = {}  # upstream function name -> what it stands for
        self._names: dict[Origin, str] = {}
        self.dropped: list[str] = []
        self._next_suffix: dict[str, int] = {}  # flattened name -> the next suffix to try
        if tools is None:
            return
        if not isinstance(tools, list):
            raise TranslationError("tools", "must be a list")
        for index, tool in enumerate(tools):
            self._add(tool, f"tools[{index}]")

    def _add(self, tool, where: str) -> None:
        if not isinstance(tool, dict):
            raise TranslationError(where, "must be an object")
        kind = tool.get("type")
        if kind == "function":
            self._function(tool, where, None)
        elif kind == "namespace":
            namespace = _text(tool.get("name"), f"{where}.name")
            members = tool.get("tools")
            if not isinstance(members, list):
                raise TranslationError(f"{where}.tools", "must be a list of function tools")
            for index, member in enumerate(members):
                if not isinstance(member, dict) or member.get("type", "function") != "function":
                    raise TranslationError(f"{where}.tools[{index}]", "a namespace can only hold function tools")
                self._function(member, f"{where}.tools[{index}]", namespace)
        elif kind == "custom":
            name = _text(tool.get("name"), f"{where}.name")
            self._offer(Origin("custom", name), tool.get("description"), _custom_parameters(tool))
        elif kind == "local_shell":
            self._offer(Origin("local_shell", "local_shell"), LOCAL_SHELL_DESCRIPTION, LOCAL_SHELL_PARAMETERS)
        else:
            label = kind if isinstance(kind, str) and kind else "untyped"
            if kind == "mcp" and isinstance(tool.get("server_label"), str):
                label = f"mcp:{tool['server_label']}"
            self.dropped.append(_NOT_IN_A_NAME.sub("_", label.replace(":", "-"))[:MAX_NAME] or "untyped")

    def _function(self, tool: dict, where: str, namespace: str | None) -> None:
        name = _text(tool.get("name"), f"{where}.name")
        parameters = tool.get("parameters") or {"type": "object", "properties": {}}
        if not isinstance(parameters, dict):
            raise TranslationError(f"{where}.parameters", "must be a JSON schema object")
        self._offer(Origin("function", name, namespace), tool.get("description"), parameters)

    def _offer(self, origin: Origin, description, parameters: dict) -> None:
        if origin in self._names:
            return  # the same tool twice: one is enough
        if len(self.chat_tools) >= MAX_TOOLS:
            raise TranslationError("tools", f"at most {MAX_TOOLS} tools (namespaces' functions counted) can be relayed")
        upstream = origin.name if origin.namespace is None else _flat_name(origin.namespace, origin.name)
        base = upstream
        while upstream in self.origins:  # a flattened name that another tool already has
            suffix = self._next_suffix.get(base, 2)
            self._next_suffix[base] = suffix + 1
            upstream = f"{base[: MAX_NAME - len(str(suffix)) - 1]}_{suffix}"
        self.origins[upstream] = origin
        self._names[origin] = upstream
        function = {"name": upstream, "parameters": parameters}
        if isinstance(description, str) and description:
            function["description"] = description
        self.chat_tools.append({"type": "function", "function": function})

    # --- The way up ----------------------------------------------------------------------------------

    def headers(self) -> dict[str, str]:
        """The dropped tools' names, each once, at most MAX_NAMED (the caller sets how many it sends)."""
        if not self.dropped:
            return {}
        names = list(dict.fromkeys(self.dropped))
        listed = ", ".join(names[:MAX_NAMED])
        if len(names) > MAX_NAMED:
            listed += f", and {len(names) - MAX_NAMED} more"
        return {DROPPED_TOOLS_HEADER: listed}

    def upstream_name(self, kind: str, name, namespace=None) -> str:
        """The upstream function name of a tool the caller names (in history or tool_choice)."""
        origin = Origin(kind, name if isinstance(name, str) else "", namespace if isinstance(namespace, str) else None)
        found = self._names.get(origin)
        if found is not None:
            return found
        if kind == "function" and origin.namespace:
            return _flat_name(origin.namespace, origin.name)
        return origin.name  # a call of a tool no longer offered keeps its name

    def tool_choice(self, choice):
        if choice in (None, "auto", "none"):
            return choice
        if choice == "required":
            if not self.chat_tools:
                raise TranslationError("tool_choice", f"requires a tool, but {self._none_left()}")
            return "required"
        if not isinstance(choice, dict):
            raise TranslationError("tool_choice", "must be auto, none, required or a tool")
        kind = choice.get("type")
        if kind == "allowed_tools":
            self._allow_only(choice.get("tools"))
            mode = choice.get("mode", "auto")
            return self.tool_choice(mode if mode in ("auto", "required") else "auto")
        if kind in ("function", "custom"):
            origin = Origin(kind, choice.get("name"), choice.get("namespace"))
            upstream = self._names.get(origin)
            if upstream is None:
                raise TranslationError("tool_choice", f"names {kind} tool {origin.name!r}, which is not among tools")
            return {"type": "function", "function": {"name": upstream}}
        if kind == "local_shell" and Origin("local_shell", "local_shell") in self._names:
            return {"type": "function", "function": {"name": self._names[Origin("local_shell", "local_shell")]}}
        label = kind if isinstance(kind, str) else "a tool"
        raise TranslationError(
            "tool_choice",
            f"requires {label}, a tool only OpenAI's own Responses API runs; this model's channels are "
            "chat-only or Anthropic, so TokenHub drops such tools for them",
        )

    def _allow_only(self, allowed) -> None:
        """`allowed_tools`: the model is offered only these (the rest stay mapped, for the history)."""
        if not isinstance(allowed, list):
            raise TranslationError("tool_choice.tools", "must be a list of tools")
        keep = set()
        for index, tool in enumerate(allowed):
            if not isinstance(tool, dict):
                raise TranslationError(f"tool_choice.tools[{index}]", "must be an object")
            kind = tool.get("type")
            name = tool.get("name") if isinstance(tool.get("name"), str) else ""
            namespace = tool.get("namespace") if isinstance(tool.get("namespace"), str) else None
            if kind == "local_shell":
                name = "local_shell"
            found = self._names.get(Origin(kind, name, namespace)) if isinstance(kind, str) else None
            if found is not None:
                keep.add(found)
            elif kind == "namespace":  # a whole namespace
                keep |= {up for origin, up in self._names.items() if origin.namespace == name}
        self.chat_tools = [tool for tool in self.chat_tools if tool["function"]["name"] in keep]

    def _none_left(self) -> str:
        if self.dropped:
            return f"every tool offered runs only on OpenAI's own Responses API (dropped: {', '.join(self.dropped)})"
        return "no tools are offered"

    def history_call(self, item: dict) -> dict:
        """A call the caller resends in its history, as the assistant's chat tool call."""
        kind = item.get("type")
        if kind == "function_call":
            name = self.upstream_name("function", item.get("name"), item.get("namespace"))
            arguments = item.get("arguments") or "{}"
        elif kind == "custom_tool_call":
            name = self.upstream_name("custom", item.get("name"))
            arguments = json.dumps({"input": item.get("input") if isinstance(item.get("input"), str) else ""})
        else:  # local_shell_call
            action = item.get("action") if isinstance(item.get("action"), dict) else {}
            name = self.upstream_name("local_shell", "local_shell")
            fields = ("command", "working_directory", "timeout_ms", "env")
            arguments = json.dumps({k: action[k] for k in fields if action.get(k) is not None})
        call_id = item.get("call_id") or item.get("id") or ""
        return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}

    # --- The way down --------------------------------------------------------------------------------

    def output_item(self, item_id: str, call_id: str, upstream_name: str, arguments: str, status="completed") -> dict:
        """The model's call of `upstream_name`, as the item of the caller's kind of tool."""
        if not isinstance(arguments, str):  # an upstream that sent an object: the caller's format wants text
            arguments = json.dumps(arguments)
        origin = self.origins.get(upstream_name) or Origin("function", str(upstream_name))
        if origin.kind == "custom":
            return {
                "type": "custom_tool_call",
                "id": item_id,
                "call_id": call_id,
                "name": origin.name,
                "input": custom_input(arguments),
                "status": status,
            }
        if origin.kind == "local_shell":
            return {
                "type": "local_shell_call",
                "id": item_id,
                "call_id": call_id,
                "status": status,
                "action": {"type": "exec", **shell_action(arguments)},
            }
        item = {
            "type": "function_call",
            "id": item_id,
            "call_id": call_id,
            "name": origin.name,
            "arguments": arguments,
            "status": status,
        }
        if origin.namespace:
            item["namespace"] = origin.namespace
        return item

    def kind_of(self, upstream_name: str) -> str:
        origin = self.origins.get(upstream_name)
        return origin.kind if origin else "function"


def _arguments(arguments) -> dict | None:
    """The model's arguments as an object, or None (not a string, not JSON, nested past parsing)."""
    if not isinstance(arguments, str):
        return None
    try:
        parsed = json.loads(arguments or "{}")
    except (ValueError, RecursionError):
        return None
    return parsed if isinstance(parsed, dict) else None


def custom_input(arguments: str) -> str:
    """A custom tool's input from the function arguments the model wrote ({"input": …})."""
    parsed = _arguments(arguments)
    if parsed is not None and isinstance(parsed.get("input"), str):
        return parsed["input"]
    return arguments if isinstance(arguments, str) else ""  # a model that wrote the input bare: as it is


def shell_action(arguments: str) -> dict:
    parsed = _arguments(arguments) or {}
    command = parsed.get("command")
    if isinstance(command, str):
        command = ["bash", "-lc", command]
    action = {"command": [str(part) for part in command] if isinstance(command, list) else []}
    for name, kind in (("working_directory", str), ("timeout_ms", int), ("env", dict)):
        if isinstance(parsed.get(name), kind):
            action[name] = parsed[name]
    return action
