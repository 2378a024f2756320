"""The disk cache: where it lives, atomic entries, damage and read-only directories."""

import logging
import pickle
from pathlib import Path

import pandas as pd

from models.diskcache import CACHE_ENV, MISSING, CacheEntry, cache_dir, package_versions


def test_twin_cache_dir_wins_then_xdg_then_home(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "mine"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "mine"
    monkeypatch.delenv(CACHE_ENV)
    assert cache_dir() == tmp_path / "xdg" / "twin"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_dir() == tmp_path / "home" / ".cache" / "twin"


def test_entries_round_trip_under_the_environment_directory(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    entry = CacheEntry("grids", ("simbench", "code"))
    frame = pd.DataFrame({"a": [1.5, 2.5]}, index=[3, 7])
    assert entry.read("frame") is MISSING
    assert entry.write({"frame": frame, "nothing": None})
    assert entry.directory.parent == tmp_path / "grids"
    pd.testing.assert_frame_equal(CacheEntry("grids", ("simbench", "code")).read("frame"), frame)
    assert entry.read("nothing") is None  # a cached None is a hit, not a miss
    assert sorted(p.name for p in entry.directory.iterdir()) == ["frame.pickle", "nothing.pickle"]


def test_the_key_names_the_pickling_packages_and_any_change_misses(tmp_path):
    entry = CacheEntry("grids", ("simbench", "code", "simbench==1.6.3"), root=tmp_path)
    assert set(package_versions("numpy", "pandas")) <= set(entry.key)
    entry.write({"net": 1})
    newer = CacheEntry("grids", ("simbench", "code", "simbench==1.6.4"), root=tmp_path)
    assert newer.directory != entry.directory and newer.read("net") is MISSING
    assert package_versions("no-such-package-twin") == ("no-such-package-twin==?",)


def test_a_corrupt_entry_is_a_miss_with_a_log_line_and_is_replaced(tmp_path, caplog):
    entry = CacheEntry("grids", ("x",), root=tmp_path)
    entry.write({"net": [1, 2, 3]})
    path = entry.directory / "net.pickle"
    path.write_bytes(path.read_bytes()[:10])  # truncated, as by a full disk
    with caplog.at_level(logging.WARNING, logger="models.diskcache"):
        assert entry.read("net") is MISSING
    assert "unreadable" in caplog.text and str(path) in caplog.text
    path.write_bytes(b"not a pickle at all")
    assert entry.read("net") is MISSING
    entry.write({"net": [4]})
    assert entry.read("net") == [4]
    assert [p.name for p in entry.directory.iterdir()] == ["net.pickle"]  # no temporary left


def test_an_unwritable_cache_runs_without_it_with_one_log_line(tmp_path, caplog):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    entry = CacheEntry("grids", ("x",), root=blocker / "cache")
    with caplog.at_level(logging.WARNING, logger="models.diskcache"):
        assert entry.write({"net": 1, "tables": 2}) is False
    assert len(caplog.records) == 1 and "running without it" in caplog.text
    assert entry.read("net") is MISSING


def test_a_failed_write_leaves_no_temporary_and_keeps_the_old_entry(tmp_path):
    entry = CacheEntry("grids", ("x",), root=tmp_path)
    entry.write({"net": "old"})

    class Unpicklable:
        def __reduce__(self):
            raise pickle.PicklingError("no")

    try:
        entry.write({"net": Unpicklable()})
    except pickle.PicklingError:
        pass
    assert entry.read("net") == "old"
    assert [p.name for p in Path(entry.directory).iterdir()] == ["net.pickle"]


def test_installed_versions_are_read_once_per_process(monkeypatch):
    from models import diskcache

    asked = []

    def version(name):
        asked.append(name)
        return "1.0"

    monkeypatch.setattr(diskcache, "version", version)
    diskcache.installed_version.cache_clear()
    try:
        assert package_versions("numpy", "pandas") == ("numpy==1.0", "pandas==1.0")
        assert package_versions("pandas", "numpy") == ("pandas==1.0", "numpy==1.0")
        assert asked == ["numpy", "pandas"]  # every cache key and run.json ask again
    finally:
        diskcache.installed_version.cache_clear()
