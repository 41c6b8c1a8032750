"""The light-cone run directory's record: what its shells and its κ maps each depend on.

``lightcone.json`` holds one record per stage, each with its digest:

* ``shells`` — what the shells are made of: the package version, the cosmology, the
  realisations, where the shells come from (the catalogue, or the lognormal edges and
  nside, or the shell maps on disk with their sizes and times), not how fast they are made
  (``shells.per_task``, ``particles.chunk_size``);
* ``kappa`` — what the κ maps are made of besides the shells: the ``kappa`` settings
  (sources, n(z) and their tables' values, nside, dtype). Its digest covers the shells'
  too, and is written into every κ map's header (``KAPPAFP``).

:func:`claim_lightcone` compares a resumed run's records with the directory's, under the
run lock, before any work. Other shell settings are refused, naming each change old → new,
as the patch-statistics run refuses (:mod:`._run_record`): ``--fresh`` makes everything
again. Other κ settings with the same shells are refused too, because the maps may already
have been read by a later step: ``--fresh-kappa`` keeps the shells and makes only the κ
maps again, and the run says which settings changed. Whatever a claim gives up (journals,
κ maps) is removed *before* the new record is written, so a run killed in between never
finds a record that vouches for outputs of other settings. A record written by an earlier
version (one digest of the whole section) is taken when the settings are unchanged (the
shells kept, the κ maps made again to record their digest), else refused as unreadable
for changes.

The orchestration is :mod:`lensing_ssc.pipelines.lightcone`; the guide's "Resuming" section
(``docs/kappa.md``) is the user's view.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lensing_ssc._version import __version__
from lensing_ssc.analysis.born import SourceDistribution
from lensing_ssc.analysis.healpix_files import read_healpix_header
from lensing_ssc.core.base.exceptions import ConfigError
from lensing_ssc.core.io import atomic_write, hash_bytes
from lensing_ssc.pipelines._lightcone_config import LightconeSection
from lensing_ssc.pipelines._lightcone_plan import LightconePlan
from lensing_ssc.pipelines._run_record import (
    flat_settings,
    leaf_changes,
    listed_changes,
    version_change,
)
from lensing_ssc.processing.managers import RunDir

__all__ = [
    "KAPPA_CARD",
    "LIGHTCONE_FILE",
    "LightconeClaim",
    "changed_settings",
    "check_kappa_maps",
    "claim_lightcone",
    "kappa_record",
    "shells_record",
]

LIGHTCONE_FILE = "lightcone.json"
"""The run directory's record of what its shells and κ maps depend on."""

KAPPA_CARD = "KAPPAFP"
"""The κ maps' header card holding the digest of the κ record they were made under."""

_KAPPA_GLOBS = ("kappa_zs*_s*.fits", "kappa_nz*_s*.fits")


def _digest(record: Mapping[str, Any]) -> str:
    # blake2b by name: the default algorithm depends on whether xxhash is installed.
    return hash_bytes(json.dumps(record, sort_keys=True).encode(), algorithm="blake2b")[8:]


def _legacy_fingerprint(section: LightconeSection) -> str:
    """The single digest of the whole section that earlier versions recorded."""
    body = {
        "version": __version__,
        "lightcone": section.model_dump(mode="json", exclude={"statistics"}),
    }
    return hash_bytes(json.dumps(body, sort_keys=True).encode())


def shells_record(section: LightconeSection, plan: LightconePlan) -> dict[str, Any]:
    """Everything the shells depend on (not how fast they are made)."""
    shells = section.shells.model_dump(mode="json", exclude={"per_task"})
    if section.shells.source == "maps":
        for unused in ("nside", "z_edges", "chi_edges", "particles"):
            shells.pop(unused)
    else:
        shells.pop("maps")
        if shells["particles"] is not None:
            shells["particles"].pop("chunk_size")
    record: dict[str, Any] = {
        "version": __version__,
        "lightcone": {
            "cosmology": section.cosmology.model_dump(mode="json"),
            "seeds": list(section.seeds),
            "shells": shells,
        },
    }
    if section.shells.source == "maps":
        files = [f for shell_set in plan.shell_sets.values() for f in shell_set.files]
        record["shell_maps"] = [[f, *_stamp(f)] for f in files]
    return record


