"""Cache keys for data read from files: they change when the file does.

Readers cache parsed files (``functools.lru_cache``) because parsing is slow. Keyed by
path alone, a file edited in place would be served stale to every later run of the same
process (a long-lived campaign worker, say); keyed also by :func:`file_stamp`, it is
read again.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["file_stamp"]


def file_stamp(path: str | Path) -> tuple[int, int] | None:
    """``(mtime in ns, size)`` of a file, or None if ``path`` names no file."""
    try:
        stat = Path(path).stat()
    except (OSError, ValueError):
        return None
    return (stat.st_mtime_ns, stat.st_size)
