from __future__ import annotations

from whitenoise.storage import CompressedManifestStaticFilesStorage


class StaticStorage(CompressedManifestStaticFilesStorage):
    """Hashed names after `collectstatic`; plain names on a checkout that never ran it."""

    manifest_strict = False

    def stored_name(self, name: str) -> str:
        # No manifest (collectstatic never ran): serve the plain name, which
        # whitenoise finds through the app and project static folders.
        if not self.hashed_files:
            return name
        return super().stored_name(name)
