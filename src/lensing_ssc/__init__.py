"""lensing_ssc: weak-lensing super-sample covariance studies that survive, resume and scale out.

The managers that keep long jobs alive live in :mod:`lensing_ssc.processing.managers`;
configuration in :mod:`lensing_ssc.core.config`; errors in
:mod:`lensing_ssc.core.base.exceptions`.
"""

from lensing_ssc._version import __version__

__all__ = ["__version__"]
