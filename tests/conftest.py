from __future__ import annotations

import pytest
from django.core.cache import cache

from accounts.models import User

PASSWORD = "correct horse battery staple 42"


@pytest.fixture(autouse=True)
def _fresh_cache():
    # Redis db 9 (or local memory) belongs to the suite: start every test empty.
    cache.clear()
    yield
    cache.clear()


def make_user(username: str, **extra) -> User:
    return User.objects.create_user(username=username, email=f"{username}@example.test", password=PASSWORD, **extra)


@pytest.fixture
def alice(db) -> User:
    """The caller."""
    return make_user("alice")


@pytest.fixture
def bob(db) -> User:
    """The channel owner."""
    return make_user("bob")


@pytest.fixture
def carol(db) -> User:
    """The stranger, who must never see alice's or bob's things."""
    return make_user("carol")


@pytest.fixture
def admin_user(db) -> User:
    return make_user("root", is_staff=True, is_superuser=True)