def _stamp(path: str) -> tuple[int, int]:
    info = os.stat(path)
    return info.st_size, info.st_mtime_ns


def kappa_record(section: LightconeSection, plan: LightconePlan) -> dict[str, Any]:
    """Everything the κ maps depend on besides the shells: the ``kappa`` settings and the
    values of n(z) tables read from files."""
    tables = {}
    for task in plan.kappa_tasks:
        source = task.source
        if isinstance(source, SourceDistribution) and section.kappa.nz[source.name].file:
            values = np.stack([np.asarray(source.z), np.asarray(source.n)])
            tables[source.name] = hash_bytes(values.tobytes(), algorithm="blake2b")[8:]
    return {
        "version": __version__,
        "lightcone": {"kappa": section.kappa.model_dump(mode="json")},
        "nz_tables": tables,
    }


def changed_settings(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """``name old → new`` for each recorded setting that differs, in a stable order.

    Example:
        >>> old = {"lightcone": {"kappa": {"z_sources": [1.0]}}}
        >>> changed_settings(old, {"lightcone": {"kappa": {"z_sources": [0.5, 1.0]}}})
        ['lightcone.kappa.z_sources [1.0] → [0.5, 1.0]']
    """
    before = flat_settings({"lightcone": old.get("lightcone", {})})
    after = flat_settings({"lightcone": new.get("lightcone", {})})
    changes = version_change(old, new) + leaf_changes(before, after)
    was_maps, now_maps = old.get("shell_maps", []), new.get("shell_maps", [])
    if was_maps != now_maps:
        changes.append(
            f"the shell maps on disk ({len(was_maps)} → {len(now_maps)} files, or their contents)"
        )
    was_tables, now_tables = old.get("nz_tables", {}), new.get("nz_tables", {})
    for name in sorted(was_tables.keys() & now_tables.keys()):
        if was_tables[name] != now_tables[name]:
            changes.append(f"the values in the n(z) table of lightcone.kappa.nz.{name}.file")
    return changes


@dataclass(frozen=True)
class LightconeClaim:
    """What claiming the run directory decided.

    Attributes:
        kappa_fingerprint: The κ record's digest, for the κ maps' headers.
        notes: What the run should tell its user: κ settings that changed (their maps are
            made again from the kept shells), an earlier version's record taken.
    """

    kappa_fingerprint: str
    notes: tuple[str, ...]


def _refuse(run_dir: Path, message: str, hint: str) -> ConfigError:
    return ConfigError(
        f"run directory {str(run_dir)!r} {message}", value=str(run_dir), hint=hint, field="run_dir"
    )


def _read(marker: Path) -> dict[str, Any] | None:
    try:
        recorded = json.loads(marker.read_text())
    except (OSError, ValueError):
        return None
    return recorded if isinstance(recorded, dict) else None


def _entry(recorded: Mapping[str, Any], stage: str) -> dict[str, Any] | None:
    entry = recorded.get(stage)
    return entry if isinstance(entry, dict) else None


def _discard(layout: RunDir, kappa_dir: Path, *, shells: bool) -> None:
    """Remove the κ journal and maps (and the shells' journal with ``shells``)."""
    names = ["shells", "kappa"] if shells else ["kappa"]
    for name in names:
        layout.journal(name).unlink(missing_ok=True)
    for pattern in _KAPPA_GLOBS:
        for path in kappa_dir.glob(pattern):
            path.unlink(missing_ok=True)


def claim_lightcone(
    layout: RunDir,
    section: LightconeSection,
    plan: LightconePlan,
    *,
    resume: bool,
    fresh_kappa: bool,
    kappa: bool,
) -> LightconeClaim:
    """Check the directory's records against ``section``, give up what they no longer
    vouch for, and write the new ones. Call it holding the run lock.

    Args:
        layout: The run directory.
        resume: ``False`` gives up everything (``--fresh``).
        fresh_kappa: Give up the κ maps and their journal, keeping the shells.
        kappa: The κ stage runs (its record is checked and written); else the κ record
            stays as it was.

    Raises:
        ConfigError: resuming with other shell settings, or other κ settings without
            ``fresh_kappa``, naming each change; an earlier version's record of other
            settings; the directory cannot be written.
    """
    run_dir, marker = layout.path, layout.path / LIGHTCONE_FILE
    shells = shells_record(section, plan)
    shells_fp = _digest(shells)
    wanted = kappa_record(section, plan)
    kappa_fp = _digest({"shells": shells_fp, "kappa": wanted})
    found = resume and marker.exists()
    recorded = _read(marker) if found else None
    if found and recorded is None:
        raise _refuse(
            run_dir,
            f"has a {LIGHTCONE_FILE} that cannot be read, so what its shells and κ maps were "
            "made of is unknown",
            "pass --fresh to make them again, or choose another --run-dir",
        )
    notes: list[str] = []
    discard_kappa = not resume or fresh_kappa
    kept_kappa: dict[str, Any] | None = None
    if recorded is not None and "shells" not in recorded:
        if recorded.get("fingerprint") != _legacy_fingerprint(section):
            raise _refuse(
                run_dir,
                "holds shells or κ maps of other lightcone settings (or another package "
                f"version), recorded by an earlier version as one digest in {LIGHTCONE_FILE}, "
                "so which settings changed cannot be told; resuming would mix them",
                "pass --fresh to make them again, or choose another --run-dir",
            )
        discard_kappa = True
        notes.append(
            f"{LIGHTCONE_FILE} of an earlier version: the settings are unchanged, so the "
            "shells are kept; the κ maps are made again, recording their settings"
        )
    elif recorded is not None:
        old_shells = _entry(recorded, "shells") or {}
        if old_shells.get("fingerprint") != shells_fp:
            changes = changed_settings(old_shells.get("record", {}), shells)
            raise _refuse(
                run_dir,
                f"holds shells of other settings: {listed_changes(changes) or 'unknown'}; "
                "resuming would mix them",
                "pass --fresh to make the shells and κ maps again, or choose another --run-dir",
            )
        old_kappa = _entry(recorded, "kappa")
        if not kappa:
            kept_kappa = old_kappa
        elif old_kappa is None:
            discard_kappa = True  # no record vouches for any κ map here
        elif old_kappa.get("fingerprint") != kappa_fp:
            changes = changed_settings(old_kappa.get("record", {}), wanted)
            listed = listed_changes(changes) or "unknown"
            if not fresh_kappa:
                raise _refuse(
                    run_dir,
                    f"holds κ maps of other settings: {listed}; the shells are the same, and "
                    "making the maps again in place would replace maps a later step may "
                    "have read",
                    "pass --fresh-kappa to make only the κ maps again, from the kept shells; "
                    "--fresh makes the shells again too; or choose another --run-dir",
                )
            notes.append(
                f"κ settings changed: {listed}; the κ maps are made again from the kept shells"
            )
        elif fresh_kappa:
            notes.append("the κ maps are made again from the kept shells (--fresh-kappa)")
    if discard_kappa:
        kept_kappa = None
    body: dict[str, Any] = {
        "lensing_ssc_version": __version__,
        "shells": {"fingerprint": shells_fp, "record": shells},
    }
    if kappa:
        body["kappa"] = {"fingerprint": kappa_fp, "record": wanted}
    elif kept_kappa is not None:
        body["kappa"] = kept_kappa
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        if discard_kappa:
            _discard(layout, plan.kappa_dir, shells=not resume)
        atomic_write(marker, (json.dumps(body, indent=2) + "\n").encode())
    except OSError as exc:
        raise _refuse(
            run_dir,
            f"cannot be used as the run directory: {exc.strerror or exc}",
            "choose a writable directory with --run-dir (or run_dir in the config)",
        ) from exc
    return LightconeClaim(kappa_fp, tuple(notes))


def check_kappa_maps(run_dir: Path, files: Sequence[str], fingerprint: str) -> None:
    """Refuse κ maps whose header names other κ settings than the run's.

    Raises:
        ConfigError: a map's ``KAPPAFP`` card is missing or differs, naming the file.
    """
    for path in files:
        card = read_healpix_header(path).get(KAPPA_CARD)
        if card != fingerprint:
            raise _refuse(
                run_dir,
                f"holds the κ map {Path(path).name!r} made under other κ settings "
                f"({KAPPA_CARD} {card!r} in its header, {fingerprint!r} in {LIGHTCONE_FILE}); "
                "it would be taken for this run's",
                "pass --fresh-kappa to make the κ maps again from the kept shells",
            )
