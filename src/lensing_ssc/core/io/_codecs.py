"""Compression codecs for checkpoints and the cache, chosen by name.

``none`` and ``gzip`` (standard library) are always there; ``zstd`` (``zstandard``) and
``lz4`` (``lz4``) come with the ``fast`` extra. :func:`resolve_codec` turns a config value
(``"auto"``, ``True``, ``None``, a name) into a :class:`Codec`; :func:`compress` also
decides whether compressing is worth it: data that a sample shows will not shrink below
``min_ratio`` of its size (already-compressed data, noisy float mantissas) is returned raw
under the name ``"none"``, so callers store the returned name beside the bytes and pass it
back to :func:`decompress`.

Frames are the codecs' standard formats (RFC 1952 gzip, zstd and lz4 frames with the
content size), readable by the command-line tools. ``decompress(..., max_size=n)`` stops at
``n`` bytes of output: a small payload from someone else's file that would inflate to
gigabytes (a decompression bomb) is refused before the memory is spent, whatever size its
frame claims. Serialisation of Python objects and arrays into bytes is the checkpoint and
cache managers' business, not this module's.
"""

from __future__ import annotations

import gzip
import threading
import zlib
from abc import ABC, abstractmethod
from typing import Any, Protocol

from lensing_ssc.core.base.cpus import usable_cpus
from lensing_ssc.core.base.exceptions import ConfigError

from ._buffers import byte_view

try:
    import zstandard
except ImportError:  # pragma: no cover - the fast extra is installed in development
    zstandard = None  # type: ignore[assignment]

try:
    import lz4.frame as lz4_frame
except ImportError:  # pragma: no cover - the fast extra is installed in development
    lz4_frame = None

__all__ = [
    "CODEC_NAMES",
    "Codec",
    "available_codecs",
    "compress",
    "decompress",
    "get_codec",
    "resolve_codec",
]

CODEC_NAMES: tuple[str, ...] = ("none", "gzip", "zstd", "lz4")
"""Every codec name :func:`get_codec` knows, installed or not."""

_AUTO_PREFERENCE = ("zstd", "lz4", "gzip")
_FAST_EXTRA = 'pip install "lensing-ssc[fast]"'
_SAMPLE_ABOVE = 1 << 20  # bytes; smaller inputs are judged by compressing all of them
_SAMPLE_WINDOW = 64 << 10
_SAMPLE_WINDOWS = 4


class Codec(Protocol):
    """What checkpoint and cache code needs from a compression codec."""

    @property
    def name(self) -> str:
        """The name stored beside compressed data and passed back to :func:`decompress`."""
        ...

    def compress(self, data: Any, *, level: int | None = None) -> bytes:
        """Compress a bytes-like object at ``level`` (``None``: the codec's default)."""
        ...

    def decompress(self, data: Any, *, max_size: int | None = None) -> bytes:
        """Invert :meth:`compress`; corrupt or foreign data, or more than ``max_size`` bytes
        of output, raises ``ValueError``."""
        ...


class _CodecBase(ABC):
    """Shared level checking and naming of the built-in codecs."""

    name = ""
    package = ""  # the optional package providing the codec ("" for the standard library)
    default_level = 0
    levels = (0, 0)

    @property
    def available(self) -> bool:
        return True

    def _level(self, level: int | None) -> int:
        if level is None:
            return self.default_level
        low, high = self.levels
        if isinstance(level, bool) or not isinstance(level, int) or not low <= level <= high:
            raise ConfigError(
                f"{self.name} compression level must be an integer from {low} to {high}",
                value=level,
                field="level",
                hint=f"use None for the default ({self.default_level})",
            )
        return level

    @abstractmethod
    def compress(self, data: Any, *, level: int | None = None) -> bytes:
        """Compress a bytes-like object at ``level`` (``None``: the codec's default)."""

    def decompress(self, data: Any, *, max_size: int | None = None) -> bytes:
        """Invert :meth:`compress`; corrupt or foreign data, or more than ``max_size`` bytes
        of output, raises ``ValueError``."""
        view = byte_view(data)
        if max_size is None:
            return self._decompress(view)
        if isinstance(max_size, bool) or not isinstance(max_size, int) or max_size < 0:
            raise ValueError(f"max_size must be a non-negative integer, got {max_size!r}")
        return self._decompress_at_most(view, max_size)

    @abstractmethod
    def _decompress(self, view: memoryview) -> bytes:
        """All of ``view``'s content."""

    @abstractmethod
    def _decompress_at_most(self, view: memoryview, max_size: int) -> bytes:
        """``view``'s content, allocating no more than about ``max_size`` bytes for it."""

    def _corrupt(self, data: Any, exc: BaseException | str) -> ValueError:
        size = byte_view(data).nbytes
        return ValueError(f"cannot decompress {size} bytes as {self.name}: {exc}")

    def _too_large(self, data: Any, max_size: int) -> ValueError:
        return self._corrupt(data, f"it inflates to more than {max_size} bytes")

    def __repr__(self) -> str:
        return f"<codec {self.name}>"


