"""The tidy file's row index: lazy reads through it equal the eager tidy frame's."""

import json
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import twin.results
from twin.results import INDEX_KEY, load_results, open_results, tidy_table, wide, write_tables
from twin.tidyindex import TAGS, RowIndex

START = pd.Timestamp("2016-06-21T13:00:00Z")
SOURCES = ["twin", "measured", "real"]
KINDS = [("bus", "v_pu"), ("pv", "p_kw"), ("battery", "soc")]


@st.composite
def tidy_files(draw):
    """Tables as the run writes them: chunks of steps, each a few tables of series."""
    assets = draw(st.lists(st.sampled_from([f"a{i}" for i in range(8)]), min_size=1, unique=True))
    series = sorted(
        draw(
            st.lists(
                st.tuples(
                    st.sampled_from(SOURCES), st.sampled_from(assets), st.sampled_from(KINDS)
                ),
                min_size=1,
                max_size=12,
                unique=True,
            )
        )
    )
    chunks = draw(st.lists(st.integers(1, 6), min_size=1, max_size=4))  # steps per chunk
    per_table = draw(st.integers(1, 5))
    values = st.one_of(st.just(np.nan), st.floats(-1e3, 1e3))
    tables, at = [], 0
    for steps in chunks:
        stamps = START.value + 900 * 10**9 * np.arange(at, at + steps, dtype=np.int64)
        at += steps
        for source in SOURCES:
            keys = [(a, kind, q) for s, a, (kind, q) in series if s == source]
            for i in range(0, len(keys), per_table):
                part = keys[i : i + per_table]
                data = np.array(
                    draw(st.lists(values, min_size=steps * len(part), max_size=steps * len(part)))
                )
                tags = {"site": "s", "run_id": "r", "source": source}
                tables.append(tidy_table(part, stamps, data.reshape(len(part), steps), tags))
    return tables, draw(st.integers(1, 40))


def as_text(frame):
    """Rows in file order, tags as text (an empty selection has no categories)."""
    return frame.astype({tag: str for tag in TAGS}).reset_index(drop=True)


def check_lazy_equals_eager(directory):
    eager, lazy = load_results(directory), open_results(directory)
    keys = [(kind, q, s) for kind, q in KINDS for s in SOURCES]
    together = lazy.wides(keys)
    for kind, quantity, source in keys:
        expected = wide(eager, kind, quantity, source)
        got = wide(lazy, kind, quantity, source)
        pd.testing.assert_frame_equal(got, together[kind, quantity, source])
        got = got.reindex(columns=sorted(got.columns))
        pd.testing.assert_frame_equal(got, expected, check_exact=True, check_names=False)
        rows = lazy.frame(kind=kind, source=[source, "real"])
        mask = (eager["kind"] == kind) & eager["source"].isin([source, "real"])
        assert len(rows) == lazy.count(kind=kind, source=[source, "real"]) == int(mask.sum())
        pd.testing.assert_frame_equal(as_text(rows), as_text(eager[mask]), check_exact=True)
    middle = START + pd.Timedelta(minutes=30)
    window = lazy.between(middle, None)
    later = eager[eager["time"] >= middle]
    for kind, quantity in KINDS:
        expected = wide(later, kind, quantity)
        got = wide(window, kind, quantity)
        got = got.reindex(columns=sorted(got.columns))
        pd.testing.assert_frame_equal(got, expected, check_exact=True, check_names=False)


@settings(max_examples=40, deadline=None)
@given(tidy_files())
def test_lazy_reads_through_the_row_index_equal_the_tidy_frame(file):
    tables, rows_per_group = file
    with tempfile.TemporaryDirectory() as tmp, pytest.MonkeyPatch.context() as patch:
        patch.setattr(twin.results, "ROWS_PER_ROW_GROUP", rows_per_group)  # runs cut by groups
        write_tables(Path(tmp) / "results.parquet", tables)
        lazy = open_results(tmp)
        assert "rows" in lazy.index
        assert lazy._row_index().n_groups == pq.read_metadata(lazy.path).num_row_groups
        check_lazy_equals_eager(tmp)
        # a file indexed before the runs: they are gathered from its tag columns
        path = Path(tmp) / "results.parquet"
        meta = json.loads(pq.read_metadata(path).metadata[INDEX_KEY])
        stored = meta.pop("rows")
        table = pq.read_table(path)
        pq.write_table(
            table.replace_schema_metadata({INDEX_KEY: json.dumps(meta)}),
            path,
            row_group_size=rows_per_group,
        )
        rows = open_results(tmp)._row_index()
        assert rows is not None
        assert_same_runs(rows, RowIndex(stored))
        check_lazy_equals_eager(tmp)


def assert_same_runs(got, expected):
    """Both say the same series for every row (row groups may be cut elsewhere)."""

    def per_row(index):
        keys = []
        for group in range(index.n_groups):
            series, first, ends = index.runs(group)
            for s, a, b in zip(series, first, ends, strict=True):
                keys += [tuple(index.label(tag, s) for tag in TAGS)] * int(b - a)
        return keys

    assert per_row(got) == per_row(expected)


def test_the_index_holds_each_row_groups_runs(tmp_path):
    tags = {"site": "s", "run_id": "r", "source": "twin"}
    stamps = START.value + np.arange(3, dtype=np.int64)
    keys = [("a", "bus", "v_pu"), ("b", "bus", "v_pu"), ("a", "pv", "p_kw")]
    write_tables(tmp_path / "results.parquet", [tidy_table(keys, stamps, np.ones((3, 3)), tags)])
    rows = open_results(tmp_path)._row_index()
    series, first, ends = rows.runs(0)
    assert [rows.label("asset", s) for s in series] == ["a", "b", "a"]
    assert [rows.label("kind", s) for s in series] == ["bus", "bus", "pv"]
    assert first.tolist() == [0, 3, 6] and ends.tolist() == [3, 6, 9]
    assert rows.matching({"kind": "bus"}).tolist() == [True, True, False]


@settings(max_examples=200, deadline=None)
@given(
    st.one_of(
        st.lists(st.integers(-(10**15), 10**15), max_size=50),
        st.lists(st.integers(0, 40), max_size=50).map(lambda k: [10**9 * 900 * i for i in k]),
    )
)
def test_instants_are_the_sorted_distinct_stamps(stamps):
    """On a clock or not, a table's rows are the distinct stamps in order."""
    stamps = np.array(stamps, np.int64)
    times, at = twin.results._instants(stamps)
    expected, inverse = np.unique(stamps, return_inverse=True)
    assert times.tolist() == expected.tolist() and at.tolist() == inverse.tolist()
