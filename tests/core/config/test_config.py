"""ProcessingConfig: defaults, files, environment overrides, schema, every kind of bad input,
and resolving a manager's arguments over its section (the same for all five managers)."""

from __future__ import annotations

import io
import json
import math
import pickle
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from lensing_ssc.core.base.exceptions import ConfigError
from lensing_ssc.core.config import (
    NOT_GIVEN,
    CacheSection,
    CheckpointSection,
    LoggingSection,
    NotGiven,
    ProcessingConfig,
    ProgressSection,
    ResourcesSection,
    Section,
    resolve_settings,
)
from lensing_ssc.pipelines import PipelineConfig
from lensing_ssc.processing.managers import (
    CacheManager,
    CheckpointManager,
    LogManager,
    ProgressManager,
    ResourceManager,
)
from lensing_ssc.processing.managers.resource import ReplaySampler

FILE_SETTINGS = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def test_defaults_work_and_put_every_directory_under_run_dir() -> None:
    """A config built with no arguments is valid and keeps all files under run_dir."""
    config = ProcessingConfig(run_dir="runs/x")
    assert config.checkpoint_dir == Path("runs/x/checkpoints")
    assert config.cache_dir == Path("runs/x/cache")
    assert config.log_file == Path("runs/x/logs/lensing_ssc.log")
    assert config.status_file == Path("runs/x/status.json")
    assert config.resources.warning_fraction == 0.8
    assert config.cache.eviction_policy == "lru"


def test_explicit_directories_override_run_dir_and_disk_cache_can_be_off() -> None:
    """A section's own dir wins over run_dir; cache.disk=false means no cache dir."""
    config = ProcessingConfig(run_dir="r", checkpoint={"dir": "/scratch/ck"}, cache={"disk": False})
    assert config.checkpoint_dir == Path("/scratch/ck")
    assert config.cache_dir is None


@pytest.mark.parametrize("suffix", [".yaml", ".yml", ".toml", ".json"])
def test_file_round_trip_in_each_format(tmp_path: Path, suffix: str) -> None:
    """to_file then from_file gives back the same configuration in YAML, TOML and JSON."""
    config = ProcessingConfig(
        run_dir=tmp_path / "run",
        resources={"memory_limit_mb": 4000, "monitor_interval": 0.5},
        checkpoint={"max_checkpoints": 3, "compression": "gzip"},
        logging={"level": "debug", "format": "JSON"},
    )
    path = config.to_file(tmp_path / f"config{suffix}")
    loaded = ProcessingConfig.from_file(path, env=False)
    assert loaded == config
    assert loaded.logging.level == "DEBUG"
    assert loaded.logging.format == "json"


def test_yaml_file_as_the_design_shows(tmp_path: Path) -> None:
    """The YAML example of the design document loads as written."""
    path = tmp_path / "config.yaml"
    path.write_text(
        "run_dir: runs/example\n"
        "resources:  {memory_limit_mb: 8000, monitor_interval: 1.0, warning_fraction: 0.8}\n"
        "checkpoint: {max_checkpoints: 5, compression: zstd}\n"
        "cache:      {max_size_mb: 512, max_entries: 1000, eviction_policy: lru}\n"
        "logging:    {level: INFO, format: json}\n"
        "progress:   {enabled: true}\n"
    )
    config = ProcessingConfig.from_file(path)
    assert config.resources.memory_limit_mb == 8000
    assert config.checkpoint.compression == "zstd"
    assert config.checkpoint_dir == Path("runs/example/checkpoints")


def test_empty_file_gives_defaults(tmp_path: Path) -> None:
    """An empty YAML file is a valid config of defaults."""
    path = tmp_path / "empty.yaml"
    path.write_text("")
    assert ProcessingConfig.from_file(path) == ProcessingConfig()


