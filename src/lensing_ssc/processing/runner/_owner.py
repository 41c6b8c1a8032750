"""The journal's owner lease: which driver appends to a journal, on every filesystem.

``flock`` on ``<journal>.lock`` keeps two drivers of one host apart, but on a filesystem
shared by hosts it may be node-local (Lustre ``localflock``, NFS without a lock daemon) or
refused (Lustre ``noflock``: ``ENOSYS``). So a journal also has a lease file beside it,
``<journal>.owner``: JSON with the driver's host, pid, the pid's start time, a random
token, when it began, its *heartbeat* (its clock at the last renewal) and its *beat* (the
seconds between renewals). The journal's commit thread renews it every beat.

A driver opening the journal reads the lease:

- none, or its own token: it takes it;
- a holder on this host: taken over when that pid no longer runs (or runs a process
  started at another time: the pid was reused); refused while it runs;
- a holder on another host, whose pid cannot be checked: taken over once its heartbeat
  is older than :data:`STALE_BEATS` beats (30 s by default); refused before.

A refusal is a ``CheckpointError`` naming the other driver's host and pid; a takeover is
logged as a warning. Taking the lease is race-free between hosts without any lock: a new
lease file is created with ``O_EXCL``, and a stale one is first renamed aside (only one
of two racing drivers can rename it). Renewal rewrites the file atomically (temporary
file, rename) after checking that the token in it is still this driver's; a driver that
finds another's token has been taken over, and its journal fails its next append.
Heartbeats compare the holder's clock with the reader's: hosts must agree to within a
few seconds (NTP).

The journal itself is in :mod:`._journal`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import socket
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psutil

from lensing_ssc.core.base.exceptions import CheckpointError

__all__ = ["BEAT", "STALE_BEATS", "OwnerLease", "OwnerRecord", "read_owner"]

logger = logging.getLogger("lensing_ssc.processing.runner")

BEAT = 10.0
"""Default seconds between renewals: one small file rewrite, cheap even on NFS or Lustre."""
STALE_BEATS = 3.0
"""Missed renewals after which another host's lease is taken to be abandoned."""
_START_SLACK = 1.0  # seconds: psutil's create_time is rounded to the clock tick


@dataclass(frozen=True)
class OwnerRecord:
    """What a lease file says about the driver holding a journal."""

    host: str
    pid: int
    pid_started: float
    token: str
    started: float
    heartbeat: float
    beat: float

    def to_dict(self) -> dict[str, Any]:
        """The record as the JSON the lease file holds."""
        return asdict(self)

    def describe(self) -> str:
        """``pid 123 on node-b, started 2024-05-01 12:00:00``."""
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.started))
        return f"pid {self.pid} on {self.host}, started {when}"


def read_owner(path: Path) -> OwnerRecord | None:
    """The lease at ``path``; ``None`` if there is none or it is not a lease file."""
    try:
        data = json.loads(path.read_bytes())
        return OwnerRecord(
            host=str(data["host"]),
            pid=int(data["pid"]),
            pid_started=float(data["pid_started"]),
            token=str(data["token"]),
            started=float(data["started"]),
            heartbeat=float(data["heartbeat"]),
            beat=float(data["beat"]),
        )
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError):
        return None  # torn or foreign: no one can be holding the journal through it


def _pid_started(pid: int) -> float | None:
    """When process ``pid`` started; ``None`` if it does not run (or is a zombie)."""
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return None
        return process.create_time()
    except psutil.NoSuchProcess:
        return None
    except psutil.AccessDenied:
        return -1.0  # running, start unknown


def holder_alive(record: OwnerRecord, host: str, now: float) -> bool:
    """Whether the driver of ``record`` may still be using the journal (seen from ``host``)."""
    if record.host == host:
        started = _pid_started(record.pid)
        if started is None:
            return False
        return started < 0 or abs(started - record.pid_started) <= _START_SLACK
    return now - record.heartbeat <= STALE_BEATS * record.beat


