"""`manage.py doctor`: everything an operator would check by hand, each finding with its fix.

Each check returns findings: an error (TokenHub cannot work as configured: the command exits 1), a
warning (it works, but something needs a look: a low upstream balance, a channel auto-disabled) or
ok. Checks never change anything, and one that cannot run (the database is down) reports that
instead of stopping the others.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

ERROR, WARNING, OK = "error", "warning", "ok"
HEARTBEAT_KEY = "tokenhub:beat-heartbeat"
HEARTBEAT_EVERY = 60.0  # seconds, the beat schedule's
HEARTBEAT_STALE = 3 * HEARTBEAT_EVERY
CLOCK_SKEW_WARN, CLOCK_SKEW_ERROR = 2.0, 30.0  # seconds between this machine and the database


@dataclass(frozen=True)
class Finding:
    level: str
    check: str
    message: str
    fix: str = ""


def _settings() -> list[Finding]:
    from tokenhub.checks import missing_secrets

    found = []
    missing = missing_secrets()
    if missing:
        found.append(Finding(ERROR, "settings", f"{', '.join(missing)} not set", "set them (see .env.example)"))
    if settings.DEBUG:
        found.append(Finding(WARNING, "settings", "DEBUG is on", "set DEBUG=0 for anything but development"))
    if not settings.DEBUG and (not settings.ALLOWED_HOSTS or "*" in settings.ALLOWED_HOSTS):
        found.append(Finding(WARNING, "settings", "ALLOWED_HOSTS is empty or '*'", "list the site's host names"))
    if settings.DATABASES["default"]["ENGINE"].endswith("sqlite3"):
        found.append(
            Finding(WARNING, "settings", "the embedded SQLite database is in use", "set DATABASE_URL to PostgreSQL")
        )
    return found or [Finding(OK, "settings", "secrets set, DEBUG off")]


def _database() -> list[Finding]:
    connection.ensure_connection()
    executor = MigrationExecutor(connection)
    pending = executor.migration_plan(executor.loader.graph.leaf_nodes())
    if pending:
        names = ", ".join(f"{m.app_label}.{m.name}" for m, _backwards in pending[:5])
        return [Finding(ERROR, "database", f"{len(pending)} migration(s) not applied: {names}", "manage.py migrate")]
    found = [Finding(OK, "database", f"{connection.vendor} reachable, migrations applied")]
    with connection.cursor() as cursor:
        cursor.execute("SELECT CURRENT_TIMESTAMP")
        database_now = cursor.fetchone()[0]
    if isinstance(database_now, str):  # SQLite: text, in UTC
        from datetime import UTC, datetime

        database_now = datetime.fromisoformat(database_now).replace(tzinfo=UTC)
    skew = abs((timezone.now() - database_now).total_seconds())
    if skew >= CLOCK_SKEW_WARN:
        level = ERROR if skew >= CLOCK_SKEW_ERROR else WARNING
        fix = "synchronise both machines' clocks (NTP): holds expire and usage is dated by them"
        found.append(Finding(level, "clock", f"this machine and the database differ by {skew:.1f} s", fix))
    return found


def _cache() -> list[Finding]:
    if not settings.REDIS_URL:
        return [Finding(WARNING, "redis", "no REDIS_URL: a local-memory cache", "set REDIS_URL for several workers")]
    probe = f"tokenhub:doctor:{time.time_ns()}"
    cache.set(probe, "1", 10)
    if cache.get(probe) != "1":
        return [
            Finding(ERROR, "redis", f"Redis at {_without_password(settings.REDIS_URL)} does not answer", "start it")
        ]
    cache.delete(probe)
    return [Finding(OK, "redis", "reachable")]


def _celery() -> list[Finding]:
    from tokenhub.celery import app

    if settings.CELERY_TASK_ALWAYS_EAGER:
        return [Finding(WARNING, "celery", "tasks run eagerly in the web process", "set REDIS_URL (the broker)")]
    broker = _without_password(app.conf.broker_url or "")
    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=3)
    except Exception as exc:  # kombu raises its transport's own errors
        return [Finding(ERROR, "celery", f"the broker {broker} is unreachable: {type(exc).__name__}", "start Redis")]
    found = [Finding(OK, "celery", f"broker {broker} reachable")]
    workers = app.control.ping(timeout=2.0) or []
    if not workers:
        found.append(Finding(ERROR, "celery", "no worker answers", "start one: celery -A tokenhub worker"))
    else:
        found.append(Finding(OK, "celery", f"{len(workers)} worker(s) answer"))
    beat = cache.get(HEARTBEAT_KEY)
    if beat is None or time.time() - float(beat) > HEARTBEAT_STALE:
        seen = "never seen" if beat is None else f"last seen {time.time() - float(beat):.0f} s ago"
        found.append(Finding(ERROR, "celery", f"beat's heartbeat {seen}", "start one beat: celery -A tokenhub beat"))
    else:
        found.append(Finding(OK, "celery", "beat's heartbeat is fresh"))
    return found


def _encryption() -> list[Finding]:
    from channels_app import crypto
    from channels_app.models import ChannelKey

    unreadable: dict[str, list[str]] = {}
    total = 0
    for key in ChannelKey.objects.select_related("channel").only("key_id", "ciphertext", "channel__public_id"):
        total += 1
        try:
            crypto.decrypt(key.key_id, key.ciphertext)
        except crypto.DecryptionError:
            unreadable.setdefault(key.key_id, []).append(key.channel.public_id)
    if not unreadable:
        return [Finding(OK, "encryption", f"all {total} upstream key(s) decrypt")]
    return [
        Finding(
            ERROR,
            "encryption",
            f"{len(channels)} upstream key(s) under key id {key_id!r} do not decrypt "
            f"(channels {', '.join(channels[:5])})",
            f"put key {key_id!r} back in TOKENHUB_ENCRYPTION_KEYS, then rotate_encryption_key",
        )
        for key_id, channels in unreadable.items()
    ]


def _catalog() -> list[Finding]:
    from channels_app import routing

    snap = routing.build_snapshot()
    unpriced = sorted(name for name in snap.routes if not (snap.models[name].prices or {}).get("input"))
    found = []
    if unpriced:
        found.append(
            Finding(
                WARNING,
                "catalog",
                f"{len(unpriced)} model(s) served by channels have no prices and are never called: "
                + ", ".join(unpriced[:10]),
                "set their prices in the admin or import_models / sync_prices",
            )
        )
    if snap.unknown_listed:
        names = ", ".join(sorted(snap.unknown_listed)[:10])
        found.append(
            Finding(WARNING, "catalog", f"channels list models not in the catalog: {names}", "import or alias them")
        )
    return found or [Finding(OK, "catalog", f"{len(snap.models)} models, every served one priced")]


def _channels() -> list[Finding]:
    from channels_app import health
    from channels_app.models import LOW_BALANCE_REASON, Channel, ChannelStatus

    found = []
    for channel in Channel.objects.filter(status=ChannelStatus.AUTO_DISABLED).only("public_id", "status_reason"):
        fix = "fix its upstream key, then resume it (a re-test runs every 5 minutes)"
        found.append(Finding(WARNING, "channels", f"{channel.public_id} auto-disabled: {channel.status_reason}", fix))
    for channel in Channel.objects.filter(status=ChannelStatus.PAUSED, status_reason__startswith=LOW_BALANCE_REASON):
        fix = "top up the upstream account; the channel resumes when the balance probe sees it"
        found.append(Finding(WARNING, "channels", f"{channel.public_id} paused: {channel.status_reason}", fix))
    active = list(Channel.objects.filter(status=ChannelStatus.ACTIVE).values_list("pk", "public_id"))
    states, _usage = health.look([pk for pk, _id in active], ())
    now = time.time()
    for pk, public_id in active:
        state = states.get(pk)
        if health.is_open(state, now):
            found.append(
                Finding(
                    WARNING,
                    "channels",
                    f"{public_id} is failing: {state.describe()}",
                    "test_channel shows the upstream's answer",
                )
            )
    return found or [Finding(OK, "channels", f"{len(active)} active channel(s), none failing")]


CHECKS: list[tuple[str, Callable[[], list[Finding]]]] = [
    ("settings", _settings),
    ("database", _database),
    ("redis", _cache),
    ("celery", _celery),
    ("encryption", _encryption),
    ("catalog", _catalog),
    ("channels", _channels),
]


def run() -> list[Finding]:
    findings: list[Finding] = []
    for name, check in CHECKS:
        try:
            findings += check()
        except Exception as exc:  # a check that cannot run is itself the finding
            findings.append(Finding(ERROR, name, f"could not be checked: {type(exc).__name__}: {exc}"))
    return findings


def _without_password(url: str) -> str:
    """A service URL fit for a finding: no user or password, and no query (redis://…?password=x)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "(an address that does not parse)"
    if not parts.scheme:
        return url.split("?", 1)[0]
    host = parts.hostname or ""
    netloc = f"{'…@' if parts.username or parts.password else ''}{host}{f':{parts.port}' if parts.port else ''}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))
