from .spec import ANTHROPIC, ANTHROPIC_PATHS, ANTHROPIC_VERSION, ProviderSpec


def auth_headers(api_key: str) -> dict[str, str]:
    return {"x-api-key": api_key, "anthropic-version": ANTHROPIC_VERSION}


def probe(model: str) -> tuple[str, dict]:
    return "messages", {"model": model, "max_tokens": 1, "messages": [{"role": "user", "content": "ping"}]}


SPEC = ProviderSpec(
    name="anthropic",
    label="Anthropic",
    wire_format=ANTHROPIC,
    default_base_url="https://api.anthropic.com",  # the bare origin: the paths carry /v1
    paths=ANTHROPIC_PATHS,
    auth_headers=auth_headers,
    probe=probe,
)
