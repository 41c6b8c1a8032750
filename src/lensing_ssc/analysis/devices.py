"""Where the statistics run: NumPy on the CPU, or CuPy on a CUDA GPU, chosen by name.

:func:`select_device` turns ``"cpu"``, ``"gpu"`` or ``"auto"`` into an :class:`ArrayDevice`:
an array namespace, the device its arrays go to, and how much memory that device has free.
The estimators of :mod:`lensing_ssc.analysis.statistics` take arrays of any namespace, so
moving patches to the device (:meth:`ArrayDevice.asarray`) is all it takes to measure them
there; :func:`~lensing_ssc.analysis.compute_patch_statistics_batch` does a stack at once,
and :meth:`ArrayDevice.batch_size` says how many patches fit.

CuPy comes with an extra named for the CUDA major version of the machine's driver (the
"CUDA Version" that ``nvidia-smi`` prints): ``lensing-ssc[gpu-cuda12]`` (``cupy-cuda12x``)
or ``lensing-ssc[gpu-cuda13]`` (``cupy-cuda13x``). ``"gpu"`` where CuPy cannot measure (not
installed, no driver, a driver too old, no device, a CUDA library missing: see
:mod:`._cuda`) is a one-line ``ConfigError`` saying which and what to do; ``"auto"`` then
logs the same as a warning and measures on the CPU.

Not here: the batches a pipeline sends (:mod:`lensing_ssc.pipelines`), and the estimators.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from lensing_ssc.analysis import _cuda
from lensing_ssc.analysis._arrays import is_numpy, namespace, to_numpy
from lensing_ssc.core.base.exceptions import ConfigError, ResourceError

__all__ = [
    "CPU_DEVICE",
    "DEVICE_NAMES",
    "GPU_EXTRAS",
    "ArrayDevice",
    "DeviceName",
    "select_device",
]

DeviceName = Literal["cpu", "gpu", "auto"]
DEVICE_NAMES = ("cpu", "gpu", "auto")
"""The names :func:`select_device` takes."""

GPU_EXTRAS = _cuda.GPU_EXTRAS
"""The extras that bring CuPy, by CUDA major version of the driver (``nvidia-smi``)."""

_log = logging.getLogger("lensing_ssc.analysis")

# Share of the device's free memory one batch may fill: the estimate of
# :func:`~lensing_ssc.analysis.patch_statistics.working_bytes` leaves out the binning's
# one-hot block (at most 144 MiB), CuPy's FFT plans and the memory pool's rounding.
_BATCH_SHARE = 0.5


def _unbounded() -> int | None:
    return None


def _memory_error(error: BaseException) -> bool:
    return isinstance(error, MemoryError)


def _nothing_to_release() -> None:
    return None


@dataclass(frozen=True, eq=False)
class ArrayDevice:
    """An array namespace and a device of it: where a pipeline's statistics run.

    :func:`select_device` builds the CPU's and CuPy's. Any other array-API library is
    described the same way and passed as ``run_patch_statistics(config, device=...)``, e.g.
    ``ArrayDevice("torch", array_api_compat.torch, "cuda:0", "PyTorch on GPU 0",
    lambda: torch.cuda.mem_get_info(0)[0])``; the tests stand one in for a GPU with
    ``array_api_strict`` on its ``Device("device1")``, which refuses to mix arrays of two
    devices.

    Attributes:
        name: ``"cpu"``, ``"gpu"``, or the name of another device (recorded in the results).
        xp: The array namespace (array-api-compat's NumPy or CuPy, array_api_strict, ...).
        device: The device of ``xp`` arrays go to; ``None`` for the namespace's default.
        description: One line naming the hardware, for the log.
        free_memory: Returns the bytes the device has free now, ``None`` for no bound
            (then a pipeline sends each batch task whole, see :meth:`batch_size`).
        out_of_memory: Whether an error raised by work on the device means it was full
            (then a pipeline measures the chunk again in halves); default: a
            ``MemoryError``. CuPy's also knows cuFFT's, cuBLAS's and CUDA's ``RuntimeError``.
        release_memory: Gives back what the device keeps besides live arrays, before a
            smaller chunk is tried (CuPy: cached FFT plans, its pool's unused blocks).

    Example:
        >>> cpu = select_device("cpu")
        >>> cpu.name, cpu.is_cpu, cpu.batch_size(2**20)
        ('cpu', True, None)
    """

    name: str
    xp: Any
    device: Any = None
    description: str = ""
    free_memory: Callable[[], int | None] = field(default=_unbounded)
    out_of_memory: Callable[[BaseException], bool] = field(default=_memory_error)
    release_memory: Callable[[], None] = field(default=_nothing_to_release)

    @property
    def is_cpu(self) -> bool:
        """Whether arrays stay NumPy arrays on the host."""
        return is_numpy(self.xp)

    def asarray(self, values: np.ndarray) -> Any:
        """``values`` (a host array) on this device."""
        if self.is_cpu:
            return values
        return self.xp.asarray(values, device=self.device)

    def to_numpy(self, values: Any) -> np.ndarray:
        """``values`` (an array of this device) back on the host."""
        return to_numpy(values)

    def activated(self) -> AbstractContextManager[Any]:
        """A context in which this device is the current one, for work on its arrays.

        CuPy creates arrays and runs kernels on the current device of the calling thread,
        whatever ``device=`` says; a ``cupy.cuda.Device`` (any device that is a context
        manager) is entered, other devices need nothing.

        Example:
            >>> with select_device("cpu").activated():
            ...     pass
        """
        if isinstance(self.device, AbstractContextManager):
            return self.device
        return nullcontext()

    def gather_columns(self, arrays: Sequence[Any]) -> np.ndarray:
        """``arrays`` (``(rows, k_i)`` float arrays of this device) side by side on the host.

        One transfer for all of them, ``(rows, Σ k_i)``: on a GPU each read back waits for
        the device, so a batch's 30-odd statistics come home at once.

        Example:
            >>> values = [np.ones((2, 3)), np.zeros((2, 1))]
            >>> select_device("cpu").gather_columns(values).tolist()
            [[1.0, 1.0, 1.0, 0.0], [1.0, 1.0, 1.0, 0.0]]
        """
        if len(arrays) == 1:
            return to_numpy(arrays[0])
        return to_numpy(namespace(*arrays).concat(list(arrays), axis=-1))

    def batch_size(self, bytes_per_patch: int) -> int | None:
        """How many patches of ``bytes_per_patch`` working memory to send at once.

        Half the device's free memory over the working memory of one patch, at least 1;
        ``None`` where the memory is not bounded (the CPU measures patch by patch).

        Raises:
            ResourceError: one patch needs more than all the free memory (``value``: the
                bytes it needs), so no chunk could run.
        """
        free = self.free_memory()
        if free is None:
            return None
        need = max(1, int(bytes_per_patch))
        if need > free:
            raise ResourceError(
                f"one patch needs ~{need / 2**20:.0f} MiB of working memory, and "
                f"{self.description or self.name} has {free / 2**20:.0f} MiB free",
                value=need,
                hint="free the device (other processes, other runs), measure smaller patches "
                "or fewer statistics (bispectra), or use device 'cpu'",
            )
        return max(1, int(free * _BATCH_SHARE) // need)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view: name and description."""
        return {"name": self.name, "description": self.description}


CPU_DEVICE = ArrayDevice("cpu", namespace(np.empty(0)), None, "NumPy on the CPU")
"""NumPy on the host: what ``"cpu"`` selects."""


def select_device(
    name: str,
    *,
    setting: str = "device",
    find_gpu: Callable[[], ArrayDevice] | None = None,
) -> ArrayDevice:
    """Return the :class:`ArrayDevice` of ``name``: ``"cpu"``, ``"gpu"`` or ``"auto"``.

    Args:
        name: ``"cpu"``: NumPy; ``"gpu"``: CuPy on the current CUDA device; ``"auto"``:
            the GPU when CuPy can measure there, else the CPU (with a warning in the log
            saying why not, where CuPy is installed).
        setting: How a ``ConfigError`` names the setting (``"pipeline.device"``).
        find_gpu: Returns the GPU's device, or raises ``ConfigError`` saying why there is
            none (its message) and what to do (its hint); default: CuPy on the current
            CUDA device, checked by :func:`._cuda.cuda_problem`.

    Raises:
        ConfigError: an unknown name, or ``"gpu"`` where there is no usable GPU: CuPy not
            installed (naming the extras ``gpu-cuda12`` and ``gpu-cuda13``), no driver, a
            driver too old, no device, a CUDA library missing; one line saying which.

    Example:
        >>> def no_gpu() -> ArrayDevice:
        ...     raise ConfigError("no NVIDIA driver is loaded", value=None, hint="use 'cpu'")
        >>> select_device("auto", find_gpu=no_gpu).description
        'NumPy on the CPU (no GPU: no NVIDIA driver is loaded)'
    """
    if name not in DEVICE_NAMES:
        raise ConfigError(
            f"unknown device {name!r}",
            value=name,
            hint=f"choose from {', '.join(DEVICE_NAMES)}",
            field=setting,
        )
    if name == "cpu":
        return CPU_DEVICE
    try:
        return (find_gpu or _cuda_gpu)()
    except ConfigError as exc:
        if name == "gpu":
            raise ConfigError(
                f"device 'gpu' needs a usable CUDA GPU: {exc.message}",
                value=name,
                hint=exc.hint,
                field=setting,
            ) from exc
        quiet = find_gpu is None and not _cuda.installed()  # a machine without CuPy: as planned
        _log.log(
            logging.INFO if quiet else logging.WARNING,
            "device 'auto' measures on the CPU: no usable GPU, %s (%s)",
            exc.message,
            exc.hint,
        )
        return ArrayDevice(
            "cpu", CPU_DEVICE.xp, None, f"{CPU_DEVICE.description} (no GPU: {exc.message})"
        )


def _cuda_gpu() -> ArrayDevice:
    """CuPy on the current CUDA device, or a ``ConfigError`` saying why it cannot measure."""
    problem = _cuda.cuda_problem()
    if problem is not None:
        reason, hint = problem
        raise ConfigError(reason, value=None, hint=hint)
    from array_api_compat import cupy as cupy_namespace

    device = _cuda.device()
    return ArrayDevice(
        "gpu",
        cupy_namespace,
        device,
        _cuda.describe(device),
        lambda: _cuda.free_bytes(device),
        _cuda.out_of_memory,
        lambda: _cuda.release_memory(device),
    )
