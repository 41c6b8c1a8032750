"""ManagerContext.map: which journal each call gets, so that no call reads another's results."""

from __future__ import annotations

import functools
import threading
from pathlib import Path
from typing import Any

import pytest

from lensing_ssc.core.base.exceptions import ConfigError
from lensing_ssc.core.config import ProcessingConfig
from lensing_ssc.processing.managers import ManagerContext, RunDir


def quiet_config(run_dir: Path) -> ProcessingConfig:
    """A config writing under ``run_dir`` with no console output."""
    return ProcessingConfig(
        run_dir=run_dir, logging={"console": False}, progress={"enabled": False}
    )


def square(x: int) -> int:
    return x * x


def cube(x: int) -> int:
    return x * x * x


def scaled(factor: int, x: int) -> int:
    return factor * x


def make_adder(amount: int) -> Any:
    def add(x: int) -> int:
        return x + amount

    return add


class Multiplier:
    """A callable object: what it computes depends on its state."""

    def __init__(self, factor: int) -> None:
        self.factor = factor

    def __call__(self, x: int) -> int:
        return self.factor * x


def journals(run_dir: Path) -> list[str]:
    """The names of the journal files under ``run_dir/tasks``."""
    return sorted(path.name for path in (run_dir / "tasks").glob("*.journal"))


def test_two_lambdas_in_one_run_get_their_own_results(tmp_path: Path) -> None:
    """A second lambda is run, not answered with the first lambda's journalled results."""
    with ManagerContext(config=quiet_config(tmp_path / "run"), stop_signals=()) as ctx:
        first = ctx.map(lambda x: x + 1, [1, 2])
        second = ctx.map(lambda x: x * 10, [1, 2])
    assert first.results == [2, 3]
    assert (second.results, second.skipped) == ([10, 20], 0)
    assert len(journals(tmp_path / "run")) == 2


def test_partials_of_one_function_get_their_own_results(tmp_path: Path) -> None:
    """partial(scaled, 2) and partial(scaled, 3) are two computations with two journals."""
    with ManagerContext(config=quiet_config(tmp_path / "run"), stop_signals=()) as ctx:
        doubled = ctx.map(functools.partial(scaled, 2), [1, 2])
        tripled = ctx.map(functools.partial(scaled, 3), [1, 2])
    assert (doubled.results, tripled.results) == ([2, 4], [3, 6])
    assert len(journals(tmp_path / "run")) == 2


def test_closures_and_callable_objects_are_told_apart_by_what_they_capture(
    tmp_path: Path,
) -> None:
    """Closures of one factory, or objects of one class, with other state, are not mixed."""
    with ManagerContext(config=quiet_config(tmp_path / "run"), stop_signals=()) as ctx:
        plus_one = ctx.map(make_adder(1), [1, 2]).results
        plus_two = ctx.map(make_adder(2), [1, 2]).results
        times_two = ctx.map(Multiplier(2), [1, 2]).results
        times_three = ctx.map(Multiplier(3), [1, 2]).results
    assert (plus_one, plus_two) == ([2, 3], [3, 4])
    assert (times_two, times_three) == ([2, 4], [3, 6])


def test_the_same_lambda_resumes_its_own_journal_in_the_next_run(tmp_path: Path) -> None:
    """A rerun of the same code finds its journal again: the lambda's name is stable."""
    config = quiet_config(tmp_path / "run")
    for _ in range(2):
        with ManagerContext(config=config, stop_signals=()) as ctx:
            result = ctx.map(lambda x: x + 1, [1, 2, 3])
    assert (result.results, result.skipped) == ([2, 3, 4], 3)


def test_a_plain_function_keeps_the_journal_name_of_earlier_versions(tmp_path: Path) -> None:
    """A module-level function's journal is still tasks/<name>.journal, so old runs resume."""
    config = quiet_config(tmp_path / "run")
    with ManagerContext(config=config, stop_signals=()) as ctx:
        ctx.map(square, [1, 2])
        again = ctx.map(square, [1, 2, 3])
    assert journals(tmp_path / "run") == ["square.journal"]
    assert (again.skipped, again.completed) == (2, 1)


def test_a_function_whose_captures_cannot_be_named_needs_a_name(tmp_path: Path) -> None:
    """A closure over an object without a stable identity is refused until name= is given."""
    lock = threading.Lock()

    def locked_square(x: int) -> int:
        with lock:
            return x * x

    with ManagerContext(config=quiet_config(tmp_path / "run"), stop_signals=()) as ctx:
        with pytest.raises(ConfigError, match="pass name=") as info:
            ctx.map(locked_square, [1, 2])
        named = ctx.map(locked_square, [1, 2], name="locked")
    assert info.value.field == "name"
    assert "lock" in str(info.value)
    assert named.results == [1, 4]
    assert journals(tmp_path / "run") == ["locked.journal"]


def test_a_named_journal_written_by_another_function_is_refused_naming_both(
    tmp_path: Path,
) -> None:
    """name= shared by two functions: the second call is refused, and nothing is returned."""
    with ManagerContext(config=quiet_config(tmp_path / "run"), stop_signals=()) as ctx:
        ctx.map(square, [1, 2], name="powers")
        with pytest.raises(ConfigError) as info:
            ctx.map(cube, [1, 2], name="powers")
        fresh = ctx.map(cube, [1, 2], name="powers", resume=False)
    message = str(info.value)
    assert "test_context_map_journals:square" in message
    assert "test_context_map_journals:cube" in message
    assert "resume=False" in message
    assert fresh.results == [1, 8]


def test_names_that_differ_only_in_replaced_characters_get_two_journals(
    tmp_path: Path,
) -> None:
    """'maps/a' and 'maps a' (both 'maps_a' once made safe) are two journals, not one."""
    with ManagerContext(config=quiet_config(tmp_path / "run"), stop_signals=()) as ctx:
        slash = ctx.map(square, [1, 2], name="maps/a")
        space = ctx.map(square, [1, 2], name="maps a")
    assert (slash.skipped, space.skipped) == (0, 0)
    assert len(journals(tmp_path / "run")) == 2


def test_names_that_differ_after_the_100th_character_get_two_journals(tmp_path: Path) -> None:
    """Two long names with a common 100-character start are two journals."""
    layout = RunDir(tmp_path / "run")
    first, second = layout.journal("x" * 120 + "1"), layout.journal("x" * 120 + "2")
    assert first != second
    assert first.parent == second.parent == layout.tasks
    assert len(first.name) < 160
