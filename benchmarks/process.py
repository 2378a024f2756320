"""One fresh process, measured: wall, CPU (user + system) and peak RSS from ``wait4``."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

__all__ = ["byte_compile", "measure_process"]


def measure_process(
    args: list[str], env: dict[str, str], cwd: Path, *, tree: bool = False
) -> dict[str, Any]:
    """Run ``args`` to the end; its wall and CPU seconds, peak RSS (MB) and last JSON line.

    The child writes to files, not pipes (a full pipe would stall it). A child that fails
    ends the benchmark with its command and the end of its stderr. CPU counts the
    child's own children once they are reaped; ``rss_mb`` is the largest single process.
    ``tree``: also ``tree_rss_mb``, the peak of the summed RSS of the child and all its
    descendants (worker processes), sampled every 0.1 s.
    """
    with tempfile.TemporaryFile("w+") as stdout, tempfile.TemporaryFile("w+") as stderr:
        started = time.perf_counter()
        proc = subprocess.Popen(args, cwd=cwd, env=env, stdout=stdout, stderr=stderr)
        sampler = _TreeSampler(proc.pid) if tree else None
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        tree_rss = sampler.stop() if sampler is not None else None
        stdout.seek(0)
        stderr.seek(0)
        out, error = stdout.read(), stderr.read()
    if proc.returncode:
        raise SystemExit(f"{' '.join(args)} failed:\n{error[-3000:]}")
    reported = [line for line in out.splitlines() if line.startswith("{")]
    return {
        "wall_s": wall,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "rss_mb": usage.ru_maxrss / 1024.0,
        **({"tree_rss_mb": tree_rss} if tree_rss is not None else {}),
        **(json.loads(reported[-1]) if reported else {}),
    }


def byte_compile(root: Path) -> None:
    """Byte-compile the repository's packages under ``root``, as an installed package is.

    With ``PYTHONDONTWRITEBYTECODE`` set (this machine sets it), every measured process
    would otherwise compile the twin's modules from source again (about 0.3 s CPU).
    """
    import compileall

    for package in ("twin", "models", "adapters", "benchmarks"):
        compileall.compile_dir(root / package, quiet=1)


class _TreeSampler:
    """The peak summed RSS (MB) of a process and its descendants, sampled in a thread."""

    def __init__(self, pid: int) -> None:
        import threading

        self.pid = pid
        self.peak = 0.0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import psutil

        try:
            root = psutil.Process(self.pid)
        except psutil.Error:
            return
        while not self._done.wait(0.1):
            total = 0
            try:
                for proc in [root, *root.children(recursive=True)]:
                    try:
                        total += proc.memory_info().rss
                    except psutil.Error:
                        continue
            except psutil.Error:
                return
            self.peak = max(self.peak, total / 2**20)

    def stop(self) -> float:
        self._done.set()
        self._thread.join()
        return self.peak
