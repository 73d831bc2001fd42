"""TokenHub settings, read from the environment.

With nothing set, the embedded default runs: a SQLite file, a local-memory
cache and Celery tasks executed eagerly in-process. `DATABASE_URL` switches to
PostgreSQL (psycopg 3 with Django's connection pool) and `REDIS_URL` switches
the cache, rate limits and the Celery broker to Redis.

Missing secrets are reported by `tokenhub.checks` when the web app or a worker
starts, not here, so `collectstatic` and `generate_encryption_key` still run.
"""

from __future__ import annotations

import os
from decimal import Decimal
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from tokenhub.lib.logs import formatters as log_formatters

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def _env_number(name: str, default, parse, what: str):
    """A number from the environment; a bad value stops startup naming the variable, not a bare ValueError."""
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        return parse(value)
    except (ValueError, ArithmeticError):
        raise ImproperlyConfigured(f"{name} must be {what}, not {value!r}.") from None


def env_int(name: str, default: int) -> int:
    return _env_number(name, default, int, "a whole number")


def env_float(name: str, default: float) -> float:
    return _env_number(name, default, float, "a number")


def env_decimal(name: str, default: str) -> Decimal:
    return _env_number(name, Decimal(default), Decimal, "a decimal amount")


DEBUG = env_bool("DEBUG", False)

# An empty SECRET_KEY is refused by tokenhub.checks when DEBUG is off; the
# placeholder only keeps Django importable for commands that need no secret.
SECRET_KEY_FROM_ENV = bool(os.environ.get("SECRET_KEY", "").strip())
SECRET_KEY = os.environ.get("SECRET_KEY", "").strip() or "insecure-development-key-not-for-production"
# Rotating SECRET_KEY: the old one here keeps sessions and password-reset links valid meanwhile.
SECRET_KEY_FALLBACKS = env_list("SECRET_KEY_FALLBACKS")

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "tokenhub.apps.TokenHubAdminConfig",  # django.contrib.admin, behind the site's two-step log-in
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_htmx",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
    "ninja",
    "tokenhub",
    "accounts",
    "channels_app",
    "billing",
    "relay",
]

# Every middleware here must be async-capable: one sync-only middleware makes
# Django hop threads on every /v1 request (tests/foundation/test_middleware.py).
MIDDLEWARE = [
    "tokenhub.middleware.ProbeEndpoints",  # /healthz, /metrics: asked by address, before the Host check
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    "tokenhub.middleware.StaticFilesMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "tokenhub.middleware.SiteLocale",  # after authentication: a user's own language wins
    "tokenhub.middleware.AuditOrigin",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "tokenhub.middleware.ApiErrorShape",
]

ROOT_URLCONF = "tokenhub.urls"
WSGI_APPLICATION = "tokenhub.wsgi.application"
ASGI_APPLICATION = "tokenhub.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "tokenhub.context_processors.site",
            ],
        },
    },
]