def test_environment_overrides_file_values(tmp_path: Path) -> None:
    """LENSING_SSC_<SECTION>__<FIELD> beats the file, with its text parsed as a scalar."""
    path = tmp_path / "c.yaml"
    path.write_text("resources: {memory_limit_mb: 8000}\nprogress: {enabled: true}\n")
    env = {
        "LENSING_SSC_RESOURCES__MEMORY_LIMIT_MB": "4000",
        "LENSING_SSC_PROGRESS__ENABLED": "false",
        "LENSING_SSC_RUN_DIR": "/tmp/elsewhere",
        "LENSING_SSC_UNRELATED_SETTING": "ignored",
        "HOME": "/root",
    }
    config = ProcessingConfig.from_file(path, env=env)
    assert config.resources.memory_limit_mb == 4000
    assert config.progress.enabled is False
    assert config.run_dir == Path("/tmp/elsewhere")


def test_environment_override_from_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """from_env reads the real process environment."""
    monkeypatch.setenv("LENSING_SSC_CACHE__EVICTION_POLICY", "lfu")
    assert ProcessingConfig.from_env().cache.eviction_policy == "lfu"


def test_bad_environment_value_names_the_variable() -> None:
    """An invalid override is reported with the variable it came from."""
    env = {"LENSING_SSC_RESOURCES__MEMORY_LIMIT_MB": "-1"}
    with pytest.raises(ConfigError) as info:
        ProcessingConfig.from_env(env)
    assert info.value.field == "resources.memory_limit_mb"
    assert info.value.source == "LENSING_SSC_RESOURCES__MEMORY_LIMIT_MB"
    assert info.value.value == -1
    assert "LENSING_SSC_RESOURCES__MEMORY_LIMIT_MB" in str(info.value)


def test_bad_list_item_from_the_environment_names_the_variable() -> None:
    """A list set by one variable and failing at an item is reported with that variable."""
    env = {"LENSING_SSC_PIPELINE__STATISTICS__N_GAL": "-3"}
    with pytest.raises(ConfigError, match="in LENSING_SSC_PIPELINE__STATISTICS__N_GAL") as info:
        PipelineConfig.from_env(env)
    assert info.value.field == "pipeline.statistics.n_gal.0"
    assert info.value.source == "LENSING_SSC_PIPELINE__STATISTICS__N_GAL"


def test_environment_variable_for_unknown_section() -> None:
    """A variable naming a section that does not exist is an error, not silently ignored."""
    with pytest.raises(ConfigError, match="unknown config section 'resorces'") as info:
        ProcessingConfig.from_env({"LENSING_SSC_RESORCES__MEMORY_LIMIT_MB": "1"})
    assert info.value.source == "LENSING_SSC_RESORCES__MEMORY_LIMIT_MB"


@pytest.mark.parametrize(
    ("text", "field", "value", "fragment"),
    [
        (
            "resources: {memory_limit_mb: lots}\n",
            "resources.memory_limit_mb",
            "lots",
            "valid number",
        ),
        (
            "resources: {memory_limit_mb: -100}\n",
            "resources.memory_limit_mb",
            -100,
            "greater than 0",
        ),
        ("cache: {max_entries: 0}\n", "cache.max_entries", 0, "greater than 0"),
        ("resources: {warning_fraction: 1.5}\n", "resources.warning_fraction", 1.5, "less than 1"),
        ("cache: {eviction_policy: random}\n", "cache.eviction_policy", "random", "'lru'"),
        ("logging: {level: LOUD}\n", "logging.level", "LOUD", "'INFO'"),
        ("cache: {max_entries: true}\n", "cache.max_entries", True, "not true or false"),
        ("progress: {heartbeat_interval: false}\n", "progress.heartbeat_interval", False, "not"),
    ],
)
def test_bad_values_name_file_field_and_value(
    tmp_path: Path, text: str, field: str, value: object, fragment: str
) -> None:
    """A wrong type or out-of-range value raises ConfigError naming file, field and value."""
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        ProcessingConfig.from_file(path, env=False)
    err = info.value
    assert (err.field, err.value, err.source) == (field, value, str(path))
    message = str(err)
    assert str(path) in message
    assert field in message
    assert repr(value) in message
    assert fragment in message


