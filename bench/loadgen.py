"""A closed-loop load generator for OpenAI- and Anthropic-format endpoints (the project's own).

N concurrent clients send requests back to back for a duration; latency is measured per request,
time to first byte per stream. One pooled aiohttp session (keep-alive, connection limit raised to
the concurrency, no per-host cap), so the same client code measures every target; aiohttp rather
than httpx because httpx itself tops out at a few hundred requests/s at 50 clients on one core.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from dataclasses import asdict, dataclass, field

import aiohttp

PROMPT = "Say hello to the whole world in a short sentence please"


@dataclass
class Scenario:
    api: str  # "openai" or "anthropic"
    model: str
    stream: bool
    concurrency: int
    duration: float
    max_tokens: int = 20


@dataclass
class Result:
    requests: int = 0
    errors: dict = field(default_factory=dict)
    latencies: list = field(default_factory=list, repr=False)
    ttfb: list = field(default_factory=list, repr=False)
    elapsed: float = 0.0

    def summary(self) -> dict:
        def pct(values, p):
            if not values:
                return None
            ordered = sorted(values)
            return round(ordered[min(len(ordered) - 1, int(len(ordered) * p))] * 1000, 3)

        return {
            "requests": self.requests,
            "rps": round(self.requests / self.elapsed, 1) if self.elapsed else 0,
            "p50_ms": pct(self.latencies, 0.50),
            "p90_ms": pct(self.latencies, 0.90),
            "p99_ms": pct(self.latencies, 0.99),
            "mean_ms": round(statistics.fmean(self.latencies) * 1000, 3) if self.latencies else None,
            "ttfb_p50_ms": pct(self.ttfb, 0.50),
            "errors": self.errors,
        }


def request_for(base_url: str, key: str, scenario: Scenario) -> tuple[str, dict, dict]:
    messages = [{"role": "user", "content": PROMPT}]
    if scenario.api == "anthropic":
        body = {
            "model": scenario.model,
            "max_tokens": scenario.max_tokens,
            "messages": messages,
            "stream": scenario.stream,
        }
        headers = {"x-api-key": key, "anthropic-version": "2023-06-01", "authorization": f"Bearer {key}"}
        return f"{base_url}/v1/messages", body, headers
    body = {"model": scenario.model, "max_tokens": scenario.max_tokens, "messages": messages, "stream": scenario.stream}
    return f"{base_url}/v1/chat/completions", body, {"authorization": f"Bearer {key}"}


async def one(
    session: aiohttp.ClientSession, url: str, body: dict, headers: dict, result: Result, stream: bool
) -> None:
    started = time.perf_counter()
    try:
        async with session.post(url, json=body, headers=headers) as response:
            if stream:
                first = None
                async for _chunk in response.content.iter_any():
                    if first is None:
                        first = time.perf_counter()
                if first is not None:
                    result.ttfb.append(first - started)
            else:
                await response.read()
            status = response.status
    except (aiohttp.ClientError, TimeoutError) as exc:
        result.errors[type(exc).__name__] = result.errors.get(type(exc).__name__, 0) + 1
        return
    if status != 200:
        result.errors[str(status)] = result.errors.get(str(status), 0) + 1
        return
    result.latencies.append(time.perf_counter() - started)
    result.requests += 1


async def worker(client, url, body, headers, result: Result, stream: bool, deadline: float) -> None:
    while time.perf_counter() < deadline:
        await one(client, url, body, headers, result, stream)


async def run(base_url: str, key: str, scenario: Scenario, warmup: float = 1.0) -> dict:
    url, body, headers = request_for(base_url, key, scenario)
    connector = aiohttp.TCPConnector(limit=scenario.concurrency + 10, limit_per_host=0, ttl_dns_cache=300)
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as client:
        for phase, seconds in (("warmup", warmup), ("measure", scenario.duration)):
            result = Result()
            deadline = time.perf_counter() + seconds
            started = time.perf_counter()
            await asyncio.gather(
                *(
                    worker(client, url, body, headers, result, scenario.stream, deadline)
                    for _ in range(scenario.concurrency)
                )
            )
            result.elapsed = time.perf_counter() - started
            if phase == "measure":
                return {**asdict(scenario), **result.summary()}
    raise AssertionError("unreachable")
