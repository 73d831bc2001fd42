"""Settings for the test suite: production-like (DEBUG off) with throwaway secrets.

DATABASE_URL / REDIS_URL come from scripts/run-tests (PostgreSQL + Redis) or are
absent (the embedded SQLite default).
"""

import os

os.environ.setdefault("SECRET_KEY", "test-secret-key-not-for-production-0123456789")
os.environ.setdefault("TOKENHUB_ENCRYPTION_KEYS", "test1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8")
os.environ.setdefault("TOKENHUB_ALLOWED_PRIVATE_UPSTREAMS", "127.0.0.1")
os.environ.setdefault("ALLOWED_HOSTS", "localhost,127.0.0.1,testserver")

from tokenhub.settings import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast, tests only
