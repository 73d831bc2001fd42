"""`make bench-pooler`: TokenHub straight on PostgreSQL beside TokenHub behind Debian's PgBouncer in
transaction mode, the ledger's batcher either unprepared through it or prepared on a direct connection
(TOKENHUB_LEDGER_DATABASE_URL).

1. The batcher's two statements alone, one connection, back to back: what preparing saves per batch
   (parse and plan) and what the pooler's hop costs, in µs per statement — precise where whole-server
   figures on a shared 2-core machine are not.
2. The three servers at once, one worker each on core 1, taking turns row by row.
Prints both and writes bench/results/pooler.json.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import time
from contextlib import ExitStack

import psycopg

from devtools.pgbouncer import pgbouncer

from . import loadgen
from .run import (
    PY,
    RESULTS,
    ROOT,
    free_port,
    measured,
    process,
    raise_file_limit,
    services,
    setup_database,
    tokenhub_env,
)

TARGETS = ("direct", "pgbouncer-unprepared", "pgbouncer-direct-ledger")
ROWS = [("openai", False, 1), ("openai", False, 50), ("openai", True, 50), ("anthropic", False, 50)]


def start(stack: ExitStack, name: str, database: str, redis: str, bouncer_port: int, fake: str, index: int):
    env = tokenhub_env(f"{database}_{index}", f"{redis.rsplit('/', 1)[0]}/{5 + index}")
    key = setup_database(env, f"{fake}/v1")
    db_name = env["DATABASE_URL"].rsplit("/", 1)[1]
    if name != "direct":
        direct = env["DATABASE_URL"]
        env.update(DATABASE_URL=f"postgres://postgres@127.0.0.1:{bouncer_port}/{db_name}", DB_TRANSACTION_POOLING="1")
        if name == "pgbouncer-direct-ledger":
            env["TOKENHUB_LEDGER_DATABASE_URL"] = direct
    port = free_port()
    command = [PY, "-m", "gunicorn", "-c", "gunicorn.conf.py", "--bind", f"127.0.0.1:{port}", "--workers", "1"]
    command.append("tokenhub.asgi:application")
    url = f"http://127.0.0.1:{port}"
    stack.enter_context(process(command, f"{url}/healthz", env, f"pooler-{name}.log", core=1))
    return url, key


async def table(targets: dict, duration: float, rounds: int) -> list[dict]:
    rows = []
    for round_ in range(rounds):
        for api, stream, concurrency in ROWS:
            for name, (url, key) in targets.items():
                model = "gpt-4o-mini" if api == "openai" else "claude-haiku-4-5"
                scenario = loadgen.Scenario(
                    api=api, model=model, stream=stream, concurrency=concurrency, duration=duration
                )
                row = await measured(url, key, scenario, [])
                row.update(target=name, round=round_)
                rows.append(row)
                print(
                    f"{name:24s} {api:9s} {'stream' if stream else 'plain ':6s} c={concurrency:<3d} "
                    f"{row['rps']:8.1f} rps  p50 {row['p50_ms']} ms  p99 {row['p99_ms']} ms  err {row['errors']}",
                    flush=True,
                )
    return rows


def statement_costs(direct_url: str, pooled_url: str, runs: int = 400) -> dict:
    """µs per execution of each batch statement with an empty batch (so that parse, plan and the round
    trip are what is measured), median of `runs` after a warm-up."""
    setups = {
        "direct, prepared": (direct_url, True),
        "direct, unprepared": (direct_url, False),
        "pgbouncer, unprepared": (pooled_url, False),
    }
    import django  # the statements' module sits in the ledger package, which needs Django set up

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tokenhub.settings")
    django.setup()
    from billing.ledger.batch_statements import HOLDS_SQL, SETTLES_SQL

    results = {}
    for label, (url, prepare) in setups.items():
        with psycopg.connect(url, autocommit=True, prepare_threshold=5 if prepare else None) as conn:
            for name, sql in (("holds", HOLDS_SQL), ("settlements", SETTLES_SQL)):
                timings = []
                for i in range(runs + 20):
                    start = time.perf_counter()
                    conn.execute(sql, {"rows": "[]"}, prepare=prepare).fetchall()
                    if i >= 20:
                        timings.append(time.perf_counter() - start)
                results[f"{name}: {label}"] = round(statistics.median(timings) * 1e6)
    return results


def main() -> None:
    raise_file_limit()
    duration = float(os.environ.get("BENCH_DURATION", "5"))
    rounds = int(os.environ.get("BENCH_ROUNDS", "3"))
    database, redis = services()
    with ExitStack() as stack:
        bouncer_port, _log = stack.enter_context(pgbouncer(pool_size=int(os.environ.get("BENCH_POOL_SIZE", "10"))))
        fake_port = free_port()
        fake = f"http://127.0.0.1:{fake_port}"
        fake_command = [PY, "-m", "devtools.fake_provider", "--port", str(fake_port), "--tokens", "20"]
        stack.enter_context(
            process(fake_command, f"{fake}/health", dict(os.environ, PYTHONPATH=str(ROOT)), "pooler-fake.log", core=0)
        )
        targets = {name: start(stack, name, database, redis, bouncer_port, fake, i) for i, name in enumerate(TARGETS)}
        direct_url = f"{database}_0".replace("postgres://", "postgresql://")
        pooled = f"postgresql://postgres@127.0.0.1:{bouncer_port}/{direct_url.rsplit('/', 1)[1]}"
        costs = statement_costs(direct_url, pooled)
        print("µs per batch statement (empty batch, median):")
        for label, micros in costs.items():
            print(f"  {label:40s} {micros}")
        rows = asyncio.run(table(targets, duration, rounds))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "pooler.json").write_text(json.dumps({"statements_us": costs, "rows": rows}, indent=1))
    print("\nmedian rps over rounds:")
    for api, stream, concurrency in ROWS:
        line = f"  {api:9s} {'stream' if stream else 'plain ':6s} c={concurrency:<3d}"
        for name in TARGETS:
            values = sorted(
                r["rps"]
                for r in rows
                if (r["target"], r["api"], r["stream"], r["concurrency"]) == (name, api, stream, concurrency)
            )
            line += f"  {name} {values[len(values) // 2] if values else '-'}"
        print(line)


if __name__ == "__main__":
    main()
