"""The public import paths users copy from the docs."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

import lensing_ssc
from lensing_ssc.core import config as config_module
from lensing_ssc.processing import managers


def test_design_import_paths_resolve() -> None:
    """Every import path of the design document works."""
    from lensing_ssc.core.base.exceptions import (  # noqa: F401
        CacheError,
        CheckpointError,
        ConfigError,
        LensingSSCError,
        LoggingError,
        ProgressError,
        ResourceError,
    )
    from lensing_ssc.core.config import ProcessingConfig  # noqa: F401


def test_package_exports_its_version() -> None:
    """lensing_ssc.__version__ is a release string."""
    assert "__version__" in lensing_ssc.__all__
    assert lensing_ssc.__version__.count(".") == 2


TOP_LEVEL_HOMES = {
    "lensing_ssc.core.base.exceptions": [
        "AnalysisError",
        "CacheError",
        "CheckpointError",
        "ConfigError",
        "InterruptedRunError",
        "LensingSSCError",
        "LoggingError",
        "ProgressError",
        "ResourceError",
    ],
    "lensing_ssc.core.config": ["ProcessingConfig"],
    "lensing_ssc.pipelines": [
        "PipelineConfig",
        "PipelineRun",
        "read_results",
        "run_patch_statistics",
    ],
    "lensing_ssc.processing.managers": [
        "CacheManager",
        "CheckpointManager",
        "LogManager",
        "ManagerContext",
        "ProgressManager",
        "ResourceManager",
        "RunDir",
    ],
    "lensing_ssc.processing.runner": ["MapResult", "TaskFailure", "TaskRunner", "run_map"],
}


def test_top_level_offers_every_public_name_from_its_home() -> None:
    """`from lensing_ssc import X` gives the very object of X's documented home."""
    expected = sorted(
        [name for names in TOP_LEVEL_HOMES.values() for name in names] + ["__version__"]
    )
    assert lensing_ssc.__all__ == expected
    for home, names in TOP_LEVEL_HOMES.items():
        module = importlib.import_module(home)
        for name in names:
            assert getattr(lensing_ssc, name) is getattr(module, name), name
    assert set(lensing_ssc.__all__) <= set(dir(lensing_ssc))


def test_top_level_import_is_lazy() -> None:
    """`import lensing_ssc` loads no subpackage until a name is asked for."""
    code = (
        "import sys, lensing_ssc\n"
        "print(sorted(n for n in sys.modules if n.startswith('lensing_ssc.')))\n"
        "lensing_ssc.ConfigError\n"
        "print('lensing_ssc.pipelines' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.split("\n")[:2] == ["['lensing_ssc._version']", "False"]


def test_unknown_top_level_name_is_an_attribute_error() -> None:
    """Asking the package for a name it does not offer fails with the name."""
    with pytest.raises(AttributeError, match="has no attribute 'NoSuchThing'"):
        lensing_ssc.NoSuchThing  # noqa: B018


def test_config_all_is_sorted_and_exact() -> None:
    """The config package exports exactly its sorted public names."""
    assert config_module.__all__ == sorted(config_module.__all__)
    assert all(hasattr(config_module, name) for name in config_module.__all__)


def test_managers_all_is_exactly_the_seven_public_names() -> None:
    """processing.managers exports the five managers, ManagerContext and RunDir, sorted."""
    assert managers.__all__ == [
        "CacheManager",
        "CheckpointManager",
        "LogManager",
        "ManagerContext",
        "ProgressManager",
        "ResourceManager",
        "RunDir",
    ]
    assert all(hasattr(managers, name) for name in managers.__all__)


def test_unknown_manager_name_is_an_attribute_error() -> None:
    """Asking the managers package for a name it does not have fails clearly."""
    with pytest.raises(AttributeError, match="has no attribute 'NoSuchManager'"):
        managers.NoSuchManager  # noqa: B018


def test_importing_managers_package_is_cheap() -> None:
    """Importing the managers package does not import any manager module up front."""
    code = (
        "import sys, lensing_ssc.processing.managers as m\n"
        "loaded = [n for n in sys.modules if n.startswith('lensing_ssc.processing.managers.')]\n"
        "print(loaded, 'CacheManager' in dir(m))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[] True"
