"""Crash-safe file I/O shared by the checkpoint and cache managers.

Four concerns, one private module each:

- atomic writes (:mod:`._atomic`): :func:`atomic_write`, :func:`atomic_open` and the
  clean-up of temporary files left by killed writers; reading files that others may have
  planted (:mod:`._regular`): :func:`open_regular_file`;
- compression (:mod:`._codecs`): ``none``, ``gzip``, ``zstd``, ``lz4`` by name, with
  incompressible data kept raw automatically and decompression bounded on request;
- hashing (:mod:`._hashing`): self-describing digests (``"xxh3_128:…"`` or ``"blake2b:…"``)
  for checksums and content addresses;
- size estimation (:mod:`._sizeof`): the bytes a value keeps alive, for cache accounting.

Serialising Python objects into bytes and deciding file layouts belong to the managers in
:mod:`lensing_ssc.processing.managers`. ``docs/io.md`` describes the guarantees.

Example:
    >>> from lensing_ssc.core.io import atomic_write, compress, hash_bytes
    >>> name, blob = compress(b"kappa" * 10_000, "auto")
    >>> atomic_write(path, [name.encode() + b"\\n", blob])  # doctest: +SKIP
"""

from ._atomic import (
    TEMP_SUFFIX,
    atomic_open,
    atomic_write,
    cleanup_temp_files,
    fsync_directory,
    is_temp_file,
    temp_name_for,
)
from ._codecs import (
    CODEC_NAMES,
    Codec,
    available_codecs,
    compress,
    decompress,
    get_codec,
    resolve_codec,
)
from ._hashing import (
    HASH_ALGORITHMS,
    Hasher,
    default_hash_algorithm,
    hash_array,
    hash_bytes,
    parse_digest,
    verify_digest,
)
from ._regular import open_regular_file
from ._sizeof import DEFAULT_MAX_DEPTH, DEFAULT_MAX_ITEMS, estimate_size

__all__ = [
    "CODEC_NAMES",
    "DEFAULT_MAX_DEPTH",
    "DEFAULT_MAX_ITEMS",
    "HASH_ALGORITHMS",
    "TEMP_SUFFIX",
    "Codec",
    "Hasher",
    "atomic_open",
    "atomic_write",
    "available_codecs",
    "cleanup_temp_files",
    "compress",
    "decompress",
    "default_hash_algorithm",
    "estimate_size",
    "fsync_directory",
    "get_codec",
    "hash_array",
    "hash_bytes",
    "is_temp_file",
    "open_regular_file",
    "parse_digest",
    "resolve_codec",
    "temp_name_for",
    "verify_digest",
]
