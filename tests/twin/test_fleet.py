"""Fleets: several sites on one clock, in one world or split (twin.fleet)."""

from __future__ import annotations

import copy
import json

import numpy as np
import pandas as pd
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import ROOT
from twin.component import Component, register_component, unregister_component
from twin.errors import ScenarioError
from twin.fleet import FleetError, load_fleet, run_fleet, site_seed, validate_fleet
from twin.results import load_results, open_results

DAY = ROOT / "scenarios" / "microgrid_day.yaml"
KEYS = ["time", "site", "source", "asset", "kind", "quantity"]


def fleet_raw(**extra):
    """Three small sites (2 h at 15 min around noon): two grids, one uncontrolled."""
    raw = {
        "kind": "fleet",
        "name": "three",
        "start": "2016-06-21T10:00:00-04:00",
        "duration": "2h",
        "step": "15min",
        "seed": 5,
        "sites": [
            {"site": "farm", "scenario": str(DAY)},
            {"site": "plain", "scenario": str(DAY), "set": ["controller=none"]},
            {
                "site": "school",
                "scenario": str(DAY),
                "set": ["grid.source=1-LV-rural2--0-sw", "assets.pv[0].p_dc_kw=80"],
            },
        ],
    }
    raw.update(extra)
    return raw


def rows(frame):
    """Result rows in a canonical order, without the run id (each run has its own)."""
    frame = frame.drop(columns="run_id")
    for key in KEYS[1:]:
        frame[key] = frame[key].astype(str)
    return frame.sort_values(KEYS).reset_index(drop=True)


def assert_same(left, right):
    left, right = rows(left), rows(right)
    pd.testing.assert_frame_equal(left[KEYS], right[KEYS])
    assert np.allclose(left["value"], right["value"], rtol=0, atol=1e-9, equal_nan=True)


def problems_of(raw, tmp_path):
    with pytest.raises(ScenarioError) as info:
        validate_fleet(raw, tmp_path, "fleet.yaml")
    return {p.path: p.message for p in info.value.problems}


def test_the_fleet_file_is_checked_with_field_paths(tmp_path):
    raw = fleet_raw(mode="both", colour="red", duration="100min")
    raw["sites"] += [
        {"site": "farm", "scenario": "missing.yaml"},
        {"site": "a.b", "scenario": str(DAY)},
        {"scenario": str(DAY)},
    ]
    found = problems_of(raw, tmp_path)
    assert "unknown key" in found["colour"]
    assert "world, split" in found["mode"]
    assert "not a whole number of steps" in found["duration"]
    assert "already used by sites[0]" in found["sites[3].site"]
    assert "no '.'" in found["sites[4].site"]
    assert "required" in found["sites[5].site"] or "expected a name" in found["sites[5].site"]


def test_each_site_is_validated_by_the_scenario_machinery_with_its_place(tmp_path):
    raw = fleet_raw()
    raw["sites"][1]["set"] = ["assets.pv[0].bus=9999", "controller=none"]
    raw["sites"][2]["scenario"] = "nowhere.yaml"
    found = problems_of(raw, tmp_path)
    assert "9999" in found["sites[1].assets.pv[0].bus"]
    assert "'nowhere.yaml' not found" in found["sites[2].scenario"]
    raw = fleet_raw()
    raw["sites"][0]["set"] = ["assets.nothing[3].x=1"]
    assert any(path.startswith("sites[0].set") for path in problems_of(raw, tmp_path))


