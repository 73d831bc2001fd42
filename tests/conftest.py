from __future__ import annotations

import pytest
from django.core.cache import cache

from accounts.models import User

PASSWORD = "correct horse battery staple 42"


def _forget_process_copies() -> None:
    from accounts import keys
    from channels_app import health, routing

    keys._local.clear()
    keys._local_missing.clear()
    health._forget_recent()
    routing.invalidate()


@pytest.fixture(autouse=True)
def _fresh_cache():
    # Redis db 9 (or local memory) belongs to the suite, and so do this process's short-lived
    # copies of key identities, breaker states and routing: start every test empty.
    cache.clear()
    _forget_process_copies()
    yield
    cache.clear()
    _forget_process_copies()


def make_user(username: str, *, two_factor: bool | None = None, **extra) -> User:
    """A user with a verified address; staff also have two-factor sign-in on (the admin requires it),
    unless `two_factor=False`. Tests of the unverified or unenrolled paths make those explicitly."""
    email = extra.pop("email", f"{username}@example.test")
    extra.setdefault("verified_email", email)
    user = User.objects.create_user(username=username, email=email, password=PASSWORD, **extra)
    if two_factor or (two_factor is None and user.is_staff):
        from django_otp.plugins.otp_totp.models import TOTPDevice

        TOTPDevice.objects.create(user=user, name="authenticator", confirmed=True)
    return user


def sign_in(client, user) -> None:
    """`client.force_login(user)`, and for a user with two-factor sign-in on, a session that has shown its
    code (as the site's two-step log-in leaves it): the admin and payouts ask for that."""
    from accounts import two_factor

    client.force_login(user)
    if two_factor.is_enabled(user):
        session = client.session
        session[two_factor.VERIFIED_SESSION] = True
        session.save()


@pytest.fixture
def alice(db) -> User:
    """The caller."""
    return make_user("alice")


@pytest.fixture
def bob(db) -> User:
    """The channel owner (with two-factor sign-in on: payouts need it)."""
    return make_user("bob", two_factor=True)


@pytest.fixture
def carol(db) -> User:
    """The stranger, who must never see alice's or bob's things."""
    return make_user("carol")


@pytest.fixture
def admin_user(db) -> User:
    return make_user("root", is_staff=True, is_superuser=True)


@pytest.fixture
def celery_worker(transactional_db):
    """Tasks run through Celery: a real worker on the Redis broker, or eagerly on the embedded default."""
    from django.conf import settings

    from tokenhub.celery import app

    if settings.CELERY_TASK_ALWAYS_EAGER:
        yield None
        return
    from celery.contrib.testing.worker import start_worker

    with start_worker(app, pool="solo", concurrency=1, perform_ping_check=False, shutdown_timeout=10) as worker:
        yield worker


@pytest.fixture
def inbox(settings, celery_worker):
    """A real SMTP server (tests/mail.py) that this process's mail, the Celery worker's included, goes to."""
    from tests.mail import smtp_mailers, smtp_server

    with smtp_server() as (received, port):
        settings.MAILERS = smtp_mailers(port)
        yield received


def wait_for(predicate, timeout: float = 15.0, interval: float = 0.05):
    """Poll until predicate() is truthy (work done by a Celery worker in another thread)."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s")


@pytest.fixture(scope="session")
def fake_upstream():
    """The bundled fake provider, on a free port, for the whole session; yields its base URL (…/v1)."""
    from tests.servers import fake_provider

    with fake_provider() as base_url:
        yield base_url


# --- Secret scan after the suite (tests/guarantees/leaks.py) -------------------------------------------------
@pytest.fixture(scope="session", autouse=True)
def _no_secret_leaks(django_db_setup, django_db_blocker):
    """Record every sk-hub key and upstream key the suite makes; at the end, fail if one is in a server log, a
    log record of this process, or a text column of the database."""
    import logging
    import time

    from accounts import keys
    from channels_app import crypto
    from tests.guarantees import leaks

    make_key, encrypt = keys.create_key, crypto.encrypt

    def recording_create_key(*args, **kwargs):
        key, raw = make_key(*args, **kwargs)
        leaks.record(raw)
        return key, raw

    def recording_encrypt(plaintext: str):
        leaks.record(plaintext)
        return encrypt(plaintext)

    keys.create_key, crypto.encrypt = recording_create_key, recording_encrypt
    started = time.time()
    watch = leaks.LogWatch()
    logging.getLogger().addHandler(watch)
    yield
    logging.getLogger().removeHandler(watch)
    keys.create_key, crypto.encrypt = make_key, encrypt
    with django_db_blocker.unblock():
        found = leaks.FOUND_IN_LOGS + leaks.in_server_logs(since=started) + leaks.in_database()
    assert not found, f"secrets leaked ({len(leaks.SECRETS)} recorded): {sorted(set(found))}"


# --- end of the secret scan ----------------------------------------------------------------------------------
