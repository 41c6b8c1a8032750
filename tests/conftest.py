"""Fixtures shared by the whole suite."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the developer's LENSING_SSC_* variables from changing what tests see."""
    import os

    for name in list(os.environ):
        if name.startswith("LENSING_SSC_"):
            monkeypatch.delenv(name)