def test_one_clock_and_the_fleets_seeds_and_names(tmp_path):
    raw = fleet_raw()
    raw["sites"][0]["set"] = ["step=5min", "seed=3"]
    inline = yaml.safe_load(DAY.read_text())
    inline["start"] = "2016-06-22T00:00:00-04:00"  # another day than the fleet's
    raw["sites"][1]["scenario"] = inline
    found = problems_of(raw, tmp_path)
    assert "step is the fleet's" in found["sites[0].set[0]"]
    assert "seed is the fleet's" in found["sites[0].set[1]"]
    assert "the fleet's start is 2016-06-21T10:00:00-04:00" in found["sites[1].scenario.start"]
    # a template's own clock, seed and name are replaced; an equal inline clock is fine
    inline.update(start="2016-06-21T10:00:00-04:00", duration="2h", step="15min")
    raw = fleet_raw()
    raw["sites"][1]["scenario"] = inline
    fleet = validate_fleet(raw, tmp_path)
    for i, site in enumerate(fleet.sites):
        assert site.scenario.name == site.name
        assert site.scenario.seed == site_seed(5, i)
        assert site.scenario.clock() == fleet.sites[0].scenario.clock()
    assert len({s.scenario.seed for s in fleet.sites}) == 3
    assert site_seed(5, 1) == site_seed(5, 1) != site_seed(6, 1)


def test_a_fleet_in_one_world_equals_each_site_run_alone(tmp_path):
    from twin.run import run_scenario
    from twin.scenario import validate_scenario

    fleet = validate_fleet(fleet_raw(), tmp_path)
    result = run_fleet(fleet, tmp_path / "world")
    assert result.status == "finished"
    meta = json.loads((tmp_path / "world" / "run.json").read_text())
    assert meta["kind"] == "fleet" and meta["mode"] == "world"
    assert all(site["status"] == "finished" for site in meta["sites"].values())
    combined = open_results(tmp_path / "world")
    for site in fleet.sites:
        alone = run_scenario(validate_scenario(copy.deepcopy(site.raw)), tmp_path / site.name)
        expected = load_results(alone.out_dir)
        assert (expected["source"] == "measured").any()  # sensors drew their noise
        assert_same(load_results(tmp_path / "world" / "sites" / site.name), expected)
        assert_same(combined.frame(site=site.name), expected)
        assert result.kpis["sites"][site.name] == pytest.approx(alone.kpis, abs=1e-9, nan_ok=True)
        in_world = json.loads((tmp_path / "world" / "sites" / site.name / "run.json").read_text())
        assert set(in_world["component_s"]) == set(alone.metadata["component_s"])  # own ids
    # the fleet's totals: sums, the worst site, the coincident peak
    totals, sites = result.kpis["fleet"], result.kpis["sites"]
    assert totals["e_import_kwh"] == pytest.approx(sum(k["e_import_kwh"] for k in sites.values()))
    assert totals["v_min_pu"] == min(k["v_min_pu"] for k in sites.values())
    assert totals["peak_import_kw"] <= sum(k["peak_import_kw"] for k in sites.values()) + 1e-9
    assert totals["peak_import_kw"] >= max(k["peak_import_kw"] for k in sites.values()) - 1e-9


def test_split_equals_one_world_and_the_same_seed_the_same_results(tmp_path):
    fleet = validate_fleet(fleet_raw(), tmp_path)
    world = run_fleet(fleet, tmp_path / "world")
    split = run_fleet(fleet, tmp_path / "split", mode="split", n_workers=2)
    assert split.metadata["mode"] == "split" and split.status == "finished"
    assert_same(load_results(tmp_path / "split"), load_results(tmp_path / "world"))
    for name, kpis in world.kpis["sites"].items():
        assert split.kpis["sites"][name] == pytest.approx(kpis, abs=1e-9, nan_ok=True)
    run_fleet(fleet, tmp_path / "again")
    assert_same(load_results(tmp_path / "again"), load_results(tmp_path / "world"))
    run_fleet(validate_fleet(fleet_raw(seed=6), tmp_path), tmp_path / "reseeded")
    noisy = load_results(tmp_path / "reseeded")
    measured = noisy["source"] == "measured"
    plain = load_results(tmp_path / "world")
    assert not np.allclose(
        rows(noisy[measured])["value"], rows(plain[plain["source"] == "measured"])["value"]
    )


class Planted(Component):
    """A failing run check for the site named ``plain`` only."""

    name = "planted"

    def checks(self):
        from twin.checks import CheckFailure

        def check(scenario, metadata, kpis):
            if scenario.name == "plain":
                return [CheckFailure("planted", "found what the test planted")]
            return []

        return {"planted": check}


