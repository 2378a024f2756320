"""One fresh process, measured: wall, CPU (user + system) and peak RSS from ``wait4``."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

__all__ = ["measure_process"]


def measure_process(args: list[str], env: dict[str, str], cwd: Path) -> dict[str, Any]:
    """Run ``args`` to the end; its wall and CPU seconds, peak RSS (MB) and last JSON line.

    The child writes to files, not pipes (a full pipe would stall it). A child that fails
    ends the benchmark with its command and the end of its stderr.
    """
    with tempfile.TemporaryFile("w+") as stdout, tempfile.TemporaryFile("w+") as stderr:
        started = time.perf_counter()
        proc = subprocess.Popen(args, cwd=cwd, env=env, stdout=stdout, stderr=stderr)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        stdout.seek(0)
        stderr.seek(0)
        out, error = stdout.read(), stderr.read()
    if os.waitstatus_to_exitcode(status):
        raise SystemExit(f"{' '.join(args)} failed:\n{error[-3000:]}")
    reported = [line for line in out.splitlines() if line.startswith("{")]
    return {
        "wall_s": wall,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "rss_mb": usage.ru_maxrss / 1024.0,
        **(json.loads(reported[-1]) if reported else {}),
    }
