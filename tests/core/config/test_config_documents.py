"""Config documents from anywhere: paths as users write them, nonsense, and depth; whatever
a file, a mapping or the environment holds, only ``ConfigError`` comes out."""

from __future__ import annotations

import contextlib
import json
import string
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lensing_ssc.core.base.exceptions import ConfigError
from lensing_ssc.core.config import ProcessingConfig

DEEP = 100_000


def test_a_run_dir_under_home_is_expanded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """run_dir: ~/runs means the home directory's runs, not a directory named '~' here."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    config = ProcessingConfig.from_dict({"run_dir": "~/runs", "cache": {"dir": "~/cache"}})
    assert config.run_dir == tmp_path / "home" / "runs"
    assert config.cache_dir == tmp_path / "home" / "cache"
    from_env = ProcessingConfig.from_env({"LENSING_SSC_RUN_DIR": "~/other"})
    assert from_env.run_dir == tmp_path / "home" / "other"


@pytest.mark.parametrize("field", ["run_dir", "checkpoint.dir", "logging.file"])
def test_a_path_with_a_nul_character_is_refused(field: str) -> None:
    """'\\0evil' is no path any system call accepts: refused where it is read, naming it."""
    section, _, name = field.rpartition(".")
    data: dict[str, Any] = {name: "\0evil"} if not section else {section: {name: "\0evil"}}
    with pytest.raises(ConfigError, match="NUL") as info:
        ProcessingConfig.from_dict(data)
    assert info.value.field == field


def test_an_empty_path_is_refused_but_an_empty_variable_is_unset() -> None:
    """run_dir: '' is refused; LENSING_SSC_RUN_DIR= (empty) leaves run_dir as it was."""
    with pytest.raises(ConfigError, match="empty") as info:
        ProcessingConfig.from_dict({"run_dir": ""})
    assert info.value.field == "run_dir"
    config = ProcessingConfig.from_dict(
        {"run_dir": "runs/mine"},
        env={"LENSING_SSC_RUN_DIR": "", "LENSING_SSC_RESOURCES__MEMORY_LIMIT_MB": " "},
    )
    assert config.run_dir == Path("runs/mine")
    assert config.resources.memory_limit_mb is None


@pytest.mark.parametrize("kind", ["json", "yaml"])
def test_a_file_nested_100000_deep_is_a_config_error(tmp_path: Path, kind: str) -> None:
    """A document nested far deeper than any config is one ConfigError, not a RecursionError."""
    path = tmp_path / f"deep.{kind}"
    path.write_text("resources: " + "[" * DEEP + "]" * DEEP if kind == "yaml" else "")
    if kind == "json":
        path.write_text('{"resources": ' + "[" * DEEP + "]" * DEEP + "}")
    with pytest.raises(ConfigError, match="nested") as info:
        ProcessingConfig.from_file(path, env=False)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("name", ["LENSING_SSC_RUN_DIR", "LENSING_SSC_RESOURCES__MEMORY_LIMIT_MB"])
def test_a_variable_nested_100000_deep_is_a_config_error(name: str) -> None:
    """An environment variable whose YAML nests 100 000 deep is one ConfigError naming it."""
    with pytest.raises(ConfigError, match="nested") as info:
        ProcessingConfig.from_env({name: "[" * DEEP + "]" * DEEP})
    assert name in str(info.value)


def test_a_mapping_nested_deeper_than_any_config_is_refused() -> None:
    """A mapping nested 10 000 deep (built in code) is refused before validation recurses."""
    deep: Any = 1
    for _ in range(10_000):
        deep = {"a": deep}
    with pytest.raises(ConfigError, match="nested"):
        ProcessingConfig.from_dict({"resources": {"disk_path": deep}})


@pytest.mark.parametrize("data", [{5: 5}, {None: 1}, {("a",): 1}, [], "run_dir", 5])
def test_documents_that_are_no_mapping_of_names_are_config_errors(data: Any) -> None:
    """Keys that are not names, and documents that are not mappings, are refused clearly."""
    with pytest.raises(ConfigError):
        ProcessingConfig.from_dict(data)


def test_values_too_large_to_print_are_shown_cut() -> None:
    """An integer of 5000 digits (it has no repr) and a long string give a short ConfigError."""
    with pytest.raises(ConfigError, match="too large to show"):
        ProcessingConfig.from_dict({"resources": {"memory_limit_mb": 10**5000}})
    with pytest.raises(ConfigError) as info:
        ProcessingConfig.from_dict({"resources": {"memory_limit_mb": "x" * 100_000}})
    assert len(str(info.value)) < 1000


_NAMES = [
    "run_dir",
    "resources",
    "checkpoint",
    "cache",
    "logging",
    "progress",
    "memory_limit_mb",
    "dir",
    "file",
    "level",
    "format",
    "max_size_mb",
    "disk",
    "enabled",
    "graceful_stop",
    "capture",
]
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(),
    st.text(max_size=12),
    st.sampled_from(["~", "~nobody/x", "\0", "", " ", "inf", "nan", "1e400", "DEBUG"]),
)
documents = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.one_of(st.sampled_from(_NAMES), st.text(max_size=6), st.integers(), st.none()),
            inner,
            max_size=5,
        )
    ),
    max_leaves=25,
)


@settings(max_examples=150, deadline=None)
@given(data=st.dictionaries(st.sampled_from(_NAMES), documents, max_size=5))
def test_any_mapping_raises_only_config_errors(data: dict[str, Any]) -> None:
    """ProcessingConfig.from_dict over arbitrary nested documents: valid, or ConfigError."""
    with contextlib.suppress(ConfigError):
        ProcessingConfig.from_dict(data)


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    text=st.one_of(
        st.text(max_size=200),
        documents.map(lambda d: json.dumps(d, default=str)),
        st.builds(lambda a, b: a + b, st.text(string.printable, max_size=40), st.text(max_size=40)),
    ),
    suffix=st.sampled_from([".yaml", ".json", ".toml"]),
)
def test_any_file_raises_only_config_errors(tmp_path: Path, text: str, suffix: str) -> None:
    """ProcessingConfig.from_file over arbitrary text in each format: valid, or ConfigError."""
    path = tmp_path / f"c{suffix}"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    with contextlib.suppress(ConfigError):
        ProcessingConfig.from_file(path, env=False)


env_names = st.one_of(
    st.sampled_from(
        [
            "LENSING_SSC_RUN_DIR",
            "LENSING_SSC_RESOURCES__MEMORY_LIMIT_MB",
            "LENSING_SSC_LOGGING__LEVEL",
            "LENSING_SSC_CACHE__DIR",
            "LENSING_SSC_NOPE__X",
            "LENSING_SSC_RESOURCES__",
            "LENSING_SSC___",
            "LENSING_SSC_LOGGING__FILE__X",
        ]
    ),
    st.text(string.ascii_uppercase + "_", max_size=12).map(lambda s: "LENSING_SSC_" + s),
)


@settings(max_examples=150, deadline=None)
@given(environ=st.dictionaries(env_names, st.text(max_size=30), max_size=4))
def test_any_environment_raises_only_config_errors(environ: dict[str, str]) -> None:
    """LENSING_SSC_* variables of any name and value: valid, or a ConfigError."""
    with contextlib.suppress(ConfigError):
        ProcessingConfig.from_env(environ)
