"""The chunk format: a row per series, any shape round-trips to the tidy rows bitwise."""

import json
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import given, settings
from hypothesis import strategies as st

import twin.results
from twin.recorder import METADATA_KEY, ChunkRecorder, read_chunk
from twin.results import ResultBuffer, merge_parts, recover

START = pd.Timestamp("2016-06-21T13:00:00Z")
STEP_S = 60
TAGS = {"site": "s", "run_id": "r", "source": "twin"}

names = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=6)
values = st.floats(allow_nan=True, allow_infinity=True, width=64)


@st.composite
def recordings(draw):
    """Outputs (elements, state or not), their initial states and every step's values."""
    n_steps = draw(st.integers(0, 9))
    outputs = []
    for i in range(draw(st.integers(0, 4))):
        elements = draw(st.lists(names, min_size=1, max_size=4, unique=True))
        state = draw(st.booleans())
        initial = draw(st.lists(values, min_size=len(elements), max_size=len(elements)))
        steps = draw(
            st.lists(
                st.lists(values, min_size=len(elements), max_size=len(elements)),
                min_size=n_steps,
                max_size=n_steps,
            )
        )
        steps = np.array(steps, float).reshape(n_steps, len(elements))
        outputs.append((f"q{i}", elements, state, np.array(initial), steps))
    return n_steps, outputs, draw(st.integers(1, 5))


def record(directory, n_steps, outputs, chunk_steps):
    rec = ChunkRecorder(directory, START.value, STEP_S, n_steps, TAGS, chunk_steps=chunk_steps)
    for name, elements, state, initial, _ in outputs:
        rec.add(name, "kind", elements, state=state, initial=initial if state else None)
    for k in range(n_steps):
        rec.record(k, {name: steps[k] for name, _, _, _, steps in outputs})
    rec.close()
    return rec


def one_shot(path, n_steps, outputs):
    times = pd.date_range(START, periods=n_steps, freq=f"{STEP_S}s")
    end = START + pd.Timedelta(seconds=STEP_S * n_steps)
    buffer = ResultBuffer(times, TAGS, end=end)
    for name, elements, state, initial, steps in outputs:
        for j, element in enumerate(elements):
            if state:
                column = buffer.state_column(element, "kind", name)
                column[0] = initial[j]
                column[1:] = steps[:, j]
            else:
                buffer.column(element, "kind", name)[:] = steps[:, j]
    buffer.write_parquet(path)


def bits(path):
    table = pq.read_table(path)
    columns = {
        name: table.column(name).to_pylist()
        for name in ("time", "site", "run_id", "source", "asset", "kind", "quantity")
    }
    columns["value"] = table.column("value").to_numpy().view(np.int64).tolist()
    return columns


