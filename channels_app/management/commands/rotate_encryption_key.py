from __future__ import annotations

from channels_app import crypto
from channels_app.channels import rotate_encryption
from tokenhub.lib.commands import OperatorCommand
from tokenhub.lib.progress import Progress


class Command(OperatorCommand):
    help = (
        "Re-encrypt every upstream key under the first key of TOKENHUB_ENCRYPTION_KEYS. "
        "Put the new key first, keep the old one listed, run this, then drop the old key."
    )

    def handle(self, *args, **options):
        with Progress(self.stderr, "keys") as progress:
            rotated = rotate_encryption(progress=progress.update)
        self.stdout.write(f"re-encrypted {rotated} upstream key(s) under {crypto.current_key_id()}")
