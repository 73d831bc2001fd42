"""With DEBUG off, processes refuse to start without their secrets, naming the missing variable."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from channels_app import crypto
from tests.servers import ROOT

pytestmark = pytest.mark.services  # runs in its own process; no database needed, but slow-ish


def clean_env(**overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "TOKENHUB_ENCRYPTION_KEYS", "DEBUG"}}
    env.update(DJANGO_SETTINGS_MODULE="tokenhub.settings", PYTHONPATH=str(ROOT))
    env.pop("DATABASE_URL", None)
    env.pop("REDIS_URL", None)
    env.update(overrides)
    return env


def python(code: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


def test_asgi_app_refuses_without_secret_key():
    result = python("import tokenhub.asgi", clean_env(TOKENHUB_ENCRYPTION_KEYS=crypto.new_key_value()))
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "SECRET_KEY is not set" in lines[0]


def test_asgi_app_refuses_without_encryption_keys():
    result = python("import tokenhub.asgi", clean_env(SECRET_KEY="x" * 50))
    assert result.returncode != 0
    assert "TOKENHUB_ENCRYPTION_KEYS is not set" in result.stderr
    assert "SECRET_KEY" not in result.stderr


def test_asgi_app_starts_with_both_secrets():
    result = python(
        "import tokenhub.asgi", clean_env(SECRET_KEY="x" * 50, TOKENHUB_ENCRYPTION_KEYS=crypto.new_key_value())
    )
    assert result.returncode == 0, result.stderr


def test_debug_mode_needs_no_secrets():
    assert python("import tokenhub.asgi", clean_env(DEBUG="1")).returncode == 0


def test_celery_worker_refuses_without_secrets():
    result = subprocess.run(
        [sys.executable, "-m", "celery", "-A", "tokenhub", "worker", "--pool=solo", "--loglevel=WARNING"],
        cwd=ROOT,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "SECRET_KEY and TOKENHUB_ENCRYPTION_KEYS are not set" in result.stderr


def test_manage_check_reports_the_missing_secret():
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env=clean_env(SECRET_KEY="y" * 50),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0 and "TOKENHUB_ENCRYPTION_KEYS is not set" in result.stderr


def test_generate_encryption_key_and_collectstatic_run_without_secrets(tmp_path):
    env = clean_env(STATIC_ROOT=str(tmp_path / "static"))
    result = subprocess.run(
        [sys.executable, "manage.py", "generate_encryption_key"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    value = result.stdout.strip()
    assert result.stdout == value + "\n"
    assert len(crypto.parse_keyring(value)) == 1
    result = subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "static" / "staticfiles.json").exists()


def test_a_bad_number_in_the_environment_stops_startup_naming_the_variable():
    import subprocess
    import sys

    from tests.servers import ROOT

    env = {"PATH": "/usr/bin:/bin", "DJANGO_SETTINGS_MODULE": "tokenhub.settings", "PYTHONPATH": str(ROOT)}
    for name, value in [
        ("TOKENHUB_UPSTREAM_READ_TIMEOUT", "2m"),
        ("TOKENHUB_KEY_RPM", "lots"),
        ("TOKENHUB_CHECKIN_REWARD_USD", "ten cents"),
    ]:
        result = subprocess.run(
            [sys.executable, "-c", "import django; django.setup()"],
            env={**env, name: value},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode != 0
        assert f"ImproperlyConfigured: {name} must be" in result.stderr and repr(value) in result.stderr