def test_unknown_key_suggests_the_close_one(tmp_path: Path) -> None:
    """A misspelt key is rejected with a 'did you mean'."""
    path = tmp_path / "typo.yaml"
    path.write_text("resources: {memory_limt_mb: 100}\n")
    with pytest.raises(ConfigError, match=r"did you mean 'memory_limit_mb'\?") as info:
        ProcessingConfig.from_file(path, env=False)
    assert info.value.field == "resources.memory_limt_mb"
    assert str(path) in str(info.value)


def test_unknown_section_suggests_the_close_one() -> None:
    """A misspelt section name is rejected with a 'did you mean'."""
    with pytest.raises(ConfigError, match=r"did you mean 'checkpoint'\?"):
        ProcessingConfig.from_dict({"checkpoints": {}})


def test_several_problems_are_all_reported(tmp_path: Path) -> None:
    """Every invalid field is listed, not only the first."""
    path = tmp_path / "many.json"
    path.write_text(json.dumps({"cache": {"max_entries": -1, "max_size_mb": "big"}}))
    with pytest.raises(ConfigError, match="2 configuration errors") as info:
        ProcessingConfig.from_file(path, env=False)
    assert "cache.max_entries" in str(info.value)
    assert "cache.max_size_mb" in str(info.value)


def test_malformed_yaml_names_file_and_line(tmp_path: Path) -> None:
    """Broken YAML reports the file and the line where parsing failed."""
    path = tmp_path / "broken.yaml"
    path.write_text("resources:\n  memory_limit_mb: 100\n  - oops\n")
    with pytest.raises(ConfigError, match=r"malformed YAML in .*broken\.yaml.* at line 3") as info:
        ProcessingConfig.from_file(path)
    assert info.value.source == str(path)


@pytest.mark.parametrize(
    ("name", "text", "pattern"),
    [
        ("broken.toml", "[resources\nmemory_limit_mb = 1\n", "malformed TOML"),
        ("broken.json", '{"resources": ', "malformed JSON .* line 1"),
        ("list.yaml", "- a\n- b\n", "must hold a mapping of sections, not list"),
    ],
)
def test_malformed_toml_json_and_non_mapping(
    tmp_path: Path, name: str, text: str, pattern: str
) -> None:
    """Broken TOML/JSON and a file that is not a mapping raise ConfigError naming the file."""
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ConfigError, match=pattern) as info:
        ProcessingConfig.from_file(path)
    assert str(path) in str(info.value)


def test_missing_file_and_unknown_suffix(tmp_path: Path) -> None:
    """A missing file and an unreadable suffix raise ConfigError naming the path."""
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError, match="does not exist") as info:
        ProcessingConfig.from_file(missing)
    assert info.value.value == str(missing)
    odd = tmp_path / "config.ini"
    odd.write_text("[x]\n")
    with pytest.raises(ConfigError, match=r"use one of \.json, \.toml, \.yaml, \.yml"):
        ProcessingConfig.from_file(odd)


def test_constructor_and_assignment_raise_config_error() -> None:
    """Building or changing a config in code is validated the same way as a file."""
    with pytest.raises(ConfigError) as info:
        ProcessingConfig(checkpoint={"max_checkpoints": -2})
    assert info.value.field == "checkpoint.max_checkpoints"
    config = ProcessingConfig()
    with pytest.raises(ConfigError, match="monitor_interval"):
        config.resources.monitor_interval = 0


def test_json_schema_describes_sections_and_limits() -> None:
    """The schema lists every section and encodes the limits validation enforces."""
    schema = ProcessingConfig.json_schema()
    assert set(schema["properties"]) == {
        "run_dir",
        "resources",
        "checkpoint",
        "cache",
        "logging",
        "progress",
    }
    assert set(PipelineConfig.json_schema()["properties"]) == {
        *schema["properties"],
        "pipeline",
        "lightcone",
    }
    resources = schema["$defs"]["ResourcesSection"]["properties"]
    assert resources["monitor_interval"]["exclusiveMinimum"] == 0
    json.dumps(schema)


