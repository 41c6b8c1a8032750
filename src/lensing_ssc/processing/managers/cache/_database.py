"""The disk tier's SQLite database: its tables, its journal mode, its transactions.

:class:`IndexDatabase` opens an index file, makes sure of its tables and schema version,
sets the journal mode and runs transactions; the queries on it are :class:`~._index.Index`'s,
and :class:`~._connection.IndexAccess` keeps one per process, behind a lock.

The journal mode is chosen by :mod:`._filesystem` (``cache.journal_mode``): WAL on a local
disk, the rollback journal (``DELETE``) on a filesystem that several hosts share, where
WAL's shared-memory index would not be shared. An index opened in DELETE mode records
that in its ``meta`` table, and from then on every opener uses DELETE (``auto``) or is
refused (``wal``): one WAL opener would otherwise switch the file back for everyone.
Measured here (local ext4 on a shared 2-core VM, 100-byte values, 2 000 puts then 2 000
disk gets, median of 3 runs): a put costs 90 µs in WAL mode (71-141) and 5.4 ms in DELETE
mode (2.0-6.8 ms: each commit writes, syncs and deletes the rollback journal and syncs the
database, where WAL appends and syncs nothing until a checkpoint); a disk get 17 µs and
30 µs. So DELETE is used only where WAL would be unsafe.

Tables: ``entries`` (one row per key: its canonical encoding, how the value is stored, an
inline payload or a value file name, size, digest, tags, times, use count, expiry),
``tags`` (tag, entry) with an index both ways, ``totals`` (one row: bytes, entries and
cumulative counters, kept in step inside every write transaction), ``leases`` (memoize's
cross-process compute locks) and ``meta`` (schema version, a recorded journal mode). A write
transaction is ``BEGIN IMMEDIATE``, so a process killed at any point leaves the index as it
was before or after it.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["COUNTERS", "IndexDatabase", "IndexModeError"]

SCHEMA_VERSION = 1
COUNTERS = ("hits", "misses", "evictions", "expirations", "rejected")
_BUSY_TIMEOUT = 60.0  # seconds a write waits for other processes' transactions
_CHECKPOINT_PAGES = 10_000  # WAL pages between automatic checkpoints (~40 MB)
_WAL_LIMIT = 64 << 20  # bytes the WAL file is truncated to after a checkpoint
_SWITCH_TIMEOUT = 5.0  # seconds to wait for other connections when leaving WAL mode

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS totals (
    id INTEGER PRIMARY KEY CHECK (id = 0),
    bytes INTEGER NOT NULL DEFAULT 0, entries INTEGER NOT NULL DEFAULT 0,
    {", ".join(f"{name} INTEGER NOT NULL DEFAULT 0" for name in COUNTERS)}
);
INSERT OR IGNORE INTO totals (id) VALUES (0);
CREATE TABLE IF NOT EXISTS entries (
    id INTEGER PRIMARY KEY,
    key BLOB NOT NULL UNIQUE,
    kind INTEGER NOT NULL,
    codec TEXT NOT NULL,
    meta TEXT NOT NULL,
    size INTEGER NOT NULL,
    digest TEXT NOT NULL,
    inline BLOB,
    file TEXT,
    tags TEXT NOT NULL,
    created REAL NOT NULL,
    accessed REAL NOT NULL,
    uses INTEGER NOT NULL,
    expires REAL
);
CREATE INDEX IF NOT EXISTS entries_expires ON entries (expires) WHERE expires IS NOT NULL;
-- The bytes in value files, summed from this index alone when the disk is short of room.
CREATE INDEX IF NOT EXISTS entries_file_size ON entries (size) WHERE file IS NOT NULL;
CREATE TABLE IF NOT EXISTS tags (
    tag TEXT NOT NULL, entry INTEGER NOT NULL, PRIMARY KEY (tag, entry)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS tags_entry ON tags (entry);
CREATE TABLE IF NOT EXISTS leases (
    key BLOB PRIMARY KEY, owner TEXT NOT NULL, host TEXT NOT NULL,
    pid INTEGER NOT NULL, expires REAL NOT NULL,
    heartbeat REAL NOT NULL DEFAULT 0, beat REAL NOT NULL DEFAULT 0
) WITHOUT ROWID;
"""
# Columns added since schema 1 (leases are transient: an older index just gains them).
_ADDED_COLUMNS = {
    "leases": (
        ("heartbeat", "REAL NOT NULL DEFAULT 0"),
        ("beat", "REAL NOT NULL DEFAULT 0"),
    )
}

# Victim order per policy, and the index that serves it (created by the first opener
# that uses the policy, so a cache pays only for the orders it is evicted in).
_ORDER = {"lru": "accessed, id", "lfu": "uses, accessed, id", "fifo": "created, id"}
_ORDER_INDEX = {
    "lru": "CREATE INDEX IF NOT EXISTS entries_lru ON entries (accessed, id)",
    "lfu": "CREATE INDEX IF NOT EXISTS entries_lfu ON entries (uses, accessed, id)",
    "fifo": "CREATE INDEX IF NOT EXISTS entries_fifo ON entries (created, id)",
}


class IndexModeError(sqlite3.DatabaseError):
    """The index cannot be opened in the journal mode asked for (see :class:`IndexDatabase`)."""