class _NoCompression(_CodecBase):
    name = "none"

    def compress(self, data: Any, *, level: int | None = None) -> bytes:
        return data if type(data) is bytes else byte_view(data).tobytes()

    def _decompress(self, view: memoryview) -> bytes:
        source = view.obj
        if type(source) is bytes and len(source) == view.nbytes:
            return source  # already the bytes asked for: no copy
        return view.tobytes()

    def _decompress_at_most(self, view: memoryview, max_size: int) -> bytes:
        if view.nbytes > max_size:
            raise self._too_large(view, max_size)
        return self._decompress(view)


class _GzipCodec(_CodecBase):
    name = "gzip"
    default_level = 6
    levels = (0, 9)

    def compress(self, data: Any, *, level: int | None = None) -> bytes:
        # mtime 0 in the header keeps the output a function of the input alone.
        deflate = zlib.compressobj(self._level(level), zlib.DEFLATED, 16 + zlib.MAX_WBITS)
        return deflate.compress(byte_view(data)) + deflate.flush()

    def _decompress(self, view: memoryview) -> bytes:
        try:
            return gzip.decompress(view)
        except (OSError, EOFError, zlib.error) as exc:
            raise self._corrupt(view, exc) from exc

    def _decompress_at_most(self, view: memoryview, max_size: int) -> bytes:
        # Member by member, as gzip.decompress reads them, each asked for no more output
        # than the bound leaves; a member that still has input then is over the bound.
        parts: list[bytes] = []
        left, rest = max_size, bytes(view)
        try:
            while rest:
                member = zlib.decompressobj(16 + zlib.MAX_WBITS)
                parts.append(member.decompress(rest, left + 1))
                left -= len(parts[-1])
                if left < 0 or member.unconsumed_tail:
                    raise self._too_large(view, max_size)
                if not member.eof:
                    raise self._corrupt(view, "compressed data ended before the end of a member")
                rest = member.unused_data.lstrip(b"\0")  # gzip's own padding between members
        except zlib.error as exc:
            raise self._corrupt(view, exc) from exc
        return b"".join(parts)


class _ZstdCodec(_CodecBase):
    name = "zstd"
    package = "zstandard"
    default_level = 3
    levels = (-131072, 22)
    threaded_above = 32 << 20  # bytes; below this, worker threads cost more than they save
    max_threads = 8

    def __init__(self) -> None:
        # zstd contexts are not thread-safe, and building one costs more than compressing
        # a small value, so each thread keeps its own, keyed by (level, threads).
        self._local = threading.local()

    @property
    def available(self) -> bool:
        return zstandard is not None

    def _compressor(self, level: int, threads: int) -> Any:
        try:
            contexts: dict[tuple[int, int], Any] = self._local.compressors
        except AttributeError:
            contexts = self._local.compressors = {}
        context = contexts.get((level, threads))
        if context is None:
            context = zstandard.ZstdCompressor(level=level, threads=threads)
            contexts[(level, threads)] = context
        return context

    def _decompressor(self) -> Any:
        try:
            return self._local.decompressor
        except AttributeError:
            self._local.decompressor = zstandard.ZstdDecompressor()
            return self._local.decompressor

    def compress(self, data: Any, *, level: int | None = None) -> bytes:
        view = byte_view(data)
        threads = 0
        if view.nbytes >= self.threaded_above:
            threads = min(usable_cpus(), self.max_threads)
            threads = threads if threads > 1 else 0
        return self._compressor(self._level(level), threads).compress(view)

    def _decompress(self, view: memoryview) -> bytes:
        try:
            if zstandard.frame_content_size(view) >= 0:
                return self._decompressor().decompress(view)
            # A frame written by a streaming tool may not record its size.
            return zstandard.ZstdDecompressor().decompressobj().decompress(view)
        except zstandard.ZstdError as exc:
            raise self._corrupt(view, exc) from exc

    def _decompress_at_most(self, view: memoryview, max_size: int) -> bytes:
        # A frame that records its size gets exactly that buffer, whatever max_output_size
        # says, so the recorded size is checked first; one that does not is cut off at the
        # bound by max_output_size.
        try:
            declared = zstandard.frame_content_size(view)
            if declared > max_size:
                raise self._too_large(view, max_size)
            if declared >= 0:
                return self._decompressor().decompress(view)
            try:
                return self._decompressor().decompress(view, max_output_size=max_size)
            except zstandard.ZstdError:
                streamed = zstandard.ZstdDecompressor().stream_reader(view).read(max_size + 1)
                if len(streamed) > max_size:
                    raise self._too_large(view, max_size) from None
                raise
        except zstandard.ZstdError as exc:
            raise self._corrupt(view, exc) from exc