# --- Database -----------------------------------------------------------------
DATABASE_URL = os.environ.get("DATABASE_URL", "").strip()
if DATABASE_URL:
    # Health checks: a pooled connection is tested as it is borrowed, so a restarted database costs no
    # request an error (without them a settlement meeting a dead connection was released, unbilled).
    _db = dj_database_url.parse(DATABASE_URL, conn_max_age=0, conn_health_checks=True)
    if _db["ENGINE"] == "django.db.backends.postgresql":
        # Django's psycopg pool: connections are borrowed per request or per
        # ledger transaction and given back at once (CONN_MAX_AGE must be 0).
        _db.setdefault("OPTIONS", {})["pool"] = {
            "min_size": env_int("DB_POOL_MIN_SIZE", 1),
            "max_size": env_int("DB_POOL_MAX_SIZE", 10),
            "timeout": env_int("DB_POOL_TIMEOUT", 10),
        }
    # Behind PgBouncer in transaction mode (DB_TRANSACTION_POOLING=1) a session outlives no transaction:
    # no server-side cursors (Django's WITH HOLD cursors would be lost between transactions).
    _db["DISABLE_SERVER_SIDE_CURSORS"] = env_bool("DB_TRANSACTION_POOLING", False)
    DATABASES = {"default": _db}
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": os.environ.get("SQLITE_PATH", str(BASE_DIR / "db.sqlite3")),
            "OPTIONS": {"timeout": 20, "transaction_mode": "IMMEDIATE", "init_command": "PRAGMA journal_mode=WAL;"},
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache, Redis and Celery --------------------------------------------------
REDIS_URL = os.environ.get("REDIS_URL", "").strip()
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "tokenhub.cache.SharedPoolRedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "th",
            "OPTIONS": {"socket_connect_timeout": 2, "socket_timeout": 2},
        }
    }
    CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", REDIS_URL)
    CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "tokenhub"}}
    CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "memory://")
    CELERY_TASK_ALWAYS_EAGER = True
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_BROKER_CONNECTION_TIMEOUT = 2
# A task is acknowledged once it is done, not when it is received: a worker killed mid-task (OOM, SIGKILL,
# a lost machine) leaves it to be run again, which every task allows (each is idempotent). A child process
# that dies gives its task back at once; a whole worker that dies, after the visibility timeout.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "socket_connect_timeout": 2,
    "socket_timeout": 2,
    "visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 3600),
}
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULE = {
    "release-stale-holds": {"task": "billing.tasks.release_stale_holds", "schedule": 60.0},
    "reconcile-ledger": {"task": "billing.tasks.reconcile_ledger", "schedule": 3600.0},
    "retest-disabled-channels": {"task": "channels_app.tasks.retest_disabled_channels", "schedule": 300.0},
    "tell-low-balances": {"task": "billing.tasks.tell_low_balances", "schedule": 300.0},
    "roll-up-usage": {"task": "billing.tasks.roll_up_usage", "schedule": 3600.0},
    # Pending top-ups whose notification never came: asked of their provider (billing/payments/orders.py).
    "check-open-orders": {"task": "billing.tasks.check_open_orders", "schedule": 120.0},
    "probe-balances": {"task": "channels_app.tasks.probe_balances", "schedule": 900.0},
    "sync-prices": {"task": "channels_app.tasks.sync_prices", "schedule": 86400.0},
    "heartbeat": {"task": "tokenhub.tasks.heartbeat", "schedule": 60.0},  # doctor: beat and a worker alive
}
# A price map (e.g. LiteLLM's model_prices_and_context_window.json URL) compared daily with the
# catalog; the diff goes to staff by e-mail, and is applied only when TOKENHUB_PRICE_SYNC_APPLY=1.
TOKENHUB_PRICE_SYNC_URL = os.environ.get("TOKENHUB_PRICE_SYNC_URL", "").strip()
TOKENHUB_PRICE_SYNC_APPLY = env_bool("TOKENHUB_PRICE_SYNC_APPLY", False)

SESSION_ENGINE = "django.contrib.sessions.backends.cached_db"

# --- Auth -----------------------------------------------------------------------
AUTH_USER_MODEL = "accounts.User"
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "billing:dashboard"
LOGOUT_REDIRECT_URL = "home"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# The model backend behind the log-in throttle: the site's and the admin's log-in both go through it.
AUTHENTICATION_BACKENDS = ["accounts.backends.ThrottledModelBackend"]
# Failed log-ins per (username, client address) before further attempts are refused.
LOGIN_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 5)
LOGIN_FAILURE_WINDOW_SECONDS = env_int("LOGIN_FAILURE_WINDOW_SECONDS", 900)
# Per client address per hour (0 = no limit): sign-up submissions, password reset requests; and
# reset requests per target e-mail, so many addresses cannot flood one inbox.
SIGNUP_RATE_LIMIT = env_int("SIGNUP_RATE_LIMIT", 10)
PASSWORD_RESET_RATE_LIMIT = env_int("PASSWORD_RESET_RATE_LIMIT", 5)
PASSWORD_RESET_EMAIL_RATE_LIMIT = env_int("PASSWORD_RESET_EMAIL_RATE_LIMIT", 3)

# Mail: SMTP when EMAIL_HOST is set (EMAIL_PORT, EMAIL_HOST_USER, EMAIL_HOST_PASSWORD, EMAIL_USE_TLS or
# EMAIL_USE_SSL), else the console; EMAIL_BACKEND names another backend outright.
_email_host = os.environ.get("EMAIL_HOST", "").strip()  # (not a setting: MAILERS replaces Django's EMAIL_*)
_smtp = "django.core.mail.backends.smtp.EmailBackend"
_mailer = {
    "BACKEND": os.environ.get("EMAIL_BACKEND")
    or (_smtp if _email_host else "django.core.mail.backends.console.EmailBackend")
}
if _mailer["BACKEND"] == _smtp:
    _mailer["OPTIONS"] = {
        "host": _email_host or "localhost",
        "port": env_int("EMAIL_PORT", 25),
        "username": os.environ.get("EMAIL_HOST_USER", ""),
        "password": os.environ.get("EMAIL_HOST_PASSWORD", ""),
        "use_tls": env_bool("EMAIL_USE_TLS", False),
        "use_ssl": env_bool("EMAIL_USE_SSL", False),
        "timeout": env_int("EMAIL_TIMEOUT", 10),
    }
