"""Helpers the I/O benchmarks share: giving every timed step the same machine state.

Timed writes and cold reads on a shared virtual machine depend on more than the code:
dirty pages still being written back, discards of deleted files, and memory that the
hypervisor took back. :func:`settle` and :func:`warm_free_memory`, called before ours and
the anchor alike, take those out of the comparison.
"""

from __future__ import annotations

import os
import time

import numpy as np

__all__ = ["settle", "warm_free_memory"]


def settle(pause: float) -> None:
    """Flush everything and wait, so one run's writeback and discards do not land in the
    next run's timing."""
    os.sync()
    time.sleep(pause)


def warm_free_memory(nbytes: int) -> None:
    """Touch ``nbytes`` of fresh memory and free it again.

    A virtual machine with free page reporting (virtio-balloon) hands memory freed a few
    seconds ago back to the hypervisor; the next first touch of it then runs at a fraction
    of memory speed (0.45 GiB/s on our CI machines). Writing a file needs page-cache pages,
    reading one needs pages for the file and the array, so whichever side ran next would
    pay. Touching the memory just before each timed step gives both sides hot pages, as on
    bare metal.
    """
    buffer = np.ones(nbytes // 8)
    del buffer
