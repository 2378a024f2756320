import math

import numpy as np
import pandas as pd
import pytest

from adapters.influx.lineprotocol import (
    encode_block,
    encode_block_bytes,
    encode_frame,
    escape_key,
    line_prefix,
)
from adapters.influx.writer import InfluxConfig, InfluxWriter


@pytest.mark.parametrize(
    ("text", "escaped"),
    [("plain", "plain"), ("a b", "a\\ b"), ("a,b", "a\\,b"), ("a=b", "a\\=b")],
)
def test_keys_and_tag_values_are_escaped(text, escaped):
    assert escape_key(text) == escaped


def test_prefix_sorts_tags_and_escapes_the_measurement():
    prefix = line_prefix("my kind,x", {"source": "twin", "asset": "pv 1", "site": "s"})
    assert prefix == "my\\ kind\\,x,asset=pv\\ 1,site=s,source=twin"


def test_nan_fields_are_left_out_and_empty_lines_skipped():
    values = np.array([[1.5, 2.0], [math.nan, 3.25], [math.nan, math.nan]])
    lines = encode_block("m,asset=a", ["x=", "y="], values, np.array([10, 20, 30]))
    assert lines == ["m,asset=a x=1.5,y=2.0 10", "m,asset=a y=3.25 20"]


def test_frame_is_one_line_per_element_and_step():
    times = pd.date_range("2016-06-21T04:00Z", periods=2, freq="15min")
    rows = [
        (t, "site", "r1", "twin", "bess", "battery", q, v)
        for t, (soc, p) in zip(times, [(0.5, -2.0), (0.55, -1.0)], strict=True)
        for q, v in (("soc", soc), ("p_kw", p))
    ]
    frame = pd.DataFrame(
        rows, columns=["time", "site", "run_id", "source", "asset", "kind", "quantity", "value"]
    )
    (lines,) = list(encode_frame(frame))
    stamp = int(times[0].timestamp())
    assert (
        lines[0] == f"battery,asset=bess,run_id=r1,site=site,source=twin p_kw=-2.0,soc=0.5 {stamp}"
    )
    assert len(lines) == 2


def test_special_characters_and_exact_floats_survive_the_server(influxdb):
    influxdb.query('CREATE DATABASE "lp"')
    value = 0.1 + 0.2  # 0.30000000000000004: repr keeps every digit
    prefix = line_prefix("bus", {"asset": "bus 7,a=b", "site": "my site", "source": "twin"})
    writer = InfluxWriter(InfluxConfig(url=influxdb.url, db="lp")).open()
    writer.write([f"{prefix} v_pu={value!r} 1466481600"])
    assert writer.close().points_written == 1
    answer = influxdb.query("SELECT v_pu, asset, site FROM bus", db="lp")
    (row,) = answer["results"][0]["series"][0]["values"]
    assert row[1] == value and row[2] == "bus 7,a=b" and row[3] == "my site"


def test_the_arrow_encoder_writes_the_same_points_as_the_python_one():
    rng = np.random.default_rng(3)
    values = rng.normal(size=(500, 3)) * 10.0 ** rng.integers(-8, 8, size=(500, 3))
    values[rng.random((500, 3)) < 0.1] = np.nan
    values[7] = np.nan  # a line with nothing to write
    seconds = np.arange(500) * 900 + 1466481600
    names = ["a=", "b=", "c="]
    chunk, count = encode_block_bytes("m,asset=x", names, values, seconds)
    reference = encode_block("m,asset=x", names, values, seconds)
    ours = chunk.decode().splitlines()
    expected = int((~np.isnan(values).all(axis=1)).sum())
    assert count == len(ours) == len(reference) == expected < 500

    def parse(line: str) -> tuple[str, dict[str, float], str]:
        prefix, fields, stamp = line.split(" ")
        return prefix, {k: float(v) for k, v in (f.split("=") for f in fields.split(","))}, stamp

    assert [parse(line) for line in ours] == [parse(line) for line in reference]  # exact floats