@pytest.mark.parametrize("mode", ["world", "split"])
def test_a_failing_site_makes_the_fleet_partial_and_says_so(tmp_path, mode):
    fleet = validate_fleet(fleet_raw(), tmp_path)
    register_component(Planted)
    try:
        with pytest.raises(FleetError, match="1 of 3 site") as info:
            run_fleet(fleet, tmp_path / "out", mode=mode, executor="threads")
    finally:
        unregister_component("planted")
    meta = json.loads((tmp_path / "out" / "run.json").read_text())
    assert meta["status"] == "partial" == info.value.result.status
    assert meta["sites"]["plain"]["status"] == "failed"
    assert "found what the test planted" in meta["sites"]["plain"]["error"]
    assert meta["sites"]["farm"]["status"] == "finished"
    kpis = json.loads((tmp_path / "out" / "kpis.json").read_text())
    assert set(kpis["sites"]) == {"farm", "school"} and kpis["fleet"]["sites"] == 2
    assert set(open_results(tmp_path / "out").frame(columns=["site"])["site"]) == {
        "farm",
        "plain",
        "school",
    }


def spike_site(tmp_path):
    """A site whose extra load becomes impossible after 4 steps (the power flow fails)."""
    profile = tmp_path / "spike.csv"
    times = pd.date_range("2016-06-21T14:00:00Z", periods=8, freq="15min")
    p_pu = np.where(np.arange(8) < 4, 0.0005, 10.0)
    frame = pd.DataFrame({"time": times.strftime("%Y-%m-%dT%H:%M:%SZ"), "p_pu": p_pu})
    frame.to_csv(profile, index=False)
    spike = {"name": "spike", "bus": 5, "p_kw": 10_000, "profile": str(profile)}
    return {
        "site": "spiky",
        "scenario": str(DAY),
        "set": [f"assets.load=[{{from_grid: true}}, {json.dumps(spike)}]"],
    }


def test_a_world_that_fails_fails_every_site_and_the_cli_exits_non_zero(tmp_path):
    from typer.testing import CliRunner

    from twin.cli import app

    raw = fleet_raw()
    raw["sites"] = [raw["sites"][0], spike_site(tmp_path)]
    raw.pop("kind")  # a `sites` list is enough to be a fleet
    path = tmp_path / "fleet.yaml"
    path.write_text(yaml.safe_dump(raw))
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["run", str(path), "--out", str(out), "--no-progress"])
    assert result.exit_code == 1, result.output
    assert "fleet FAILED" in result.output and "did not converge" in result.output
    meta = json.loads((out / "run.json").read_text())
    assert meta["status"] == "failed"
    for name in ("farm", "spiky"):
        site = json.loads((out / "sites" / name / "run.json").read_text())
        assert site["status"] == "failed" and "did not converge" in site["error"]
    # every site keeps the steps the world completed
    saved = load_results(out)
    assert set(saved["site"]) == {"farm", "spiky"}
    assert saved.loc[saved["quantity"] == "p_kw", "time"].nunique() == 4


def test_the_shipped_fleet_validates_and_runs_in_both_modes_from_the_cli(tmp_path):
    from typer.testing import CliRunner

    from twin.cli import app

    path = ROOT / "scenarios" / "fleets" / "lv_sites.yaml"
    fleet = load_fleet(path)
    assert len(fleet.sites) >= 3 and fleet.mode == "world"
    assert len({s.scenario.grid.source for s in fleet.sites}) >= 3
    short = ["--set", "start=2016-06-21T11:00:00-04:00", "--set", "duration=30min"]
    result = CliRunner().invoke(
        app, ["run", str(path), "--out", str(tmp_path / "w"), "--no-progress", *short]
    )
    assert result.exit_code == 0, result.output
    assert "fleet lv_sites (world)" in result.output
    result = CliRunner().invoke(
        app,
        ["run", str(path), "--out", str(tmp_path / "s"), "--no-progress", *short]
        + ["--set", "mode=split", "--workers", "2"],
    )
    assert result.exit_code == 0, result.output
    assert_same(load_results(tmp_path / "s"), load_results(tmp_path / "w"))


