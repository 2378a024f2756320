import copy
import json
import os
import re
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from time import monotonic, sleep

import numpy as np
import pandas as pd
import pytest
import yaml

from tests.conftest import ROOT
from tests.support import runpp_voltages, spike_scenario, start_realtime_run
from twin.errors import RunError
from twin.identity import new_run_id, scenario_hash
from twin.results import load_results, read_run, wide
from twin.run import run_scenario
from twin.rundir import LOCK_NAME, RunDirLockedError, lock_dir
from twin.scenario import validate_scenario


def small_scenario(**changes):
    raw = yaml.safe_load((ROOT / "scenarios" / "microgrid_day.yaml").read_text())
    raw.update(start="2016-06-21T09:00:00-04:00", duration="6h", **changes)
    return validate_scenario(raw)


@pytest.fixture(scope="module")
def rule_run(tmp_path_factory):
    return run_scenario(small_scenario(), tmp_path_factory.mktemp("rule"))


def test_run_writes_tidy_results_metadata_and_kpis(rule_run):
    results = load_results(rule_run.out_dir)
    assert list(results.columns) == [
        "time",
        "site",
        "run_id",
        "source",
        "asset",
        "kind",
        "quantity",
        "value",
    ]
    assert str(results["time"].dt.tz) == "UTC"
    assert results["time"].min() == pd.Timestamp("2016-06-21T13:00:00Z")
    # 24 step starts, plus the end of the run for the states (SoC, energy, SoH, t_c)
    assert results["time"].nunique() == 25
    at_end = results[results["time"] == pd.Timestamp("2016-06-21T19:00:00Z")]
    assert set(at_end["quantity"]) == {"soc", "soh", "t_c", "e_kwh"}
    # the truth is complete; a sensor may not report (dropouts: NaN, source=measured)
    assert not results.loc[results["source"] == "twin", "value"].isna().any()
    assert set(results["source"]) == {"twin", "measured"}
    meta = json.loads((rule_run.out_dir / "run.json").read_text())
    assert meta["status"] == "finished" and meta["seed"] == 42
    assert meta["versions"]["mosaik"].startswith("3.6")
    assert meta["scenario"]["assets"]["load"][0]["name"] == "load_0"
    kpis = json.loads((rule_run.out_dir / "kpis.json").read_text())
    assert kpis == pytest.approx(rule_run.kpis)


def test_site_energy_balance_closes(rule_run):
    k = rule_run.kpis
    throughput = (
        k["e_import_kwh"]
        + k["e_export_kwh"]
        + k["e_pv_kwh"]
        + k["e_load_kwh"]
        + k["battery_throughput_kwh"]
    )
    assert k["balance_residual_kwh"] <= 1e-6 * throughput


def test_voltages_equal_runpp_on_the_recorded_injections(rule_run):
    results = load_results(rule_run.out_dir)
    scenario = small_scenario()
    for time in wide(results, "bus", "v_pu").index[::5]:
        ours, reference = runpp_voltages(scenario, results, time)
        assert np.max(np.abs(ours - reference)) <= 1e-6


RUN_ID = re.compile(r"^microgrid_day-\d{8}T\d{6}Z-[0-9a-f]{8}$")


def test_same_scenario_and_seed_give_identical_numbers_under_a_new_run_id(rule_run, tmp_path):
    again = run_scenario(small_scenario(), tmp_path)
    first, second = load_results(rule_run.out_dir), load_results(again.out_dir)
    ids = rule_run.metadata["run_id"], again.metadata["run_id"]
    assert ids[0] != ids[1] and all(RUN_ID.match(run_id) for run_id in ids)
    assert set(first["run_id"]) == {ids[0]} and set(second["run_id"]) == {ids[1]}
    pd.testing.assert_frame_equal(first.drop(columns="run_id"), second.drop(columns="run_id"))
    assert again.kpis == rule_run.kpis
    meta = read_run(again.out_dir)
    assert meta["run_id"] == ids[1]
    assert meta["scenario_hash"] == read_run(rule_run.out_dir)["scenario_hash"]


