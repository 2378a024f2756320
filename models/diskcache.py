"""A per-user disk cache of data that is slow to derive (grids extracted from SimBench CSV).

Entries live in ``$TWIN_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/twin``, else
``~/.cache/twin``, one directory per entry named by a digest of its key. The key names
everything the derived data depends on: the source (a SimBench code, a file's digest),
the versions of the packages that derive it, and the versions of the packages that
pickle it (Python, numpy, pandas), so an upgrade misses instead of reading stale or
incompatible data.

The cache never fails a run: an entry that cannot be read (truncated, corrupt, written
by another version) is a miss and is replaced; a directory that cannot be written (read
only, full) leaves the run uncached with one log line. Writes are atomic (a temporary
file in the same directory, then :func:`os.replace`), so concurrent processes (campaign
workers) never read a half-written entry.

Entries are pickles, read only from the user's own cache directory (created ``0o700``):
trusted like the user's own files, never fetched from elsewhere.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import pickle
import sys
import tempfile
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

__all__ = [
    "CACHE_ENV",
    "MISSING",
    "CacheEntry",
    "cache_dir",
    "code_digest",
    "installed_version",
    "package_versions",
]

#: Environment variable naming the cache directory (tests point it at a temporary one).
CACHE_ENV = "TWIN_CACHE_DIR"
#: Bumped when the layout or content of entries changes: older entries then miss.
FORMAT = "1"

log = logging.getLogger(__name__)


class _Missing:
    """The value of a part that is not in the cache (``None`` is a valid value)."""

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


def cache_dir() -> Path:
    """The cache's root directory (not created here)."""
    explicit = os.environ.get(CACHE_ENV)
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "twin"


@functools.lru_cache(maxsize=64)
def installed_version(name: str) -> str | None:
    """The installed version of package ``name`` (None if not installed).

    Read once per process: every cache key and ``run.json`` asks again, and each
    :func:`importlib.metadata.version` scans the path's distributions.
    """
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def package_versions(*names: str) -> tuple[str, ...]:
    """``name==version`` of each installed package (``name==?`` if not installed)."""
    return tuple(f"{name}=={installed_version(name) or '?'}" for name in names)


def code_digest(*modules: str, root: Path | None = None) -> str:
    """``code=<sha256>`` of the source of the named modules of this package (``"pv"``).

    Data derived by code (a solver model, a precomputed series) goes in a key with the
    digest of that code: an edit of it misses instead of reading what older code derived.
    ``root`` is the directory of the modules (default: this package's).
    """
    digest = hashlib.sha256()
    for module in modules:
        digest.update(module.encode() + b"\0")
        digest.update(((root or Path(__file__).parent) / f"{module}.py").read_bytes())
    return f"code={digest.hexdigest()}"


class CacheEntry:
    """One entry of the cache: named parts (pickled values) under one key.

    Parameters
    ----------
    kind : str
        The kind of data (a subdirectory of the cache, e.g. ``"grids"``).
    key : tuple of str
        Everything the data depends on; the pickling packages' versions are added.
    root : pathlib.Path, optional
        The cache directory (default :func:`cache_dir`).
    """

    def __init__(self, kind: str, key: tuple[str, ...], root: Path | None = None) -> None:
        full = (FORMAT, f"python=={sys.version_info[0]}.{sys.version_info[1]}", *key)
        full += package_versions("numpy", "pandas")
        digest = hashlib.sha256("\0".join(full).encode()).hexdigest()[:32]
        self.key = full
        self.directory = (root or cache_dir()) / kind / digest

    def read(self, part: str) -> Any:
        """The cached value of ``part``, or :data:`MISSING` (absent or unreadable)."""
        path = self.directory / f"{part}.pickle"
        try:
            stream = path.open("rb")
        except OSError:  # absent, or a directory that is no directory: :meth:`write` says so
            return MISSING
        with stream:
            try:
                return pickle.load(stream)
            except Exception as exc:  # any damage to a cache file is a miss
                log.warning("twin cache: %s is unreadable (%s); deriving it again", path, exc)
                return MISSING

    def write(self, parts: dict[str, Any]) -> bool:
        """Store every part atomically; False (and one log line) if the cache is unwritable."""
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            for part, value in parts.items():
                self._write_one(part, value)
        except OSError as exc:
            log.warning("twin cache: cannot write %s (%s); running without it", self.directory, exc)
            return False
        return True

    def _write_one(self, part: str, value: Any) -> None:
        handle, temporary = tempfile.mkstemp(dir=self.directory, prefix=f".{part}.", suffix=".tmp")
        try:
            with os.fdopen(handle, "wb") as stream:
                pickle.dump(value, stream, protocol=pickle.HIGHEST_PROTOCOL)
            os.replace(temporary, self.directory / f"{part}.pickle")
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
