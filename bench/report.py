"""The benchmark report: docs/benchmarks.md (tables, ratios from the same run) and docs/benchmarks.png."""

from __future__ import annotations

from pathlib import Path


def _key(row: dict) -> tuple:
    return (row["api"], row["model"], row["stream"], row["concurrency"])


def _direct_for(rows: list[dict], row: dict) -> dict | None:
    model = "gpt-4o-mini" if row["api"] == "openai" else "claude-haiku-4-5"
    return next(
        (
            r
            for r in rows
            if r["target"] == "direct" and _key(r) == (row["api"], model, row["stream"], row["concurrency"])
        ),
        None,
    )


def _fmt(value, digits=1) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def write(report: dict, docs: Path) -> None:
    docs.mkdir(exist_ok=True)
    rows = report["rows"]
    env = report["environment"]
    lines = [
        "# Benchmarks",
        "",
        f"Run {report['started']} at commit `{env['commit']}` on {env['cpus']} CPUs (Linux {env['kernel']}); Python "
        f"{env['python']}, Django {env['django']}, {env['postgres']}, {env['redis']}, LiteLLM {env['litellm']}.",
        "Produced by `make bench` (`bench/run.py`); raw numbers in `bench/results/latest.json`.",
        "",
        "Setup: the project's fake provider (`devtools/fake_provider`, 20-word answers) and the load generator "
        "(`bench/loadgen.py`, aiohttp, closed loop) pinned to core 0; the server under test pinned to core 1 with one "
        "worker — TokenHub as gunicorn + one uvicorn worker, DEBUG off, PostgreSQL + Redis, full billing (hold and "
        "settle in the ledger for every call); LiteLLM proxy with one worker and **no database** (its Prisma engines "
        "download from the internet at start, which this machine cannot do), so it does no spend tracking. PostgreSQL "
        "and Redis are not pinned. Each row: a warm-up second, then the measured seconds.",
        "",
        f"Idle RSS of the TokenHub worker: **{_fmt(report.get('idle_rss_mb'))} MB**.",
        "",
        "| target | caller | model | format | stream | conc. | req/s | p50 ms | p90 ms | p99 ms | added p50 ms | TTFB p50 ms | errors | peak RSS MB | CPU s / 1k req | ×LiteLLM | ÷direct |",
        "|---|---|---|---|---|--:|--:|--:|--:|--:|--:|--:|---|--:|--:|--:|--:|",
    ]
    for row in rows:
        direct = _direct_for(rows, row)
        added = (
            row["p50_ms"] - direct["p50_ms"]
            if direct and row["target"] != "direct" and row["p50_ms"] and direct["p50_ms"]
            else None
        )
        lite = next((r for r in rows if r["target"] == "litellm" and _key(r) == _key(row)), None)
        vs_lite = row["rps"] / lite["rps"] if lite and lite["rps"] and row["target"] == "tokenhub" else None
        vs_direct = row["rps"] / direct["rps"] if direct and direct["rps"] and row["target"] != "direct" else None
        lines.append(
            f"| {row['target']} | {row['api']} | {row['model']} | {row['kind']} | {'yes' if row['stream'] else 'no'} | "
            f"{row['concurrency']} | {_fmt(row['rps'])} | {_fmt(row['p50_ms'], 2)} | {_fmt(row['p90_ms'], 2)} | "
            f"{_fmt(row['p99_ms'], 2)} | {_fmt(added, 2)} | {_fmt(row['ttfb_p50_ms'], 2)} | {row['errors'] or ''} | "
            f"{_fmt(row.get('peak_rss_mb'))} | {_fmt(row.get('cpu_s_per_1000'), 2)} | {_fmt(vs_lite, 2)} | {_fmt(vs_direct, 3)} |"
        )
    lines += targets(report)
    lines += before_and_after(report)
    realistic = report.get("realistic", {}).get("tokenhub")
    if realistic:
        lines += [
            "",
            "## Many slow streams",
            "",
            f"{realistic['concurrency']} concurrent streams with 300 ms to first token and 20 ms per chunk, 15 s: "
            f"{_fmt(realistic['rps'])} streams/s completed, p50 {_fmt(realistic['p50_ms'])} ms, TTFB p50 "
            f"{_fmt(realistic['ttfb_p50_ms'])} ms, errors {realistic['errors'] or 'none'}; worker RSS "
            f"{_fmt(realistic['idle_rss_mb'])} MB idle → {_fmt(realistic['peak_rss_mb'])} MB peak "
            f"(**+{_fmt(realistic['added_rss_mb'])} MB**); CPU {_fmt(realistic['cpu_s_per_1000'], 2)} s per 1,000 streams.",
        ]
    soak = report.get("soak")
    if soak:
        growth = soak["rss_end_mb"] - soak["rss_after_first_minute_mb"]
        lines += [
            "",
            "## Soak",
            "",
            f"{soak['seconds']:.0f} s at 50 clients (OpenAI and Anthropic, streams and not, same- and cross-format): "
            f"{soak['requests']:,} requests, errors {soak['errors'] or 'none'}. Worker RSS every 10 s (MB): "
            f"{', '.join(str(s) for s in soak['rss_samples_mb'])}. After the first minute {soak['rss_after_first_minute_mb']} MB, "
            f"at the end {soak['rss_end_mb']} MB (**{growth:+.1f} MB**), highest {soak['rss_max_mb']} MB.",
        ]
    lines += ["", "![Requests per second by concurrency](benchmarks.png)", ""]
    extra = docs / "benchmarks-notes.md"
    if extra.exists():
        lines += [extra.read_text()]
    (docs / "benchmarks.md").write_text("\n".join(lines) + "\n")
    chart(rows, docs / "benchmarks.png")


