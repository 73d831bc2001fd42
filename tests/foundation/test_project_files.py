from __future__ import annotations

import shutil
import subprocess

import pytest
from django.core.management import call_command

from tests.servers import ROOT


@pytest.mark.services
def test_docker_compose_file_is_valid():
    validator = shutil.which("docker-compose")
    assert validator, "Debian's docker-compose is needed (scripts/ensure-services installs it)"
    result = subprocess.run([validator, "config", "-q"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    services = subprocess.run(
        [validator, "config", "--services"], cwd=ROOT, capture_output=True, text=True, timeout=60
    ).stdout.split()
    assert set(services) >= {"web", "worker", "beat", "postgres", "redis"}


@pytest.mark.django_db
def test_models_and_migrations_agree():
    call_command("makemigrations", "--check", "--dry-run", verbosity=0)


def test_env_example_lists_every_documented_variable():
    env_example = (ROOT / ".env.example").read_text()
    readme = (ROOT / "README.md").read_text()
    for name in [
        "DEBUG", "SECRET_KEY", "ALLOWED_HOSTS", "DATABASE_URL", "REDIS_URL",
        "TOKENHUB_ENCRYPTION_KEYS", "TOKENHUB_ALLOWED_PRIVATE_UPSTREAMS",
    ]:  # fmt: skip
        assert f"{name}=" in env_example, name
        assert f"`{name}`" in readme, name


def test_readme_opens_with_the_two_commands():
    readme = (ROOT / "README.md").read_text()
    commands = [line.strip() for line in readme.split("## ", 2)[1].splitlines() if line.strip().startswith("make ")]
    assert commands[:2] == ["make demo", "make test"]
    assert "make test" in (ROOT / ".ci" / "run").read_text()
