import json

import numpy as np
import pytest

from adapters.ingest.window import ClockSkewWarning
from tests.adapters.ingest.conftest import START, make_ingestor


def send(ingestor, topic, t, v, **extra):
    payload = json.dumps({"t": None if t is None else START + t, "v": v, **extra}).encode()
    ingestor.receive(topic, payload, 0.0)


def at(ingestor, plant_s):
    ingestor.clock.follow_s = plant_s


def step(ingestor, time_s):
    """A step of a run not paced in real time: plant time is the step's time."""
    ingestor.follow(time_s)
    return ingestor.readings(time_s)


def test_out_of_order_values_land_in_their_windows_and_duplicates_are_dropped(elements):
    ing = make_ingestor(elements)
    at(ing, 3.5)
    for t in (2.0, 0.0, 1.0, 2.0, 0.5, 1.0):  # reordered, two duplicates
        send(ing, "field/bus_7/v", t, 230.0 + t, u="V")
    c = ing.counts
    assert (c.values, c.accepted, c.duplicates, c.late) == (6, 4, 2, 0)
    w0 = step(ing, 1.0)  # at step 1 window 0 closes: its latest sample is t = 0.5
    assert w0["t_s"] == 0.0 and w0["t"].tolist() == [START + 0.5]
    sensor = ing.mapper.sensors[0]
    assert w0["values"][0] == pytest.approx(sensor.a * 230.5)
    assert step(ing, 2.0)["t"].tolist() == [START + 1.0]
    assert step(ing, 3.0)["t"].tolist() == [START + 2.0]


def test_a_late_value_is_counted_and_not_given_to_its_closed_window(elements):
    ing = make_ingestor(elements)
    at(ing, 1.2)
    send(ing, "field/bus_7/v", 0.2, 231.0)
    assert step(ing, 1.0)["ids"].tolist() == [0]
    send(ing, "field/bus_7/v", 0.7, 232.0)  # window 0 closed already
    assert ing.counts.late == 1 and ing.counts.accepted == 2
    assert step(ing, 2.0)["ids"].size == 0


def test_late_window_keeps_a_window_open_longer(elements):
    ing = make_ingestor(elements, late_window_s=0.5)
    at(ing, 1.2)
    send(ing, "field/bus_7/v", 0.2, 231.0)
    assert step(ing, 1.0)["t_s"] == -1.0  # window 0 closes at 1.5: not yet
    send(ing, "field/bus_7/v", 0.7, 232.0)
    assert step(ing, 2.0)["t"].tolist() == [START + 0.7] and ing.counts.late == 0


def test_clock_skew_beyond_tolerance_is_dropped_counted_and_warned_once_per_sensor(elements):
    ing = make_ingestor(elements, tolerance_s=2.0, max_delay_s=10.0)
    at(ing, 100.0)
    send(ing, "field/bus_7/v", 103.0, 230.0)  # 3 s ahead
    send(ing, "field/bus_7/v", 104.0, 230.0)
    send(ing, "field/bus_8/v", 87.0, 230.0)  # 13 s behind: older than tolerance + max delay
    send(ing, "field/bus_8/v", 101.5, 230.0)  # within the tolerance: fine
    send(ing, "field/bus_9/v", 89.0, 230.0)  # 11 s old: a delayed value, fine
    # ahead: dropped; too old (a backlog or a clock behind): stored, not estimated
    assert ing.counts.skewed == 2 and ing.counts.stale == 1 and ing.counts.accepted == 2
    with pytest.warns(ClockSkewWarning) as caught:
        step(ing, 100.0)
    messages = sorted(str(w.message) for w in caught)
    assert len(messages) == 2
    assert "'field/bus_7/v': timestamp +3.000 s off" in messages[0]
    assert "'field/bus_8/v': timestamp -13.000 s off" in messages[1]
    step(ing, 101.0)  # no second warning for the same sensors


def test_untimed_values_take_the_receipt_time(elements):
    ing = make_ingestor(elements)
    at(ing, 4.25)
    ing.receive("field/bess/soc", b"55", 0.0)
    assert ing.counts.untimed == 1
    readings = step(ing, 5.0)
    assert readings["t"].tolist() == [START + 4.25] and readings["values"][0] == pytest.approx(0.55)


def test_unknown_topics_are_counted_per_key_and_never_fatal(elements, caplog):
    ing = make_ingestor(elements)
    at(ing, 1.0)
    for _ in range(3):
        send(ing, "field/nowhere/v", 0.5, 1.0)
    send(ing, "elsewhere/x", 0.5, 1.0)
    send(ing, "field/bus_7/v", 0.5, 230.0)
    c = ing.counts.as_dict()
    assert c["unknown"] == 4 and c["unknown_messages"] == 4 and c["accepted"] == 1
    assert c["unknown_top"] == {"field/nowhere/v": 3, "elsewhere/x": 1}
    assert sum("no mapping for" in r.message for r in caplog.records) == 1  # logged once


def test_a_spoofed_value_is_counted_flagged_and_kept_out_of_the_readings(elements):
    ing = make_ingestor(elements)
    at(ing, 1.0)
    send(ing, "field/pv_roof/p", 0.5, 30_000.0, u="W")  # 30 kW of a 45 kWp plant
    send(ing, "field/bess/p", 0.5, 5_000_000.0, u="W")  # 5 MW of a 20 kW battery
    send(ing, "field/bus_7/v", 0.5, 2300.0, u="V")  # 10 pu
    c = ing.counts
    assert c.implausible == 2 and c.accepted == 3
    assert c.implausible_sensors == {"field/bess/p": 1, "field/bus_7/v": 1}
    readings = step(ing, 1.0)
    by_key = {ing.mapper.sensors[i].key: k for k, i in enumerate(readings["ids"])}
    flags, quality = readings["flags"], readings["quality"]
    assert flags[by_key["field/pv_roof/p"]] == 0 and quality[by_key["field/pv_roof/p"]] == 1
    assert flags[by_key["field/bess/p"]] == 1 and quality[by_key["field/bess/p"]] == 0
    assert flags[by_key["field/bus_7/v"]] == 1