NUMBER_TYPES = {"integer", "number"}


def schema_numbers() -> list[tuple[str, bool, dict[str, Any]]]:
    """Every number field, the pipeline's included, as (path, holds a list, number schema)."""
    schema = PipelineConfig.json_schema()
    found: list[tuple[str, bool, dict[str, Any]]] = []

    def walk(node: dict[str, Any], path: str) -> None:
        for name, prop in node.get("properties", {}).items():
            dotted = f"{path}{name}"
            if "$ref" in prop:
                walk(schema["$defs"][prop["$ref"].rsplit("/", 1)[-1]], f"{dotted}.")
                continue
            for option in prop.get("anyOf", [prop]):
                if option.get("type") in NUMBER_TYPES:
                    found.append((dotted, False, option))
                elif option.get("items", {}).get("type") in NUMBER_TYPES:
                    found.append((dotted, True, option["items"]))

    walk(schema, "")
    return found


SCHEMA_NUMBERS = schema_numbers()
NUMBER_FIELDS = [(path, listed) for path, listed, _ in SCHEMA_NUMBERS]
INTEGER_FIELDS = [
    (path, number.get("minimum", number.get("exclusiveMinimum", -1) + 1))
    for path, listed, number in SCHEMA_NUMBERS
    if number["type"] == "integer" and not listed
]
"""Each integer field with its lowest valid value."""


def environment_variable(path: str) -> str:
    """The variable that sets ``path``: ``pipeline.seed`` → ``LENSING_SSC_PIPELINE__SEED``."""
    return "LENSING_SSC_" + path.replace(".", "__").upper()


def nested(path: str, value: object) -> dict[str, Any]:
    """``{"a": {"b": value}}`` for ``"a.b"``."""
    data: Any = value
    for part in reversed(path.split(".")):
        data = {part: data}
    return data


def test_number_fields_are_found_in_every_section() -> None:
    """The field list the properties below draw from covers every section's numbers."""
    paths = {path for path, _ in NUMBER_FIELDS}
    assert {
        "resources.memory_limit_mb",
        "checkpoint.max_checkpoints",
        "cache.max_entries",
        "logging.backup_count",
        "progress.heartbeat_interval",
        "pipeline.seed",
        "pipeline.synthetic.n_large_fields",
        "pipeline.synthetic.cosmology.z_source",
        "pipeline.statistics.n_gal",
    } <= paths
    assert "resources.graceful_stop" not in paths
    assert len(INTEGER_FIELDS) >= 10
    assert ("pipeline.statistics.smoothing_arcmin", True) in NUMBER_FIELDS


@settings(max_examples=150, deadline=None)
@given(
    field=st.sampled_from(NUMBER_FIELDS),
    spelling=st.sampled_from(["true", "false", "True", "FALSE", "yes", "no", "on", "off"]),
    from_env=st.booleans(),
)
def test_property_no_number_field_takes_a_boolean(
    field: tuple[str, bool], spelling: str, from_env: bool
) -> None:
    """Every number field refuses a boolean, in code or spelt any YAML way in the environment."""
    path, listed = field
    flag = yaml.safe_load(spelling)
    assert isinstance(flag, bool)
    variable = environment_variable(path)
    data = {} if from_env else nested(path, [flag] if listed else flag)
    env = {variable: spelling} if from_env else {}
    with pytest.raises(ConfigError, match="not true or false") as info:
        PipelineConfig.from_dict(data, env=env)
    assert info.value.field == (f"{path}.0" if listed else path)
    assert info.value.value is flag
    assert info.value.source == (variable if from_env else None)


