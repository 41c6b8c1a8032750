"""The queries of the disk tier's SQLite index: find, insert, remove, evict, count.

:class:`Index` adds the queries to an open :class:`~._database.IndexDatabase` (tables,
journal mode and transactions are there). Every method runs under the caller's lock;
reading methods run no transaction and never write, and write methods take the open
transaction's connection, so that one ``BEGIN IMMEDIATE`` transaction holds a whole put,
with the bytes and entries in ``totals`` kept in step.

Why stdlib ``sqlite3`` and not ``diskcache``: the measurement is in ``docs/cache_manager.md``
(``benchmarks/bench_cache.py``). In short, diskcache turns every LRU/LFU read into a write
transaction (to update access time and statistics), allows one tag per entry, and stores
values as pickles or files it writes in many small pieces without ``fsync``. This index
keeps reads read-only (access times and counters are batched into the next write
transaction, :mod:`._connection`), has a ``tags`` table with any number of tags per entry,
and leaves values to :mod:`._values` (raw arrays, atomic durable files).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

from ._database import COUNTERS, IndexDatabase

__all__ = ["Index", "Row", "Victim", "read_tag_counts", "read_totals"]

_VICTIM_BATCH = 256
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


class Index(IndexDatabase):
    """The disk tier's database with its queries. Not thread-safe: callers hold their own lock.

    Opened with the arguments of :class:`~._database.IndexDatabase`, which says what they
    are and what opening raises.
    """

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
