"""The public surface of lensing_ssc.analysis."""

from __future__ import annotations

import lensing_ssc.analysis as analysis
import lensing_ssc.analysis.statistics as statistics


def test_all_lists_exactly_the_sorted_public_names() -> None:
    """__all__ is sorted (constants, classes, functions), names resolve, nothing else is public."""

    def isort_style(name: str) -> tuple[bool, bool, str]:
        return (not name.isupper(), not name[0].isupper(), name)

    for module in (analysis, statistics):
        assert module.__all__ == sorted(module.__all__, key=isort_style)
        assert all(getattr(module, name) is not None for name in module.__all__)
        public = {
            name
            for name, value in vars(module).items()
            if not name.startswith("_")
            and getattr(value, "__module__", "").startswith("lensing_ssc")
        }
        assert public <= set(module.__all__)


def test_statistic_names_cover_every_result_kind() -> None:
    """The statistic names are the keys' first components in compute_patch_statistics."""
    assert set(analysis.STATISTIC_NAMES) == {
        "cl",
        "bispectrum_equilateral",
        "bispectrum_isosceles",
        "bispectrum_squeezed",
        "pdf",
        "peaks",
        "minima",
        "v0",
        "v1",
        "v2",
    }