@settings(max_examples=100, deadline=None)
@given(field=st.sampled_from(INTEGER_FIELDS), offset=st.integers(0, 50))
def test_property_environment_text_still_gives_integers(
    field: tuple[str, int], offset: int
) -> None:
    """An integer field set from the environment ("3") holds that int, not a bool or a float."""
    path, lowest = field
    number = 1 << (offset % 16) if path.endswith(".nside") else lowest + offset  # HEALPix
    variable = environment_variable(path)
    config = PipelineConfig.from_env({variable: str(number)})
    held: Any = config
    for part in path.split("."):
        held = getattr(held, part)
    assert type(held) is int
    assert held == number


def test_number_fields_still_read_numbers_written_as_text_or_whole_floats() -> None:
    """Lax parsing stays for everything but booleans: "3", 3.0 and "2.5" read as numbers."""
    config = PipelineConfig.from_dict(
        {"pipeline": {"seed": "3", "synthetic": {"n_large_fields": 3.0}}},
        env={"LENSING_SSC_CACHE__MAX_SIZE_MB": "2.5", "LENSING_SSC_CACHE__MAX_ENTRIES": "7"},
    )
    assert (config.pipeline.seed, config.pipeline.synthetic.n_large_fields) == (3, 3)
    assert (config.cache.max_size_mb, config.cache.max_entries) == (2.5, 7)


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("c.toml", "[pipeline.synthetic]\nn_large_fields = true\n"),
        ("c.json", '{"pipeline": {"synthetic": {"n_large_fields": true}}}'),
    ],
)
def test_booleans_for_numbers_are_refused_in_toml_and_json(
    tmp_path: Path, name: str, text: str
) -> None:
    """`n_large_fields = true` in a TOML or JSON file is an error naming the file, not 1 field."""
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ConfigError, match="Input should be an integer, not true or false") as info:
        PipelineConfig.from_file(path, env=False)
    assert (info.value.field, info.value.value, info.value.source) == (
        "pipeline.synthetic.n_large_fields",
        True,
        str(path),
    )


def test_assigning_a_boolean_to_a_number_field_is_refused() -> None:
    """Changing a loaded config in code refuses `True` for a number as loading does."""
    config = PipelineConfig()
    with pytest.raises(ConfigError, match="not true or false"):
        config.pipeline.synthetic.n_large_fields = True
    assert config.pipeline.synthetic.n_large_fields == 32


@pytest.mark.parametrize(
    ("data", "hint"),
    [
        ({"cache": {"max_entries": -5}}, "use a whole number greater than 0"),
        ({"cache": {"max_entries": None}}, "use a whole number greater than 0"),
        ({"logging": {"backup_count": -1}}, "use a whole number at least 0"),
        ({"resources": {"warning_fraction": 1.5}}, "use a number greater than 0 and less than 1"),
        (
            {"resources": {"memory_limit_percent": 150}},
            "use a number greater than 0 and at most 100, or null for the default",
        ),
        (
            {"resources": {"memory_limit_mb": "lots"}},
            "use a number greater than 0, or null for the default",
        ),
    ],
)
def test_hint_gives_the_range_and_offers_null_only_where_it_is_accepted(
    data: dict[str, Any], hint: str
) -> None:
    """A rejected number's hint states the field's own bounds, and null only if it takes null."""
    with pytest.raises(ConfigError) as info:
        ProcessingConfig.from_dict(data)
    assert str(info.value).endswith(f"({hint})")


def accepts_null(path: str) -> bool:
    """Whether the config takes ``null`` at ``path``."""
    try:
        ProcessingConfig.from_dict(nested(path, None))
    except ConfigError:
        return False
    return True


@pytest.mark.parametrize("path", [path for path, listed in NUMBER_FIELDS if not listed])
def test_hint_offers_null_exactly_for_the_fields_that_take_it(path: str) -> None:
    """For every number field, the hint after a bad value mentions null iff null is valid there."""
    with pytest.raises(ConfigError) as info:
        ProcessingConfig.from_dict(nested(path, True))
    assert ("or null" in str(info.value)) == accepts_null(path)


