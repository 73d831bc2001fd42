"""Real servers for tests: the production ASGI stack and the fake provider, in subprocesses."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import httpx
from django.conf import settings
from django.db import connection

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_database_url() -> str:
    """DATABASE_URL of the database pytest-django created, for a server in another process."""
    params = connection.settings_dict
    if connection.vendor != "postgresql":
        raise RuntimeError("a server in a subprocess needs the PostgreSQL test database")
    user = quote(params.get("USER") or "")
    password = f":{quote(params['PASSWORD'])}" if params.get("PASSWORD") else ""
    host, port = params.get("HOST") or "127.0.0.1", params.get("PORT") or 5432
    return f"postgres://{user}{password}@{host}:{port}/{params['NAME']}"


def server_env(**overrides: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="tests.settings",
        DATABASE_URL=test_database_url(),
        REDIS_URL=settings.REDIS_URL,
        PYTHONPATH=str(ROOT),
        PYTHONUNBUFFERED="1",
    )
    env.update(overrides)
    return env


def wait_until_up(url: str, process: subprocess.Popen, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode} before answering {url}")
        try:
            httpx.get(url, timeout=1.0)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise RuntimeError(f"server did not answer {url} within {timeout}s")


LOG_DIR = ROOT / "test-artifacts" / "server-logs"


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextlib.contextmanager
def running(command: list[str], probe_url: str, env: dict[str, str]):
    """A server subprocess; its output goes to test-artifacts/server-logs/ (a pipe nobody reads would block it)."""
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    log_path = LOG_DIR / f"{command[2].rsplit('.', 1)[-1]}-{probe_url.split(':')[2].split('/')[0]}.log"
    log = open(log_path, "wb")  # noqa: SIM115  (closed in finally)
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_until_up(probe_url, process)
        yield process
    finally:
        stop(process)
        log.close()


@contextlib.contextmanager
def asgi_server(workers: int = 1, **env_overrides: str):
    """TokenHub through gunicorn + uvicorn workers, the production stack; yields its base URL."""
    with asgi_server_process(workers, **env_overrides) as (base_url, _process):
        yield base_url


@contextlib.contextmanager
def asgi_server_process(workers: int = 1, **env_overrides: str):
    """The same, yielding (base URL, the gunicorn master's process) for tests that signal it."""
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "-c",
        "gunicorn.conf.py",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(workers),
        "tokenhub.asgi:application",
    ]
    base_url = f"http://127.0.0.1:{port}"
    with running(command, f"{base_url}/healthz", server_env(**env_overrides)) as process:
        yield base_url, process


@contextlib.contextmanager
def celery_worker(**env_overrides: str):
    """A real Celery worker process on the test broker (Redis) and database."""
    command = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "tokenhub",
        "worker",
        "--pool=solo",
        "--loglevel=WARNING",
        "--without-heartbeat",
        "--without-gossip",
        "--without-mingle",
    ]
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    with open(LOG_DIR / "celery-worker.log", "wb") as log:
        process = subprocess.Popen(
            command, cwd=ROOT, env=server_env(**env_overrides), stdout=log, stderr=subprocess.STDOUT
        )
        try:
            time.sleep(1.5)  # let it connect to the broker; tasks sent earlier wait in the queue anyway
            if process.poll() is not None:
                raise RuntimeError(f"the Celery worker exited with {process.returncode}")
            yield process
        finally:
            stop(process)


@contextlib.contextmanager
def fake_provider(tokens: int = 20, ttft_ms: float = 0, delay_ms: float = 0):
    """The bundled fake upstream on a free port; yields its base URL (ending in /v1)."""
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "devtools.fake_provider",
        "--port",
        str(port),
        "--tokens",
        str(tokens),
        "--ttft-ms",
        str(ttft_ms),
        "--delay-ms",
        str(delay_ms),
    ]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    with running(command, f"http://127.0.0.1:{port}/health", env):
        yield f"http://127.0.0.1:{port}/v1"


@contextlib.contextmanager
def fake_payments(keys_json: str, *, port: int | None = None, stripe_webhook: str = ""):
    """The fake Stripe, Alipay and WeChat Pay APIs (devtools/fake_payments) on a free port; yields its base URL."""
    import tempfile

    port = port or free_port()
    # Not beside the server logs: the suite's secret scan reads those, and these keys are secrets.
    handle, name = tempfile.mkstemp(suffix=".json", prefix="payment-keys-")
    os.close(handle)
    keys_file = Path(name)
    keys_file.write_text(keys_json)
    command = [sys.executable, "-m", "devtools.fake_payments", "--port", str(port), "--keys", str(keys_file)]
    if stripe_webhook:
        command += ["--stripe-webhook", stripe_webhook]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    try:
        with running(command, f"http://127.0.0.1:{port}/_control/requests", env):
            yield f"http://127.0.0.1:{port}"
    finally:
        keys_file.unlink(missing_ok=True)