MAILERS = {"default": _mailer}
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "tokenhub@localhost")
# E-mail notifications (accounts/notifications.py): the same event is told at most once per
# TOKENHUB_NOTIFY_REPEAT_SECONDS, and a user gets at most TOKENHUB_NOTIFY_HOURLY_LIMIT messages an hour.
TOKENHUB_NOTIFY_REPEAT_SECONDS = env_int("TOKENHUB_NOTIFY_REPEAT_SECONDS", 6 * 3600)
TOKENHUB_NOTIFY_HOURLY_LIMIT = env_int("TOKENHUB_NOTIFY_HOURLY_LIMIT", 10)
# Verification links a user may send themselves per hour.
EMAIL_VERIFICATION_RATE_LIMIT = env_int("EMAIL_VERIFICATION_RATE_LIMIT", 3)

# --- Security -------------------------------------------------------------------
# Behind a TLS-terminating proxy (which must set X-Forwarded-Proto): secure cookies and HSTS follow.
BEHIND_TLS_PROXY = env_bool("BEHIND_TLS_PROXY", False)
if BEHIND_TLS_PROXY:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_SECURE = env_bool("SECURE_COOKIES", BEHIND_TLS_PROXY)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
# Sent on https responses only (SecurityMiddleware); a year by default once the site is behind TLS.
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31_536_000 if BEHIND_TLS_PROXY else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", False)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# Scripts only from the site's own static files (htmx and app.js are vendored); inline styles stay
# allowed for the API docs' Swagger UI. Every page gets it (ContentSecurityPolicyMiddleware).
SECURE_CSP = {
    "default-src": ["'self'"],
    "script-src": ["'self'"],
    "style-src": ["'self'", "'unsafe-inline'"],
    "img-src": ["'self'", "data:"],
    "connect-src": ["'self'"],
    "font-src": ["'self'"],
    "object-src": ["'none'"],
    "base-uri": ["'self'"],
    "form-action": ["'self'"],
    "frame-ancestors": ["'none'"],
}

# --- Internationalisation -------------------------------------------------------
# Two languages for the site and the JSON API (the /v1 error messages stay English, as the SDKs expect):
# the visitor's Accept-Language (any zh* → zh-Hans), overridden by the header's switch and a user's own
# choice (tokenhub.middleware.SiteLocale). No language prefix in URLs.
LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("zh-hans", "简体中文")]
LOCALE_PATHS = [BASE_DIR / "locale"]
FORMAT_MODULE_PATH = ["tokenhub.formats"]  # dates and numbers per language (ISO dates in English)
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Static files ---------------------------------------------------------------
STATIC_URL = "/static/"
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT", "").strip() or BASE_DIR / "staticfiles")
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "tokenhub.storage.StaticStorage"},
}
# Serve from the app folders as well, so a checkout runs without collectstatic;
# `collectstatic` (the Dockerfile runs it) adds hashed, immutable file names.
WHITENOISE_USE_FINDERS = True

# --- TokenHub -------------------------------------------------------------------
# Versioned AES-GCM keys for upstream credentials: "id:base64key,id:base64key";
# the first one encrypts, every listed one decrypts.
TOKENHUB_ENCRYPTION_KEYS = os.environ.get("TOKENHUB_ENCRYPTION_KEYS", "").strip()
# Private/loopback upstreams the operator allows (the SSRF guard refuses them otherwise), comma-separated:
# a host name, an IP or a CIDR allows every port of it; "host:port", "127.0.0.1:8100" or "[::1]:8100"
# allows only that port.
TOKENHUB_ALLOWED_PRIVATE_UPSTREAMS = env_list("TOKENHUB_ALLOWED_PRIVATE_UPSTREAMS")
# A new channel is on probation (weight counted as 1, tried after established channels of its
# priority) until staff approve it, or, when this is above 0, it passes a channel test after this many
# completed calls by other users. Off by default: a second account costs nothing, and its calls on an
# owner's channel (whose upstream reports the usage) earn that record for almost nothing.
TOKENHUB_PROBATION_CALLS = env_int("TOKENHUB_PROBATION_CALLS", 0)
TOKENHUB_SITE_NAME = os.environ.get("TOKENHUB_SITE_NAME", "TokenHub")
OTP_TOTP_ISSUER = TOKENHUB_SITE_NAME  # the name authenticator apps show beside the code
# Public origin used in SDK snippets; falls back to the request's own host.
TOKENHUB_PUBLIC_URL = os.environ.get("TOKENHUB_PUBLIC_URL", "").strip().rstrip("/")


