"""The public surface of lensing_ssc.core.io, which the checkpoint and cache managers use."""

from __future__ import annotations

import lensing_ssc.core.io as io_module

# In the isort-style order ruff enforces (RUF022): constants, classes, functions.
EXPECTED = [
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


def test_all_lists_exactly_the_public_names() -> None:
    """__all__ is exactly the documented names, and every one of them is importable."""
    assert io_module.__all__ == EXPECTED
    for name in EXPECTED:
        assert getattr(io_module, name) is not None
    public = {name for name in vars(io_module) if not name.startswith("_")}
    assert public == set(EXPECTED)
