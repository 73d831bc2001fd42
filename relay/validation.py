"""Is a /v1 body shaped as its API says? Checked before any money moves, answered as a 400 naming the field.

Callers are strangers: a field of the wrong type must be refused here in the caller's own format,
never reach a translator as a TypeError (a 500) or an upstream as something it misreads. Only the
shapes TokenHub itself reads or translates are checked; other fields pass through to the channel,
which judges them.
"""

from __future__ import annotations

NUMBER = (int, float)
OBJECT = (dict,)
LIST = (list,)
TEXT = (str,)

# field -> the JSON types it may have (None, i.e. null, is always allowed: it means "not set").
FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "model": TEXT,
    "stream": (bool,),
    "stream_options": OBJECT,
    "n": (int,),
    "temperature": NUMBER,
    "top_p": NUMBER,
    "top_k": (int,),
    "stop": (str, list),
    "stop_sequences": LIST,
    "metadata": OBJECT,
    "tools": LIST,
    "tool_choice": (str, dict),
    "parallel_tool_calls": (bool,),
    "response_format": OBJECT,
    "user": TEXT,
    "system": (str, list),
    "instructions": TEXT,
    "text": OBJECT,
    "reasoning": OBJECT,
    "thinking": OBJECT,
    "previous_response_id": TEXT,
}
JSON_NAMES = {
    bool: "true or false",
    int: "an integer",
    float: "a number",
    str: "a string",
    list: "a list",
    dict: "an object",
}
TOKEN_LIMITS = ("max_tokens", "max_completion_tokens", "max_output_tokens")
MAX_CHOICES = 128  # OpenAI's own limit on n
MAX_OUTPUT_TOKENS = 10_000_000  # far above any model's, far below what makes a hold overflow


class InvalidBody(ValueError):
    """The body's shape is wrong; the message names the field and is safe to show the caller."""


def _type_ok(value, allowed: tuple[type, ...]) -> bool:
    if isinstance(value, bool):  # JSON true/false are not numbers, though Python's bool is an int
        return bool in allowed
    if isinstance(value, int) and float in allowed:
        return True
    return isinstance(value, allowed)


def _expect(field: str, value, allowed: tuple[type, ...]) -> None:
    if value is not None and not _type_ok(value, allowed):
        wanted = " or ".join(dict.fromkeys(JSON_NAMES[t] for t in allowed))
        raise InvalidBody(f"{field}: must be {wanted}.")


def _each(field: str, items, allowed: tuple[type, ...]) -> None:
    for index, item in enumerate(items or ()):
        _expect(f"{field}[{index}]", item, allowed)
        if item is None:
            raise InvalidBody(f"{field}[{index}]: must not be null.")


def _check_tools(tools) -> None:
    _each("tools", tools, OBJECT)
    for index, tool in enumerate(tools or ()):
        _expect(f"tools[{index}].type", tool.get("type"), TEXT)
        _expect(f"tools[{index}].name", tool.get("name"), TEXT)
        function = tool.get("function")
        _expect(f"tools[{index}].function", function, OBJECT)
        if function:
            _expect(f"tools[{index}].function.name", function.get("name"), TEXT)
            _expect(f"tools[{index}].function.parameters", function.get("parameters"), OBJECT)


def _check_messages(messages) -> None:
    _each("messages", messages, OBJECT)
    for index, message in enumerate(messages):
        field = f"messages[{index}]"
        _expect(f"{field}.role", message.get("role"), TEXT)
        _expect(f"{field}.content", message.get("content"), (str, list))
        _each(f"{field}.content", message.get("content") if isinstance(message.get("content"), list) else (), OBJECT)
        calls = message.get("tool_calls")
        _expect(f"{field}.tool_calls", calls, LIST)
        _each(f"{field}.tool_calls", calls, OBJECT)
        for position, call in enumerate(calls or ()):
            _expect(f"{field}.tool_calls[{position}].function", call.get("function"), OBJECT)
        _expect(f"{field}.tool_call_id", message.get("tool_call_id"), TEXT)


def check(operation: str, body: dict, *, needs_messages: bool) -> None:
    """Raise InvalidBody for the first field whose shape TokenHub cannot relay."""
    model = body.get("model")
    if not isinstance(model, str) or not model.strip():
        raise InvalidBody("model: a model name (string) is required.")
    for field, allowed in FIELD_TYPES.items():
        _expect(field, body.get(field), allowed)
    if needs_messages:
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise InvalidBody("messages: a non-empty list of messages is required.")
        _check_messages(messages)
    if operation in ("embeddings", "responses"):
        if body.get("input") in (None, "", []):
            what = "the text to embed is required" if operation == "embeddings" else "the Responses API needs an input"
            raise InvalidBody(f"input: {what}.")
        _expect("input", body["input"], (str, list))
    for name in TOKEN_LIMITS:
        value = body.get(name)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            raise InvalidBody(f"{name}: must be a positive integer.")
        if value is not None and value > MAX_OUTPUT_TOKENS:
            raise InvalidBody(f"{name}: at most {MAX_OUTPUT_TOKENS:,} (no model answers at more length).")
    if operation == "messages" and body.get("max_tokens") is None:
        raise InvalidBody("max_tokens: Field required (the Messages API needs it).")
    if body.get("n") is not None and not 1 <= body["n"] <= MAX_CHOICES:
        raise InvalidBody(f"n: must be from 1 to {MAX_CHOICES}.")
    if isinstance(body.get("stop"), list):
        _each("stop", body["stop"], TEXT)
    _each("stop_sequences", body.get("stop_sequences"), TEXT)
    _check_tools(body.get("tools"))
    if isinstance(body.get("system"), list):
        _each("system", body["system"], OBJECT)
    if isinstance(body.get("input"), list) and operation == "responses":
        _each("input", body["input"], (dict, str))
