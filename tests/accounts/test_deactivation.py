"""Deactivating a user stops their keys at once in this process (cached identities included)."""

from __future__ import annotations

import asyncio
import io

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse

from accounts import keys
from accounts.models import User
from tests.conftest import sign_in

pytestmark = pytest.mark.django_db(transaction=True)  # alookup reads the key in another thread


def deactivate(*args: str) -> str:
    err = io.StringIO()
    call_command("deactivate_user", *args, stderr=err)
    return err.getvalue()


def test_deactivation_refuses_the_cached_key_at_once(alice):
    _key, raw = keys.create_key(alice, "laptop")
    # Both copies warm: the shared cache (lookup) and this process's memory (alookup).
    assert keys.lookup(raw).refusal() is None
    assert asyncio.run(keys.alookup(raw)).refusal() is None
    assert "now deactivated" in deactivate("alice")
    assert "deactivated" in asyncio.run(keys.alookup(raw)).refusal()
    assert "deactivated" in keys.lookup(raw).refusal()
    assert Client(headers={"authorization": f"Bearer {raw}"}).get("/api/me").status_code == 401
    assert "already deactivated" in deactivate("alice")
    assert "now active" in deactivate("alice", "--reactivate")
    assert asyncio.run(keys.alookup(raw)).refusal() is None


def test_deactivating_an_unknown_user_fails_with_one_clear_line():
    with pytest.raises(CommandError, match=r'^No user "ghost"\.$'):
        deactivate("ghost")


def test_deactivation_in_the_admin_stops_the_keys(admin_user, alice):
    _key, raw = keys.create_key(alice, "laptop")
    assert asyncio.run(keys.alookup(raw)).refusal() is None
    client = Client()
    sign_in(client, admin_user)
    form = {
        "username": "alice",
        "email": alice.email,
        "first_name": "",
        "last_name": "",
        "date_joined_0": alice.date_joined.strftime("%Y-%m-%d"),
        "date_joined_1": "00:00:00",
    }  # is_active left out: the checkbox unticked
    response = client.post(reverse("admin:accounts_user_change", args=[alice.pk]), form)
    assert response.status_code == 302, response.content.decode()[:2000]
    assert not User.objects.get(pk=alice.pk).is_active
    assert "deactivated" in asyncio.run(keys.alookup(raw)).refusal()


def test_a_log_in_does_not_drop_the_cached_keys(alice, django_assert_num_queries):
    _key, raw = keys.create_key(alice, "laptop")
    keys.lookup(raw)
    Client().login(username="alice", password="correct horse battery staple 42")
    with django_assert_num_queries(0):
        assert keys.lookup(raw).refusal() is None
