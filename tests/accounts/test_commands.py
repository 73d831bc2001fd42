from __future__ import annotations

import io
import sys

import pytest
from django.core.management import CommandError, call_command

from accounts import keys
from accounts.models import User

pytestmark = pytest.mark.django_db


def run(*args, stdin: str | None = None) -> str:
    out, err = io.StringIO(), io.StringIO()
    old_stdin = sys.stdin
    if stdin is not None:
        sys.stdin = io.StringIO(stdin)
    try:
        call_command(*args, stdout=out, stderr=err)
    finally:
        sys.stdin = old_stdin
    return out.getvalue()


def test_create_user_prints_a_generated_password():
    password = run("create_user", "opsy", "--email", "opsy@example.test").strip()
    user = User.objects.get(username="opsy")
    assert user.check_password(password) and not user.is_staff


def test_create_user_reads_the_password_from_stdin_and_can_make_staff():
    out = run("create_user", "boss", "--staff", "--password-stdin", stdin="s3cret-from-a-pipe\n")
    assert out == ""  # nothing secret echoed
    user = User.objects.get(username="boss")
    assert user.check_password("s3cret-from-a-pipe") and user.is_staff and user.is_superuser


def test_create_user_refuses_a_duplicate(alice):
    with pytest.raises(CommandError, match="already exists"):
        run("create_user", "alice")


def test_create_api_key_prints_only_the_key(alice):
    out = run("create_api_key", "alice", "--name", "script")
    assert out.count("\n") == 1
    identity = keys.lookup(out.strip())
    assert identity.user_id == alice.pk and identity.name == "script"


def test_create_api_key_for_unknown_user_fails_clearly():
    with pytest.raises(CommandError, match='No user "ghost"'):
        run("create_api_key", "ghost")
