"""Batches of line protocol kept on disk while InfluxDB cannot take them.

One gzipped file per batch, ``<dir>/<seq>-<lines>.lp.gz``, replayed oldest first. The
number of lines is part of the name, so what is left can be counted exactly from the
directory (:meth:`Spool.pending`) without trusting any counter kept in memory: a spool
written by another process (a crashed run, ``twin influx flush``) counts the same way.
Files are written under a temporary name and renamed, so a crash never leaves half a
batch to replay.
"""

from __future__ import annotations

import gzip
import os
import threading
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Spool", "SpoolContent"]

SUFFIX = ".lp.gz"


@dataclass(frozen=True)
class SpoolContent:
    """What a spool directory holds: batches (files) and points (lines)."""

    batches: int
    points: int


def lines_in(path: Path) -> int:
    """Lines of one spool file: from its name, or by reading it (older names)."""
    stem = path.name.removesuffix(SUFFIX)
    if "-" in stem:
        return int(stem.split("-", 1)[1])
    return gzip.decompress(path.read_bytes()).count(b"\n")


class Spool:
    """Batches on disk in one directory (see the module docstring)."""

    def __init__(self, directory: Path) -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        existing = self.files()
        self._next = self._seq(existing[-1]) + 1 if existing else 0

    @staticmethod
    def _seq(path: Path) -> int:
        return int(path.name.removesuffix(SUFFIX).split("-", 1)[0])

    def files(self) -> list[Path]:
        """The batches, oldest first."""
        if not self.dir.is_dir():
            return []
        return sorted(self.dir.glob(f"*{SUFFIX}"), key=self._seq)

    def put(self, body: bytes) -> None:
        """Store one batch (newline-terminated lines).

        Several writers may share a directory (a campaign's runs, ``twin influx flush``
        beside a run): a batch is published with a hard link, which fails rather than
        replace a file of the same name, and then takes the next free number.
        """
        lines = body.count(b"\n")
        tmp = self.dir / f".{os.getpid()}-{threading.get_ident()}{SUFFIX}.tmp"
        tmp.write_bytes(gzip.compress(body, compresslevel=1))
        try:
            while True:
                with self._lock:
                    seq, self._next = self._next, self._next + 1
                try:
                    os.link(tmp, self.dir / f"{seq:012d}-{lines}{SUFFIX}")
                    return
                except FileExistsError:  # another writer took the number
                    with self._lock:
                        self._next = max(self._next, self._seq_after_last())
        finally:
            tmp.unlink(missing_ok=True)

    def _seq_after_last(self) -> int:
        existing = self.files()
        return self._seq(existing[-1]) + 1 if existing else 0

    @staticmethod
    def read(path: Path) -> bytes:
        """The lines of one batch."""
        return gzip.decompress(path.read_bytes())

    @staticmethod
    def remove(path: Path) -> None:
        """Forget a batch (delivered, or refused for good)."""
        path.unlink()

    def pending(self) -> SpoolContent:
        """Batches and points in the directory now (exact: counted from the files)."""
        files = self.files()
        return SpoolContent(len(files), sum(lines_in(p) for p in files))

    def __len__(self) -> int:
        return len(self.files())
