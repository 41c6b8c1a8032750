"""Field plans: what fields of one size and spectrum share, packed, handed over and kept."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from lensing_ssc.analysis import HalofitConvergenceSpectrum, gaussian_field, lognormal_field
from lensing_ssc.analysis import fields as fields_module
from lensing_ssc.analysis.fields import FieldPlan, prepare_field
from lensing_ssc.core.base.exceptions import AnalysisError

N, PIXEL = 64, 2.0


@pytest.fixture(autouse=True)
def _no_kept_plans() -> Iterator[None]:
    """Each test starts, and leaves, with no plan kept in this process."""
    fields_module._plans.clear()
    yield
    fields_module._plans.clear()


def _refuse(*args: object) -> None:
    raise AssertionError("the spectrum was evaluated")


@pytest.mark.parametrize("shift", [None, 0.03])
def test_a_plan_packed_and_kept_elsewhere_draws_the_same_fields_without_the_spectrum(
    shift: float | None, spectrum: HalofitConvergenceSpectrum, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A plan packed into one array and kept in a fresh cache draws byte-identical fields,
    Gaussian and lognormal, without evaluating the spectrum again."""

    def draw() -> np.ndarray:
        rng = np.random.default_rng(7)
        if shift is None:
            return gaussian_field(N, PIXEL, spectrum, rng, n_fields=3)
        return lognormal_field(N, PIXEL, spectrum, rng, shift=shift, n_fields=3)

    packed = prepare_field(N, PIXEL, spectrum, shift=shift).packed()
    expected = draw()
    fields_module._plans.clear()  # as in another process
    monkeypatch.setattr(fields_module, "spectrum_on_grid", _refuse)
    plan = prepare_field(N, PIXEL, spectrum, shift=shift, plan=FieldPlan.unpack(packed, N))
    assert (plan.variance_g is None) == (shift is None)
    assert draw().tobytes() == expected.tobytes()


def test_a_plan_keeps_no_writable_view_of_what_it_was_unpacked_from() -> None:
    """An unpacked plan's amplitude is read-only: a kept plan cannot be changed by a caller."""
    packed = prepare_field(N, PIXEL, HalofitConvergenceSpectrum()).packed()
    plan = FieldPlan.unpack(packed, N)
    assert plan.amplitude.shape == (N, N // 2 + 1)
    assert not plan.amplitude.flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        plan.amplitude[0, 0] = 1.0


def test_a_plan_of_another_size_or_kind_is_refused_by_name(
    spectrum: HalofitConvergenceSpectrum,
) -> None:
    """Keeping a 64² plan for 128² fields, or a Gaussian plan for lognormal ones, is an
    AnalysisError naming the plan's shape; nothing is kept."""
    gaussian = prepare_field(N, PIXEL, spectrum)
    with pytest.raises(AnalysisError, match=r"Gaussian field plan of shape \(64, 33\)") as error:
        prepare_field(2 * N, PIXEL, spectrum, plan=gaussian)
    assert error.value.value == (64, 33)
    with pytest.raises(AnalysisError, match="cannot serve lognormal fields of 64² pixels"):
        prepare_field(N, PIXEL, spectrum, shift=0.03, plan=gaussian)
    assert list(fields_module._plans) == [(N, PIXEL, spectrum, None)]


def test_a_packed_array_of_the_wrong_size_is_refused_by_name() -> None:
    """Unpacking an array that is no packed plan of that size names both sizes."""
    packed = prepare_field(N, PIXEL, HalofitConvergenceSpectrum()).packed()
    with pytest.raises(
        AnalysisError,
        match=r"128² pixels is 8321 float64 values, got float64 of "
        r"shape \(2113,\)",
    ):
        FieldPlan.unpack(packed, 2 * N)


def test_a_process_keeps_at_most_sixteen_plans(spectrum: HalofitConvergenceSpectrum) -> None:
    """Plans of many sizes do not pile up: the oldest go once sixteen are kept."""
    sizes = range(32, 32 + 2 * 20, 2)
    for n in sizes:
        prepare_field(n, PIXEL, spectrum)
    kept = [key[0] for key in fields_module._plans]
    assert kept == list(sizes)[-16:]
