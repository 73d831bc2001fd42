"""Helpers shared by the guarantees suite (kept out of conftest.py, which other suites share)."""

from __future__ import annotations

import os

import pytest

SOAK = bool(os.environ.get("TOKENHUB_SOAK"))


def soak(test):
    """A long variant of a guarantee: marked `soak`, and run only with TOKENHUB_SOAK=1 (never in `make test`)."""
    skip = pytest.mark.skipif(not SOAK, reason="a soak test: set TOKENHUB_SOAK=1 to run it")
    return pytest.mark.soak(skip(test))
