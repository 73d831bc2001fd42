"""Deactivating a user stops their keys on the real server (another process) within the key
cache's local window, although the server had the key's identity cached in memory and Redis."""

from __future__ import annotations

import io
import time

import httpx
import openai
import pytest
from django.conf import settings
from django.core.management import call_command

from .conftest import World

pytestmark = pytest.mark.services

PROMPT = [{"role": "user", "content": "Hello"}]


def usage_status(world: World) -> httpx.Response:
    return httpx.get(f"{world.relay}/v1/usage", headers={"authorization": f"Bearer {world.key}"}, timeout=10)


def chat_refusal(world: World) -> str | None:
    try:
        world.openai().chat.completions.create(model="gpt-4o-mini", messages=PROMPT)
    except openai.AuthenticationError as exc:
        return exc.message
    return None


def test_deactivated_users_keys_get_401_on_the_server_within_the_local_window(world):
    # Warm the server's copies (process memory and Redis) of alice's key identity.
    assert chat_refusal(world) is None and chat_refusal(world) is None
    assert usage_status(world).status_code == 200
    call_command("deactivate_user", "alice", stderr=io.StringIO())
    started = time.monotonic()
    deadline = started + settings.TOKENHUB_KEY_LOCAL_SECONDS + 1.5
    while (refusal := chat_refusal(world)) is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert refusal is not None and "deactivated" in refusal, f"still served {time.monotonic() - started:.1f}s later"
    usage = usage_status(world)
    assert usage.status_code == 401 and "deactivated" in usage.text
    # Reactivating brings the same key back.
    call_command("deactivate_user", "alice", "--reactivate", stderr=io.StringIO())
    deadline = time.monotonic() + settings.TOKENHUB_KEY_LOCAL_SECONDS + 1.5
    while chat_refusal(world) is not None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert chat_refusal(world) is None and usage_status(world).status_code == 200
