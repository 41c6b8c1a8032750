"""The SQLite index of the disk tier: one database file shared by processes, WAL or DELETE.

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

Why stdlib ``sqlite3`` and not ``diskcache``: the measurement is in ``docs/cache_manager.md``
(``benchmarks/bench_cache.py``). In short, diskcache turns every LRU/LFU read into a write
transaction (to update access time and statistics), allows one tag per entry, and stores
values as pickles or files it writes in many small pieces without ``fsync``. This index
keeps reads read-only (access times and counters are batched into the next write
transaction), has a ``tags`` table with any number of tags per entry, and leaves values to
:mod:`._values` (raw arrays, atomic durable files).

Tables: ``entries`` (one row per key: its canonical encoding, how the value is stored, an
inline payload or a value file name, size, digest, tags, times, use count, expiry),
``tags`` (tag, entry) with an index both ways, ``totals`` (one row: bytes, entries and
cumulative counters, kept in step inside every write transaction), ``leases`` (memoize's
cross-process compute locks) and ``meta`` (schema version). Every method runs under the
caller's lock; write methods run one ``BEGIN IMMEDIATE`` transaction each, so a process
killed at any point leaves the index as it was before or after the transaction.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

__all__ = [
    "COUNTERS",
    "Index",
    "IndexModeError",
    "Row",
    "Victim",
    "read_tag_counts",
    "read_totals",
]

SCHEMA_VERSION = 1
COUNTERS = ("hits", "misses", "evictions", "expirations", "rejected")
_BUSY_TIMEOUT = 60.0  # seconds a write waits for other processes' transactions
_VICTIM_BATCH = 256
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
_NO_TAGS = "[]"
_ROW = "id, kind, codec, meta, size, digest, inline, file, tags, expires"


def read_totals(conn: sqlite3.Connection) -> dict[str, int]:
    """Bytes, entries and the cumulative counters of every process, from any connection."""
    names = ("bytes", "entries", *COUNTERS)
    found = conn.execute(f"SELECT {', '.join(names)} FROM totals").fetchone()
    if found is None:
        raise sqlite3.DatabaseError("database disk image is malformed")  # its one row is gone
    return dict(zip(names, found, strict=True))


def read_tag_counts(conn: sqlite3.Connection) -> dict[str, int]:
    """Entries per tag, from any connection."""
    rows = conn.execute("SELECT tag, count(*) FROM tags GROUP BY tag ORDER BY tag")
    return dict(rows.fetchall())


class IndexModeError(sqlite3.DatabaseError):
    """The index cannot be opened in the journal mode asked for (see :class:`Index`)."""


class Row(NamedTuple):
    """An entry as a reader needs it."""

    id: int
    kind: int
    codec: str
    meta: str
    size: int
    digest: str
    inline: bytes | None
    file: str | None
    tags: str
    expires: float | None

    def tag_tuple(self) -> tuple[str, ...]:
        """The entry's tags."""
        return tuple(json.loads(self.tags)) if self.tags != "[]" else ()


class Victim(NamedTuple):
    """An entry removed by a write: what the caller must still clean up."""

    file: str | None
    size: int
    key: bytes = b""