@st.composite
def configs(draw: st.DrawFn) -> ProcessingConfig:
    """Random valid configurations."""
    positive = st.floats(min_value=1e-3, max_value=1e6, allow_nan=False)
    return ProcessingConfig(
        run_dir=draw(st.from_regex(r"[a-z][a-z0-9_/]{0,20}", fullmatch=True)),
        resources={
            "memory_limit_mb": draw(st.none() | positive),
            "monitor_interval": draw(positive),
            "warning_fraction": draw(st.floats(min_value=0.01, max_value=0.99)),
            "graceful_stop": draw(st.booleans()),
        },
        checkpoint={
            "max_checkpoints": draw(st.integers(1, 1000)),
            "compression": draw(st.sampled_from(["auto", "none", "gzip", "zstd", "lz4"])),
            "keep_tags": draw(st.lists(st.text("abcdefgh", min_size=1), max_size=3)),
        },
        cache={
            "max_entries": draw(st.integers(1, 10**6)),
            "eviction_policy": draw(st.sampled_from(["lru", "lfu", "fifo"])),
            "default_ttl": draw(st.none() | positive),
        },
        logging={"level": draw(st.sampled_from(["DEBUG", "INFO", "WARNING"]))},
        progress={"enabled": draw(st.booleans())},
    )


@FILE_SETTINGS
@given(config=configs(), suffix=st.sampled_from([".yaml", ".toml", ".json"]))
def test_property_any_valid_config_round_trips_through_files(
    tmp_path: Path, config: ProcessingConfig, suffix: str
) -> None:
    """Every valid configuration survives writing and reading in every format."""
    path = config.to_file(tmp_path / f"c{suffix}")
    assert ProcessingConfig.from_file(path, env=False) == config


@settings(max_examples=60, deadline=None)
@given(
    field=st.sampled_from(
        [
            ("resources", "memory_limit_mb"),
            ("resources", "monitor_interval"),
            ("cache", "max_size_mb"),
            ("cache", "max_entries"),
            ("checkpoint", "max_checkpoints"),
            ("logging", "max_bytes"),
            ("progress", "heartbeat_interval"),
        ]
    ),
    value=st.integers(max_value=0) | st.floats(max_value=0, allow_nan=False),
)
def test_property_non_positive_limits_are_always_rejected(
    field: tuple[str, str], value: float
) -> None:
    """Zero or negative limits never pass validation, and the error names the field."""
    section, name = field
    with pytest.raises(ConfigError) as info:
        ProcessingConfig.from_dict({section: {name: value}})
    assert info.value.field == f"{section}.{name}"


@settings(max_examples=60, deadline=None)
@given(limit=st.integers(1, 10**7))
def test_property_environment_integer_override(limit: int) -> None:
    """Any positive integer given in the environment reaches the field unchanged."""
    env = {"LENSING_SSC_CACHE__MAX_ENTRIES": str(limit)}
    assert ProcessingConfig.from_env(env).cache.max_entries == limit


# -- resolving a manager's settings ------------------------------------------------------
def test_an_explicit_argument_beats_the_config_which_beats_the_default() -> None:
    """resolve_settings takes the argument, else the config's section, else the default."""
    config = ProcessingConfig(cache={"max_entries": 10, "lease_ttl": 5})
    settings = resolve_settings(CacheSection, config, max_entries=20, lease_ttl=None)
    assert (settings.max_entries, settings.lease_ttl, settings.max_size_mb) == (20, 5.0, 512.0)
    defaults = resolve_settings(CacheSection, None, max_entries=None)
    assert (defaults.max_entries, defaults.lease_ttl) == (1000, 60.0)