def env_secret(name: str) -> str:
    """A secret from NAME, or from the file NAME_FILE names (PEM keys span lines); "\\n" in NAME is a newline."""
    path = os.environ.get(f"{name}_FILE", "").strip()
    if path:
        try:
            return Path(path).read_text().strip()
        except OSError as exc:
            raise ImproperlyConfigured(f"{name}_FILE names a file that cannot be read: {exc.strerror}.") from None
    return os.environ.get(name, "").strip().replace("\\n", "\n")


# Top-ups (billing/payments): a provider is offered only when all of its keys are set.
TOKENHUB_PAYMENTS = {
    "stripe": {
        "secret_key": env_secret("STRIPE_SECRET_KEY"),
        "webhook_secret": env_secret("STRIPE_WEBHOOK_SECRET"),
        "api_base": os.environ.get("STRIPE_API_BASE", "").strip() or "https://api.stripe.com",
    },
    "alipay": {
        "app_id": os.environ.get("ALIPAY_APP_ID", "").strip(),
        "app_private_key": env_secret("ALIPAY_APP_PRIVATE_KEY"),
        "alipay_public_key": env_secret("ALIPAY_PUBLIC_KEY"),
        "gateway": os.environ.get("ALIPAY_GATEWAY", "").strip() or "https://openapi.alipay.com/gateway.do",
    },
    "wechat": {
        "mchid": os.environ.get("WECHATPAY_MCHID", "").strip(),
        "appid": os.environ.get("WECHATPAY_APPID", "").strip(),
        "private_key": env_secret("WECHATPAY_PRIVATE_KEY"),
        "cert_serial_no": os.environ.get("WECHATPAY_CERT_SERIAL_NO", "").strip(),
        "apiv3_key": env_secret("WECHATPAY_APIV3_KEY"),
        # WeChat Pay's platform public key and its id: notifications are verified with it, and no
        # certificate is downloaded.
        "public_key": env_secret("WECHATPAY_PUBLIC_KEY"),
        "public_key_id": os.environ.get("WECHATPAY_PUBLIC_KEY_ID", "").strip(),
        "gateway": os.environ.get("WECHATPAY_GATEWAY", "").strip() or "https://api.mch.weixin.qq.com",
    },
}
# An order not paid within this time is closed (its provider is asked first: a late payment still counts).
TOKENHUB_ORDER_EXPIRY_MINUTES = env_int("TOKENHUB_ORDER_EXPIRY_MINUTES", 30)
# At most this many orders a user may open in an hour (each one asks a provider for a checkout).
TOKENHUB_ORDERS_PER_HOUR = env_int("TOKENHUB_ORDERS_PER_HOUR", 10)
TOKENHUB_PAYMENT_TIMEOUT_SECONDS = env_float("TOKENHUB_PAYMENT_TIMEOUT_SECONDS", 15.0)
# Unproven notifications stored as payment events per client address an hour (beyond: logged only).
TOKENHUB_REFUSED_NOTICES_PER_HOUR = env_int("TOKENHUB_REFUSED_NOTICES_PER_HOUR", 100)
# Cached API-key lookups live this long; revocation deletes the entry at once.
TOKENHUB_KEY_CACHE_SECONDS = env_int("TOKENHUB_KEY_CACHE_SECONDS", 300)
# The relay also keeps identities in process memory this long: a revocation made elsewhere
# reaches a busy process within this time (0 turns the copy off).
TOKENHUB_KEY_LOCAL_SECONDS = env_float("TOKENHUB_KEY_LOCAL_SECONDS", 2)
# last_used_at is written at most once per key per this many seconds per process.
TOKENHUB_KEY_TOUCH_SECONDS = env_int("TOKENHUB_KEY_TOUCH_SECONDS", 60)
TOKENHUB_SIGNUP_GRANT_USD = env_decimal("TOKENHUB_SIGNUP_GRANT_USD", "0")
# The daily check-in reward, USD.
TOKENHUB_CHECKIN_REWARD_USD = env_decimal("TOKENHUB_CHECKIN_REWARD_USD", "0.10")
# How long a process reuses the channels' breaker states it read (failures it records clear it).
TOKENHUB_HEALTH_LOCAL_SECONDS = env_float("TOKENHUB_HEALTH_LOCAL_SECONDS", 0.5)
# A channel's breaker opens after this many failures within the window, for the backoff (doubled
# after each failed probe).
TOKENHUB_BREAKER_FAILURES = env_int("TOKENHUB_BREAKER_FAILURES", 3)
TOKENHUB_BREAKER_WINDOW_SECONDS = env_int("TOKENHUB_BREAKER_WINDOW_SECONDS", 60)
TOKENHUB_BREAKER_BACKOFF_SECONDS = env_int("TOKENHUB_BREAKER_BACKOFF_SECONDS", 15)
# A channel whose reported usage costs more than the call's hold this many times within the window
# is paused, and its owner and staff are told (the excess is never billed: the hold is the maximum).
TOKENHUB_EXCESS_PAUSE_COUNT = env_int("TOKENHUB_EXCESS_PAUSE_COUNT", 3)
TOKENHUB_EXCESS_WINDOW_SECONDS = env_int("TOKENHUB_EXCESS_WINDOW_SECONDS", 3600)
# How often each process asks the cache whether routing data (channels, catalog) changed.
TOKENHUB_ROUTING_CHECK_SECONDS = env_float("TOKENHUB_ROUTING_CHECK_SECONDS", 1)
# ...and rebuilds it at least this often, notice or not (a notice lost while Redis was out of reach).
TOKENHUB_ROUTING_MAX_AGE_SECONDS = env_float("TOKENHUB_ROUTING_MAX_AGE_SECONDS", 60)
# Upstream timeouts, seconds: connect; first byte and each pause between chunks; a whole answer.
TOKENHUB_UPSTREAM_CONNECT_TIMEOUT = env_float("TOKENHUB_UPSTREAM_CONNECT_TIMEOUT", 5)
TOKENHUB_UPSTREAM_READ_TIMEOUT = env_float("TOKENHUB_UPSTREAM_READ_TIMEOUT", 120)
TOKENHUB_UPSTREAM_TOTAL_TIMEOUT = env_float("TOKENHUB_UPSTREAM_TOTAL_TIMEOUT", 900)
# Pooled connections per worker process to all upstreams together.
TOKENHUB_UPSTREAM_MAX_CONNECTIONS = env_int("TOKENHUB_UPSTREAM_MAX_CONNECTIONS", 1000)
# The relay: request body cap, failover attempts, per-key requests and tokens per minute (0 = no limit),
# and what a client disconnect mid-stream does: "cancel" the upstream and bill what was delivered,
# or "drain" the upstream in the background and bill its reported usage.
TOKENHUB_MAX_BODY_BYTES = env_int("TOKENHUB_MAX_BODY_BYTES", 20_000_000)
# Every other path (pages, forms, /api): bodies past this are refused while they arrive (relay/asgi.py).
TOKENHUB_SITE_MAX_BODY_BYTES = env_int("TOKENHUB_SITE_MAX_BODY_BYTES", 2_500_000)
TOKENHUB_MAX_ATTEMPTS = env_int("TOKENHUB_MAX_ATTEMPTS", 3)
# Channels one owner may have: each is a route in every process's routing data and a health key.
TOKENHUB_MAX_CHANNELS_PER_OWNER = env_int("TOKENHUB_MAX_CHANNELS_PER_OWNER", 50)
# PostgreSQL: the relay's holds and settlements share statements and commits under load
# (billing/ledger/batched.py).
TOKENHUB_LEDGER_BATCHING = env_bool("TOKENHUB_LEDGER_BATCHING", True)
# The batcher keeps one long-lived connection per worker and prepares its two statements on it. Behind
# PgBouncer in transaction mode (DB_TRANSACTION_POOLING=1; Debian's 1.18 keeps no prepared statements)
# it runs them unprepared, unless TOKENHUB_LEDGER_DATABASE_URL gives it a direct PostgreSQL address
# (docs/deploy.md has the measurements).
DB_TRANSACTION_POOLING = env_bool("DB_TRANSACTION_POOLING", False)
TOKENHUB_LEDGER_DATABASE_URL = os.environ.get("TOKENHUB_LEDGER_DATABASE_URL", "").strip()
# Ledger batches' timeouts (0 = none): a settlement batch sets both with SET LOCAL in its transaction;
# a hold batch is cancelled by the worker after the lock timeout. A batch past them is refused whole
# and its calls take the per-call path (billing/ledger/batcher.py).
TOKENHUB_LEDGER_LOCK_TIMEOUT_MS = env_int("TOKENHUB_LEDGER_LOCK_TIMEOUT_MS", 2000)
TOKENHUB_LEDGER_STATEMENT_TIMEOUT_MS = env_int("TOKENHUB_LEDGER_STATEMENT_TIMEOUT_MS", 10000)
# How long a settlement waits for others to share its statement (callers never wait for settlements).
TOKENHUB_SETTLEMENT_GATHER_MS = env_int("TOKENHUB_SETTLEMENT_GATHER_MS", 50)
# Settlements a worker may have waiting for their statement before new calls wait (then, after the
# wait, are refused with a 503): a stalled database must not turn into unbounded memory and open holds.
TOKENHUB_SETTLEMENT_BACKLOG_MAX = env_int("TOKENHUB_SETTLEMENT_BACKLOG_MAX", 1000)
TOKENHUB_SETTLEMENT_BACKLOG_WAIT_SECONDS = env_int("TOKENHUB_SETTLEMENT_BACKLOG_WAIT_SECONDS", 10)
TOKENHUB_KEY_RPM = env_int("TOKENHUB_KEY_RPM", 0)
TOKENHUB_KEY_TPM = env_int("TOKENHUB_KEY_TPM", 0)
TOKENHUB_DISCONNECT_POLICY = os.environ.get("TOKENHUB_DISCONNECT_POLICY", "cancel").strip() or "cancel"
# Django's own cap must not answer first with a bare 400; the relay enforces TOKENHUB_MAX_BODY_BYTES.
DATA_UPLOAD_MAX_MEMORY_SIZE = TOKENHUB_MAX_BODY_BYTES + 1
# On SIGTERM: how long open streams may go on before they are cut (an error event, settled for what was
# delivered), and how long the worker then waits for settlements; both within gunicorn's graceful_timeout.
TOKENHUB_SHUTDOWN_STREAM_GRACE_SECONDS = env_float("TOKENHUB_SHUTDOWN_STREAM_GRACE_SECONDS", 15)
TOKENHUB_SHUTDOWN_SETTLE_SECONDS = env_float("TOKENHUB_SHUTDOWN_SETTLE_SECONDS", 8)
# An open hold older than this belongs to a crashed worker and is released.
TOKENHUB_HOLD_TIMEOUT_SECONDS = env_int("TOKENHUB_HOLD_TIMEOUT_SECONDS", 1800)
# Usage records older than this many days become daily totals (billing/retention.py; at least 35).
TOKENHUB_USAGE_RETENTION_DAYS = env_int("TOKENHUB_USAGE_RETENTION_DAYS", 180)

