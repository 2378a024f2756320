"""The machine line every benchmark prints (kept free of heavy imports)."""

from __future__ import annotations

import os
import platform


def machine() -> str:
    """CPU model, core count and Python version of this machine."""
    cpu = "unknown CPU"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"