def test_rule_controller_keeps_limits_and_beats_no_control(rule_run, tmp_path):
    none = run_scenario(small_scenario(controller="none"), tmp_path)
    assert none.kpis["battery_throughput_kwh"] == 0.0
    assert rule_run.kpis["e_export_kwh"] < none.kpis["e_export_kwh"]
    assert rule_run.kpis["self_consumption"] > none.kpis["self_consumption"]
    soc = wide(load_results(rule_run.out_dir), "battery", "soc")["bess"]
    assert soc.min() >= 0.1 - 1e-9 and soc.max() <= 0.9 + 1e-9


def test_failed_run_keeps_what_was_recorded(tmp_path):
    with pytest.raises(RunError, match="did not converge at 2016-06-21T15:30:00"):
        run_scenario(spike_scenario(tmp_path), tmp_path / "run")
    meta = json.loads((tmp_path / "run" / "run.json").read_text())
    assert meta["status"] == "failed" and "GridError" in meta["error"]
    saved = load_results(tmp_path / "run")
    states = saved["quantity"].isin(["soc", "soh", "t_c", "e_kwh"])
    assert saved.loc[~states, "time"].nunique() == 10
    # the states at the 10 step starts and at the end of the last step saved
    assert saved.loc[states, "time"].nunique() == 11


def test_run_ids_are_unique_and_sort_by_start_time():
    early = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    ids = [new_run_id("site", early + timedelta(seconds=s)) for s in (0, 1, 59, 3600, 86400)]
    assert ids == sorted(ids)
    assert ids[0].startswith("site-20260102T030405Z-")
    assert len({new_run_id("site", early) for _ in range(100)}) == 100


def test_the_scenario_hash_covers_fields_and_the_contents_of_input_files(tmp_path):
    profile = tmp_path / "house.csv"
    times = pd.date_range("2016-06-21T13:00:00Z", periods=24, freq="15min")
    frame = pd.DataFrame({"time": times.strftime("%Y-%m-%dT%H:%M:%SZ"), "p_pu": 0.5})
    frame.to_csv(profile, index=False)
    raw = yaml.safe_load((ROOT / "scenarios" / "microgrid_day.yaml").read_text())
    raw.update(start="2016-06-21T09:00:00-04:00", duration="6h")
    raw["assets"]["load"].append({"name": "house", "bus": 5, "p_kw": 10, "profile": str(profile)})
    before = scenario_hash(validate_scenario(copy.deepcopy(raw)))
    assert scenario_hash(validate_scenario(copy.deepcopy(raw))) == before
    raw["assets"]["battery"][0]["e_kwh"] *= 2
    doubled = scenario_hash(validate_scenario(copy.deepcopy(raw)))
    assert doubled != before
    frame.assign(p_pu=0.6).to_csv(profile, index=False)  # same path, new contents
    assert scenario_hash(validate_scenario(copy.deepcopy(raw))) != doubled


def test_repeated_runs_keep_their_own_history_in_influxdb(influxdb, tmp_path):
    outputs = {"influx": {"url": influxdb.url, "db": "repeated", "create_database": True}}
    runs = [run_scenario(small_scenario(outputs=outputs), tmp_path / "run") for _ in range(2)]
    ids = {run.metadata["run_id"] for run in runs}
    assert len(ids) == 2
    digest = runs[0].metadata["scenario_hash"]
    assert runs[1].metadata["scenario_hash"] == digest
    for run in runs:
        run_id = run.metadata["run_id"]
        answer = influxdb.query(
            f"SELECT COUNT(soc) FROM battery WHERE run_id = '{run_id}' "
            f"AND scenario_hash = '{digest}' AND source = 'twin'",
            db="repeated",
        )
        # 24 steps: the SoC at each step's start and at the end of the last (states)
        assert answer["results"][0]["series"][0]["values"][0][1] == 25, run_id
        answer = influxdb.query(
            f"SELECT * FROM kpi WHERE run_id = '{run_id}' AND scenario_hash = '{digest}'",
            db="repeated",
        )
        assert len(answer["results"][0]["series"][0]["values"]) == 1, run_id