def test_not_given_leaves_a_field_to_the_config_where_none_is_a_value() -> None:
    """NOT_GIVEN defers to the config; None is a value where the field takes None."""
    config = ProcessingConfig(cache={"default_ttl": 60}, logging={"max_bytes": 1000})
    assert resolve_settings(CacheSection, config, default_ttl=NOT_GIVEN).default_ttl == 60
    assert resolve_settings(CacheSection, config, default_ttl=None).default_ttl is None
    assert resolve_settings(LoggingSection, config, max_bytes=NOT_GIVEN).max_bytes == 1000
    assert resolve_settings(LoggingSection, config, max_bytes=None).max_bytes is None
    assert resolve_settings(CacheSection, config, max_size_mb=NOT_GIVEN).max_size_mb == 512


def test_none_is_not_given_where_the_manager_always_read_it_so() -> None:
    """With none_is_not_given, None leaves even a field that takes None to the config."""
    config = ProcessingConfig(resources={"memory_limit_mb": 4000})
    kept = resolve_settings(ResourcesSection, config, none_is_not_given=True, memory_limit_mb=None)
    assert kept.memory_limit_mb == 4000
    assert resolve_settings(ResourcesSection, config, memory_limit_mb=None).memory_limit_mb is None


def test_the_sentinel_is_one_named_value_that_survives_pickling() -> None:
    """NOT_GIVEN is a single enum member, shown by name, equal to itself after pickling."""
    assert NOT_GIVEN is NotGiven.NOT_GIVEN
    assert list(NotGiven) == [NOT_GIVEN]
    assert repr(NOT_GIVEN) == "NOT_GIVEN"
    assert pickle.loads(pickle.dumps(NOT_GIVEN)) is NOT_GIVEN


def test_resolved_settings_are_a_frozen_copy_that_leaves_the_config_alone() -> None:
    """The result is an instance of the section that refuses assignment and pickles."""
    config = ProcessingConfig(checkpoint={"max_checkpoints": 2})
    settings = resolve_settings(CheckpointSection, config, max_checkpoints=7)
    assert isinstance(settings, CheckpointSection)
    assert config.checkpoint.max_checkpoints == 2
    with pytest.raises(ConfigError, match="frozen"):
        settings.max_checkpoints = 3  # type: ignore[misc]
    copy = pickle.loads(pickle.dumps(settings))
    assert (type(copy), copy.model_dump()) == (type(settings), settings.model_dump())


def test_arguments_from_code_are_not_parsed_as_text() -> None:
    """ "8000" and "yes" are refused as arguments although a config file may spell them so."""
    config = ProcessingConfig.from_env({"LENSING_SSC_RESOURCES__GRACEFUL_STOP": "yes"})
    assert config.resources.graceful_stop is True
    assert ProcessingConfig(resources={"memory_limit_mb": "8000"}).resources.memory_limit_mb == 8000
    for name, text in [("memory_limit_mb", "8000"), ("graceful_stop", "yes")]:
        with pytest.raises(ConfigError) as info:
            resolve_settings(ResourcesSection, None, **{name: text})
        assert (info.value.field, info.value.value) == (f"resources.{name}", text)


def test_an_unknown_argument_name_suggests_the_field() -> None:
    """A name that is no field of the section is refused with the closest field."""
    with pytest.raises(ConfigError, match=r"unknown key 'cache\.max_size' \(did you mean"):
        resolve_settings(CacheSection, None, max_size=1)


def _resource_manager(**kwargs: Any) -> Any:
    return ResourceManager(sampler=ReplaySampler(), **kwargs)


def _checkpoint_manager(**kwargs: Any) -> Any:
    return CheckpointManager(read_only=True, **kwargs)


def _log_manager(**kwargs: Any) -> Any:
    return LogManager(**{"console": False, **kwargs})


def _progress_manager(**kwargs: Any) -> Any:
    return ProgressManager(**{"enabled": False, "file": io.StringIO(), **kwargs})


MANAGERS: dict[str, tuple[type[Section], Callable[..., Any]]] = {
    "resources": (ResourcesSection, _resource_manager),
    "checkpoint": (CheckpointSection, _checkpoint_manager),
    "cache": (CacheSection, CacheManager),
    "logging": (LoggingSection, _log_manager),
    "progress": (ProgressSection, _progress_manager),
}
"""Each manager's section, and a builder of the manager that keeps it off disk and screen."""