class OwnerLease:
    """This driver's lease on one journal. Use :meth:`acquire`; release with :meth:`release`.

    Args:
        path: The lease file (``<journal>.owner``).
        journal: The journal it guards (named in messages).
        beat: Seconds between renewals.
        host: This driver's host name as the lease records it (default: the real one).
    """

    def __init__(self, path: Path, journal: Path, *, beat: float, host: str | None) -> None:
        self.path = path
        self.journal = journal
        self.beat = beat
        self.host = socket.gethostname() if host is None else host
        self.token = secrets.token_hex(8)
        self.lost: OwnerRecord | None = None  # who took the journal over, if anyone
        now = time.time()
        started = _pid_started(os.getpid())
        self._record = OwnerRecord(
            host=self.host,
            pid=os.getpid(),
            pid_started=started if started is not None and started >= 0 else now,
            token=self.token,
            started=now,
            heartbeat=now,
            beat=beat,
        )

    @classmethod
    def acquire(cls, journal: Path, *, beat: float = BEAT, host: str | None = None) -> OwnerLease:
        """Take the lease of ``journal``, or raise naming the driver that holds it.

        Raises:
            CheckpointError: A live driver holds the journal.
            OSError: The lease file cannot be written.
        """
        lease = cls(journal.with_name(journal.name + ".owner"), journal, beat=beat, host=host)
        for _ in range(8):  # each round loses only to a driver that just took the lease
            if lease._create():
                return lease
            holder = read_owner(lease.path)
            if holder is not None and holder_alive(holder, lease.host, time.time()):
                raise in_use_error(journal, holder)
            if lease._set_aside(holder) and holder is not None:
                logger.warning(
                    "task journal %s: taking it over from the driver %s, which is gone (%s)",
                    journal,
                    holder.describe(),
                    "its process has ended"
                    if holder.host == lease.host
                    else f"no heartbeat for {time.time() - holder.heartbeat:.0f} s",
                )
        holder = read_owner(lease.path)
        raise in_use_error(journal, holder)

    def _create(self) -> bool:
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "wb") as handle:
            handle.write(json.dumps(self._record.to_dict()).encode())
            handle.flush()
            os.fsync(handle.fileno())
        return True

    def _set_aside(self, holder: OwnerRecord | None) -> bool:
        """Rename the stale lease ``holder`` away; whether it was that one."""
        aside = self.path.with_name(f"{self.path.name}.stale-{self.token}")
        try:
            os.rename(self.path, aside)
        except FileNotFoundError:
            return False  # released meanwhile: try to create it again
        moved = read_owner(aside)
        if holder is not None and moved is not None and moved.token != holder.token:
            # Another driver took the stale lease between our read and our rename: put
            # its fresh lease back (link fails if a third one is there already).
            with contextlib.suppress(OSError):
                os.link(aside, self.path)
            with contextlib.suppress(OSError):
                aside.unlink()
            return False
        with contextlib.suppress(OSError):
            aside.unlink()
        return True

    def renew(self) -> bool:
        """Write a fresh heartbeat; ``False`` (and :attr:`lost` set) if taken over."""
        found = read_owner(self.path)
        if found is None or found.token != self.token:
            self.lost = found or self._record
            return False
        now = time.time()
        record = OwnerRecord(**{**self._record.to_dict(), "heartbeat": now})
        temporary = self.path.with_name(f"{self.path.name}.{self.token}.tmp")
        temporary.write_bytes(json.dumps(record.to_dict()).encode())
        os.replace(temporary, self.path)
        self._record = record
        return True

    def release(self) -> None:
        """Remove the lease file if it is still this driver's."""
        found = read_owner(self.path)
        if found is not None and found.token == self.token:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()


def in_use_error(journal: Path, holder: OwnerRecord | None) -> CheckpointError:
    """The error for a journal another driver holds."""
    if holder is None:
        return CheckpointError(
            f"the task journal {str(journal)!r} is in use by another run",
            value=str(journal),
            hint="wait for that run to finish, or give this run another journal path",
        )
    bound = STALE_BEATS * holder.beat
    return CheckpointError(
        f"the task journal {str(journal)!r} is in use by another run: {holder.describe()}",
        value=str(journal),
        hint="wait for that run to finish or stop it, or give this run another journal "
        f"path; if its host is gone, the journal is taken over once the run's heartbeat "
        f"is {bound:.0f} s old: run again then",
    )
