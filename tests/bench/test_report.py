"""The benchmark report reads the issue's targets from the run's own rows (bench/report.py)."""

from __future__ import annotations

from bench.report import targets


def row(target: str, stream: bool, concurrency: int, rps: float, p50: float, p99: float) -> dict:
    return {
        "target": target,
        "api": "openai",
        "model": "gpt-4o-mini",
        "kind": "same",
        "stream": stream,
        "concurrency": concurrency,
        "rps": rps,
        "p50_ms": p50,
        "p99_ms": p99,
    }


def report(hub_rps: float, hub_p50: float) -> dict:
    return {
        "rows": [
            row("direct", False, 1, 3000, 0.3, 0.5),
            row("tokenhub", False, 1, 300, hub_p50, 6.0),
            row("litellm", False, 1, 40, 24.0, 35.0),
            row("tokenhub", False, 50, hub_rps, 70, 150),
            row("litellm", False, 50, 60, 800, 1000),
            row("tokenhub", True, 50, 500, 90, 170),
            row("litellm", True, 50, 20, 3000, 3600),
        ],
        "idle_rss_mb": 101.0,
        "realistic": {"tokenhub": {"concurrency": 500, "added_rss_mb": 36.0}},
    }


def test_targets_are_judged_from_the_same_run():
    text = "\n".join(targets(report(hub_rps=720, hub_p50=2.8)))
    assert "non-stream: TokenHub 720.0 req/s, LiteLLM 60.0 req/s: **12.0×** (target ≥ 5×: met" in text
    assert "stream: TokenHub 500.0 req/s, LiteLLM 20.0 req/s: **25.0×**" in text
    assert "p50 **2.50 ms** (target ≤ 3 ms: met), p99 **5.50 ms** (target ≤ 10 ms: met)" in text
    assert "LiteLLM in the same run adds 23.70 ms" in text
    assert "**101.0 MB** (target ≤ 120 MB: met)" in text and "add **36.0 MB** (target ≤ 50 MB: met)" in text


def test_a_missed_target_says_so():
    text = "\n".join(targets(report(hub_rps=240, hub_p50=5.3)))
    assert "**4.0×** (target ≥ 5×: not met" in text
    assert "p50 **5.00 ms** (target ≤ 3 ms: not met)" in text


def test_every_single_caller_row_is_judged_not_only_the_headline():
    run = report(hub_rps=720, hub_p50=2.8)
    cross_stream = {**row("tokenhub", True, 1, 200, 3.1, 12.5), "model": "claude-haiku-4-5", "kind": "cross"}
    run["rows"] += [row("direct", True, 1, 2000, 0.5, 0.8), row("tokenhub", True, 1, 300, 2.4, 8.0), cross_stream]
    text = "\n".join(targets(run))
    assert "Every one-caller row (3: " in text
    assert "added p50 1.90–2.60 ms, p99 5.50–11.70 ms; 2 of 3 within both targets" in text
    assert "(highest p99: openai caller, cross-format, stream)" in text


def test_a_baseline_run_is_compared_row_by_row():
    from bench.report import before_and_after

    run = report(hub_rps=720, hub_p50=2.8)
    run["rows"].append(row("baseline", False, 50, 600, 80, 160))
    run.update(baseline="3cf8415", environment={"commit": "abc1234"})
    text = "\n".join(before_and_after(run))
    assert "`3cf8415` → `abc1234`" in text
    assert "| openai | gpt-4o-mini | same | no | 50 | 600.0 | 720.0 | 1.200 | 80.00 | 70.00 | 160.00 | 150.00 |" in text
    assert before_and_after(report(hub_rps=720, hub_p50=2.8)) == []  # no baseline, no section
