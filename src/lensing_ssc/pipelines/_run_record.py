"""The run directory's pipeline file: what a run's results depend on, and refusing to mix.

:func:`run_record` lists what the results depend on (the package version, the pipeline
section but for where and how fast it runs, the statistics settings with the preset
resolved, the maps); its digest is the run's fingerprint. :func:`claim_run_dir` writes both
to ``pipeline.json`` and, when resuming a directory whose recorded run differs, refuses
with an error that names each setting that changed, old → new
(``pipeline.seed 42 → 7``; a statistics setting as the run used it, the preset's value where
it was unset), so the user can tell a typo from an intended change. A file from
a version that recorded only the fingerprint gets the same refusal, without the list.

Where the file lives is :class:`~lensing_ssc.processing.managers.RunDir`'s; the pipeline
itself is :mod:`.patch_statistics`.
"""

from __future__ import annotations

import errno
import json
from collections.abc import Mapping, Sequence
from typing import Any

from lensing_ssc._version import __version__
from lensing_ssc.core.base.exceptions import ConfigError
from lensing_ssc.core.io import atomic_write, hash_bytes
from lensing_ssc.pipelines._config import PipelineSection
from lensing_ssc.pipelines._map_recipes import MapTask
from lensing_ssc.processing.managers import RunDir

__all__ = [
    "changed_settings",
    "claim_run_dir",
    "flat_settings",
    "leaf_changes",
    "listed_changes",
    "run_record",
    "version_change",
]

# Where and how fast a run computes, not what: a resumed run may change them.
_NOT_RECORDED = frozenset(
    {
        "executor",
        "device",
        "scheduler",
        "workers",
        "retries",
        "results_format",
        "figures",
        "no_workers_timeout",
        # The resampling settings change only the merge, which every run does again.
        "compare_resamples",
        "compare_confidence",
        # Its own stage and journal: turning it on or off changes no other result.
        "tomography",
    }
)
_CHANGES_SHOWN = 6


def run_record(section: PipelineSection, maps: Sequence[MapTask]) -> dict[str, Any]:
    """Everything the results depend on (not where or how fast they are computed)."""
    return {
        "version": __version__,
        "pipeline": section.model_dump(mode="json", exclude=set(_NOT_RECORDED)),
        "settings": section.statistics_settings().to_dict(),
        "maps": [[task.map_id, repr(task.source.cache_key())] for task in maps],
    }


def _fingerprint(record: Mapping[str, Any]) -> str:
    return hash_bytes(json.dumps(record, sort_keys=True).encode())


def flat_settings(value: Mapping[str, Any]) -> dict[str, Any]:
    """Nested settings as one mapping of dotted names to values.

    Example:
        >>> flat_settings({"pipeline": {"seed": 42, "synthetic": {"n_large_fields": 8}}})
        {'pipeline.seed': 42, 'pipeline.synthetic.n_large_fields': 8}
    """
    return _flat(value, "", {})


def _flat(value: Any, path: str, into: dict[str, Any]) -> dict[str, Any]:
    if isinstance(value, Mapping) and value:
        for key, item in value.items():
            _flat(item, f"{path}.{key}" if path else str(key), into)
    else:
        into[path] = value
    return into


def leaf_changes(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    """``name old → new`` for each dotted name whose value differs, sorted by name.

    Example:
        >>> leaf_changes({"pipeline.seed": 42}, {"pipeline.seed": 7, "pipeline.input": "x"})
        ['pipeline.input "unset" → "x"', 'pipeline.seed 42 → 7']
    """
    changes = []
    for name in sorted(before.keys() | after.keys()):
        was, now = before.get(name, "unset"), after.get(name, "unset")
        if was != now:
            changes.append(f"{name} {json.dumps(was)} → {json.dumps(now)}")
    return changes


def version_change(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """The package version change between two records, if any, as a one-item list."""
    if old.get("version") == new.get("version"):
        return []
    return [f"lensing_ssc version {old.get('version')} → {new.get('version')}"]


def listed_changes(changes: Sequence[str]) -> str:
    """The first few changes, joined, and how many more there are.

    Example:
        >>> listed_changes([f"a.{i} 0 → 1" for i in range(8)])
        'a.0 0 → 1; a.1 0 → 1; a.2 0 → 1; a.3 0 → 1; a.4 0 → 1; a.5 0 → 1; and 2 more'
    """
    shown = list(changes[:_CHANGES_SHOWN])
    if len(changes) > len(shown):
        shown.append(f"and {len(changes) - len(shown)} more")
    return "; ".join(shown)


def changed_settings(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """``name old → new`` for each recorded setting that differs, in a stable order.

    Example:
        >>> changed_settings({"pipeline": {"seed": 42}}, {"pipeline": {"seed": 7}})
        ['pipeline.seed 42 → 7']
    """
    before = flat_settings({"pipeline": old.get("pipeline", {})})
    after = flat_settings({"pipeline": new.get("pipeline", {})})
    # A statistics setting is shown as the run used it (the preset's value where unset).
    was_used, now_used = old.get("settings", {}), new.get("settings", {})
    for name in was_used.keys() | now_used.keys():
        was, now = was_used.get(name, "unset"), now_used.get(name, "unset")
        if was != now:
            key = f"pipeline.statistics.{'names' if name == 'statistics' else name}"
            before[key], after[key] = was, now
    changes = version_change(old, new) + leaf_changes(before, after)
    old_maps, new_maps = old.get("maps", []), new.get("maps", [])
    if old_maps != new_maps:
        changes.append(f"the input maps ({len(old_maps)} → {len(new_maps)}, or their files)")
    return changes


def _refusal(run_dir: str, recorded: Mapping[str, Any], record: Mapping[str, Any]) -> str:
    message = f"run directory {run_dir!r} holds a run with other inputs or settings"
    changes = changed_settings(recorded, record) if "pipeline" in recorded else []
    if not changes:
        return f"{message} (or another package version); resuming it would mix their results"
    return f"{message}: {listed_changes(changes)}; resuming it would mix their results"


def claim_run_dir(layout: RunDir, record: Mapping[str, Any], *, resume: bool) -> None:
    """Write ``record`` and its fingerprint to the pipeline file, after checking the old one.

    Raises:
        ConfigError: resuming a directory whose recorded run differs, naming each change;
            the directory cannot be made or written.
    """
    run_dir, marker = layout.path, layout.pipeline_file
    fingerprint = _fingerprint(record)
    if resume and marker.exists():
        try:
            recorded = json.loads(marker.read_text())
        except (OSError, ValueError):
            recorded = None
        if not isinstance(recorded, dict):
            recorded = {}
        if recorded.get("fingerprint") != fingerprint:
            raise ConfigError(
                _refusal(str(run_dir), recorded.get("record", {}), record),
                value=str(run_dir),
                hint="pass --fresh to discard the earlier run, or choose another --run-dir",
                field="run_dir",
            )
    body = {"fingerprint": fingerprint, "lensing_ssc_version": __version__, "record": record}
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write(marker, (json.dumps(body, indent=2) + "\n").encode())
    except OSError as exc:
        full = exc.errno in (errno.ENOSPC, errno.EDQUOT)
        raise ConfigError(
            f"cannot use {str(run_dir)!r} as the run directory: {exc.strerror or exc}",
            value=str(run_dir),
            hint="free disk space (a run's cache directory may be deleted: it is rebuilt as "
            "needed), or choose another --run-dir"
            if full
            else "choose a writable directory with --run-dir (or run_dir in the config)",
            field="run_dir",
        ) from exc