def test_the_uncontrolled_comparison_is_a_run_of_its_own_linked_to_its_parent(tmp_path):
    raw = yaml.safe_load((ROOT / "scenarios" / "ev_depot.yaml").read_text())
    raw.update(duration="6h")
    parent = run_scenario(validate_scenario(raw), tmp_path / "depot")
    child = read_run(tmp_path / "depot" / "uncontrolled")
    assert child["run_id"] != parent.metadata["run_id"]
    assert child["parent_run_id"] == parent.metadata["run_id"]
    assert parent.metadata["uncontrolled_run_id"] == child["run_id"]
    assert child["scenario"]["controller"] == "none"
    assert set(load_results(tmp_path / "depot" / "uncontrolled")["run_id"]) == {child["run_id"]}


def test_a_locked_run_directory_is_refused_and_left_alone(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "kpis.json").write_text("{}")
    with lock_dir(out), pytest.raises(RunDirLockedError, match="in use by another run"):
        run_scenario(small_scenario(), out)
    assert (out / "kpis.json").read_text() == "{}"


def test_a_run_into_a_used_directory_leaves_nothing_of_the_earlier_run(tmp_path):
    out = tmp_path / "run"
    fault = {"kind": "pv_shading", "target": "pv_roof", "start": "1h", "duration": "1h"}
    earlier = run_scenario(small_scenario(faults=[fault]), out)
    assert (out / "labels.json").is_file() and (out / "kpis.json").is_file()
    diagnosis = ("health.parquet", "alerts.parquet", "alerts.json", "scores.json")
    for name in ("report.html", "power.png", "uncontrolled/run.json", *diagnosis):
        (out / name).parent.mkdir(exist_ok=True)
        (out / name).write_text("from the earlier run")
    with pytest.raises(RunError, match="did not converge"):
        run_scenario(spike_scenario(tmp_path), out)
    meta = read_run(out)
    assert meta["status"] == "failed" and meta["run_id"] != earlier.metadata["run_id"]
    gone = ("kpis.json", "labels.json", "report.html", "power.png", "uncontrolled", *diagnosis)
    for name in gone:
        assert not (out / name).exists(), name
    assert set(load_results(out)["run_id"]) == {meta["run_id"]}


def _lock_holder(out):
    try:
        return (out / LOCK_NAME).read_text().strip()
    except FileNotFoundError:
        return ""


