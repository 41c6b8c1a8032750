"""The package version, read by the build backend and ``lensing_ssc.__version__``."""

__version__ = "0.1.0"