def test_a_mapping_range_overrides_the_ratings(elements):
    rule = {"pattern": "m/{asset}/{quantity}", "quantities": {"p": {"quantity": "p_kw", "max": 10}}}
    ing = make_ingestor(elements, rules=[rule])
    at(ing, 1.0)
    send(ing, "m/pv_roof/p", 0.5, 12.0)  # within the plant's rating, above the row's max
    assert ing.counts.implausible == 1


def test_a_gateway_batch_and_a_senml_pack_map_like_per_sensor_topics(elements):
    ing = make_ingestor(elements)
    at(ing, 10.0)
    batch = [
        {"n": "bus_7/v", "t": START + 9.0, "v": 231.0, "u": "V"},
        {"n": "pv_roof/p", "t": START + 9.0, "v": 20000, "u": "W"},
    ]
    ing.receive("field/gw/g1", json.dumps(batch).encode(), 0.0)
    pack = [
        {"bn": "field/", "bt": START + 9.0, "n": "bus_8/v", "u": "V", "v": 229.0},
        {"n": "bess/soc", "u": "%", "v": 40},
    ]
    ing.receive("field/gw/g2/senml", json.dumps(pack).encode(), 0.0)
    readings = step(ing, 10.0)
    keys = [ing.mapper.sensors[i].key for i in readings["ids"]]
    assert keys == ["field/bus_7/v", "field/pv_roof/p", "field/bus_8/v", "field/bess/soc"]
    np.testing.assert_allclose(readings["values"][1:4:2], [20.0, 0.4])
    assert ing.sensor_table()[3] == ("field/bess/soc", "bess", "soc", None)


def test_a_unit_the_quantity_cannot_take_is_counted(elements):
    ing = make_ingestor(elements)
    at(ing, 1.0)
    send(ing, "field/bus_7/v", 0.5, 1.0, u="Hz")
    assert ing.counts.bad_unit == 1 and ing.counts.accepted == 0


def test_an_oversized_payload_is_rejected_before_it_is_read(elements):
    ing = make_ingestor(elements, max_bytes=100)
    at(ing, 1.0)
    ing.receive("field/bus_7/v", b'{"t": 1, "v": 1, "pad": "' + b"x" * 200 + b'"}', 0.0)
    assert ing.counts.too_large == 1 and ing.counts.values == 0


def test_messages_before_the_plant_clock_wait_for_it(elements):
    ing = make_ingestor(elements)
    ing.clock.follow_s = None
    send(ing, "field/bus_7/v", 0.5, 230.0)
    assert ing.counts.messages == 0
    ing.follow(1.0)
    assert ing.counts.accepted == 1


def test_windows_close_on_the_plant_clock_not_on_an_early_steps_time(elements):
    """mosaik may start a real-time step early: a window whose end has not come on the
    plant clock stays open, so its values are not late."""
    import time

    from adapters.ingest.window import PlantClock, Windows

    ing = make_ingestor(elements)
    ing.windows = Windows(START, 10, 2.0, 60.0, 0.0)
    ing.clock = PlantClock(START, time.time() - 55.0, 1.0)  # plant time: 55 s (+ test time)
    payload = json.dumps({"t": START + 53.0, "v": 230.0}).encode()
    ing.receive("field/bus_7/v", payload, time.time())  # window 5: [50, 60)
    readings = ing.readings(70.0)  # a step at 70 s: window 5 has not ended on the plant clock
    assert readings["t_s"] == 40.0 and ing.counts.late == 0
    ing.clock.wall_start -= 10.0  # plant time 65 s: window 5 is over
    assert ing.readings(70.0)["t"].tolist() == [START + 53.0]


def test_a_late_value_is_still_handed_to_the_store(elements):
    from adapters.influx.transport import InfluxConfig
    from adapters.ingest.store import RawStore

    store = RawStore(InfluxConfig("http://127.0.0.1:9"), "site")  # not opened: collects lines
    ing = make_ingestor(elements, store=store)
    at(ing, 1.2)
    step(ing, 1.0)  # window 0 closes
    send(ing, "field/bus_7/v", 0.7, 232.0)
    assert ing.counts.late == 1 and ing.counts.submitted == 1
    (line,) = store.pending_text().splitlines(keepends=True)
    assert line.startswith("bus,asset=bus_7,sensor=field/bus_7/v,site=site,source=real v_pu=")
    assert line.endswith(",quality=1.0 1466481600700000000\n")


def test_a_value_that_converts_to_infinity_is_malformed_never_stored(elements):
    ing = make_ingestor(elements)
    at(ing, 4.0)
    send(ing, "field/pv_roof/p", 3.5, 1e308, u="MW")  # 1e308 MW is inf kW
    assert ing.counts.malformed == 1 and ing.counts.accepted == 0 and ing.counts.submitted == 0
    assert len(step(ing, 5.0)["ids"]) == 0


def test_keys_beyond_max_sensors_are_unknown_not_new_sensors(elements):
    ing = make_ingestor(elements)
    ing.mapper.max_sensors = 2  # ingest.max_sensors
    at(ing, 4.0)
    for topic in ("field/bus_7/v", "field/bus_8/v", "field/bus_9/v"):
        send(ing, topic, 3.5, 230.0)
    assert len(ing.mapper.sensors) == 2
    assert ing.counts.unknown == 1 and ing.counts.accepted == 2
    assert "field/bus_9/v" in ing.counts.unknown_keys
