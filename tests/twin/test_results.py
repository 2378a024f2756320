import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

import twin.recorder
from twin.errors import ResultsError
from twin.kpi import compute_kpis
from twin.results import (
    Results,
    as_operated,
    load_results,
    open_results,
    tidy_table,
    wide,
    write_tables,
)
from twin.run import run_scenario

TAGS = ["site", "run_id", "source", "asset", "kind", "quantity"]


def canonical(frame):
    """A tidy frame in one row order, tags as text: row order is not part of the format."""
    frame = frame.copy()
    for tag in TAGS:
        frame[tag] = frame[tag].astype(str)
    frame = frame.drop(columns="run_id")
    return frame.sort_values(["source", "kind", "quantity", "asset", "time"], ignore_index=True)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The 6-hour day twice: default chunks (one per simulator) and one step per chunk."""
    from tests.twin.test_run import small_scenario

    out = tmp_path_factory.mktemp("chunks")
    one = run_scenario(small_scenario(), out / "one", compare_uncontrolled=False)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(twin.recorder, "CHUNK_BYTES", 1)  # every step closes a chunk
        many = run_scenario(small_scenario(), out / "many", compare_uncontrolled=False)
    return one, many


def test_chunked_results_equal_one_shot_results_to_the_bit(runs):
    one, many = runs
    expected, got = canonical(load_results(one.out_dir)), canonical(load_results(many.out_dir))
    pd.testing.assert_frame_equal(got, expected, check_exact=True)
    same = got["value"].to_numpy().view(np.int64) == expected["value"].to_numpy().view(np.int64)
    assert same.all()
    assert many.kpis == pytest.approx(one.kpis, rel=0, abs=0, nan_ok=True)
    assert not (many.out_dir / "parts").exists()


def test_lazy_wide_equals_eager_wide_for_every_quantity(runs):
    run = runs[1]
    eager, lazy = load_results(run.out_dir), open_results(run.out_dir)
    triples = eager[["kind", "quantity", "source"]].astype(str).drop_duplicates()
    assert len(triples) > 20
    for kind, quantity, source in triples.itertuples(index=False):
        expected = wide(eager, kind, quantity, source)
        got = wide(lazy, kind, quantity, source)
        pd.testing.assert_frame_equal(got, expected, check_exact=True)
    assert wide(lazy, "pv", "no_such").empty and wide(eager, "pv", "no_such").empty


def test_kpis_from_the_lazy_results_equal_the_eager_ones(runs):
    from tests.twin.test_run import small_scenario

    run = runs[1]
    scenario = small_scenario()
    eager = compute_kpis(load_results(run.out_dir), scenario)
    lazy = compute_kpis(open_results(run.out_dir), scenario)
    assert lazy == pytest.approx(eager, rel=0, abs=0, nan_ok=True)


def test_lazy_filters_windows_and_batches(runs):
    run = runs[1]
    eager, lazy = load_results(run.out_dir), open_results(run.out_dir)
    pv = lazy.frame(kind="pv", source=["twin", "measured"])
    assert set(pv["kind"]) == {"pv"} and set(pv["source"]) == {"twin", "measured"}
    assert len(pv) == int((eager["kind"] == "pv").sum())
    assert lazy.count(source="twin") == int((eager["source"] == "twin").sum())
    hours = list(lazy.chunks(freq="1h"))
    assert len(hours) == 7  # 6 h of steps plus the end-of-run states
    assert all(h["time"].dt.floor("1h").nunique() == 1 for h in hours)
    pd.testing.assert_frame_equal(canonical(pd.concat(hours)), canonical(eager))
    batches = list(lazy.batches(rows=1000, kind="bus"))
    assert max(len(b) for b in batches) <= 1000
    assert sum(len(b) for b in batches) == int((eager["kind"] == "bus").sum())
    with pytest.raises(ResultsError, match="no results file"):
        open_results(run.out_dir / "nowhere")


def _tidy(source, asset, values, start="2016-06-21T13:00Z"):
    stamps = pd.date_range(start, periods=len(values), freq="15min").as_unit("ns").asi8
    tags = {"site": "s", "run_id": "r", "source": source}
    return tidy_table([(asset, "battery", "p_kw")], stamps, [np.asarray(values, float)], tags)


def test_lazy_as_operated_equals_eager_as_operated(tmp_path):
    """Measured values (source=real) replace the twin's where fresh (not NaN)."""
    tables = [
        _tidy("twin", "bess", [1.0, 2.0, 3.0, 4.0]),
        _tidy("twin", "other", [5.0, 6.0, 7.0, 8.0]),
        _tidy("real", "bess", [10.0, np.nan, 30.0, np.nan]),
        _tidy("residual", "bess", [9.0, np.nan, 27.0, np.nan]),
    ]
    write_tables(tmp_path / "results.parquet", tables)
    eager, lazy = load_results(tmp_path), open_results(tmp_path)
    operated = as_operated(lazy)
    assert isinstance(operated, Results) and operated.as_operated() is operated
    for source in ("twin", "real"):
        expected = wide(as_operated(eager), "battery", "p_kw", source)
        pd.testing.assert_frame_equal(wide(operated, "battery", "p_kw", source), expected)
    assert wide(operated, "battery", "p_kw")["bess"].tolist() == [10.0, 2.0, 30.0, 4.0]
    # without measured rows the view is the results themselves
    write_tables(tmp_path / "plain" / "results.parquet", tables[:2])
    plain = open_results(tmp_path / "plain")
    assert as_operated(plain) is plain


