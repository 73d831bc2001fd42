"""Commands that change what the running nodes cache (deactivate_user, import_models, sync_prices,
add_channel, test_channel, probe_balances) refuse to report a change the nodes would never hear of:
no Redis configured beside PostgreSQL, or Redis unreachable, is one clear line and exit 1."""

from __future__ import annotations

import subprocess
import sys

import pytest

from accounts.models import User
from tests.servers import ROOT, server_env

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]


def deactivate(**env) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", "deactivate_user", "alice"],
        cwd=ROOT,
        env=server_env(**env),
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    "redis_url, message",
    [("", "CommandError: REDIS_URL is not set"), ("redis://127.0.0.1:1/0", "CommandError: Redis error:")],
)
def test_a_change_the_nodes_would_not_hear_of_is_refused(redis_url, message):
    User.objects.create_user("alice")
    done = deactivate(REDIS_URL=redis_url)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 1 and len(lines) == 1 and lines[0].startswith(message), done.stderr
    # Refused before the change, or the change is in the database but said not to have reached the nodes.
    assert "Traceback" not in done.stderr


def test_with_the_nodes_redis_the_change_is_made():
    User.objects.create_user("alice")
    done = deactivate()
    assert done.returncode == 0, done.stderr
    assert not User.objects.get(username="alice").is_active