class Index:
    """The disk tier's database. Not thread-safe: callers hold their own lock.

    Args:
        path: The database file (created with its tables if missing).
        policy: The eviction order this opener uses.
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

    # -- reading (no transaction, never writes) -----------------------------------------
    def find(self, key: bytes) -> Row | None:
        """The row of ``key``, or ``None``."""
        found = self._conn.execute(f"SELECT {_ROW} FROM entries WHERE key = ?", (key,)).fetchone()
        return None if found is None else Row(*found)

    def contains(self, key: bytes, now: float) -> bool:
        """Whether ``key`` has an entry that has not expired."""
        found = self._conn.execute(
            "SELECT 1 FROM entries WHERE key = ? AND (expires IS NULL OR expires > ?)", (key, now)
        ).fetchone()
        return found is not None

    def totals(self) -> dict[str, int]:
        """Bytes, entries and the cumulative counters of every process."""
        return read_totals(self._conn)

    def file_bytes(self) -> int:
        """Bytes of the values stored in value files (what evicting them all would free)."""
        (size,) = self._conn.execute(
            "SELECT coalesce(sum(size), 0) FROM entries WHERE file IS NOT NULL"
        ).fetchone()
        return int(size)

    def tag_counts(self) -> dict[str, int]:
        """Entries per tag."""
        return read_tag_counts(self._conn)

    def meta(self, name: str) -> Any:
        """The value stored under ``name`` in the ``meta`` table, or ``None``."""
        found = self._conn.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
        return None if found is None else found[0]

    def set_meta(self, conn: sqlite3.Connection, name: str, value: Any) -> None:
        """Store ``value`` under ``name`` in the ``meta`` table."""
        conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (name, value))

    def files(self) -> set[str]:
        """Names of every value file the index refers to."""
        rows = self._conn.execute("SELECT file FROM entries WHERE file IS NOT NULL")
        return {name for (name,) in rows}

    # -- writing (inside ``transaction()``) ---------------------------------------------
    def flush(
        self, conn: sqlite3.Connection, accesses: dict[bytes, list[float]], counts: dict[str, int]
    ) -> None:
        """Apply batched reads: access times and use counts, and counter increments."""
        if accesses:
            conn.executemany(
                "UPDATE entries SET accessed = max(accessed, ?), uses = uses + ? WHERE key = ?",
                [(when, uses, key) for key, (when, uses) in accesses.items()],
            )
        if any(counts.values()):
            sets = ", ".join(f"{name} = {name} + ?" for name in counts)
            conn.execute(f"UPDATE totals SET {sets}", tuple(counts.values()))

    def insert(
        self,
        conn: sqlite3.Connection,
        key: bytes,
        fields: dict[str, Any],
        tags: Sequence[str],
        now: float,
    ) -> tuple[int, Victim | None]:
        """Insert or replace the entry of ``key``.

        Returns:
            The bytes stored afterwards, and the replaced entry, if any.
        """
        old = conn.execute(
            "DELETE FROM entries WHERE key = ? RETURNING id, file, size, tags", (key,)
        ).fetchone()
        if old is not None and old[3] != "[]":
            conn.execute("DELETE FROM tags WHERE entry = ?", (old[0],))
        encoded_tags = _NO_TAGS if not tags else json.dumps(list(tags))
        entry = conn.execute(
            "INSERT INTO entries (key, kind, codec, meta, size, digest, inline, file, tags, "
            "created, accessed, uses, expires) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?)",
            (
                key,
                fields["kind"],
                fields["codec"],
                fields["meta"],
                fields["size"],
                fields["digest"],
                fields["inline"],
                fields["file"],
                encoded_tags,
                now,
                now,
                fields["expires"],
            ),
        ).lastrowid
        if tags:
            conn.executemany("INSERT INTO tags VALUES (?, ?)", [(tag, entry) for tag in tags])
        grown = fields["size"] - (old[2] if old is not None else 0)
        (used,) = conn.execute(
            "UPDATE totals SET bytes = bytes + ?, entries = entries + ? RETURNING bytes",
            (grown, 0 if old is not None else 1),
        ).fetchone()
        return used, None if old is None else Victim(old[1], old[2])

    def delete_keys(self, conn: sqlite3.Connection, keys: Iterable[bytes]) -> list[Victim]:
        """Remove the entries of ``keys``; what was removed."""
        removed: list[Victim] = []
        for key in keys:
            old = conn.execute(
                "DELETE FROM entries WHERE key = ? RETURNING id, file, size, tags", (key,)
            ).fetchone()
            if old is not None:
                if old[3] != "[]":
                    conn.execute("DELETE FROM tags WHERE entry = ?", (old[0],))
                removed.append(Victim(old[1], old[2]))
        self._shrink_totals(conn, removed)
        return removed

    def delete_row(self, conn: sqlite3.Connection, row: Row) -> list[Victim]:
        """Remove exactly ``row`` (not a newer entry written under the same key since)."""
        old = conn.execute(
            "DELETE FROM entries WHERE id = ? AND digest = ? RETURNING file, size",
            (row.id, row.digest),
        ).fetchone()
        if old is None:
            return []
        conn.execute("DELETE FROM tags WHERE entry = ?", (row.id,))
        removed = [Victim(old[0], old[1])]
        self._shrink_totals(conn, removed)
        return removed

    def delete_tagged(self, conn: sqlite3.Connection, tags: Sequence[str]) -> list[Victim]:
        """Remove every entry carrying any of ``tags``."""
        conn.execute("CREATE TEMP TABLE IF NOT EXISTS doomed (id INTEGER PRIMARY KEY)")
        conn.execute("DELETE FROM doomed")
        marks = ", ".join("?" * len(tags))
        conn.execute(
            f"INSERT OR IGNORE INTO doomed SELECT entry FROM tags WHERE tag IN ({marks})",
            tuple(tags),
        )
        removed = [
            Victim(name, size, key)
            for name, size, key in conn.execute(
                "SELECT file, size, key FROM entries WHERE id IN (SELECT id FROM doomed)"
            )
        ]
        conn.execute("DELETE FROM tags WHERE entry IN (SELECT id FROM doomed)")
        conn.execute("DELETE FROM entries WHERE id IN (SELECT id FROM doomed)")
        conn.execute("DELETE FROM doomed")
        self._shrink_totals(conn, removed)
        return removed

    def delete_all(self, conn: sqlite3.Connection) -> list[Victim]:
        """Remove every entry."""
        removed = [
            Victim(name, size) for name, size in conn.execute("SELECT file, size FROM entries")
        ]
        conn.execute("DELETE FROM tags")
        conn.execute("DELETE FROM entries")
        conn.execute("UPDATE totals SET bytes = 0, entries = 0")
        return removed

    def delete_expired(self, conn: sqlite3.Connection, now: float) -> list[Victim]:
        """Remove every entry whose expiry has passed; counted as expirations."""
        removed = self._delete_where(conn, "expires IS NOT NULL AND expires <= ?", (now,))
        if removed:
            conn.execute("UPDATE totals SET expirations = expirations + ?", (len(removed),))
        return removed

    def evict(
        self, conn: sqlite3.Connection, used: int, max_bytes: int, now: float
    ) -> tuple[list[Victim], int]:
        """Remove expired entries, then victims in policy order, until within ``max_bytes``.

        Args:
            conn: The open transaction.
            used: Bytes stored now.
            max_bytes: The limit.
            now: The time that decides expiry.

        Returns:
            Everything removed, and how many of those were evictions (not expirations).
        """
        if used <= max_bytes:
            return [], 0
        removed = self.delete_expired(conn, now)
        used -= sum(victim.size for victim in removed)
        evicted = self._evict_in_order(conn, used - max_bytes, files_only=False)
        return removed + evicted, len(evicted)

    def free_files(
        self, conn: sqlite3.Connection, amount: int, now: float
    ) -> tuple[list[Victim], int]:
        """Remove expired entries, then value-file entries in order, to free ``amount`` bytes.

        It stops once the files removed hold ``amount`` bytes, or none are left. Only value
        files give space back to the filesystem: inline entries free pages that the database
        keeps for its next rows, so they are left alone.

        Returns:
            Everything removed, and how many of those were evictions (not expirations).
        """
        removed = self.delete_expired(conn, now)
        amount -= sum(victim.size for victim in removed if victim.file is not None)
        evicted = self._evict_in_order(conn, amount, files_only=True)
        return removed + evicted, len(evicted)

    def _evict_in_order(
        self, conn: sqlite3.Connection, amount: int, *, files_only: bool
    ) -> list[Victim]:
        """Evict in policy order until the sizes evicted reach ``amount``; counted."""
        where = "WHERE file IS NOT NULL " if files_only else ""
        evicted: list[Victim] = []
        while amount > 0:
            batch = conn.execute(
                f"SELECT id, file, size, tags FROM entries {where}ORDER BY {self._order} LIMIT ?",
                (_VICTIM_BATCH,),
            ).fetchall()
            if not batch:
                break
            for entry, name, size, tags in batch:
                conn.execute("DELETE FROM entries WHERE id = ?", (entry,))
                if tags != "[]":
                    conn.execute("DELETE FROM tags WHERE entry = ?", (entry,))
                evicted.append(Victim(name, size))
                conn.execute("UPDATE totals SET bytes = bytes - ?, entries = entries - 1", (size,))
                amount -= size
                if amount <= 0:
                    break
        if evicted:
            conn.execute("UPDATE totals SET evictions = evictions + ?", (len(evicted),))
        return evicted

    def _delete_where(
        self, conn: sqlite3.Connection, where: str, params: tuple[Any, ...]
    ) -> list[Victim]:
        rows = conn.execute(
            f"SELECT id, file, size, tags FROM entries WHERE {where}", params
        ).fetchall()
        removed = []
        for entry, name, size, tags in rows:
            conn.execute("DELETE FROM entries WHERE id = ?", (entry,))
            if tags != "[]":
                conn.execute("DELETE FROM tags WHERE entry = ?", (entry,))
            removed.append(Victim(name, size))
        self._shrink_totals(conn, removed)
        return removed

    @staticmethod
    def _shrink_totals(conn: sqlite3.Connection, removed: list[Victim]) -> None:
        if removed:
            conn.execute(
                "UPDATE totals SET bytes = bytes - ?, entries = entries - ?",
                (sum(victim.size for victim in removed), len(removed)),
            )
