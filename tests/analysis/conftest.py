"""Fixtures shared by the analysis tests: a convergence spectrum, seeded generators, and a
recorder of what crosses between the host and array_api_strict's devices."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

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


@dataclass
class DeviceTraffic:
    """What crossed between the host and array_api_strict's arrays while it listened.

    ``reads``: a value of a device array read on the host (``float``, ``int``, ``bool``,
    ``operator.index``) or a whole array exported by DLPack (how ``to_numpy`` reads one);
    on a GPU each waits for all the work queued before it. ``copies``: host data copied to
    a device by ``asarray``. Each entry names the file and line that caused it.
    """

    reads: list[str] = field(default_factory=list)
    copies: list[str] = field(default_factory=list)

    def clear(self) -> None:
        """Forget what was recorded so far."""
        self.reads.clear()
        self.copies.clear()


def _caller() -> str:
    frame = sys._getframe(2)
    return f"{frame.f_code.co_filename.rsplit('/', 1)[-1]}:{frame.f_lineno}"


@pytest.fixture
def device_traffic(monkeypatch: pytest.MonkeyPatch) -> DeviceTraffic:
    """Record reads from and copies to array_api_strict's devices during the test."""
    strict = pytest.importorskip(
        "array_api_strict", reason="array-api-strict stands in for a GPU; the dev extra has it"
    )
    array_type = type(strict.asarray(0.0))
    traffic = DeviceTraffic()

    def reading(original: Callable[..., Any]) -> Callable[..., Any]:
        def read(self: Any, *args: Any, **kwargs: Any) -> Any:
            traffic.reads.append(_caller())
            return original(self, *args, **kwargs)

        return read

    for name in ("__float__", "__int__", "__bool__", "__index__", "__complex__", "__dlpack__"):
        monkeypatch.setattr(array_type, name, reading(getattr(array_type, name)))
    asarray = strict.asarray

    def copying(obj: Any, *args: Any, **kwargs: Any) -> Any:
        if not isinstance(obj, array_type):
            traffic.copies.append(_caller())
        return asarray(obj, *args, **kwargs)

    monkeypatch.setattr(strict, "asarray", copying)
    return traffic
