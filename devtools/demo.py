"""`make demo`: the site on the embedded default with a fake upstream, through the production stack.

Secrets are generated once into .demo/secrets.env so a second run still decrypts
what the first stored. Ctrl-C stops every process this started.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEMO_DIR = ROOT / ".demo"
SECRETS_FILE = DEMO_DIR / "secrets.env"
DEMO_CHANNEL_EXISTS = (
    "from channels_app.models import Channel; "
    "print('demo channel' if Channel.objects.filter(name='demo channel').exists() else 'none')"
)
SITE_PORT = int(os.environ.get("DEMO_PORT", "8000"))
UPSTREAM_PORT = int(os.environ.get("DEMO_UPSTREAM_PORT", "8100"))
PAYMENTS_PORT = int(os.environ.get("DEMO_PAYMENTS_PORT", "8200"))
PAYMENT_KEYS_FILE = DEMO_DIR / "payment-keys.json"
DEMO_PLANS = (
    "from decimal import Decimal as D; from billing.models import Plan, ExchangeRate; "
    "Plan.objects.exists() or [Plan.objects.create(name=n, name_zh=z, price=D(p), credit_usd=D(c), position=i) "
    "for i, (n, z, p, c) in enumerate([('Starter', '入门', '5', '5'), ('Plus', '进阶', '20', '21')])]; "
    "Plan.objects.filter(price__isnull=True).exists() or Plan.objects.create(name='Any amount', name_zh='自选金额', "
    "min_price=D('1'), max_price=D('500'), credit_per_unit=D('1'), position=9); "
    "ExchangeRate.objects.get_or_create(currency='USD', defaults={'cny_per_unit': D('7.2'), 'updated_by': 'demo'})"
)


def say(text: str = "") -> None:
    print(text, flush=True)


def load_or_create_secrets() -> dict[str, str]:
    DEMO_DIR.mkdir(exist_ok=True)
    if not SECRETS_FILE.exists():
        key = subprocess.run(
            [sys.executable, "manage.py", "generate_encryption_key", "--key-id", "demo1"],
            cwd=ROOT,
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        SECRETS_FILE.write_text(f"SECRET_KEY={secrets.token_urlsafe(50)}\nTOKENHUB_ENCRYPTION_KEYS={key}\n")
        SECRETS_FILE.chmod(0o600)
    values = {}
    for line in SECRETS_FILE.read_text().splitlines():
        name, _, value = line.partition("=")
        if name:
            values[name] = value
    return values


def payment_keys():
    """Test keys for the fake payment providers, made once (the demo's Stripe, Alipay and WeChat Pay)."""
    from devtools.fake_payments.signing import Keys

    DEMO_DIR.mkdir(exist_ok=True)
    if not PAYMENT_KEYS_FILE.exists():
        PAYMENT_KEYS_FILE.write_text(Keys.generate().to_json())
        PAYMENT_KEYS_FILE.chmod(0o600)
    return Keys.from_json(PAYMENT_KEYS_FILE.read_text())


def port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def manage(env: dict[str, str], *args: str, stdin: str | None = None) -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, input=stdin, capture_output=True, text=True
    )
    if result.returncode != 0:
        sys.exit(f"demo: `manage.py {' '.join(args)}` failed:\n{result.stderr.strip()}")
    return result.stdout.strip()


def wait_for_port(port: int, process: subprocess.Popen, what: str) -> None:
    for _ in range(150):
        if process.poll() is not None:
            sys.exit(f"demo: {what} exited with {process.returncode}")
        if not port_is_free(port):
            return
        time.sleep(0.1)
    sys.exit(f"demo: {what} did not open port {port}")