@settings(max_examples=60, deadline=None)
@given(recordings())
def test_any_recording_merges_to_the_one_shot_rows_to_the_bit(recording):
    n_steps, outputs, chunk_steps = recording
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        rec = record(tmp / "sim", n_steps, outputs, chunk_steps)
        assert rec.chunks_written == max(1, -(-n_steps // chunk_steps))
        merge_parts([tmp / "sim.parquet"], tmp / "chunked.parquet")
        one_shot(tmp / "one.parquet", n_steps, outputs)
        if not outputs:  # no series, no rows: neither writes a file
            assert not (tmp / "chunked.parquet").exists() and not (tmp / "one.parquet").exists()
            return
        # the same rows, every value's bits (NaN payloads, infinities); one chunk: in the
        # same order, more: a chunk of steps after the other
        got, expected = bits(tmp / "chunked.parquet"), bits(tmp / "one.parquet")
        if rec.chunks_written == 1:
            assert got == expected
        assert sorted(zip(*got.values(), strict=True)) == sorted(
            zip(*expected.values(), strict=True)
        )


@settings(max_examples=40, deadline=None)
@given(recordings())
def test_a_chunk_reads_back_what_was_recorded(recording):
    n_steps, outputs, chunk_steps = recording
    with tempfile.TemporaryDirectory() as tmp:
        record(Path(tmp) / "sim", n_steps, outputs, chunk_steps)
        chunks = [read_chunk(p) for p in sorted((Path(tmp) / "sim").glob("*.parquet"))]
    keys = [(e, "kind", name) for name, elements, _, _, _ in outputs for e in elements]
    for chunk in chunks:
        assert chunk.keys == keys
        assert chunk.values.shape == (len(keys), chunk.steps + 1)
        stamps = START.value + STEP_S * 10**9 * np.arange(
            chunk.start, chunk.start + chunk.steps + 1
        )
        assert chunk.stamps.tolist() == stamps.tolist()
    row = 0
    for _name, elements, state, initial, steps in outputs:
        for j in range(len(elements)):
            assert chunks[0].states[row] == state
            series = np.concatenate([c.values[row, : c.steps] for c in chunks])
            expected = np.concatenate([[initial[j]], steps[:-1, j]]) if state else steps[:, j]
            if n_steps:
                assert series.view(np.int64).tolist() == expected.view(np.int64).tolist()
            last = chunks[-1].values[row, -1]
            end = (steps[-1, j] if n_steps else initial[j]) if state else np.nan
            assert np.array_equal([last], [end], equal_nan=True)
            row += 1


def test_a_chunk_has_a_few_columns_whatever_its_series(tmp_path):
    """The cost of writing a chunk must not grow per series: a grid of thousands of
    buses writes five columns, not one per bus."""
    rec = ChunkRecorder(tmp_path / "grid", START.value, STEP_S, 3, TAGS)
    rec.add("v_pu", "bus", [f"bus_{i}" for i in range(5000)], state=False)
    for k in range(3):
        rec.record(k, {"v_pu": np.full(5000, 1.0 + k)})
    rec.close()
    (path,) = (tmp_path / "grid").glob("*.parquet")
    schema = pq.read_schema(path)
    assert schema.names == ["asset", "kind", "quantity", "state", "values"]
    assert pa.types.is_fixed_size_list(schema.field("values").type)
    assert pq.read_metadata(path).num_rows == 5000


def test_chunks_written_before_format_2_are_still_recovered(tmp_path):
    """A chunk of the former layout (a column per series, a time column) left by a
    killed run is read as it was."""
    run = tmp_path / "run"
    rec = ChunkRecorder(run / "parts" / "sim", START.value, STEP_S, 4, TAGS, chunk_steps=4)
    rec.add("p_kw", "pv", ["pv1", "pv2"])
    rec.add("soc", "battery", ["bess"], state=True, initial=0.5)
    for k in range(4):
        rec.record(k, {"p_kw": np.array([k, -k], float), "soc": np.array([0.5 + k / 10])})
    rec.close()
    assert recover(run) == 4
    expected = pq.read_table(run / "results.parquet")
    (path,) = (run / "parts" / "sim").glob("*.parquet")
    chunk = read_chunk(path)
    legacy = {"time": pa.array(chunk.stamps, pa.timestamp("ns", "UTC"))}
    for j in range(len(chunk.keys)):
        legacy[str(j)] = pa.array(chunk.values[j])
    meta = {
        "tags": TAGS,
        "keys": chunk.keys,
        "states": chunk.states,
        "start": chunk.start,
        "steps": chunk.steps,
    }
    table = pa.table(legacy).replace_schema_metadata({METADATA_KEY: json.dumps(meta)})
    pq.write_table(table, path)
    assert "format" not in json.loads(pq.read_schema(path).metadata[METADATA_KEY])
    assert recover(run) == 4
    assert pq.read_table(run / "results.parquet").equals(expected)


def test_series_of_few_rows_fill_row_groups(tmp_path):
    """A grid's thousands of series over a day at 15 min: a row group holds a row
    group's worth of them (not 64 each: per-row-group costs would dominate the finish)."""
    rec = ChunkRecorder(tmp_path / "grid", START.value, STEP_S, 96, TAGS)
    rec.add("v_pu", "bus", [f"bus_{i:04d}" for i in range(3000)])
    for k in range(96):
        rec.record(k, {"v_pu": np.full(3000, 1.0 + k / 1000)})
    rec.close()
    merge_parts([tmp_path / "grid.parquet"], tmp_path / "results.parquet")
    meta = pq.read_metadata(tmp_path / "results.parquet")
    assert meta.num_rows == 3000 * 96
    assert meta.num_row_groups == 2  # 2,730 series of 96 rows, then the other 270
    assert max(meta.row_group(i).num_rows for i in range(2)) <= twin.results.ROWS_PER_ROW_GROUP
