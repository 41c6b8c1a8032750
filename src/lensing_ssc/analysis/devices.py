"""Where the statistics run: NumPy on the CPU, or CuPy on a CUDA GPU, chosen by name.

:func:`select_device` turns ``"cpu"``, ``"gpu"`` or ``"auto"`` into an :class:`ArrayDevice`:
an array namespace, the device its arrays go to, and how much memory that device has free.
The estimators of :mod:`lensing_ssc.analysis.statistics` take arrays of any namespace, so
moving patches to the device (:meth:`ArrayDevice.asarray`) is all it takes to measure them
there; :func:`~lensing_ssc.analysis.compute_patch_statistics_batch` does a stack at once,
and :meth:`ArrayDevice.batch_size` says how many patches fit.

CuPy comes with an extra named for the CUDA major version of the machine's driver (the
"CUDA Version" that ``nvidia-smi`` prints): ``lensing-ssc[gpu-cuda12]`` (``cupy-cuda12x``)
or ``lensing-ssc[gpu-cuda13]`` (``cupy-cuda13x``). ``"gpu"`` without CuPy or without a
device is a ``ConfigError`` naming them; ``"auto"`` then falls back to the CPU.

Not here: the batches a pipeline sends (:mod:`lensing_ssc.pipelines`), and the estimators.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from lensing_ssc.analysis._arrays import is_numpy, namespace, to_numpy
from lensing_ssc.core.base.exceptions import ConfigError, ResourceError

try:
    import cupy
except ImportError:  # the gpu-cuda12 or gpu-cuda13 extra
    cupy = None

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

GPU_EXTRAS = ("gpu-cuda12", "gpu-cuda13")
"""The extras that bring CuPy, by CUDA major version of the driver (``nvidia-smi``)."""

_EXTRAS_HINT = (
    "install CuPy for the CUDA major version that nvidia-smi prints: "
    "pip install 'lensing-ssc[gpu-cuda12]' (CUDA 12.x) or 'lensing-ssc[gpu-cuda13]' "
    "(CUDA 13.x); or use device 'cpu' (or 'auto', which takes the GPU only when there is one)"
)

# Share of the device's free memory one batch may fill: the estimate of
# :func:`~lensing_ssc.analysis.patch_statistics.working_bytes` leaves out the binning's
# one-hot block (at most 144 MiB), CuPy's FFT plans and the memory pool's rounding.
_BATCH_SHARE = 0.5


def _unbounded() -> int | None:
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


def select_device(name: str, *, setting: str = "device") -> ArrayDevice:
    """Return the :class:`ArrayDevice` of ``name``: ``"cpu"``, ``"gpu"`` or ``"auto"``.

    Args:
        name: ``"cpu"``: NumPy; ``"gpu"``: CuPy on the current CUDA device; ``"auto"``:
            the GPU when CuPy and a device are there, else the CPU.
        setting: How a ``ConfigError`` names the setting (``"pipeline.device"``).

    Raises:
        ConfigError: an unknown name, or ``"gpu"`` without CuPy or without a CUDA device
            (naming the extras ``gpu-cuda12`` and ``gpu-cuda13``).
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
    if cupy is None:
        if name == "auto":
            return CPU_DEVICE
        raise ConfigError(
            "device 'gpu' needs CuPy, which is not installed",
            value=name,
            hint=_EXTRAS_HINT,
            field=setting,
        )
    problem = _cuda_problem()
    if problem is not None:
        if name == "auto":
            return CPU_DEVICE
        raise ConfigError(
            f"device 'gpu' needs a CUDA device, and CuPy finds none: {problem}",
            value=name,
            hint=_EXTRAS_HINT,
            field=setting,
        )
    return _gpu_device()


def _cuda_problem() -> str | None:
    """Why CuPy cannot use a GPU here (no driver, no device, a driver too old), or None."""
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except cupy.cuda.runtime.CUDARuntimeError as exc:
        return str(exc)
    return None if count > 0 else "no device is visible (CUDA_VISIBLE_DEVICES?)"


def _gpu_device() -> ArrayDevice:
    from array_api_compat import cupy as cupy_namespace

    device = cupy.cuda.Device()
    properties = cupy.cuda.runtime.getDeviceProperties(device.id)
    name = properties["name"]
    label = name.decode() if isinstance(name, bytes) else str(name)
    _, total = cupy.cuda.runtime.memGetInfo()
    return ArrayDevice(
        "gpu",
        cupy_namespace,
        device,
        f"CuPy on GPU {device.id}: {label}, {total / 2**30:.0f} GiB",
        _gpu_free_memory,
    )


def _gpu_free_memory() -> int:
    """Bytes free on the current device, counting what CuPy's pool holds but does not use."""
    free, _ = cupy.cuda.runtime.memGetInfo()
    return int(free) + int(cupy.get_default_memory_pool().free_bytes())
