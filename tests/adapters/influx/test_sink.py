"""A run written to a real InfluxDB as it runs, and a finished run loaded afterwards."""

import json
import time

from adapters.influx.lineprotocol import encode_frame_bytes
from adapters.influx.load import write_results
from adapters.influx.writer import InfluxConfig
from tests.adapters.influx.conftest import counts, parquet_counts, stop_server_mid_run
from twin.results import load_results
from twin.run import run_scenario


def test_every_point_of_a_run_arrives(influxdb, tmp_path, day_scenario):
    influx = {"url": influxdb.url, "db": "sink_run", "create_database": True}
    result = run_scenario(day_scenario(outputs={"influx": influx}), tmp_path / "run")
    results = load_results(result.out_dir)
    run_id = result.metadata["run_id"]
    assert counts(influxdb, "sink_run", run_id) == parquet_counts(results)
    stats = result.metadata["influx"]
    assert stats["points_dropped"] == 0 and stats["spooled_left"] == 0 and stats["error"] is None
    # Values round-trip exactly: the battery's SoC at 16:00 UTC.
    answer = influxdb.query(
        f"SELECT soc FROM battery WHERE asset = 'bess' AND run_id = '{run_id}' "
        "AND source = 'twin' AND time = '2016-06-21T16:00:00Z'",
        db="sink_run",
    )
    stored = answer["results"][0]["series"][0]["values"][0][1]
    truth = results[results["source"] == "twin"]
    soc = truth[(truth["asset"] == "bess") & (truth["quantity"] == "soc")]
    expected = soc[soc["time"] == "2016-06-21T16:00:00Z"]["value"].item()
    assert stored == expected
    # states are stamped with their instant: soc_init at the start, the end state at the end
    answer = influxdb.query(
        f"SELECT soc FROM battery WHERE asset = 'bess' AND run_id = '{run_id}' AND source = 'twin'",
        db="sink_run",
    )
    rows = answer["results"][0]["series"][0]["values"]
    assert rows[0] == ["2016-06-21T04:00:00Z", 0.3]
    assert rows[-1][0] == "2016-06-22T04:00:00Z" and len(rows) == 97
    assert rows[-1][1] == soc.sort_values("time")["value"].iloc[-1]


def test_a_finished_run_loads_with_the_library_function(influxdb, tmp_path, day_scenario):
    result = run_scenario(day_scenario(), tmp_path / "run")
    config = InfluxConfig(url=influxdb.url, db="loaded", create_database=True)
    stats = write_results(result.out_dir, config)
    results = load_results(result.out_dir)
    assert counts(influxdb, "loaded", result.metadata["run_id"]) == parquet_counts(results)
    lines = sum(n for _, n in encode_frame_bytes(results))  # one per element and step
    assert stats.points_written == lines and stats.points_dropped == 0
    write_results(result.out_dir, config)  # again: the same points overwrite themselves
    assert counts(influxdb, "loaded", result.metadata["run_id"]) == parquet_counts(results)


def test_the_server_goes_down_mid_run_and_nothing_is_lost_or_doubled(own_influx, tmp_path, day_raw):
    run = stop_server_mid_run(own_influx, day_raw, tmp_path, "outage")
    time.sleep(3.0)
    own_influx.start()
    output, _ = run.communicate(timeout=180)
    assert run.returncode == 0, output
    meta = json.loads((tmp_path / "run" / "run.json").read_text())
    stats = meta["influx"]
    assert stats["points_spooled"] > 0 and stats["points_replayed"] == stats["points_spooled"]
    assert stats["points_dropped"] == 0 and stats["spooled_left"] == 0
    results = load_results(tmp_path / "run")
    assert counts(own_influx, "outage", meta["run_id"]) == parquet_counts(results)
    assert "spooled" in output
