"""`manage.py doctor` against the real PostgreSQL, Redis and a Celery worker: each finding with its fix,
exit 1 on an error, 0 when there are only warnings."""

from __future__ import annotations

import re
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from channels_app import channels, crypto
from channels_app.catalog import import_catalog
from channels_app.models import LOW_BALANCE_REASON, CatalogModel, Channel, ChannelKey, ChannelStatus
from tests.channels.conftest import DEFAULT_CATALOG, make_channel
from tokenhub import doctor
from tokenhub.tasks import heartbeat

pytestmark = pytest.mark.services


def run_doctor() -> tuple[int, str]:
    out = StringIO()
    try:
        call_command("doctor", stdout=out)
    except SystemExit as exit_:
        return exit_.code, out.getvalue()
    return 0, out.getvalue()


@pytest.fixture
def catalog(transactional_db):
    import_catalog(DEFAULT_CATALOG.read_text(), "default_catalog.json")


@pytest.fixture
def alive(celery_worker):
    """A worker that answers, and beat's heartbeat run through it as beat would send it."""
    heartbeat.delay().get(timeout=20)
    return celery_worker


def test_a_healthy_installation_passes(alive, catalog):
    code, out = run_doctor()
    assert code == 0, out
    assert "ok    database: postgresql reachable, migrations applied" in out
    assert "worker(s) answer" in out and "beat's heartbeat is fresh" in out
    assert "0 error(s)" in out


def test_warnings_alone_exit_zero_and_say_what_to_do(alive, catalog, bob):
    broken = make_channel(bob, approved=True)
    channels.set_status(broken, ChannelStatus.AUTO_DISABLED, "upstream said 401: invalid key")
    low = make_channel(bob, approved=True)
    Channel.objects.filter(pk=low.pk).update(
        status=ChannelStatus.PAUSED, status_reason=f"{LOW_BALANCE_REASON} $1.00 below $5.00"
    )
    CatalogModel.objects.create(name="unpriced-model")
    make_channel(bob, models=("unpriced-model",), approved=True)
    code, out = run_doctor()
    assert code == 0, out
    assert f"WARN  channels: {broken.public_id} auto-disabled: upstream said 401" in out
    assert f"WARN  channels: {low.public_id} paused:" in out and "top up the upstream account" in out
    assert "have no prices and are never called: unpriced-model — fix:" in out


def test_a_key_no_configured_encryption_key_opens_is_an_error_naming_the_channel(alive, catalog, bob):
    channel = make_channel(bob, approved=True)
    ChannelKey.objects.filter(channel=channel).update(key_id="retired")
    code, out = run_doctor()
    assert code == 1
    assert (
        f"ERROR encryption: 1 upstream key(s) under key id 'retired' do not decrypt (channels {channel.public_id})"
        in out
    )
    assert "put key 'retired' back in TOKENHUB_ENCRYPTION_KEYS" in out
    assert crypto.current_key_id() not in out.split("ERROR encryption")[1].split("\n")[0]


def test_no_worker_and_no_beat_are_errors(transactional_db, catalog):
    from django.core.cache import cache

    cache.delete(doctor.HEARTBEAT_KEY)
    code, out = run_doctor()
    assert code == 1
    assert "ERROR celery: no worker answers — fix: start one" in out
    assert "ERROR celery: beat's heartbeat never seen — fix: start one beat" in out


def test_a_stale_heartbeat_is_an_error(alive, catalog):
    from django.core.cache import cache

    cache.set(doctor.HEARTBEAT_KEY, timezone.now().timestamp() - 600, 600)
    code, out = run_doctor()
    assert code == 1 and re.search(r"ERROR celery: beat's heartbeat last seen 6\d\d s ago — fix: start one beat", out)


def test_a_clock_far_from_the_databases_is_an_error(alive, catalog, monkeypatch):
    ahead = timezone.now() + timedelta(minutes=5)
    monkeypatch.setattr(doctor.timezone, "now", lambda: ahead)
    code, out = run_doctor()
    assert code == 1 and "ERROR clock: this machine and the database differ by 30" in out


def test_an_unreachable_redis_is_an_error_that_does_not_stop_the_other_checks(alive, catalog, settings):
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": "redis://127.0.0.1:1/0"}
    }
    code, out = run_doctor()
    assert code == 1
    assert "ERROR redis: could not be checked: ConnectionError" in out
    assert "ok    database:" in out and "encryption:" in out
