"""A missing package of one of our extras, as the one line the command prints.

:data:`EXTRA_OF_PACKAGE` maps each extra's top-level packages to the extra;
:func:`missing_extra_message` turns a ``ModuleNotFoundError`` into the line naming the extra
to install, and :func:`missing_extra_of_failure` does the same for a task that failed in a
worker, from what its journal recorded (the error's type and message: the exception itself
stays in the worker). Turning the line into exit status 2 is the package face's
(:func:`lensing_ssc.cli.main`); listing a run's failed tasks is :mod:`._run`'s.
"""

from __future__ import annotations

import re

__all__ = ["EXTRA_OF_PACKAGE", "missing_extra_message", "missing_extra_of_failure"]

EXTRA_OF_PACKAGE: dict[str, str] = {
    "zstandard": "fast",
    "lz4": "fast",
    "xxhash": "fast",
    "dask": "dask",
    "distributed": "dask",
    "dask_jobqueue": "cluster",
    "mpi4py": "cluster",
    "healpy": "healpix",
    "astropy": "healpix",
    "h5py": "hdf5",
    "matplotlib": "plot",
    "bigfile": "shells",
    "numba": "shells",
    "xarray": "xarray",
}
"""The top-level package each extra of ``pyproject.toml`` brings, and that extra."""

_NAMED_EXTRA = re.compile(r"lensing-ssc\[(\w+)\]")
_NO_MODULE = re.compile(r"No module named '([\w.]+)'")  # Python's own message


def missing_extra_message(exc: ModuleNotFoundError) -> str | None:
    """One line for a missing package of one of our extras, or ``None`` for any other.

    The package's own messages already name the extra (``pip install "lensing-ssc[hdf5]"``)
    and are kept; a bare ``No module named 'h5py'`` is given the extra from
    :data:`EXTRA_OF_PACKAGE`.

    Example:
        >>> print(missing_extra_message(ModuleNotFoundError("No module named 'h5py'", name="h5py")))
        h5py is not installed: this needs the 'hdf5' extra: pip install "lensing-ssc[hdf5]"
    """
    message = str(exc)
    named = _NAMED_EXTRA.search(message)
    if named is not None and named.group(1) in EXTRA_OF_PACKAGE.values():
        return message
    package = (exc.name or "").partition(".")[0]
    extra = EXTRA_OF_PACKAGE.get(package)
    if extra is None:
        return None
    return f"{package} is not installed: this needs the {extra!r} extra: " + (
        f'pip install "lensing-ssc[{extra}]"'
    )


def missing_extra_of_failure(error_type: str, message: str) -> str | None:
    """The :func:`missing_extra_message` line of a failed task, or ``None`` for another failure.

    Args:
        error_type: The qualified name of the task's exception, as its journal records it
            (``builtins.ModuleNotFoundError``).
        message: ``str()`` of the exception.

    Example:
        >>> print(missing_extra_of_failure("ModuleNotFoundError", "No module named 'healpy'"))
        healpy is not installed: this needs the 'healpix' extra: pip install "lensing-ssc[healpix]"
        >>> print(missing_extra_of_failure("builtins.ValueError", "lensing-ssc[healpix]"))
        None
    """
    if error_type.rpartition(".")[2] != "ModuleNotFoundError":
        return None
    bare = _NO_MODULE.fullmatch(message)
    return missing_extra_message(ModuleNotFoundError(message, name=bare and bare.group(1)))