def test_a_second_process_writing_into_the_same_directory_is_refused(day_raw, tmp_path):
    path = tmp_path / "scenario.yaml"
    path.write_text(yaml.safe_dump(day_raw))
    out = tmp_path / "same"
    first = start_realtime_run(path, 20.0, "--out", str(out))
    deadline = monotonic() + 180
    while _lock_holder(out) != f"pid {first.pid}":  # written once the lock is held
        assert first.poll() is None and monotonic() < deadline, first.stdout.read()
        sleep(0.05)
    # Freeze the first run while it holds the lock: the second's start-up time on a
    # busy machine then cannot matter (a stopped process keeps its locks).
    os.kill(first.pid, signal.SIGSTOP)
    try:
        second = subprocess.run(
            [sys.executable, "-m", "twin.cli", "run", str(path), "--out", str(out)],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert first.poll() is None
    finally:
        os.kill(first.pid, signal.SIGCONT)
    assert second.returncode == 2, second.stdout + second.stderr
    assert "in use by another run" in second.stderr and f"pid {first.pid}" in second.stderr
    output, _ = first.communicate(timeout=300)
    assert first.returncode == 0, output
    meta = read_run(out)
    assert meta["status"] == "finished"
    results = load_results(out)
    assert results["time"].nunique() == 97  # 96 steps and the end state
    assert set(results["run_id"]) == {meta["run_id"]}


def test_where_results_go_is_not_part_of_the_scenario_hash():
    here = small_scenario(outputs={"dir": "runs/here"})
    there = small_scenario(outputs={"dir": "runs/there", "influx": {"url": "http://x:1"}})
    assert scenario_hash(here) == scenario_hash(there)


def test_a_seeded_stochastic_run_is_the_same_in_a_fresh_process(tmp_path):
    """EV arrivals are random (simpy, seeded): a new process gives the same numbers."""
    raw = yaml.safe_load((ROOT / "scenarios" / "ev_depot.yaml").read_text())
    raw.update(duration="12h", controller="none")
    path = tmp_path / "depot.yaml"
    path.write_text(yaml.safe_dump(raw))
    here = run_scenario(validate_scenario(copy.deepcopy(raw)), tmp_path / "here")
    done = subprocess.run(
        [sys.executable, "-m", "twin.cli", "run", str(path), "--no-progress"]
        + ["--out", str(tmp_path / "there")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    there = load_results(tmp_path / "there")
    assert here.kpis["e_ev_delivered_kwh"] > 0  # random arrivals came and charged
    pd.testing.assert_frame_equal(
        load_results(here.out_dir).drop(columns="run_id"), there.drop(columns="run_id")
    )


def test_a_device_emulator_that_cannot_start_fails_the_set_up_cleanly(tmp_path):
    """A set-up failure of any kind: run.json says failed, nothing keeps running."""
    from adapters.server import free_port

    raw = yaml.safe_load((ROOT / "scenarios" / "hil_battery.yaml").read_text())
    raw["mqtt"]["broker"] = f"mqtt://127.0.0.1:{free_port()}"  # nobody listens
    with pytest.raises(RunError, match="could not be set up"):
        run_scenario(validate_scenario(raw), tmp_path / "run")
    meta = read_run(tmp_path / "run")
    assert meta["status"] == "failed" and "emulated device" in meta["error"]


def canonical(frame):
    """A tidy frame in one row order, tags as text (row order is not the format's)."""
    frame = frame.drop(columns="run_id").astype({"asset": str, "kind": str, "quantity": str})
    frame = frame.astype({"site": str, "source": str})
    return frame.sort_values(["source", "kind", "quantity", "asset", "time"], ignore_index=True)


def test_a_failed_run_with_chunks_saves_what_one_chunk_saves(tmp_path, monkeypatch):
    """Chunks closed while the run goes (3 steps each, beyond the failing step for some
    simulators) are cut to the step every simulator completed: the same rows."""
    import twin.recorder

    with pytest.raises(RunError):
        run_scenario(spike_scenario(tmp_path), tmp_path / "one")
    monkeypatch.setattr(twin.recorder, "chunk_steps_for", lambda n_series, n_steps: 3)
    with pytest.raises(RunError, match="did not converge at 2016-06-21T15:30:00"):
        run_scenario(spike_scenario(tmp_path), tmp_path / "chunked")
    saved = load_results(tmp_path / "chunked")
    states = saved["quantity"].isin(["soc", "soh", "t_c", "e_kwh"])
    assert saved.loc[~states, "time"].nunique() == 10
    assert saved.loc[states, "time"].nunique() == 11

    pd.testing.assert_frame_equal(
        canonical(saved), canonical(load_results(tmp_path / "one")), check_exact=True
    )


KILLED_RUN = """
import sys
import twin.recorder
twin.recorder.chunk_steps_for = lambda n_series, n_steps: 4
from twin.run import run_scenario
from twin.scenario import load_scenario
scenario = load_scenario(sys.argv[1], ["duration=1d", "step=15min"])
run_scenario(scenario, sys.argv[2], rt_factor=float(sys.argv[3]), compare_uncontrolled=False)
"""


def test_a_killed_run_leaves_readable_chunks_that_recover_its_first_steps(tmp_path):
    """SIGKILL mid-run: every closed chunk is a whole Parquet file; recovering them gives
    the rows of the same run's first steps (the steps every simulator closed)."""
    import pyarrow.parquet as pq

    from twin.recorder import read_chunk_meta
    from twin.results import recover
    from twin.scenario import load_scenario

    path = ROOT / "scenarios" / "microgrid_day.yaml"
    out = tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    rt_factor = 60.0 / 86_400  # the day paced over about a minute
    child = subprocess.Popen(
        [sys.executable, "-c", KILLED_RUN, str(path), str(out), str(rt_factor)], env=env
    )
    try:
        deadline = monotonic() + 300
        while monotonic() < deadline and child.poll() is None:
            dirs = [d for d in (out / "parts").glob("*") if d.is_dir()]
            if dirs and all(len(list(d.glob("[0-9]*.parquet"))) >= 3 for d in dirs):
                break
            sleep(0.2)
        assert child.poll() is None, "the run ended before it could be killed"
        child.send_signal(signal.SIGKILL)
    finally:
        child.kill()
        child.wait()
    chunks = sorted((out / "parts").glob("*/[0-9]*.parquet"))
    assert chunks
    for chunk in chunks:
        meta = read_chunk_meta(pq.read_table(chunk).schema)
        assert meta["steps"] == 4 and meta["start"] % 4 == 0
    steps = recover(out)
    assert 12 <= steps < 96 and steps % 4 == 0
    assert json.loads((out / "run.json").read_text())["status"] == "running"  # killed

    full = run_scenario(
        load_scenario(path, ["duration=1d", "step=15min"]),
        tmp_path / "full",
        rt_factor=1e-9,
        warn_late_s=1e9,
        compare_uncontrolled=False,
    )
    expected = load_results(full.out_dir)
    end = expected["time"].min() + pd.Timedelta(minutes=15 * steps)
    states = expected["quantity"].isin(["soc", "soh", "t_c", "e_kwh"])
    kept = (expected["time"] < end) | (states & (expected["time"] == end))
    got = load_results(out)

    pd.testing.assert_frame_equal(canonical(got), canonical(expected[kept]), check_exact=True)


MEASURED_RUN = """
import resource
import sys
from twin.run import run_scenario
from twin.scenario import load_scenario
scenario = load_scenario(sys.argv[1], ["duration=" + sys.argv[3], "step=1s"])
run_scenario(scenario, sys.argv[2], compare_uncontrolled=False)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


@pytest.mark.slow
def test_peak_memory_does_not_grow_with_the_steps(tmp_path):
    """2 h and 8 h at 1 s, each in a fresh process: peak RSS within 20 % (results are
    recorded in bounded chunks, merged a chunk at a time, and the KPIs read one
    quantity at a time, never the whole tidy frame)."""
    path = ROOT / "scenarios" / "microgrid_day.yaml"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    peak_kb = {}
    for duration in ("2h", "8h"):
        done = subprocess.run(
            [sys.executable, "-c", MEASURED_RUN, str(path), str(tmp_path / duration), duration],
            env=env,
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        peak_kb[duration] = int(done.stdout.split()[-1])
    assert peak_kb["8h"] <= 1.2 * peak_kb["2h"], peak_kb


def test_a_chunk_write_refused_fails_the_run_and_says_so(tmp_path, monkeypatch):
    """A results chunk that cannot be written (a full disk) ends the run as failed, with
    the reason in run.json; nothing reports the run finished."""
    import twin.recorder
    from twin.scenario import load_scenario

    monkeypatch.setattr(twin.recorder, "chunk_steps_for", lambda n_series, n_steps: 3)
    write = twin.recorder.ChunkRecorder._write

    def full_disk(self, block, steps):
        if self.chunks_written >= 2:
            raise OSError(28, "No space left on device")
        write(self, block, steps)

    monkeypatch.setattr(twin.recorder.ChunkRecorder, "_write", full_disk)
    scenario = load_scenario(ROOT / "scenarios" / "microgrid_day.yaml")
    with pytest.raises((RunError, OSError)):
        run_scenario(scenario, tmp_path / "run")
    meta = read_run(tmp_path / "run")
    assert meta["status"] == "failed"
    assert "No space left on device" in json.dumps(meta)
    assert not (tmp_path / "run" / "kpis.json").exists()
    # what was written stays, and the error says how to get it back
    assert "twin.results.recover" in meta["error"]
    assert list((tmp_path / "run" / "parts").rglob("*.parquet"))