def test_twin_validate_checks_a_fleet_file(tmp_path):
    from typer.testing import CliRunner

    from twin.cli import app

    path = tmp_path / "fleet.yaml"
    path.write_text(yaml.safe_dump(fleet_raw()))
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 0, result.output
    assert "fleet three: 3 sites, 8 steps of 15min, mode world" in result.output
    result = CliRunner().invoke(app, ["validate", str(path), "--set", "sites[1].site=farm"])
    assert result.exit_code == 2
    assert "sites[1].site: name 'farm' already used by sites[0]" in result.output


def test_a_site_that_returned_nothing_or_whose_run_json_disagrees_did_not_finish(tmp_path):
    from twin.fleet.run import _record

    fleet = validate_fleet(fleet_raw(), tmp_path)
    out = tmp_path / "out"
    (out / "sites" / "farm").mkdir(parents=True)
    (out / "sites" / "farm" / "run.json").write_text('{"status": "finished"}')
    metadata = {"sites": {s.name: {"status": "pending"} for s in fleet.sites}}
    finished = {"status": "finished", "error": None, "kpis": {}, "run_id": "r"}
    rows = {"farm": dict(finished), "plain": dict(finished)}  # plain wrote no run.json
    _record(metadata, fleet, rows, out)
    sites = metadata["sites"]
    assert sites["farm"]["status"] == "finished" and sites["farm"]["run_id"] == "r"
    assert sites["plain"]["status"] == "failed"
    assert "its run.json says 'missing'" in sites["plain"]["error"]
    assert rows["plain"]["status"] == "failed"
    assert sites["school"]["status"] == "missing"


JUNK = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)


@settings(deadline=None, derandomize=True, database=None, max_examples=150)
@given(
    top=st.dictionaries(
        st.sampled_from(["kind", "name", "start", "duration", "step", "seed", "mode", "x"]),
        JUNK,
        max_size=4,
    ),
    site=st.dictionaries(st.sampled_from(["site", "scenario", "set", "y"]), JUNK, max_size=3),
)
def test_any_malformed_fleet_file_is_a_named_error(tmp_path_factory, top, site):
    raw = fleet_raw()
    raw.update(top)
    raw["sites"] = [{**raw["sites"][0], **site}, raw["sites"][1]]
    try:
        validate_fleet(raw, tmp_path_factory.getbasetemp())
    except ScenarioError as exc:
        assert exc.problems and all(isinstance(p.path, str) for p in exc.problems)


def test_a_full_disk_leaves_no_run_saying_running(tmp_path, monkeypatch):
    import twin.fleet.run
    import twin.results
    from twin.errors import RunError

    def refused(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(twin.results, "merge_parts", refused)
    raw = fleet_raw()
    raw["sites"] = [raw["sites"][0], spike_site(tmp_path)]
    with pytest.raises(FleetError, match="2 of 2 site"):  # the world fails, then the disk
        run_fleet(validate_fleet(raw, tmp_path), tmp_path / "out")
    assert json.loads((tmp_path / "out" / "run.json").read_text())["status"] == "failed"
    for name in ("farm", "spiky"):
        site = json.loads((tmp_path / "out" / "sites" / name / "run.json").read_text())
        assert site["status"] == "failed" and "did not converge" in site["error"]
        assert "No space left" in site["error_saving"]
        assert any((tmp_path / "out" / "sites" / name / "parts").iterdir())  # chunks kept
    monkeypatch.undo()
    monkeypatch.setattr(twin.fleet.run, "combine_results", refused)
    raw["sites"] = raw["sites"][:1]  # the site finishes; combining its results fails
    with pytest.raises(RunError, match="combining the sites failed.*No space left"):
        run_fleet(validate_fleet(raw, tmp_path), tmp_path / "one")
    assert json.loads((tmp_path / "one" / "run.json").read_text())["status"] == "failed"
