"""HEALPix sets' metadata: fields read from file names, set names per source redshift, pairs.

:func:`parse_file_name` reads a map's fields (``zs``, ``seed``, any other) from its name by
its set's pattern (``kappa_zs{zs}_s{seed}.fits``); :func:`group_name` names one source
redshift of a set (``bigbox/zs=1``); :class:`Comparison` is a pair of such sets whose
covariances are divided. Which files form which set, and which pairs a run compares, is
planned in :mod:`._inputs`; the config's shape is in :mod:`._config`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from lensing_ssc.core.base.exceptions import ConfigError
from lensing_ssc.pipelines._config import pattern_fields

__all__ = ["Comparison", "group_name", "parse_file_name"]


def group_name(suite: str, z_source: float | None) -> str:
    """The results' name of one source redshift of a set: ``bigbox/zs=1`` (``bigbox`` alone
    when the set has no ``zs``).

    Example:
        >>> group_name("bigbox", 1.5), group_name("healpix", None)
        ('bigbox/zs=1.5', 'healpix')
    """
    return suite if z_source is None else f"{suite}/zs={z_source:g}"


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    names = pattern_fields(pattern)
    parts = re.split(r"\{[^{}]*\}", pattern)
    body = re.escape(parts[0])
    for name, literal in zip(names, parts[1:], strict=True):
        body += f"(?P<{name}>.+?)" + re.escape(literal)
    return re.compile(f"(?:^|/){body}$")


def _field_value(name: str, text: str) -> int | float | str:
    """A field read from a file name: ``zs`` a number, ``seed`` an integer, others as they read."""
    if name == "seed":
        return int(text)
    if name == "zs":
        value = float(text)
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"zs must be a positive number, got {text!r}")
        return value
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            continue
    return text


def parse_file_name(path: str, pattern: str, *, where: str = "pipeline.healpix") -> dict[str, Any]:
    """The fields of ``path``'s name read by ``pattern`` (``kappa_zs{zs}_s{seed}.fits``).

    The pattern matches the file's name, or the end of its path when it holds a ``/``.
    ``zs`` is read as a number, ``seed`` as an integer, other fields as an integer, a number
    or text, whichever reads.

    Example:
        >>> parse_file_name("maps/kappa_zs1.5_s3.fits", "kappa_zs{zs}_s{seed}.fits")
        {'zs': 1.5, 'seed': 3}

    Raises:
        ConfigError: the name does not match the pattern, or a field does not read.
    """
    match = _pattern_regex(pattern).search(path)
    if match is None:
        raise ConfigError(
            f"file {path!r} does not match the pattern {pattern!r} of {where}",
            value=path,
            hint=f"rename the file, or fix {where}.pattern or its maps so they agree",
            field=f"{where}.pattern",
        )
    fields: dict[str, Any] = {}
    for name, text in match.groupdict().items():
        try:
            fields[name] = _field_value(name, text)
        except ValueError as exc:
            raise ConfigError(
                f"file {path!r}: field {{{name}}} of the pattern {pattern!r} reads {text!r}, "
                f"not {'an integer' if name == 'seed' else 'a positive number'}",
                value=path,
                hint=f"zs is the source redshift (1.0), seed the realisation (7): fix {where}",
                field=f"{where}.pattern",
            ) from exc
    return fields


@dataclass(frozen=True)
class Comparison:
    """Two sets of the results whose covariances are divided: ``numerator`` / ``denominator``.

    ``path`` is where the ratios go under ``ssc/`` in the results file: empty for the
    synthetic pair (``ssc/cl/ngal=0``, as before sets were named), else
    ``bigbox~tiled/zs=1``.
    """

    path: str
    numerator: str
    denominator: str
    z_source: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "numerator": self.numerator,
            "denominator": self.denominator,
            "z_source": self.z_source,
        }
