"""Grids come from the disk cache once extracted: equal to a fresh extraction, and fast."""

import copy
import json
import logging
import os
import subprocess
import sys

import pandapower as pp
import pandas as pd
import pytest
import simbench

from models import gridnet, profiles
from models.diskcache import CACHE_ENV, CacheEntry
from models.gridnet import bus_index, load_net, load_profiles, load_tables, unsupported_elements
from models.profiles import simbench_profile_table
from tests.conftest import LV_GRID, ROOT


def forget_in_process() -> None:
    """Drop the per-process caches, so the next load reads the disk cache."""
    gridnet._load.cache_clear()
    gridnet._tables.cache_clear()
    profiles._profile_table.cache_clear()


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    forget_in_process()
    yield tmp_path / "cache"
    forget_in_process()


@pytest.fixture(scope="module")
def extracted():
    return simbench.get_simbench_net(LV_GRID)


@pytest.fixture
def reference(extracted):
    """The grid as simbench extracts it, never through our loader (a fresh copy per test)."""
    return copy.deepcopy(extracted)


def entries(cache) -> list:
    return sorted((cache / "grids").iterdir()) if (cache / "grids").exists() else []


def assert_same_net(net, expected) -> None:
    assert sorted(net.keys()) == sorted(expected.keys())
    for key, value in expected.items():
        if isinstance(value, pd.DataFrame):
            pd.testing.assert_frame_equal(net[key], value, check_exact=True)
        elif key == "profiles":
            assert sorted(net[key]) == sorted(value)
            for name, frame in value.items():
                pd.testing.assert_frame_equal(net[key][name], frame, check_exact=True)
        else:
            assert json.dumps(net[key], sort_keys=True, default=str) == json.dumps(
                value, sort_keys=True, default=str
            ), key


def test_a_warm_cache_load_equals_a_cold_extraction(cache, reference):
    cold = load_net(LV_GRID)
    assert len(entries(cache)) == 1
    forget_in_process()
    warm = load_net(LV_GRID)
    assert_same_net(cold, reference)
    assert_same_net(warm, reference)
    pp.runpp(reference)
    pp.runpp(warm)
    for table in ("res_bus", "res_line", "res_trafo", "res_ext_grid", "res_load", "res_sgen"):
        pd.testing.assert_frame_equal(warm[table], reference[table], check_exact=True)


def test_warm_tables_and_profiles_equal_the_net_and_serve_validation(cache, reference):
    load_tables(LV_GRID)
    forget_in_process()
    tables = load_tables(LV_GRID)
    for name in ("bus", "line", "trafo", "load", "sgen", "ext_grid", "switch"):
        pd.testing.assert_frame_equal(tables[name], reference[name], check_exact=True)
        assert tables.get(name) is getattr(tables, name)
    assert not [name for name in tables if name.startswith("res_")]
    assert unsupported_elements(tables) == unsupported_elements(reference) == []
    name = reference.bus["name"].iloc[3]
    assert bus_index(tables, name) == bus_index(reference, name)
    expected = reference.profiles["load"].drop(columns=["time"]).astype(float)
    pd.testing.assert_frame_equal(load_profiles(LV_GRID), expected, check_exact=True)
    pd.testing.assert_frame_equal(simbench_profile_table(LV_GRID), expected, check_exact=True)
    tables.bus.loc[:, "vn_kv"] = 0.0  # a caller's edit stays its own
    assert (load_tables(LV_GRID).bus["vn_kv"] > 0).all()


def test_a_warm_cache_reads_without_simbench_and_tables_without_pandapower(cache):
    load_net(LV_GRID)
    probe = (
        "import sys\n"
        "sys.modules['simbench'] = None  # importing simbench now fails\n"
        "from models.gridnet import load_net, load_tables\n"
        "from models.profiles import simbench_profile_table\n"
        f"tables = load_tables({LV_GRID!r})\n"
        f"profiles = simbench_profile_table({LV_GRID!r})\n"
        "print(len(tables.bus), profiles.shape, 'pandapower' in sys.modules)\n"
        f"print(len(load_net({LV_GRID!r}).bus))\n"
    )
    env = {**os.environ, CACHE_ENV: str(cache), "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True
    )
    assert done.stdout.split("\n")[:2] == ["15 (35136, 10) False", "15"]


def test_a_corrupt_grid_file_is_extracted_again_and_replaced(cache, reference, caplog):
    load_net(LV_GRID)
    (entry,) = entries(cache)
    (entry / "net.pickle").write_bytes(b"\x80\x05garbage")
    forget_in_process()
    with caplog.at_level(logging.WARNING, logger="models.diskcache"):
        net = load_net(LV_GRID)
    assert "unreadable" in caplog.text
    assert_same_net(net, reference)
    assert entries(cache) == [entry]
    forget_in_process()
    caplog.clear()
    assert_same_net(load_net(LV_GRID), reference)
    assert caplog.text == ""  # the replaced file reads cleanly


def test_a_package_version_change_misses(cache, monkeypatch):
    load_tables(LV_GRID)
    (first,) = entries(cache)
    real = gridnet.package_versions("simbench", "pandapower")
    assert set(real) <= set(CacheEntry("grids", gridnet.source_key(LV_GRID)).key)
    monkeypatch.setattr(
        gridnet, "package_versions", lambda *names: tuple(f"{n}==99.0" for n in names)
    )
    forget_in_process()
    load_tables(LV_GRID)
    assert len(entries(cache)) == 2 and first in entries(cache)


def test_json_grids_are_keyed_by_content_not_path(cache, tmp_path):
    net = pp.networks.case33bw()
    for name in ("a.json", "b.json"):
        pp.to_json(net, str(tmp_path / name))
    assert len(load_net(str(tmp_path / "a.json")).bus) == len(
        load_net(str(tmp_path / "b.json")).bus
    )
    assert len(entries(cache)) == 1
    net.line.at[0, "length_km"] *= 2
    pp.to_json(net, str(tmp_path / "a.json"))
    os.utime(tmp_path / "a.json", ns=(1, 1))
    assert load_net(str(tmp_path / "a.json")).line.at[0, "length_km"] == net.line.at[0, "length_km"]
    assert len(entries(cache)) == 2


def test_profiles_of_a_json_grid_edited_in_place_are_read_again(cache, tmp_path, reference):
    path = tmp_path / "grid.json"
    pp.to_json(reference, str(path))
    before = simbench_profile_table(str(path))
    reference.profiles["load"].iloc[:, 1:] *= 2.0
    pp.to_json(reference, str(path))
    os.utime(path, ns=(1, 1))
    after = simbench_profile_table(str(path))
    pd.testing.assert_frame_equal(after, before * 2.0)


def test_an_unwritable_cache_dir_never_fails_the_load(tmp_path, monkeypatch, reference, caplog):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv(CACHE_ENV, str(blocker / "cache"))
    forget_in_process()
    with caplog.at_level(logging.WARNING, logger="models.diskcache"):
        net = load_net(LV_GRID)
    forget_in_process()
    assert_same_net(net, reference)
    assert len(caplog.records) == 1 and "running without it" in caplog.text


def test_twin_cache_dir_is_honoured(cache):
    load_tables("case33bw")
    (entry,) = entries(cache)
    assert sorted(p.name for p in entry.iterdir()) == [
        "load_profiles.pickle",
        "net.pickle",
        "tables.pickle",
    ]
