from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.utils import timezone

from accounts import keys
from accounts.models import ApiKey

pytestmark = pytest.mark.django_db


def test_generated_keys_are_prefixed_long_and_url_safe():
    raw = keys.generate_raw_key()
    assert raw.startswith("sk-hub-")
    assert re.fullmatch(r"sk-hub-[A-Za-z0-9_-]{40,}", raw)
    assert len({keys.generate_raw_key() for _ in range(200)}) == 200


def test_only_the_hash_and_a_short_prefix_are_stored(alice):
    key, raw = keys.create_key(alice, "laptop")
    assert key.key_hash == keys.hash_key(raw) and len(key.key_hash) == 64
    assert raw.startswith(key.prefix) and len(key.prefix) < 16
    # Scan every text column of every row of the table: the full key is nowhere.
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {ApiKey._meta.db_table}")
        rows = cursor.fetchall()
    flattened = " ".join(str(value) for row in rows for value in row)
    assert raw not in flattened
    assert raw[len(key.prefix) :] not in flattened


def test_lookup_finds_the_key_and_then_answers_from_cache(alice, django_assert_num_queries):
    key, raw = keys.create_key(alice, "ci", allowed_models=[" gpt-4o ", "gpt-4o", "claude-sonnet-4-5"])
    with django_assert_num_queries(1):
        identity = keys.lookup(raw)
    assert identity.key_id == key.pk and identity.user_id == alice.pk
    assert identity.allowed_models == ("gpt-4o", "claude-sonnet-4-5")
    with django_assert_num_queries(0):
        assert keys.lookup(raw) == identity


def test_unknown_and_malformed_keys_are_not_found(alice):
    keys.create_key(alice, "real")
    assert keys.lookup("sk-hub-" + "x" * 48) is None
    assert keys.lookup("sk-something-else") is None
    assert keys.lookup("") is None


def test_revoked_key_is_refused_even_after_being_cached(alice):
    key, raw = keys.create_key(alice, "old")
    assert keys.lookup(raw).refusal() is None
    assert keys.revoke_key(key) is True
    assert keys.revoke_key(key) is False  # idempotent
    assert keys.lookup(raw).refusal() == "This API key has been revoked."


def test_expired_key_is_refused(alice):
    _key, raw = keys.create_key(alice, "short-lived", expires_at=timezone.now() + timedelta(minutes=5))
    identity = keys.lookup(raw)
    assert identity.refusal() is None
    assert "expired" in identity.refusal(now=timezone.now() + timedelta(minutes=6))


def test_last_used_is_written_at_most_once_per_interval(alice, django_assert_num_queries):
    key, _raw = keys.create_key(alice, "busy")
    keys._last_touch.pop(key.pk, None)
    with django_assert_num_queries(1):
        assert keys.touch(key.pk) is True
    with django_assert_num_queries(0):
        for _ in range(50):
            assert keys.touch(key.pk) is False
    key.refresh_from_db()
    assert key.last_used_at is not None


def test_spend_cap_must_not_be_negative(alice):
    from django.db import IntegrityError, transaction

    with pytest.raises(IntegrityError), transaction.atomic():
        keys.create_key(alice, "bad", spend_cap_usd=Decimal("-1"))
