import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

import twin.recorder
from twin.recorder import (
    ChunkRecorder,
    chunk_dir,
    chunk_steps_for,
    read_chunk,
    read_chunk_meta,
)
from twin.results import ResultBuffer, chunk_tables, chunked_steps, merge_parts

START = pd.Timestamp("2016-06-21T13:00:00Z")
STEP_S = 900
N = 10
TAGS = {"site": "s", "run_id": "r1", "source": "twin"}
PV = ["pv2", "pv1"]
BATS = ["bess"]


def outputs(k):
    """Step k's outputs: an interval output of two elements and a state of one."""
    rng = np.random.default_rng(k)
    return {"p_kw": rng.normal(size=2), "soc": np.array([0.5 + 0.01 * k])}


def one_shot(n_steps=None):
    """What the run recorded before chunks: one ResultBuffer, written once."""
    times = pd.date_range(START, periods=N, freq=f"{STEP_S}s")
    buffer = ResultBuffer(times, TAGS, end=times[-1] + pd.Timedelta(seconds=STEP_S))
    p = {name: buffer.column(name, "pv", "p_kw") for name in PV}
    soc = buffer.state_column("bess", "battery", "soc")
    soc[0] = 0.5
    for k in range(N):
        out = outputs(k)
        for i, name in enumerate(PV):
            p[name][k] = out["p_kw"][i]
        soc[k + 1] = out["soc"][0]
    return buffer


def recorder(directory, chunk_steps, steps=N):
    rec = ChunkRecorder(directory, START.value, STEP_S, N, TAGS, chunk_steps=chunk_steps)
    rec.add("p_kw", "pv", PV)
    rec.add("soc", "battery", BATS, state=True, initial=0.5)
    for k in range(steps):
        rec.record(k, outputs(k))
    return rec


def tidy(path):
    frame = pd.read_parquet(path)
    for tag in ("site", "run_id", "source", "asset", "kind", "quantity"):
        frame[tag] = frame[tag].astype(str)
    return frame.sort_values(["asset", "kind", "quantity", "time"], ignore_index=True)


@pytest.mark.parametrize("chunk_steps", [1, 3, 4, 10, 64])
def test_chunks_give_the_one_shot_rows_to_the_bit(tmp_path, chunk_steps):
    one_shot().write_parquet(tmp_path / "one.parquet")
    recorder(tmp_path / "sim", chunk_steps).close()
    merge_parts([tmp_path / "sim.parquet"], tmp_path / "chunked.parquet")
    expected, got = tidy(tmp_path / "one.parquet"), tidy(tmp_path / "chunked.parquet")
    pd.testing.assert_frame_equal(got, expected, check_exact=True)
    assert (
        got["value"].to_numpy().view(np.int64) == expected["value"].to_numpy().view(np.int64)
    ).all()
    if chunk_steps >= N:  # one chunk: the very file the one-shot buffer writes
        assert pq.read_table(tmp_path / "chunked.parquet").equals(
            pq.read_table(tmp_path / "one.parquet")
        )


@pytest.mark.parametrize(("chunk_steps", "cut"), [(3, 7), (3, 6), (3, 3), (4, 1), (10, 5)])
def test_a_cut_run_gives_the_one_shot_rows_of_its_first_steps(tmp_path, chunk_steps, cut):
    """A failed run saves the steps every simulator completed: closed chunks beyond
    them are cut when merged, the open one is written up to them."""
    one_shot().write_parquet(tmp_path / "one.parquet", n_steps=cut)
    rec = recorder(tmp_path / "sim", chunk_steps, steps=min(N, cut + 2))
    rec.close(cut)
    merge_parts([tmp_path / "sim.parquet"], tmp_path / "chunked.parquet", n_steps=cut)
    pd.testing.assert_frame_equal(
        tidy(tmp_path / "chunked.parquet"), tidy(tmp_path / "one.parquet"), check_exact=True
    )


def test_closed_chunks_are_on_disk_and_readable_while_the_run_goes(tmp_path):
    rec = recorder(tmp_path / "sim", chunk_steps=3, steps=7)  # 2 chunks closed, 1 open
    files = sorted((tmp_path / "sim").glob("*.parquet"))
    assert [f.name for f in files] == ["000000.parquet", "000001.parquet"]
    second = pq.read_table(files[1])
    meta = read_chunk_meta(second.schema)
    assert (meta["start"], meta["steps"]) == (3, 3)
    # any Parquet reader sees a row per series: its key, whether a state, its values
    frame = second.to_pandas()
    assert frame[["asset", "kind", "quantity"]].to_numpy().tolist() == [
        ["pv2", "pv", "p_kw"],
        ["pv1", "pv", "p_kw"],
        ["bess", "battery", "soc"],
    ]
    assert frame["state"].tolist() == [False, False, True]
    chunk = read_chunk(files[1])
    assert chunk.keys == [("pv2", "pv", "p_kw"), ("pv1", "pv", "p_kw"), ("bess", "battery", "soc")]
    times = pd.to_datetime(chunk.stamps, utc=True)
    assert list(times) == list(pd.date_range(START, periods=7, freq="900s")[3:7])
    # states: the start of each of its steps and the end of its last; intervals: NaN there
    assert frame["values"][2].tolist() == pytest.approx([0.52, 0.53, 0.54, 0.55])
    assert chunk.values[2].tolist() == pytest.approx([0.52, 0.53, 0.54, 0.55])
    assert np.isnan(chunk.values[0][-1]) and not np.isnan(chunk.values[0][:-1]).any()
    assert chunked_steps(tmp_path / "sim") == 6
    assert rec.steps_done == 7
    assert not list((tmp_path / "sim").glob("*.part"))  # written whole, then renamed


def test_chunk_steps_follow_the_byte_budget(monkeypatch):
    assert chunk_steps_for(159, 604_800) == twin.recorder.CHUNK_BYTES // (8 * 159)
    assert chunk_steps_for(159, 96) == 96  # a short run: one chunk
    # tens of thousands of series (a 10,000-bus grid): at least a day at 15 min per chunk
    assert chunk_steps_for(30_000, 100_000) == twin.recorder.MIN_CHUNK_STEPS
    monkeypatch.setattr(twin.recorder, "CHUNK_BYTES", 1)
    monkeypatch.setattr(twin.recorder, "MIN_CHUNK_STEPS", 1)
    assert chunk_steps_for(159, 96) == 1


def test_part_paths_map_to_chunk_directories(tmp_path):
    assert chunk_dir(tmp_path / "grid.parquet") == tmp_path / "grid"
    assert chunk_dir(tmp_path / "grid.measured.parquet") == tmp_path / "grid.measured"


def test_a_run_without_steps_keeps_the_initial_states(tmp_path):
    one_shot().write_parquet(tmp_path / "one.parquet", n_steps=0)
    rec = recorder(tmp_path / "sim", chunk_steps=3, steps=0)
    rec.close(0)
    tables = list(chunk_tables(tmp_path / "sim", 0))
    merge_parts([tmp_path / "sim.parquet"], tmp_path / "chunked.parquet", n_steps=0)
    assert sum(t.num_rows for t in tables) == 1
    pd.testing.assert_frame_equal(
        tidy(tmp_path / "chunked.parquet"), tidy(tmp_path / "one.parquet")
    )