class _Lz4Codec(_CodecBase):
    name = "lz4"
    package = "lz4"
    default_level = 0
    levels = (0, 16)

    @property
    def available(self) -> bool:
        return lz4_frame is not None

    def compress(self, data: Any, *, level: int | None = None) -> bytes:
        level = self._level(level)
        return lz4_frame.compress(byte_view(data), compression_level=level, store_size=True)

    def _decompress(self, view: memoryview) -> bytes:
        try:
            return lz4_frame.decompress(view)
        except RuntimeError as exc:
            raise self._corrupt(view, exc) from exc

    def _decompress_at_most(self, view: memoryview, max_size: int) -> bytes:
        # The decompressor allocates what the frame records (0: not recorded), so that is
        # checked first; max_length then cuts off a frame that records nothing, or lies.
        try:
            if lz4_frame.get_frame_info(view)["content_size"] > max_size:
                raise self._too_large(view, max_size)
            frame = lz4_frame.LZ4FrameDecompressor()
            data = frame.decompress(view, max_length=max_size + 1)
        except RuntimeError as exc:
            raise self._corrupt(view, exc) from exc
        if len(data) > max_size:
            raise self._too_large(view, max_size)
        if not frame.eof:
            raise self._corrupt(view, "compressed data ended before the end of the frame")
        return data


_CODECS: dict[str, _CodecBase] = {
    codec.name: codec for codec in (_NoCompression(), _GzipCodec(), _ZstdCodec(), _Lz4Codec())
}


def available_codecs() -> tuple[str, ...]:
    """Names of the codecs usable in this environment, in :data:`CODEC_NAMES` order."""
    return tuple(name for name in CODEC_NAMES if _CODECS[name].available)


def get_codec(name: str) -> Codec:
    """Return the codec called ``name`` (``"none"``, ``"gzip"``, ``"zstd"`` or ``"lz4"``).

    Raises:
        ConfigError: ``name`` is not a codec name; the message lists the valid ones.
        ModuleNotFoundError: The codec's package is not installed; names the extra.

    Example:
        >>> get_codec("gzip").name
        'gzip'
    """
    return _get(name)


def _get(name: str) -> _CodecBase:
    codec = _CODECS.get(name.lower()) if isinstance(name, str) else None
    if codec is None:
        raise ConfigError(
            f"unknown compression {name!r}",
            value=name,
            field="compression",
            hint=f"choose one of: {', '.join(CODEC_NAMES)} (or 'auto' for the best installed)",
        )
    if not codec.available:
        raise ModuleNotFoundError(
            f"compression {codec.name!r} needs the {codec.package} package: {_FAST_EXTRA}",
            name=codec.package,
        )
    return codec


def resolve_codec(spec: str | bool | Codec | None) -> Codec:
    """Turn a compression setting into a codec.

    Args:
        spec: A codec name; ``"auto"`` or ``True`` for the best installed codec
            (zstd, then lz4, then gzip); ``"none"``, ``False`` or ``None`` for no
            compression; or a codec returned by :func:`get_codec`.

    Raises:
        ConfigError: ``spec`` is none of the above.
        ModuleNotFoundError: A named codec is not installed.
    """
    return _resolve(spec)