def _row(rows: list[dict], target: str, stream: bool, concurrency: int) -> dict | None:
    """The OpenAI-format, same-format row the targets are read from."""
    return next(
        (
            r
            for r in rows
            if r["target"] == target
            and r["api"] == "openai"
            and r["kind"] == "same"
            and r["stream"] == stream
            and r["concurrency"] == concurrency
        ),
        None,
    )


def targets(report: dict) -> list[str]:
    """The issue's targets, read from this run (OpenAI format, same-format rows)."""
    rows = report["rows"]
    lines = ["", "## Against the targets (this run)", ""]
    for stream in (False, True):
        hub, lite = _row(rows, "tokenhub", stream, 50), _row(rows, "litellm", stream, 50)
        if hub and lite and lite["rps"]:
            ratio = hub["rps"] / lite["rps"]
            verdict = "met" if ratio >= 5 else "not met"
            lines.append(
                f"- Throughput at 50 clients, {'stream' if stream else 'non-stream'}: TokenHub {_fmt(hub['rps'])} req/s, "
                f"LiteLLM {_fmt(lite['rps'])} req/s: **{ratio:.1f}×** (target ≥ 5×: {verdict}; aim 10×)."
            )
    hub, direct = _row(rows, "tokenhub", False, 1), _row(rows, "direct", False, 1)
    if hub and direct:
        p50, p99 = hub["p50_ms"] - direct["p50_ms"], hub["p99_ms"] - direct["p99_ms"]
        lines.append(
            f"- Added latency for one caller (non-stream): p50 **{p50:.2f} ms** (target ≤ 3 ms: "
            f"{'met' if p50 <= 3 else 'not met'}), p99 **{p99:.2f} ms** (target ≤ 10 ms: "
            f"{'met' if p99 <= 10 else 'not met'})."
        )
        lite = _row(rows, "litellm", False, 1)
        if lite:
            lines.append(f"  LiteLLM in the same run adds {lite['p50_ms'] - direct['p50_ms']:.2f} ms at p50.")
        lines += _every_single_caller_row(rows)
    idle = report.get("idle_rss_mb")
    if idle:
        lines.append(f"- Idle worker RSS **{_fmt(idle)} MB** (target ≤ 120 MB: {'met' if idle <= 120 else 'not met'}).")
    realistic = report.get("realistic", {}).get("tokenhub")
    if realistic:
        added = realistic["added_rss_mb"]
        lines.append(
            f"- {realistic['concurrency']} open slow streams add **{_fmt(added)} MB** "
            f"(target ≤ 50 MB: {'met' if added <= 50 else 'not met'})."
        )
    return lines


