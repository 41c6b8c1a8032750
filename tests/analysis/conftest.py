"""Fixtures shared by the analysis tests: a convergence spectrum and seeded generators."""

from __future__ import annotations

import numpy as np
import pytest

from lensing_ssc.analysis import HalofitConvergenceSpectrum


@pytest.fixture(scope="session")
def spectrum() -> HalofitConvergenceSpectrum:
    """The default analytic κ spectrum (z_s = 1), built once per session."""
    return HalofitConvergenceSpectrum()


@pytest.fixture
def rng() -> np.random.Generator:
    """A generator with a fixed seed, fresh for every test."""
    return np.random.default_rng(20240611)