def _resolve(spec: str | bool | Codec | None) -> _CodecBase:
    if spec is None or spec is False:
        return _CODECS["none"]
    if spec is True or (isinstance(spec, str) and spec.lower() == "auto"):
        name = next(name for name in _AUTO_PREFERENCE if _CODECS[name].available)
        return _CODECS[name]
    if isinstance(spec, _CodecBase):
        return _get(spec.name)
    if isinstance(spec, str):
        return _get(spec)
    raise ConfigError(
        f"compression must be a codec name, 'auto', True/False or None, got {type(spec).__name__}",
        value=spec,
        field="compression",
        hint=f"choose one of: {', '.join(CODEC_NAMES)}, auto",
    )


def _sample(view: memoryview) -> bytes:
    step = (view.nbytes - _SAMPLE_WINDOW) // (_SAMPLE_WINDOWS - 1)
    return b"".join(view[i * step : i * step + _SAMPLE_WINDOW] for i in range(_SAMPLE_WINDOWS))


def compress(
    data: Any,
    codec: str | bool | Codec | None,
    *,
    level: int | None = None,
    min_ratio: float = 0.9,
) -> tuple[str, bytes]:
    """Compress ``data`` if it pays, and say which codec was actually used.

    Inputs above 1 MiB are first judged on a 256 KiB sample from four places; inputs that
    do not shrink to ``min_ratio`` of their size (on the sample, then in full) come back
    unchanged as ``("none", data)``, so the result is never larger than the input.

    Args:
        data: A bytes-like object or a contiguous numpy array.
        codec: Anything :func:`resolve_codec` accepts.
        level: Compression level; ``None`` means the codec's default (gzip 6, zstd 3, lz4 0).
        min_ratio: Keep the compressed form only if ``compressed / raw <= min_ratio``.

    Returns:
        ``(codec_name, payload)``: store both; :func:`decompress` takes them back.

    Raises:
        ConfigError: Unknown codec, a level out of the codec's range, ``min_ratio`` not in
            (0, 1].

    Example:
        >>> name, blob = compress(b"abc" * 1000, "gzip")
        >>> name, decompress(name, blob) == b"abc" * 1000
        ('gzip', True)
    """
    chosen = _resolve(codec)
    if isinstance(min_ratio, bool) or not isinstance(min_ratio, (int, float)):
        raise ConfigError("min_ratio must be a number in (0, 1]", value=min_ratio, hint="e.g. 0.9")
    if not 0 < min_ratio <= 1:
        raise ConfigError("min_ratio must be in (0, 1]", value=min_ratio, hint="e.g. 0.9")
    if chosen.name == "none":
        return "none", _as_bytes(data, byte_view(data))
    level = chosen._level(level)
    view = byte_view(data)
    if view.nbytes == 0:
        return "none", _as_bytes(data, view)
    if view.nbytes > _SAMPLE_ABOVE:
        sample = _sample(view)
        if len(chosen.compress(sample, level=level)) > min_ratio * len(sample):
            return "none", _as_bytes(data, view)
    payload = chosen.compress(view, level=level)
    if len(payload) > min_ratio * view.nbytes:
        return "none", _as_bytes(data, view)
    return chosen.name, payload


def _as_bytes(data: Any, view: memoryview) -> bytes:
    return data if type(data) is bytes else view.tobytes()


def decompress(codec_name: str, data: Any, *, max_size: int | None = None) -> bytes:
    """Invert :func:`compress`: ``decompress(*compress(data, codec)) == data``.

    Args:
        codec_name: The name :func:`compress` returned.
        data: The payload.
        max_size: Refuse output longer than this many bytes, allocating no more than about
            that much first. Give it for data read from a file someone else may have
            written: the size the file declares, which a decompression bomb exceeds.

    Raises:
        ConfigError: ``codec_name`` is not a codec name.
        ModuleNotFoundError: The codec's package is not installed; names the extra.
        ValueError: ``data`` is corrupt or not in that codec's format, or inflates to more
            than ``max_size`` bytes (the message says so); ``max_size`` is negative.

    Example:
        >>> name, blob = compress(b"abc" * 1000, "gzip")
        >>> len(decompress(name, blob, max_size=3000))
        3000
    """
    return get_codec(codec_name).decompress(data, max_size=max_size)
