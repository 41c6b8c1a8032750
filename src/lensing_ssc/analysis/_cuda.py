"""CuPy on a CUDA GPU: whether one is usable here, its free memory, its out-of-memory errors.

:mod:`.devices` builds its ``"gpu"`` :class:`~lensing_ssc.analysis.ArrayDevice` from these
functions; nothing else imports CuPy. This module exists for what CuPy (13 and 14) does
that NumPy and the array API do not say:

* ``import cupy`` works without a GPU, a driver or the CUDA libraries; each is missing only
  when first used. Without a driver ``runtime.driverGetVersion()`` is 0 and every call
  raises ``cudaErrorInsufficientDriver``, as it does for a driver older than CuPy's CUDA.
  The ``cupy-cuda12x``/``cupy-cuda13x`` wheels of CuPy 14 bring no cuFFT, cuBLAS or NVRTC:
  without a CUDA toolkit, or the wheel's ``[ctk]`` extra, the first FFT raises
  ``ImportError: libcufft.so.11``. :func:`cuda_problem` finds each of these before a run
  starts, cheapest first, and runs an FFT, a matrix product and a reduction last.
* A full device is ``cupy.cuda.memory.OutOfMemoryError`` (a ``MemoryError``) when CuPy's
  pool cannot allocate, but a ``RuntimeError`` when a library allocates for itself: cuFFT's
  plans (``CuFFTError`` ``CUFFT_ALLOC_FAILED``), cuBLAS (``CUBLAS_STATUS_ALLOC_FAILED``),
  the runtime and the driver (status 2 in both). :func:`out_of_memory` knows them all.
* cuFFT plans are cached per thread and device (16 by default) with their work areas,
  which CuPy's pool does not count as free; :func:`release_memory` drops them and the
  pool's unused blocks before a smaller chunk is tried.
* array-api-compat's CuPy creation functions (``zeros``, ``full``, ``arange``) ignore
  ``device=``: arrays go to the *current* device, so a device's work runs inside
  ``with device:`` (a ``cupy.cuda.Device`` is a context manager).

Not here: choosing a device by name (:func:`lensing_ssc.analysis.select_device`), and the
batches a pipeline sends (:mod:`lensing_ssc.pipelines`).
"""

from __future__ import annotations

import os
import sys
from typing import Any

try:
    import cupy
except ImportError as exc:  # the gpu-cuda12 or gpu-cuda13 extra
    cupy = None
    _IMPORT_FAILURE: str | None = (
        None if isinstance(exc, ModuleNotFoundError) and exc.name == "cupy" else str(exc)
    )
else:
    _IMPORT_FAILURE = None

__all__ = [
    "CUDA_EXTRAS_HINT",
    "GPU_EXTRAS",
    "cuda_problem",
    "describe",
    "device",
    "free_bytes",
    "installed",
    "out_of_memory",
    "release_memory",
]

CUDA_EXTRAS_HINT = (
    "install CuPy for the CUDA major version that nvidia-smi prints: "
    "pip install 'lensing-ssc[gpu-cuda12]' (CUDA 12.x) or 'lensing-ssc[gpu-cuda13]' "
    "(CUDA 13.x); or use device 'cpu' (or 'auto', which takes the GPU only when there is one)"
)

GPU_EXTRAS = ("gpu-cuda12", "gpu-cuda13")
"""The extras that bring CuPy, by CUDA major version of the driver (``nvidia-smi``)."""

_OR_CPU = "; or use device 'cpu'"

# Status codes of a full device: cudaErrorMemoryAllocation, CUDA_ERROR_OUT_OF_MEMORY,
# CUFFT_ALLOC_FAILED, CUBLAS_STATUS_ALLOC_FAILED.
_RUNTIME_OUT_OF_MEMORY = 2
_DRIVER_OUT_OF_MEMORY = 2
_CUFFT_ALLOC_FAILED = 2
_CUBLAS_ALLOC_FAILED = 3

