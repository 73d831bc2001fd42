"""`make bench`: TokenHub beside the direct call (and, with PEERS=litellm, the LiteLLM proxy) in one run.

- The project's fake provider, TokenHub through its production stack (gunicorn + one uvicorn worker,
  DEBUG off, PostgreSQL + Redis, full billing) and LiteLLM (one worker, no database: its Prisma
  engines download from the internet at start) all run on this machine.
- Pinning on 2 cores: the server under test on core 1; the fake provider and the load generator on
  core 0; PostgreSQL and Redis unpinned.
- Rows: OpenAI and Anthropic format, same- and cross-format, stream (20 chunks) and not, at each
  concurrency; then a realistic-latency run (300 ms to first token, 20 ms a chunk) with many open
  streams for memory and CPU per stream.
- Writes bench/results/latest.json, docs/benchmarks.md and docs/benchmarks.png.

Knobs: PEERS=litellm; BENCH_BASELINE=<git revision> (that revision's TokenHub beside this tree's, row by
row in the same run: the before/after of a hot-path change); BENCH_DURATION (s per row, default 5);
BENCH_CONCURRENCY (default 1,10,50,200); BENCH_STREAMS (open streams in the realistic run, default 500);
BENCH_SOAK (seconds of steady load watching memory, default 0); BENCH_ONLY=soak (run only the soak and
add it to the last report).
"""

from __future__ import annotations

import asyncio
import datetime
import json
import os
import platform
import resource
import secrets
import socket
import subprocess
import sys
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx

from . import loadgen, peers

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
DOCS = ROOT / "docs"
PY = sys.executable
MASTER_KEY = "sk-bench-master-" + secrets.token_hex(8)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def raise_file_limit() -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(65536, hard), hard))


def wait_up(url: str, process: subprocess.Popen, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"bench: {process.args[:4]} exited with {process.returncode}")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.2)
    raise SystemExit(f"bench: {url} did not come up")