def main() -> None:
    for port in (SITE_PORT, UPSTREAM_PORT, PAYMENTS_PORT):
        if not port_is_free(port):
            sys.exit(
                f"demo: port {port} is in use; stop what runs there or set DEMO_PORT / DEMO_UPSTREAM_PORT / "
                "DEMO_PAYMENTS_PORT."
            )
    env = dict(os.environ)
    env.update(load_or_create_secrets())
    env.setdefault("SQLITE_PATH", str(DEMO_DIR / "db.sqlite3"))
    env.update(payment_keys().tokenhub_env(f"http://127.0.0.1:{PAYMENTS_PORT}"))
    env.update(
        DJANGO_SETTINGS_MODULE="tokenhub.settings",
        DEBUG="0",
        ALLOWED_HOSTS="localhost,127.0.0.1,[::1]",
        TOKENHUB_ALLOWED_PRIVATE_UPSTREAMS="127.0.0.1",
        WEB_CONCURRENCY="1",  # the embedded default keeps its cache in process memory
        PYTHONPATH=str(ROOT),
    )
    where = "PostgreSQL" if env.get("DATABASE_URL") else f"SQLite ({env['SQLITE_PATH']})"
    say(f"== Migrating the database: {where}")
    manage(env, "migrate", "--noinput", "-v0")
    password = manage(env, "create_user", "demo", "--email", "demo@example.test", "--email-verified", "--update")
    api_key = manage(env, "create_api_key", "demo", "--name", f"demo {time.strftime('%Y-%m-%d %H:%M')}")
    say("== Loading the default model catalog")
    say("   " + manage(env, "import_models", "channels_app/data/default_catalog.json"))
    if "demo channel" not in manage(env, "shell", "-c", DEMO_CHANNEL_EXISTS):
        say("== Adding demo channels that point at the fake upstream")
        manage(
            env,
            "add_channel",
            "--owner",
            "demo",
            "--provider",
            "openai-compatible",
            "--name",
            "demo channel",
            "--base-url",
            f"http://127.0.0.1:{UPSTREAM_PORT}/v1",
            "--cut",
            "20",
            "--models",
            "gpt-4o-mini,gpt-4o,deepseek-chat,text-embedding-3-small",
            stdin="demo-upstream-key\n",
        )
        manage(
            env,
            "add_channel",
            "--owner",
            "demo",
            "--provider",
            "anthropic",
            "--name",
            "demo anthropic channel",
            "--base-url",
            f"http://127.0.0.1:{UPSTREAM_PORT}",
            "--cut",
            "20",
            "--models",
            "claude-sonnet-4-5,claude-haiku-4-5",
            stdin="demo-upstream-key\n",
        )
        manage(env, "grant", "demo", "5", "--memo", "demo credit")
    manage(env, "shell", "-c", DEMO_PLANS)

    processes: list[subprocess.Popen] = []

    def stop_all(*_args) -> None:
        for process in processes:
            if process.poll() is None:
                process.terminate()
        for process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
        say("\ndemo: stopped.")
        sys.exit(0)

    signal.signal(signal.SIGINT, stop_all)
    signal.signal(signal.SIGTERM, stop_all)

    say(f"== Starting the fake upstream (OpenAI + Anthropic wire formats) on 127.0.0.1:{UPSTREAM_PORT}")
    upstream = subprocess.Popen(
        [sys.executable, "-m", "devtools.fake_provider", "--port", str(UPSTREAM_PORT)], cwd=ROOT, env=env
    )
    processes.append(upstream)
    wait_for_port(UPSTREAM_PORT, upstream, "the fake upstream")

    say(f"== Starting fake payment providers (Stripe, Alipay, WeChat Pay) on 127.0.0.1:{PAYMENTS_PORT}")
    webhook = f"http://127.0.0.1:{SITE_PORT}/payments/stripe/webhook/"
    command = [sys.executable, "-m", "devtools.fake_payments", "--port", str(PAYMENTS_PORT)]
    command += ["--keys", str(PAYMENT_KEYS_FILE), "--stripe-webhook", webhook]
    gateway = subprocess.Popen(command, cwd=ROOT, env=env)
    processes.append(gateway)
    wait_for_port(PAYMENTS_PORT, gateway, "the fake payment providers")

    say(f"== Starting TokenHub (gunicorn + uvicorn worker) on http://127.0.0.1:{SITE_PORT}")
    site = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "-c",
            "gunicorn.conf.py",
            "--bind",
            f"127.0.0.1:{SITE_PORT}",
            "tokenhub.asgi:application",
        ],
        cwd=ROOT,
        env=env,
    )
    processes.append(site)
    wait_for_port(SITE_PORT, site, "the site")

    say(
        f"""
TokenHub demo is running.

  Site:      http://127.0.0.1:{SITE_PORT}/   (log in as  demo / {password} )
  Pricing:   http://127.0.0.1:{SITE_PORT}/pricing/   (test checkouts: the fake providers' Pay button)
  Health:    http://127.0.0.1:{SITE_PORT}/healthz
  API docs:  http://127.0.0.1:{SITE_PORT}/api/docs
  Your key:  {api_key}

The demo user has $5 of credit and two demo channels (OpenAI-style and Anthropic) on the fake
upstream. A real call with the official SDK:

  .venv/bin/python - <<'PY'
  from openai import OpenAI
  client = OpenAI(base_url="http://127.0.0.1:{SITE_PORT}/v1", api_key="{api_key}")
  reply = client.chat.completions.create(model="gpt-4o-mini", messages=[{{"role": "user", "content": "Hello"}}])
  print(reply.choices[0].message.content)
  PY

With the Anthropic SDK: Anthropic(base_url="http://127.0.0.1:{SITE_PORT}", api_key=...) and
model="claude-haiku-4-5". Your balance and calls: curl -H "Authorization: Bearer {api_key}" \
http://127.0.0.1:{SITE_PORT}/v1/usage
The fake upstream itself answers on http://127.0.0.1:{UPSTREAM_PORT}/v1 (any key).
Press Ctrl-C to stop.
"""
    )
    while True:
        for process in processes:
            if process.poll() is not None:
                say(f"demo: a process exited with {process.returncode}; stopping.")
                stop_all()
        time.sleep(0.5)


if __name__ == "__main__":
    main()