def test_tidy_table_keeps_the_public_schema():
    table = _tidy("twin", "bess", [1.0, 2.0])
    assert table.column_names == [
        "time",
        "site",
        "run_id",
        "source",
        "asset",
        "kind",
        "quantity",
        "value",
    ]
    assert table.schema.field("time").type == pa.timestamp("ns", "UTC")
    assert pa.types.is_dictionary(table.schema.field("asset").type)


def test_a_file_without_the_index_is_read_through_tidy_frames(runs, tmp_path):
    """Files written before the index (or by other tools) give the same tables."""
    import pyarrow.parquet as pq

    run = runs[1]
    assert open_results(run.out_dir).index is not None
    table = pq.read_table(run.out_dir / "results.parquet")
    pq.write_table(table.replace_schema_metadata(None), tmp_path / "results.parquet")
    bare, eager = open_results(tmp_path), load_results(run.out_dir)
    assert bare.index is None
    for kind, quantity, source in [("bus", "v_pu", "twin"), ("load", "p_kw", "measured")]:
        got = wide(bare, kind, quantity, source)
        pd.testing.assert_frame_equal(got, wide(eager, kind, quantity, source), check_exact=True)
    assert not bare.has_source("real") and bare.has_source("measured")


def test_campaign_recovery_reads_two_quantities_lazily(tmp_path):
    from twin.campaign import RECOVERY_KW, _recovery_h

    def run(name, poc_kw):
        stamps = pd.date_range("2016-06-21T13:00Z", periods=len(poc_kw), freq="15min")
        tags = {"site": "s", "run_id": name, "source": "twin"}
        table = tidy_table(
            [("poc", "grid", "p_kw")], stamps.as_unit("ns").asi8, [np.asarray(poc_kw)], tags
        )
        write_tables(tmp_path / name / "results.parquet", [table])
        return tmp_path / name

    far = 10 * RECOVERY_KW
    ours, ref = run("ours", [0, far, far, far, 0, 0]), run("ref", [0.0] * 6)
    fault_end = pd.Timestamp("2016-06-21T13:30Z")
    assert _recovery_h(ours, ref, fault_end) == 0.5  # back at 14:00
    assert np.isnan(_recovery_h(ours, tmp_path / "missing", fault_end))


def test_the_kpis_read_each_row_group_at_most_once(runs, monkeypatch):
    """The KPIs' tables come from one pass over the file (its index says which rows are
    whose): each row group is read once at most, never once per quantity."""
    import pyarrow.parquet as pq

    from tests.twin.test_run import small_scenario

    run = runs[1]
    reads = []
    read_row_group = pq.ParquetFile.read_row_group

    def counted(self, i, *args, **kwargs):
        reads.append(i)
        return read_row_group(self, i, *args, **kwargs)

    eager = compute_kpis(load_results(run.out_dir), small_scenario())
    monkeypatch.setattr(pq.ParquetFile, "read_row_group", counted)
    kpis = compute_kpis(open_results(run.out_dir), small_scenario())
    assert kpis == pytest.approx(eager, rel=0, abs=0, nan_ok=True)
    assert reads and len(reads) == len(set(reads))
    assert len(reads) <= pq.read_metadata(run.out_dir / "results.parquet").num_row_groups


def test_the_operated_view_is_the_same_with_or_without_the_index(tmp_path):
    """Real values put in over the twin's, whether the file has its row-group index."""
    import pyarrow.parquet as pq

    stamps = pd.date_range("2016-06-21T13:00Z", periods=4, freq="15min").as_unit("ns").asi8
    tables = [
        tidy_table([("a", "pv", "p_kw")], stamps, [np.array([1.0, 2.0, 3.0, 4.0])], tags)
        for tags in (
            {"site": "s", "run_id": "r", "source": "twin"},
            {"site": "s", "run_id": "r", "source": "real"},
        )
    ]
    tables[1] = tables[1].filter(pa.compute.greater(tables[1]["value"], 2.5))
    real = tables[1].set_column(
        tables[1].schema.get_field_index("value"), "value", pa.array([30.0, 40.0])
    )
    write_tables(tmp_path / "indexed" / "results.parquet", [tables[0], real])
    (tmp_path / "bare").mkdir()
    table = pq.read_table(tmp_path / "indexed" / "results.parquet")
    pq.write_table(table.replace_schema_metadata(None), tmp_path / "bare" / "results.parquet")
    indexed, bare = open_results(tmp_path / "indexed"), open_results(tmp_path / "bare")
    assert indexed.index is not None and bare.index is None
    tables = {}
    for name, results in (("indexed", indexed), ("bare", bare)):
        operated = results.as_operated()
        tables[name] = operated.wides([("pv", "p_kw", "twin")])["pv", "p_kw", "twin"]
        assert operated.wide("pv", "p_kw").equals(tables[name])
    np.testing.assert_array_equal(tables["indexed"]["a"].to_numpy(), [1.0, 2.0, 30.0, 40.0])
    pd.testing.assert_frame_equal(tables["bare"], tables["indexed"], check_exact=True)