# The CUDA libraries the statistics call, by their attribute of ``cupy.cuda``: reading it
# loads the library the way CuPy does (CuPy 14 finds cuFFT first, then imports the module
# that links it; importing ``cupy.cuda.cufft`` directly skips that and fails).
_LIBRARIES = (("cuFFT", "cufft"), ("cuBLAS", "cublas"))


def installed() -> bool:
    """Whether CuPy is installed (imported, or failed to import for a reason of its own)."""
    return cupy is not None or _IMPORT_FAILURE is not None


def _first_line(error: BaseException) -> str:
    """An error's message, first line only (CUDA's library loaders append directory listings)."""
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0]


def _version(code: int) -> str:
    """CUDA's ``12040`` as ``"12.4"``."""
    return f"{code // 1000}.{code % 1000 // 10}"


def cuda_problem() -> tuple[str, str] | None:
    """Why CuPy cannot measure on a GPU here, as ``(reason, what to do)``; ``None`` if it can.

    Checks, cheapest first and each only if the one before passed: CuPy itself, the
    driver, its CUDA version against CuPy's, a visible device, the cuFFT, cuBLAS and NVRTC
    libraries, then a small FFT, matrix product and reduction on the current device (which
    creates its context and compiles a few kernels: ~1 s the first time, then CuPy's disk
    cache has them).
    """
    if cupy is None:
        if _IMPORT_FAILURE is None:
            return "CuPy is not installed", CUDA_EXTRAS_HINT
        return (
            f"CuPy is installed but does not import: {_IMPORT_FAILURE.splitlines()[0]}",
            "reinstall it: pip install --force-reinstall 'lensing-ssc[gpu-cuda12]' (or "
            f"gpu-cuda13, the CUDA major version that nvidia-smi prints){_OR_CPU}",
        )
    runtime = cupy.cuda.runtime
    driver = runtime.driverGetVersion()
    if driver == 0:
        return (
            "no NVIDIA driver is loaded (libcuda.so.1 was not found)",
            f"run on a node with an NVIDIA GPU, where nvidia-smi lists it{_OR_CPU}",
        )
    built = runtime.runtimeGetVersion()
    if driver // 1000 < built // 1000:
        extra = f"gpu-cuda{driver // 1000}"
        fix = (
            f"install the extra of the driver's CUDA version, pip install 'lensing-ssc[{extra}]', "
            "or update the driver"
            if extra in GPU_EXTRAS
            else "update the driver (CUDA 12 needs 525.60.13 or later, CUDA 13 580 or later)"
        )
        return (
            f"the NVIDIA driver supports CUDA {_version(driver)}, and this CuPy "
            f"({cupy.__version__}) is built for CUDA {_version(built)}",
            f"{fix}{_OR_CPU}",
        )
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    where = "" if visible is None else f" (CUDA_VISIBLE_DEVICES={visible!r})"
    try:
        count = runtime.getDeviceCount()
    except runtime.CUDARuntimeError as exc:
        return f"CUDA finds no device{where}: {_first_line(exc)}", f"check nvidia-smi{_OR_CPU}"
    if count < 1:
        return f"CUDA finds no device{where}", f"check nvidia-smi{_OR_CPU}"
    return _library_problem(built // 1000) or _smoke_problem()


def _library_problem(major: int) -> tuple[str, str] | None:
    """Which CUDA library CuPy cannot load, if one."""
    fix = (
        f"CuPy's wheels bring no CUDA libraries: pip install 'cupy-cuda{major}x[ctk]' (them, "
        f"from PyPI), or load a CUDA {major}.x toolkit (module load cuda){_OR_CPU}"
    )
    for name, attribute in _LIBRARIES:
        try:
            getattr(cupy.cuda, attribute)
        except ImportError as exc:
            return f"CuPy cannot load {name}: {_first_line(exc)}", fix
    try:
        cupy.cuda.nvrtc.getVersion()
    except (ImportError, RuntimeError, OSError) as exc:
        return f"CuPy cannot load NVRTC, its kernel compiler: {_first_line(exc)}", fix
    return None


def _smoke_problem() -> tuple[str, str] | None:
    """What goes wrong in a small FFT, matrix product and reduction on the current device."""
    from cupy.cuda.compiler import CompileException

    try:
        with cupy.cuda.Device():
            ones = cupy.ones((2, 8, 8))
            modes = cupy.fft.rfftn(ones, axes=(-2, -1))
            total = float(modes.real.sum() + (ones @ ones).sum())
    except (RuntimeError, ImportError, MemoryError, CompileException) as exc:
        return (
            f"CuPy fails on the GPU: {type(exc).__name__}: {_first_line(exc)}",
            f"check nvidia-smi (a GPU held by another process in exclusive mode, a GPU "
            f"too new or too old for this CuPy){_OR_CPU}",
        )
    if abs(total - 1152.0) > 1e-6:  # rfftn: 64 in each map's mode 0, ones @ ones: all 8
        return (
            f"CuPy computes wrong numbers on the GPU (a test sum gave {total!r}, not 1152)",
            f"reinstall CuPy for the driver's CUDA version{_OR_CPU}",
        )
    return None


def device() -> Any:
    """The current CUDA device of this thread (``cupy.cuda.Device``)."""
    return cupy.cuda.Device()


def describe(device: Any) -> str:
    """``"CuPy 14.2.0 on GPU 0: NVIDIA H100 80GB HBM3, 80 GiB"``: a device for the log."""
    properties = cupy.cuda.runtime.getDeviceProperties(device.id)
    name = properties["name"]
    label = name.decode() if isinstance(name, bytes) else str(name)
    _, total = device.mem_info
    return f"CuPy {cupy.__version__} on GPU {device.id}: {label}, {total / 2**30:.0f} GiB"


def free_bytes(device: Any) -> int:
    """Bytes ``device`` can still give: free on it, plus what CuPy's pool holds unused.

    Bounded by the pool's limit (``CUPY_GPU_MEMORY_LIMIT``, ``set_limit``) where one is set.
    """
    with device:
        free, _ = cupy.cuda.runtime.memGetInfo()
        pool = cupy.get_default_memory_pool()
        available = int(free) + int(pool.free_bytes())
        limit = int(pool.get_limit())
        if limit > 0:
            available = min(available, max(0, limit - int(pool.used_bytes())))
    return available


def out_of_memory(error: BaseException) -> bool:
    """Whether ``error`` says the device was full: CuPy's, cuFFT's, cuBLAS's or CUDA's way."""
    if isinstance(error, MemoryError):
        return True
    if cupy is None:
        return False
    if isinstance(error, cupy.cuda.runtime.CUDARuntimeError):
        return bool(error.status == _RUNTIME_OUT_OF_MEMORY)
    if isinstance(error, cupy.cuda.driver.CUDADriverError):
        return bool(error.status == _DRIVER_OUT_OF_MEMORY)
    # The library modules load their libraries: an error of one only exists once it loaded.
    cufft = sys.modules.get("cupy.cuda.cufft")
    if cufft is not None and isinstance(error, cufft.CuFFTError):
        return bool(error.result == _CUFFT_ALLOC_FAILED)
    cublas = sys.modules.get("cupy_backends.cuda.libs.cublas")
    if cublas is not None and isinstance(error, cublas.CUBLASError):
        return bool(error.status == _CUBLAS_ALLOC_FAILED)
    return False


def release_memory(device: Any) -> None:
    """Drop this thread's cached cuFFT plans on ``device`` and the pool's unused blocks."""
    with device:
        cupy.fft.config.get_plan_cache().clear()
        cupy.get_default_memory_pool().free_all_blocks()
