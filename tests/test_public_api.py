"""The public import paths users copy from the docs."""

from __future__ import annotations

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
    assert lensing_ssc.__all__ == ["__version__"]
    assert lensing_ssc.__version__.count(".") == 2


def test_config_all_is_sorted_and_exact() -> None:
    """The config package exports exactly its sorted public names."""
    assert config_module.__all__ == sorted(config_module.__all__)
    assert all(hasattr(config_module, name) for name in config_module.__all__)


def test_managers_all_is_exactly_the_six_public_names() -> None:
    """processing.managers exports the five managers and ManagerContext, sorted."""
    assert managers.__all__ == [
        "CacheManager",
        "CheckpointManager",
        "LogManager",
        "ManagerContext",
        "ProgressManager",
        "ResourceManager",
    ]


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
