"""The array namespaces every statistics test runs on: NumPy, and array-api-strict.

``xp`` is parametrized: each test taking it runs once on NumPy and once on
``array_api_strict`` with its arrays on a second, non-default device, so a call the array
API does not define, or a table left on the default device, fails the test. ``on(xp,
values)`` puts host values on the test's namespace and device, ``host(values)`` brings
results back.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from lensing_ssc.analysis._arrays import clear_constants, namespace, to_numpy

try:  # the dev extra has it; a plain install runs the NumPy half of each test
    import array_api_strict
except ModuleNotFoundError:  # pragma: no cover - depends on the install
    array_api_strict = None

STRICT_DEVICE = None if array_api_strict is None else array_api_strict.Device("device1")
"""array_api_strict's second device: mixing it with the default one raises."""


@pytest.fixture(params=["numpy", "array_api_strict"])
def xp(request: pytest.FixtureRequest) -> Any:
    """The array namespace of the test: NumPy's, or array_api_strict's."""
    if request.param == "numpy":
        return namespace(np.empty(0))
    if array_api_strict is None:
        pytest.skip("array-api-strict is not installed (it is in the dev extra)")
    return array_api_strict


@pytest.fixture(autouse=True)
def _fresh_device_tables() -> Iterator[None]:
    """Every test starts without device copies of the estimators' tables."""
    clear_constants()
    yield
    clear_constants()


@pytest.fixture(autouse=True)
def _no_data_dependent_shapes() -> Iterator[None]:
    """array_api_strict refuses boolean-mask indexing and nonzero-like functions: an array
    whose shape depends on its values makes a GPU's host wait for it (CuPy reads the count
    back), so the estimators use neither."""
    if array_api_strict is None:
        yield
        return
    with array_api_strict.ArrayAPIStrictFlags(boolean_indexing=False, data_dependent_shapes=False):
        yield


def on(xp: Any, values: Any) -> Any:
    """``values`` (host numbers) as a float64 array of ``xp`` (array_api_strict: device1)."""
    host_values = np.asarray(values, dtype=np.float64)
    if array_api_strict is not None and xp is array_api_strict:
        return array_api_strict.asarray(host_values, device=STRICT_DEVICE)
    return host_values


def host(values: Any) -> np.ndarray:
    """An array of any namespace as a NumPy array."""
    return np.asarray(to_numpy(values))


def assert_close(actual: Any, expected: Any, *, rtol: float = 1e-12, name: str = "") -> None:
    """``actual`` equals ``expected`` to ``rtol`` of the largest value (sums in another order).

    Near-empty bins and sign changes (V2) make element-wise relative errors meaningless;
    relative to the statistic's own scale they are ~1e-15.
    """
    got, want = host(actual), np.asarray(expected)
    assert got.shape == want.shape, (name, got.shape, want.shape)
    scale = float(np.abs(want).max()) if want.size else 0.0
    np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * scale, err_msg=name)
