"""AES-GCM encryption of upstream credentials with versioned keys.

`TOKENHUB_ENCRYPTION_KEYS` lists keys as `id:base64url(32 bytes)`, comma
separated. The first key encrypts; every listed key decrypts, so rotation is:
put a new key first, run `rotate_encryption_key`, then drop the old one.
Each ciphertext is stored beside the id of the key that made it.
"""

from __future__ import annotations

import base64
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

KEY_ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
NONCE_BYTES = 12
# Binds ciphertexts to their purpose, so one cannot be swapped into another field.
ASSOCIATED_DATA = b"tokenhub:upstream-key:v1"


class DecryptionError(Exception):
    """The ciphertext cannot be opened with the configured keys (message carries no secret)."""


@dataclass(frozen=True)
class Sealed:
    key_id: str
    ciphertext: str  # base64url(nonce || ciphertext+tag)


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def parse_keyring(value: str) -> dict[str, bytes]:
    """Parse the variable; the first entry is the current key (dicts keep order)."""
    keyring: dict[str, bytes] = {}
    for position, item in enumerate(filter(None, (part.strip() for part in value.split(","))), start=1):
        key_id, sep, encoded = item.partition(":")
        if not sep or not KEY_ID_PATTERN.match(key_id):
            raise ImproperlyConfigured(f"TOKENHUB_ENCRYPTION_KEYS entry {position} is not 'id:base64key'.")
        try:
            raw = _b64decode(encoded)
        except ValueError as exc:
            raise ImproperlyConfigured(f"TOKENHUB_ENCRYPTION_KEYS key {key_id!r} is not base64.") from exc
        if len(raw) != 32:
            raise ImproperlyConfigured(f"TOKENHUB_ENCRYPTION_KEYS key {key_id!r} must be 32 bytes (AES-256).")
        if key_id in keyring:
            raise ImproperlyConfigured(f"TOKENHUB_ENCRYPTION_KEYS lists key id {key_id!r} twice.")
        keyring[key_id] = raw
    return keyring


@lru_cache(maxsize=4)
def _keyring_for(value: str) -> dict[str, bytes]:
    keyring = parse_keyring(value)
    if not keyring:
        raise ImproperlyConfigured(
            "TOKENHUB_ENCRYPTION_KEYS is not set; `python manage.py generate_encryption_key` makes one."
        )
    return keyring


def keyring() -> dict[str, bytes]:
    return _keyring_for(settings.TOKENHUB_ENCRYPTION_KEYS)


def current_key_id() -> str:
    return next(iter(keyring()))


def new_key_value(key_id: str | None = None) -> str:
    """A complete `id:base64key` entry for TOKENHUB_ENCRYPTION_KEYS."""
    key_id = key_id or "k" + datetime.now(UTC).strftime("%Y%m%d%H%M%S")
    if not KEY_ID_PATTERN.match(key_id):
        raise ValueError("A key id is 1-32 letters, digits, '_' or '-'.")
    return f"{key_id}:{_b64encode(AESGCM.generate_key(bit_length=256))}"


def encrypt(plaintext: str) -> Sealed:
    key_id = current_key_id()
    nonce = os.urandom(NONCE_BYTES)
    sealed = AESGCM(keyring()[key_id]).encrypt(nonce, plaintext.encode("utf-8"), ASSOCIATED_DATA)
    return Sealed(key_id=key_id, ciphertext=_b64encode(nonce + sealed))


def decrypt(key_id: str, ciphertext: str) -> str:
    key = keyring().get(key_id)
    if key is None:
        raise DecryptionError(f"encryption key {key_id!r} is not in TOKENHUB_ENCRYPTION_KEYS")
    try:
        blob = _b64decode(ciphertext)
        plaintext = AESGCM(key).decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], ASSOCIATED_DATA)
    except Exception as exc:
        raise DecryptionError(f"ciphertext under key {key_id!r} failed authentication") from exc
    return plaintext.decode("utf-8")


def mask(secret: str) -> str:
    """The only form of a credential ever displayed: its last four characters."""
    return "…" + secret[-4:] if len(secret) > 8 else "…"