class IndexDatabase:
    """An open index file. Not thread-safe: callers hold their own lock.

    Args:
        path: The database file (created with its tables if missing).
        policy: The eviction order this opener uses (its SQL index is created if missing).
        journal_mode: ``"wal"`` (one host) or ``"delete"`` (a filesystem hosts share), as
            :func:`._filesystem.choose_journal_mode` resolved it.
        follow_recorded: Use DELETE when the index records it even if ``"wal"`` was asked
            (the mode was chosen by ``auto``); ``False`` refuses instead.

    Raises:
        IndexModeError: The index is in DELETE mode and ``journal_mode="wal"`` was asked,
            or it is in WAL mode and held open by others while DELETE was asked.
        sqlite3.Error: The database cannot be opened or is not a cache index.
    """

    def __init__(
        self,
        path: Path,
        *,
        policy: str,
        journal_mode: str = "wal",
        follow_recorded: bool = True,
    ) -> None:
        self.path = path
        self.policy = policy
        self._order = _ORDER[policy]
        self._conn = sqlite3.connect(
            path, timeout=_BUSY_TIMEOUT, isolation_level=None, check_same_thread=False
        )
        try:
            self._conn.execute("PRAGMA temp_store=MEMORY")
            self.journal_mode = self._set_mode(journal_mode, follow_recorded)
            with self.transaction():
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        self._conn.execute(statement)
                self._add_columns()
                self._conn.execute(_ORDER_INDEX[policy])
                self._check_version()
                if self.journal_mode == "delete":
                    self.set_meta(self._conn, "journal_mode", "delete")
        except BaseException:
            self._conn.close()
            raise

    def _set_mode(self, wanted: str, follow_recorded: bool) -> str:
        """Put the connection in ``wanted`` mode (or the index's recorded DELETE); the mode."""
        recorded = None
        with contextlib.suppress(sqlite3.OperationalError):  # a new file has no meta yet
            recorded = self.meta("journal_mode")
        if recorded == "delete" and wanted == "wal" and not follow_recorded:
            raise IndexModeError(
                "the index is kept in DELETE mode (a process opened it on a filesystem "
                "shared by hosts, or with cache.journal_mode='delete')"
            )
        if recorded == "delete" or wanted == "delete":
            self._conn.execute(f"PRAGMA busy_timeout = {int(_SWITCH_TIMEOUT * 1000)}")
            try:
                (mode,) = self._conn.execute("PRAGMA journal_mode=DELETE").fetchone()
            except sqlite3.OperationalError as exc:
                raise IndexModeError(
                    "the index is in WAL mode and open in another process, which can "
                    f"only be safe on one host ({exc})"
                ) from exc
            finally:
                self._conn.execute(f"PRAGMA busy_timeout = {int(_BUSY_TIMEOUT * 1000)}")
            # The rollback journal is synced twice per commit with FULL; NORMAL would
            # let a power cut corrupt the database in this mode.
            self._conn.execute("PRAGMA synchronous=FULL")
            return str(mode)
        (mode,) = self._conn.execute("PRAGMA journal_mode=WAL").fetchone()
        self._conn.execute("PRAGMA synchronous=NORMAL")
        # Checkpoint every ~40 MB of log instead of SQLite's ~4 MB: a checkpoint copies
        # each page once however often it changed, and the hot pages (totals, index
        # leaves) change on every put, so this halves the cost of a small put.
        self._conn.execute(f"PRAGMA wal_autocheckpoint={_CHECKPOINT_PAGES}")
        self._conn.execute(f"PRAGMA journal_size_limit={_WAL_LIMIT}")
        return str(mode)

    def _add_columns(self) -> None:
        for table, columns in _ADDED_COLUMNS.items():
            present = {row[1] for row in self._conn.execute(f"PRAGMA table_info({table})")}
            for name, kind in columns:
                if name not in present:
                    self._conn.execute(f"ALTER TABLE {table} ADD COLUMN {name} {kind}")

    def _check_version(self) -> None:
        found = self._conn.execute("SELECT value FROM meta WHERE name = 'schema'").fetchone()
        if found is None:
            self._conn.execute("INSERT INTO meta VALUES ('schema', ?)", (SCHEMA_VERSION,))
        elif found[0] != SCHEMA_VERSION:
            raise sqlite3.DatabaseError(
                f"cache index schema {found[0]} is not the supported {SCHEMA_VERSION}"
            )

    def close(self) -> None:
        """Close the connection."""
        self._conn.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction: committed on success, rolled back on any exception."""
        conn = self.begin()
        try:
            yield conn
        except BaseException:
            self.rollback()
            raise
        self.commit()

    def begin(self) -> sqlite3.Connection:
        """Start a write transaction (waiting for other writers up to the busy timeout)."""
        self._conn.execute("BEGIN IMMEDIATE")
        return self._conn

    def commit(self) -> None:
        """Commit the open transaction."""
        self._conn.execute("COMMIT")

    def truncate_log(self) -> None:
        """Copy the write-ahead log into the database and cut the log file to nothing.

        Waits at most a second for other processes' transactions (not the usual busy
        timeout): it only gives space back, and can be tried again.
        """
        self._conn.execute("PRAGMA busy_timeout = 1000")
        try:
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        finally:
            self._conn.execute(f"PRAGMA busy_timeout = {int(_BUSY_TIMEOUT * 1000)}")

    def rollback(self) -> None:
        """Roll the open transaction back, if SQLite has not already done so."""
        if self._conn.in_transaction:
            self._conn.execute("ROLLBACK")

    def meta(self, name: str) -> Any:
        """The value stored under ``name`` in the ``meta`` table, or ``None``."""
        found = self._conn.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
        return None if found is None else found[0]

    def set_meta(self, conn: sqlite3.Connection, name: str, value: Any) -> None:
        """Store ``value`` under ``name`` in the ``meta`` table."""
        conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (name, value))
