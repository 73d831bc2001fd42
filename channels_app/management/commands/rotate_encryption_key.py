from __future__ import annotations

from django.core.management.base import BaseCommand

from channels_app import crypto
from channels_app.channels import rotate_encryption


class Command(BaseCommand):
    help = (
        "Re-encrypt every upstream key under the first key of TOKENHUB_ENCRYPTION_KEYS. "
        "Put the new key first, keep the old one listed, run this, then drop the old key."
    )

    def handle(self, *args, **options):
        rotated = rotate_encryption()
        self.stdout.write(f"re-encrypted {rotated} upstream key(s) under {crypto.current_key_id()}")