def _every_single_caller_row(rows: list[dict]) -> list[str]:
    """The headline is one row; say how every format and mode of one caller fared against the same targets."""
    added = []
    for row in rows:
        direct = _direct_for(rows, row)
        if row["target"] == "tokenhub" and row["concurrency"] == 1 and direct and row["p50_ms"] and row["p99_ms"]:
            added.append((row["p50_ms"] - direct["p50_ms"], row["p99_ms"] - direct["p99_ms"], row))
    if not added:
        return []
    within = sum(1 for p50, p99, _row in added if p50 <= 3 and p99 <= 10)
    _p50, worst_p99, worst = max(added, key=lambda item: item[1])
    label = f"{worst['api']} caller, {worst['kind']}-format, {'stream' if worst['stream'] else 'non-stream'}"
    return [
        f"  Every one-caller row ({len(added)}: both caller formats, stream or not, same- and cross-format): added "
        f"p50 {min(a[0] for a in added):.2f}–{max(a[0] for a in added):.2f} ms, p99 {min(a[1] for a in added):.2f}–"
        f"{worst_p99:.2f} ms; {within} of {len(added)} within both targets (highest p99: {label})."
    ]


def chart(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for ax, stream in zip(axes, (False, True), strict=True):
        for target in ("direct", "tokenhub", "litellm"):
            points = sorted(
                (r["concurrency"], r["rps"])
                for r in rows
                if r["target"] == target and r["api"] == "openai" and r["kind"] == "same" and r["stream"] == stream
            )
            if points:
                ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=target)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("concurrent clients")
        ax.set_ylabel("requests / s")
        ax.set_title(f"OpenAI format, {'stream (20 chunks)' if stream else 'non-stream'}")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)


if __name__ == "__main__":
    # Re-render docs/benchmarks.md and the chart from bench/results/latest.json (e.g. after editing the notes).
    import json

    root = Path(__file__).resolve().parent.parent
    write(json.loads((root / "bench" / "results" / "latest.json").read_text()), root / "docs")


def before_and_after(report: dict) -> list[str]:
    """With BENCH_BASELINE: this tree's TokenHub against that revision's, row by row, measured in turns."""
    rows = report["rows"]
    pairs = [
        (r, b)
        for r in rows
        if r["target"] == "tokenhub"
        for b in rows
        if b["target"] == "baseline" and _key(b) == _key(r) and b["kind"] == r["kind"]
    ]
    if not pairs:
        return []
    lines = [
        "",
        f"## Before and after (this run): `{report.get('baseline', 'baseline')}` → `{report['environment']['commit']}`",
        "",
        "| caller | model | format | stream | conc. | req/s before | req/s after | after ÷ before | p50 ms before | "
        "p50 ms after | p99 ms before | p99 ms after |",
        "|---|---|---|---|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for after, before in pairs:
        ratio = after["rps"] / before["rps"] if before["rps"] else None
        lines.append(
            f"| {after['api']} | {after['model']} | {after['kind']} | {'yes' if after['stream'] else 'no'} | "
            f"{after['concurrency']} | {_fmt(before['rps'])} | {_fmt(after['rps'])} | {_fmt(ratio, 3)} | "
            f"{_fmt(before['p50_ms'], 2)} | {_fmt(after['p50_ms'], 2)} | {_fmt(before['p99_ms'], 2)} | "
            f"{_fmt(after['p99_ms'], 2)} |"
        )
    return lines