# Logs: readable lines, or one JSON object a line with LOG_FORMAT=json (Django, the relay, Celery, and
# gunicorn through gunicorn.conf.py). `tokenhub.calls` writes one line per relayed call
# (TOKENHUB_CALL_LOG=0 silences it); LOG_LEVEL sets everything else.
LOG_FORMAT = os.environ.get("LOG_FORMAT", "plain").strip().lower() or "plain"
if LOG_FORMAT not in ("plain", "json"):
    raise ImproperlyConfigured(f"LOG_FORMAT must be plain or json, not {LOG_FORMAT!r}")
TOKENHUB_CALL_LOG = env_bool("TOKENHUB_CALL_LOG", True)
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": log_formatters(),
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT},
        "calls": {"class": "tokenhub.lib.logs.BatchedStreamHandler", "formatter": LOG_FORMAT},
    },
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {
        # httpx logs every request at INFO: per-call noise on the relay's hot path.
        "django.db.backends": {"level": "WARNING"},
        "httpx": {"level": "WARNING"},
        "tokenhub.calls": {
            "handlers": ["calls"],
            "propagate": False,
            "level": "INFO" if TOKENHUB_CALL_LOG else "WARNING",
        },
    },
}
# Prometheus metrics on /metrics for `Authorization: Bearer <token>` (404 while unset); ledger totals
# there are recomputed at most this often (seconds).
TOKENHUB_METRICS_TOKEN = os.environ.get("TOKENHUB_METRICS_TOKEN", "").strip()
TOKENHUB_METRICS_LEDGER_SECONDS = env_int("TOKENHUB_METRICS_LEDGER_SECONDS", 300)
