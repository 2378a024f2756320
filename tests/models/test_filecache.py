"""Files edited in place are read again by the cached readers (no stale grids or weather)."""

import os

import pandapower as pp
import pandas as pd

from models.gridnet import load_net
from models.weather import resolve_weather_path, weather_at


def test_a_grid_json_edited_in_place_is_read_again(tmp_path):
    path = tmp_path / "grid.json"
    net = pp.networks.case33bw()
    pp.to_json(net, str(path))
    assert load_net(str(path)).line.at[0, "length_km"] == net.line.at[0, "length_km"]
    net.line.at[0, "length_km"] *= 2
    pp.to_json(net, str(path))
    os.utime(path, ns=(1, 1))  # a distinct mtime whatever the file system's granularity
    assert load_net(str(path)).line.at[0, "length_km"] == net.line.at[0, "length_km"]


def test_a_weather_file_edited_in_place_is_read_again(tmp_path):
    path = tmp_path / "tmy.csv"
    lines = resolve_weather_path("723170TYA.CSV").read_text().splitlines(keepends=True)
    path.write_text("".join(lines))
    times = pd.date_range("2016-06-21T12:00:00-04:00", periods=4, freq="1h")
    before = weather_at(times, path)["temp_air"]
    header = lines[1].split(",")
    column = header.index("Dry-bulb (C)")
    for i in range(2, len(lines)):
        fields = lines[i].split(",")
        fields[column] = str(float(fields[column]) + 10.0)
        lines[i] = ",".join(fields)
    path.write_text("".join(lines))
    after = weather_at(times, path)["temp_air"]
    assert (after - before).round(9).eq(10.0).all()