KEYWORDS = {"logging.format": "format_type"}
"""Constructor keywords spelt differently from their field."""

NOT_KEYWORDS = {"cache.dir", "cache.disk", "checkpoint.dir", "logging.file", "resources.disk_path"}
"""Fields a constructor takes as a location (they touch the filesystem) or not at all."""

SETTINGS = [
    (key, name)
    for key, (kind, _) in MANAGERS.items()
    for name in kind.model_fields
    if f"{key}.{name}" not in NOT_KEYWORDS
]


def _build(key: str, **kwargs: Any) -> None:
    """Build the manager of section ``key`` with ``kwargs`` and close it again."""
    MANAGERS[key][1](**kwargs).close()


@pytest.mark.parametrize("key", list(MANAGERS))
@pytest.mark.parametrize("mistake", ["zero", "text", "boolean"])
def test_the_same_mistake_raises_the_same_error_from_every_manager(key: str, mistake: str) -> None:
    """A zero, a text or a boolean for a positive number is one ConfigError in all managers."""
    name = {
        "resources": "monitor_interval",
        "checkpoint": "max_checkpoints",
        "cache": "max_entries",
        "logging": "queue_size",
        "progress": "heartbeat_interval",
    }[key]
    value = {"zero": 0, "text": "8000", "boolean": True}[mistake]
    with pytest.raises(ConfigError) as info:
        _build(key, **{name: value})
    error = info.value
    assert type(error) is ConfigError
    assert error.retryable is False
    assert (error.field, error.value) == (f"{key}.{name}", value)
    assert str(error).startswith(f"invalid value {value!r} for '{key}.{name}': ")
    assert re.search(r"\(use a (whole )?number (greater than 0|at least 1)\)$", str(error))


NUMBERS = st.one_of(
    st.integers(1, 120),
    st.integers(-3, 120),
    st.integers(-(10**6), 10**6),
    st.floats(1e-3, 1e4),
    st.floats(-1e6, 1e6),
    st.floats(0, 1),
    st.sampled_from([math.inf, -math.inf, math.nan, 0.0, 0.5, 1.0, 100.0]),
)
VALUES = st.one_of(
    st.none(),
    st.booleans(),
    NUMBERS,
    NUMBERS,
    NUMBERS,
    st.sampled_from(["", "8000", "yes", "auto", "none", "gzip", "brotli", "lru", "LFU", "fifo"]),
    st.sampled_from(["INFO", "debug", "loud", "verify", "json", "Detailed", "native", "xml"]),
    st.lists(st.sampled_from(["keep", "mine", ""]), max_size=2),
)
"""Python values of every kind a caller might pass, valid or not for some field (numbers,
which most fields are, drawn most often)."""


def _section_accepts(kind: type[Section], name: str, value: Any) -> bool:
    try:
        kind.model_validate({name: value}, strict=True)
    except ValidationError:
        return False
    return True


@settings(max_examples=400, deadline=None)
@given(setting=st.sampled_from(SETTINGS), value=VALUES)
def test_property_a_manager_accepts_exactly_what_its_section_accepts(
    setting: tuple[str, str], value: Any
) -> None:
    """A value the section accepts from code builds the manager; any other is a ConfigError."""
    key, name = setting
    kind = MANAGERS[key][0]
    accepted = _section_accepts(kind, name, value)
    if value is None and not accepted:
        return  # None stands for "not given" where a field cannot be None
    keyword = KEYWORDS.get(f"{key}.{name}", name)
    if accepted:
        _build(key, **{keyword: value})
        return
    with pytest.raises(ConfigError) as info:
        _build(key, **{keyword: value})
    field = info.value.field or ""
    assert field.split(".")[:2] == [key, name]
    if field == f"{key}.{name}":
        assert repr(info.value.value) == repr(value)
