import json

import numpy as np
import pytest

from adapters.field.emulator import FieldOptions, Prepared, renderer
from adapters.field.impair import plan_messages
from adapters.field.plan import PlanOptions, gateways, sensor_plan


def senml_resolve(pack: list[dict]) -> list[dict]:
    """RFC 8428 section 4.6: base fields carry forward; name = bn + n, time = bt + t."""
    out, bn, bt, bu = [], "", 0.0, None
    for record in pack:
        bn = record.get("bn", bn)
        bt = record.get("bt", bt)
        bu = record.get("bu", bu)
        out.append({"n": bn + record.get("n", ""), "t": bt + record.get("t", 0.0),
                    "v": record["v"], "u": record.get("u", bu), "q": record.get("q")})  # fmt: skip
    return out


def as_format(prepared: Prepared, fmt: str) -> Prepared:
    """The prepared plant re-laid in another format (same truth and readings)."""
    plan = PlanOptions(fmt=fmt, gateway_size=40)
    options = FieldOptions(plan=plan, impair=prepared.options.impair)
    sensors = sensor_plan(_plant(prepared), plan)
    assert (sensors["sensor"] == prepared.sensors["sensor"]).all()
    present = np.isfinite(prepared.samples.truth_twin)
    messages = plan_messages(options.impair, present, gateways(sensors), 1.0, fmt != "topic")
    return Prepared(prepared.scenario, options, sensors, prepared.truth, prepared.samples,
                    messages, prepared.seed)  # fmt: skip


def _plant(prepared):
    from adapters.field.plan import Plant

    return Plant.from_scenario(prepared.scenario)


def decoded(prepared: Prepared) -> list[tuple[str, str, float, float, str]]:
    """Every message as (topic, sensor key, t, v, u) records."""
    render = renderer(prepared)
    prefix = prepared.options.plan.prefix
    out = []
    for m in range(len(prepared.messages.step)):
        topic, payload = render(m)
        body = json.loads(payload)
        if prepared.options.plan.fmt == "topic":
            assert set(body) == {"t", "v", "u", "q"} and body["q"] == 1
            out.append((topic, topic, body["t"], body["v"], body["u"]))
        elif prepared.options.plan.fmt == "json":
            for r in body:
                assert set(r) == {"n", "t", "v", "u", "q"}
                out.append((topic, f"{prefix}/{r['n']}", r["t"], r["v"], r["u"]))
        else:
            assert set(body[0]) >= {"bn", "bt"} and all("bn" not in r for r in body[1:])
            for r in senml_resolve(body):
                out.append((topic, r["n"], r["t"], r["v"], r["u"]))
    return out


@pytest.mark.parametrize("fmt", ["topic", "json", "senml"])
def test_payloads_decode_to_the_truth(prepared, fmt):
    laid = as_format(prepared, fmt)
    records = decoded(laid)
    s, samples = laid.sensors, laid.samples
    assert len(records) == laid.messages.sent.sum()
    column = {key: j for j, key in enumerate(s["sensor"])}
    step_of_t = {}
    for topic, key, t, v, u in records:
        j = column[key]
        k = int(np.argmin(np.abs(samples.t[:, j] - t)))
        assert t == pytest.approx(samples.t[k, j], abs=1e-6)
        assert v == samples.value_twin[k, j] * s.at[j, "factor"]
        assert u == s.at[j, "unit"] and topic == s.at[j, "topic"]
        assert laid.messages.sent[k, j]
        step_of_t[(key, k)] = step_of_t.get((key, k), 0) + 1
    assert set(step_of_t.values()) == {1}  # each sent sample once (duplicates: the link's)


def test_senml_names_resolve_to_the_sensor_keys(prepared):
    laid = as_format(prepared, "senml")
    topic, payload = renderer(laid)(0)
    pack = json.loads(payload)
    assert topic.startswith("field/gw/") and topic.endswith("/senml")
    assert pack[0]["bn"] == "field/" and isinstance(pack[0]["bt"], float)
    names = [r["n"] for r in senml_resolve(pack)]
    assert all(n.startswith("field/") and n.count("/") == 2 for n in names)


@pytest.mark.parametrize("fmt", ["topic", "json", "senml"])
def test_payloads_carry_each_samples_quality(prepared, fmt):
    from adapters.field.impair import Impairments

    bad = Impairments(**{**prepared.options.impair.__dict__, "bad_quality": 0.3})
    laid = as_format(prepared, fmt)
    laid.messages = plan_messages(
        bad, np.isfinite(laid.samples.truth_twin), gateways(laid.sensors), 1.0, fmt != "topic"
    )
    column = {key: j for j, key in enumerate(laid.sensors["sensor"])}
    render, prefix = renderer(laid), laid.options.plan.prefix
    seen = []
    for m in range(len(laid.messages.step)):
        topic, payload = render(m)
        k = int(laid.messages.step[m])
        body = json.loads(payload)
        if fmt == "topic":
            records = [(topic, body["q"])]
        elif fmt == "json":
            records = [(f"{prefix}/{r['n']}", r["q"]) for r in body]
        else:
            records = [(r["n"], r["q"]) for r in senml_resolve(body)]
        for key, q in records:
            assert q == laid.messages.quality[k, column[key]]
            seen.append(q)
    assert set(seen) == {0, 1}
