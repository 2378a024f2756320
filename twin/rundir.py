"""A run directory has one writer at a time and never shows an earlier run's outputs.

:func:`claim_run_dir` takes an exclusive OS lock on ``DIR/.lock`` (``fcntl.flock``: the
kernel releases it when the holder exits or dies, so there are no stale locks) and
refuses a second writer with :class:`RunDirLockedError`. Under the lock it removes what
an earlier run left (results, KPIs, run metadata, labels, report, the uncontrolled
comparison), so nothing in the directory can be mistaken for the new run's output.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from twin.errors import RunError

__all__ = [
    "LOCK_NAME",
    "REPORT_IMAGES",
    "RUN_OUTPUTS",
    "RunDirLockedError",
    "claim_run_dir",
    "lock_dir",
    "write_json",
]

LOCK_NAME = ".lock"
#: Files and directories a run writes; an earlier run's are removed before a new one.
RUN_OUTPUTS = (
    "results.parquet",
    "kpis.json",
    "run.json",
    "labels.json",
    "health.parquet",
    "alerts.parquet",
    "alerts.json",
    "scores.json",
    "error.txt",
    "report.html",
    "parts",
    "uncontrolled",
    "reference",
    "compare.html",
    "sites",
)


#: PNG images earlier versions of ``twin report`` wrote beside ``report.html`` (the
#: report is one self-contained page now and writes none): a new run still removes them.
REPORT_IMAGES = ("power", "soc", "voltages", "prices", "ev_power", "ev_connected", "ev_energy")


class RunDirLockedError(RunError):
    """Another process is writing into the same run (or campaign) directory."""

    def __init__(self, directory: Path, holder: str) -> None:
        self.directory = directory
        super().__init__(
            f"run directory {directory} is in use by another run ({holder}; lock "
            f"{directory / LOCK_NAME}): wait for it to finish or choose another --out"
        )


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write JSON atomically: readers see the old file or the whole new one."""
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(json.dumps(data, indent=2, default=str) + "\n")
    os.replace(partial, path)


@contextmanager
def lock_dir(directory: str | Path) -> Iterator[Path]:
    """Hold an exclusive lock on ``directory/.lock`` for the ``with`` block.

    Raises
    ------
    RunDirLockedError
        If another process (or another open of the lock in this one) holds it.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip()
            raise RunDirLockedError(directory, holder or "holder unknown") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}\n".encode(), 0)
        yield path
    finally:
        os.close(fd)  # releases the lock


def _clear_outputs(directory: Path) -> None:
    """Remove an earlier run's outputs (only the names a run writes)."""
    report = directory / "report.html"
    if report.is_file():  # an old report's images (plain names in this directory)
        text = report.read_text(errors="replace")
        shown = set(re.findall(r'<img src="([A-Za-z0-9_.-]+\.png)"', text))
        for name in shown | {f"{image}.png" for image in REPORT_IMAGES}:
            (directory / name).unlink(missing_ok=True)
    for name in RUN_OUTPUTS:
        path = directory / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)


@contextmanager
def claim_run_dir(directory: str | Path) -> Iterator[Path]:
    """Lock a run directory and clear an earlier run's outputs from it.

    Raises
    ------
    RunDirLockedError
        If another run is writing into ``directory``.
    """
    with lock_dir(directory):
        _clear_outputs(Path(directory))
        yield Path(directory)