@contextmanager
def process(command: list[str], health: str, env: dict, log: str, core: int | None, cwd: Path = ROOT):
    if core is not None:
        command = ["taskset", "-c", str(core), *command]
    RESULTS.mkdir(parents=True, exist_ok=True)
    with open(RESULTS / log, "wb") as out:
        proc = subprocess.Popen(command, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            wait_up(health, proc)
            yield proc
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


def children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def cpu_seconds(pids: list[int]) -> float:
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


def rss_mb(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total / 1024


async def measured(base_url: str, key: str, scenario: loadgen.Scenario, pids: list[int]) -> dict:
    peak = [rss_mb(pids) if pids else 0.0]

    async def sample():
        while True:
            peak[0] = max(peak[0], rss_mb(pids))
            await asyncio.sleep(0.2)

    sampler = asyncio.create_task(sample()) if pids else None
    cpu_before = cpu_seconds(pids) if pids else 0.0
    row = await loadgen.run(base_url, key, scenario)
    cpu = cpu_seconds(pids) - cpu_before if pids else 0.0
    if sampler:
        sampler.cancel()
    row["peak_rss_mb"] = round(peak[0], 1) if pids else None
    row["cpu_s_per_1000"] = round(cpu / row["requests"] * 1000, 3) if pids and row["requests"] else None
    return row


def start_fake_and_tokenhub(stack: ExitStack, env: dict, fake_options: list[str], tag: str):
    """The fake provider on core 0 and TokenHub (one worker) on core 1, on a fresh bench database.

    Returns (fake provider URL, TokenHub URL, sk-hub key, the worker's pids).
    """
    fake_port = free_port()
    fake = f"http://127.0.0.1:{fake_port}"
    fake_command = [PY, "-m", "devtools.fake_provider", "--port", str(fake_port), "--tokens", "20", *fake_options]
    stack.enter_context(process(fake_command, f"{fake}/health", env, f"fake{tag}.log", core=0))
    hub, key, pids = start_tokenhub(stack, env, fake, tag, ROOT)
    return fake, hub, key, pids


def start_tokenhub(stack: ExitStack, env: dict, fake: str, tag: str, root: Path) -> tuple[str, str, list[int]]:
    """TokenHub from the tree at `root` (one worker, core 1) on a fresh database: (URL, sk-hub key, worker pids)."""
    hub_port = free_port()
    hub = f"http://127.0.0.1:{hub_port}"
    key = setup_database(env, f"{fake}/v1", root)
    hub_command = [
        PY,
        "-m",
        "gunicorn",
        "-c",
        "gunicorn.conf.py",
        "--bind",
        f"127.0.0.1:{hub_port}",
        "--workers",
        "1",
        "tokenhub.asgi:application",
    ]
    master = stack.enter_context(process(hub_command, f"{hub}/healthz", env, f"tokenhub{tag}.log", core=1, cwd=root))
    time.sleep(1)  # let the worker boot before reading its pids and idle memory
    return hub, key, children(master.pid)


def baseline_tree(revision: str) -> Path:
    """`revision` exported beside the results (git archive), to run as the same run's "before"."""
    tree = RESULTS / "baseline-tree"
    subprocess.run(["rm", "-rf", str(tree)], check=True)
    tree.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", revision], capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    (tree / ".venv").symlink_to(ROOT / ".venv")
    return tree


def start_baseline(stack: ExitStack, env: dict, fake: str, revision: str) -> tuple[str, str, list[int]]:
    tree = baseline_tree(revision)
    base_env = {
        **env,
        "PYTHONPATH": str(tree),
        "DATABASE_URL": env["DATABASE_URL"] + "_base",
        "REDIS_URL": env["REDIS_URL"].rsplit("/", 1)[0] + "/6",
    }
    return start_tokenhub(stack, base_env, fake, "-baseline", tree)


def tokenhub_env(database_url: str, redis_url: str) -> dict:
    from channels_app.crypto import new_key_value  # bench runs with the project on its path

    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="tokenhub.settings",
        DEBUG="0",
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        SECRET_KEY=secrets.token_urlsafe(40),
        TOKENHUB_ALLOWED_PRIVATE_UPSTREAMS="127.0.0.1",
        WEB_CONCURRENCY="1",
        TOKENHUB_ENCRYPTION_KEYS=new_key_value("bench"),
        DB_POOL_MAX_SIZE="20",
        TOKENHUB_UPSTREAM_MAX_CONNECTIONS="2000",
        LOG_LEVEL="WARNING",
        PYTHONPATH=str(ROOT),
    )
    return env


def services() -> tuple[str, str]:
    exports = subprocess.run(
        [str(ROOT / "scripts" / "ensure-services")], capture_output=True, text=True, check=True
    ).stdout
    values = dict(line.removeprefix("export ").replace("'", "").split("=", 1) for line in exports.splitlines())
    database = values["DATABASE_URL"].rsplit("/", 1)[0] + "/tokenhub_bench"
    redis = values["REDIS_URL"].rsplit("/", 1)[0] + "/5"
    return database, redis


def setup_database(env: dict, upstream: str, root: Path = ROOT) -> str:
    subprocess.run(["redis-cli", "-u", env["REDIS_URL"], "flushdb"], check=True, capture_output=True)
    result = subprocess.run(
        [str(root / "bench" / "setup_bench_db.sh")],
        env={**env, "UPSTREAM": upstream},
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.strip().splitlines()[-1]


ROWS = [
    # (caller format, model, label); same format first, then cross-format
    ("openai", "gpt-4o-mini", "same"),
    ("anthropic", "claude-haiku-4-5", "same"),
    ("openai", "claude-haiku-4-5", "cross"),
    ("anthropic", "gpt-4o-mini", "cross"),
]


async def table(targets: dict, duration: float, concurrencies: list[int]) -> list[dict]:
    """Every row for every target; the targets take turns row by row, so a drift in the machine's speed
    during the run falls on all of them alike."""
    rows = []
    for api, model, kind in ROWS:
        for stream in (False, True):
            for concurrency in concurrencies:
                for name, (url, key, pids) in targets.items():
                    if name == "direct" and kind == "cross":
                        continue
                    scenario = loadgen.Scenario(
                        api=api, model=model, stream=stream, concurrency=concurrency, duration=duration
                    )
                    row = await measured(url, key, scenario, pids)
                    row.update(target=name, kind=kind)
                    rows.append(row)
                    print(
                        f"{name:9s} {api:9s} {kind:5s} {'stream' if stream else 'plain ':6s} c={concurrency:<4d} "
                        f"{row['rps']:8.1f} rps  p50 {row['p50_ms']} ms  p99 {row['p99_ms']} ms  err {row['errors']}",
                        flush=True,
                    )
    return rows


def main() -> None:
    raise_file_limit()
    duration = float(os.environ.get("BENCH_DURATION", "5"))
    concurrencies = [int(c) for c in os.environ.get("BENCH_CONCURRENCY", "1,10,50,200").split(",")]
    open_streams = int(os.environ.get("BENCH_STREAMS", "500"))
    with_litellm = "litellm" in os.environ.get("PEERS", "")
    database, redis = services()
    env = tokenhub_env(database, redis)
    report: dict = {
        "started": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "rows": [],
        "realistic": {},
    }
    with ExitStack() as stack:
        fake, hub, key, hub_pids = start_fake_and_tokenhub(stack, env, [], "")
        report["idle_rss_mb"] = round(rss_mb(hub_pids), 1)
        targets = {"direct": (fake, "any", []), "tokenhub": (hub, key, hub_pids)}
        if os.environ.get("BENCH_BASELINE"):
            targets["baseline"] = start_baseline(stack, env, fake, os.environ["BENCH_BASELINE"])
            report["baseline"] = os.environ["BENCH_BASELINE"]
        if with_litellm:
            command = peers.ensure_litellm()
            lite_port = free_port()
            config = peers.litellm_config(RESULTS / "litellm.yaml", f"{fake}/v1", MASTER_KEY)
            lite_env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_LOG": "ERROR"}
            lite = stack.enter_context(
                process(
                    [str(command), "--config", str(config), "--port", str(lite_port), "--num_workers", "1"],
                    f"http://127.0.0.1:{lite_port}/health/liveliness",
                    lite_env,
                    "litellm.log",
                    core=1,
                )
            )
            targets["litellm"] = (f"http://127.0.0.1:{lite_port}", MASTER_KEY, [lite.pid, *children(lite.pid)])
        if os.environ.get("BENCH_ONLY") != "soak":
            report["rows"] = asyncio.run(table(targets, duration, concurrencies))
        soak_seconds = float(os.environ.get("BENCH_SOAK", "0"))
        if soak_seconds:
            report["soak"] = asyncio.run(soak(hub, key, hub_pids, soak_seconds))
    if os.environ.get("BENCH_ONLY") == "soak":
        previous = json.loads((RESULTS / "latest.json").read_text())
        previous["soak"] = report["soak"]
        (RESULTS / "latest.json").write_text(json.dumps(previous, indent=2))
        (DOCS / "benchmarks.json").write_text(json.dumps(previous, indent=2))
        from .report import write

        write(previous, DOCS)
        return
    report["realistic"] = realistic(env, open_streams)
    report["environment"] = environment()
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "latest.json").write_text(json.dumps(report, indent=2))
    (DOCS / "benchmarks.json").write_text(json.dumps(report, indent=2))  # the committed copy
    from .report import write

    write(report, DOCS)
    print(f"bench: wrote {RESULTS / 'latest.json'}, {DOCS / 'benchmarks.md'} and {DOCS / 'benchmarks.png'}")


async def soak(hub: str, key: str, pids: list[int], seconds: float) -> dict:
    """Steady load for `seconds` (50 clients, streams and not, both formats): does the worker's memory grow?"""
    samples = [round(rss_mb(pids), 1)]

    async def sample():
        while True:
            await asyncio.sleep(10)
            samples.append(round(rss_mb(pids), 1))

    sampler = asyncio.create_task(sample())
    quarter = seconds / 4
    rows = []
    for api, model, stream in (
        ("openai", "gpt-4o-mini", False),
        ("openai", "gpt-4o-mini", True),
        ("anthropic", "claude-haiku-4-5", False),
        ("anthropic", "gpt-4o-mini", True),
    ):
        rows.append(await loadgen.run(hub, key, loadgen.Scenario(api, model, stream, 50, quarter), warmup=0))
    sampler.cancel()
    first_minute = samples[: max(2, len(samples) // 5)]
    return {
        "seconds": seconds,
        "requests": sum(r["requests"] for r in rows),
        "errors": {k: v for r in rows for k, v in r["errors"].items()},
        "rss_samples_mb": samples,
        "rss_after_first_minute_mb": max(first_minute),
        "rss_end_mb": samples[-1],
        "rss_max_mb": max(samples),
    }


def realistic(env: dict, streams: int) -> dict:
    """Many slow streams open at once (300 ms to first token, 20 ms a chunk): memory and CPU per stream."""
    out = {}
    with ExitStack() as stack:
        _fake, hub, key, pids = start_fake_and_tokenhub(stack, env, ["--ttft-ms", "300", "--delay-ms", "20"], "-slow")
        idle = rss_mb(pids)
        scenario = loadgen.Scenario(api="openai", model="gpt-4o-mini", stream=True, concurrency=streams, duration=15)
        row = asyncio.run(measured(hub, key, scenario, pids))
        row["idle_rss_mb"] = round(idle, 1)
        row["added_rss_mb"] = round(row["peak_rss_mb"] - idle, 1)
        out["tokenhub"] = row
    return out


def environment() -> dict:
    def version(command):
        try:
            return subprocess.run(command, capture_output=True, text=True, timeout=10).stdout.strip().splitlines()[0]
        except (OSError, IndexError, subprocess.TimeoutExpired):
            return "unknown"

    import django

    return {
        "commit": version(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"]),
        "python": platform.python_version(),
        "django": django.get_version(),
        "postgres": version(["psql", "--version"]),
        "redis": version(["redis-server", "--version"]),
        "litellm": peers.LITELLM_VERSION,
        "cpus": os.cpu_count(),
        "kernel": platform.release(),
    }


if __name__ == "__main__":
    main()
