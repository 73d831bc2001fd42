"""/v1 goes to a handler without the site's middleware; unknown endpoints answer in the caller's format."""

from __future__ import annotations

import gc
from collections import Counter

import anthropic
import httpx
import httpx2
import openai
import pytest
from asgiref.sync import async_to_sync

from relay.asgi import is_relay_path
from tokenhub.asgi import application

# Django's request_finished signal checks the (test) database connection.
pytestmark = pytest.mark.django_db


def asgi_get(path: str, headers: dict | None = None) -> httpx.Response:
    async def go():
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            return await client.get(path, headers=headers or {})

    return async_to_sync(go)()


def test_relay_handler_has_no_middleware():
    # The relay's chain is the view dispatcher itself; the site's starts at its first middleware.
    assert application.relay._middleware_chain.__wrapped__ == application.relay._get_response_async
    assert application.site._middleware_chain.__wrapped__ != application.site._get_response_async


@pytest.mark.parametrize(
    ("path", "expected"),
    [("/v1", True), ("/v1/chat/completions", True), ("/v10/x", False), ("/accounts/login/", False)],
)
def test_relay_paths(path, expected):
    assert is_relay_path(path) is expected


def test_unknown_v1_endpoint_is_a_404_in_openai_shape():
    response = asgi_get("/v1/completions")
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["type"] == "not_found_error" and "/v1/completions" in error["message"]


def test_unknown_v1_endpoint_is_a_404_in_anthropic_shape():
    response = asgi_get("/v1/images/generations", headers={"anthropic-version": "2023-06-01"})
    assert response.status_code == 404
    assert response.json()["type"] == "error"
    assert response.json()["error"]["type"] == "not_found_error"


def test_official_sdks_raise_not_found_for_unserved_endpoints():
    transport = httpx.ASGITransport(app=application)

    async def go():
        async with httpx.AsyncClient(transport=transport) as http:
            oai = openai.AsyncOpenAI(
                base_url="http://127.0.0.1/v1", api_key="sk-hub-x", http_client=http, max_retries=0
            )
            with pytest.raises(openai.NotFoundError, match="does not serve"):
                await oai.completions.create(model="gpt-3.5-turbo-instruct", prompt="hi")
        async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=application)) as http:
            ant = anthropic.AsyncAnthropic(
                base_url="http://127.0.0.1", api_key="sk-hub-x", http_client=http, max_retries=0
            )
            with pytest.raises(anthropic.NotFoundError, match="does not serve"):
                await ant.beta.files.list()

    async_to_sync(go)()


def test_shutdown_waits_for_settlements_still_running():
    """ASGI lifespan: a stopping worker lets background settlements finish before it says it is done."""
    import asyncio

    from relay import settlement

    events = []

    async def go():
        async def settling():
            await asyncio.sleep(0.2)
            events.append("settled")

        settlement.in_background(settling())
        inbox = asyncio.Queue()
        for message in ({"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}):
            inbox.put_nowait(message)

        async def send(message):
            events.append(message["type"])

        await application({"type": "lifespan", "asgi": {"version": "3.0"}}, inbox.get, send)

    async_to_sync(go)()
    assert events == ["lifespan.startup.complete", "settled", "lifespan.shutdown.complete"]


def test_relay_requests_leave_no_reference_cycles_behind():
    # Django's own handler left about 60 objects a request in reference cycles (an exception group's
    # traceback holding the request's frames): a ~1 ms collection every ~50 ms for a single caller.
    # (httpx's test client keeps a few cycles of its own; those are not the server's.)
    async def go():
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            await client.get("/v1/completions")  # first-request caches
            gc.collect()
            gc.set_debug(gc.DEBUG_SAVEALL)
            try:
                for _ in range(20):
                    assert (await client.get("/v1/completions")).status_code == 404
                gc.collect()
                return Counter(type(thing).__name__ for thing in gc.garbage)
            finally:
                gc.set_debug(0)
                gc.garbage.clear()

    in_cycles = async_to_sync(go)()
    server_side = {
        name: in_cycles[name] for name in ("frame", "traceback", "ASGIRequest", "HttpResponse") if in_cycles[name]
    }
    assert server_side == {}, in_cycles.most_common(10)


def asgi_request(method: str, path: str, **options) -> httpx.Response:
    async def go():
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            return await client.request(method, path, **options)

    return async_to_sync(go)()


@pytest.mark.parametrize(
    ("method", "path", "options"),
    [
        ("GET", "/v1/models", {}),  # answered here (401 without a key)
        ("GET", "/v1/usage", {}),
        ("POST", "/v1/messages/count_tokens", {"json": {"model": "x"}}),
        ("GET", "/v1/completions", {}),  # 404
        ("GET", "/v1/chat/completions", {}),  # 405
        ("POST", "/v1/chat/completions", {"content": b"{not json"}),  # 400
        ("POST", "/v1/chat/completions", {"content": b"x" * 10, "headers": {"content-length": str(10**9)}}),  # 413
    ],
)
def test_every_v1_answer_carries_a_request_id(method, path, options):
    response = asgi_request(method, path, **options)
    assert response.status_code >= 400
    assert response.headers["x-request-id"].startswith("req_") and len(response.headers["x-request-id"]) == 36


def test_request_ids_differ_per_answer():
    ids = {asgi_request("GET", "/v1/models").headers["x-request-id"] for _ in range(3)}
    assert len(ids) == 3
