"""Fuzzing the boundary: malformed scenarios, campaign files, YAML bytes and CLI arguments.

Every invalid input must end in a named error (``ScenarioError``; exit code 2 from the
CLI), never a traceback, and leave nothing that looks like a result. Valid perturbations
within the documented bounds must validate. Derandomized, so the examples are the same
on every run.
"""

import contextlib
import copy
import math
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from tests.conftest import ROOT
from tests.twin.bad_input import assert_named_failure, results_under
from twin.campaign import load_campaign
from twin.cli import app
from twin.errors import ScenarioError
from twin.scenario import field_names, validate_scenario

runner = CliRunner()
FUZZ = settings(
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

BASE: dict[str, Any] = yaml.safe_load((ROOT / "scenarios" / "microgrid_day.yaml").read_text())
BASE["assets"]["load"] = [{"name": "house", "bus": 7, "p_kw": 10.0}]  # quick to resolve
BASE["assets"]["ev"] = [{"name": "depot", "bus": 3, "chargers": 2}]
BASE["faults"] = [{"kind": "pv_shading", "target": "pv_roof", "start": "6h", "duration": "2h"}]
BASE["mqtt"] = {"broker": "mqtt://127.0.0.1:1883", "buffer_max": 1000}


def leaves(node: Any, path: tuple = ()) -> list[tuple]:
    """Paths of every scalar in a raw scenario."""
    if isinstance(node, dict):
        return [p for key, value in node.items() for p in leaves(value, (*path, key))]
    if isinstance(node, list):
        return [p for i, value in enumerate(node) for p in leaves(value, (*path, i))]
    return [path]


def mappings(node: Any, path: tuple = ()) -> list[tuple]:
    """Paths of every mapping in a raw scenario (the root too)."""
    if isinstance(node, dict):
        return [path, *[p for key, value in node.items() for p in mappings(value, (*path, key))]]
    if isinstance(node, list):
        return [p for i, value in enumerate(node) for p in mappings(value, (*path, i))]
    return []


LEAVES = leaves(BASE)
MAPPINGS = mappings(BASE)
REQUIRED = [("name",), ("start",), ("duration",), ("step",), ("site",), ("grid",)]
REQUIRED += [("assets", "battery", 0, "e_kwh"), ("assets", "pv", 0, "bus"), ("site", "tz")]


@contextlib.contextmanager
def scratch() -> Iterator[Path]:
    """A fresh, empty working directory (hypothesis runs many examples per test)."""
    with tempfile.TemporaryDirectory() as directory, contextlib.chdir(directory):
        yield Path(directory)


def dotted(path: tuple) -> str:
    """``assets.battery[0].e_kwh`` of a path tuple, as ``--set`` takes it."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


def get(raw: Any, path: tuple) -> Any:
    for part in path:
        raw = raw[part]
    return raw


def put(raw: dict, path: tuple, value: Any) -> dict:
    node = raw
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    return raw


#: Values no field of the scenario accepts, whatever its type: non-finite or huge
#: numbers (every number is bounded; text and time fields refuse numbers), and
#: containers where a scalar belongs.
NEVER_VALID = st.one_of(
    st.sampled_from([math.nan, math.inf, -math.inf, 1e300, -1e300, 10**30, -(10**30)]),
    st.lists(st.integers(), min_size=1, max_size=3),
    st.dictionaries(st.sampled_from(["x", "bogus"]), st.integers(), min_size=1, max_size=2),
)
NUMERIC_LEAVES = [
    path
    for path in LEAVES
    if isinstance(get(BASE, path), int | float) and get(BASE, path) is not True
]
#: Wrong types for a number: booleans and text that is not a number.
NOT_A_NUMBER = st.one_of(st.booleans(), st.text(alphabet="xyz_ ", min_size=1, max_size=8))
UNKNOWN_KEY = st.text(st.characters(codec="utf-8"), min_size=1, max_size=20).filter(
    lambda key: key not in field_names()
)


@st.composite
def invalid_raw(draw: st.DrawFn) -> dict:
    """The base scenario with one change that makes it invalid."""
    raw = copy.deepcopy(BASE)
    how = draw(
        st.sampled_from(["value", "type", "unknown key", "missing", "bad name", "long text"])
    )
    if how == "value":
        return put(raw, draw(st.sampled_from(LEAVES)), draw(NEVER_VALID))
    if how == "type":
        return put(raw, draw(st.sampled_from(NUMERIC_LEAVES)), draw(NOT_A_NUMBER))
    if how == "unknown key":
        path = draw(st.sampled_from(MAPPINGS))
        node = raw
        for part in path:
            node = node[part]
        key = draw(UNKNOWN_KEY.filter(lambda k: k not in node))
        node[key] = draw(st.one_of(st.integers(), st.text(max_size=5), st.none()))
        return raw
    if how == "missing":
        path = draw(st.sampled_from(REQUIRED))
        node = raw
        for part in path[:-1]:
            node = node[part]
        del node[path[-1]]
        return raw
    if how == "bad name":
        bad = st.one_of(
            st.sampled_from(["", ".", "..", "~", "~x", "-x", "a/b", "a\\b", "a\x00b", "a b"]),
            st.text(min_size=101, max_size=200, alphabet="ab"),
            st.from_regex(r"\A[./\\~ -][a-z]{0,5}\Z"),
        )
        return put(raw, ("name",), draw(bad))
    text = draw(st.integers(5_001, 20_000))
    return put(raw, draw(st.sampled_from([("description",), ("weather",)])), "x" * text * 2)


@settings(FUZZ, max_examples=150)
@given(raw=invalid_raw())
def test_invalid_scenarios_raise_a_scenario_error(raw):
    with pytest.raises(ScenarioError) as caught:
        validate_scenario(raw)
    assert caught.value.problems
    assert len(str(caught.value)) < 20_000


def yaml_value(value: Any) -> str:
    """A value as ``--set`` parses it (YAML), e.g. ``.nan``, ``[1, 2]``."""
    return yaml.safe_dump(value, default_flow_style=True).removesuffix("\n...\n").strip()


@settings(FUZZ, max_examples=40)
@given(
    path=st.sampled_from(LEAVES),
    value=NEVER_VALID,
    command=st.sampled_from(["validate", "run"]),
)
def test_cli_set_overrides_out_of_bounds_fail_cleanly(path, value, command):
    with scratch():
        Path("s.yaml").write_text(yaml.safe_dump(BASE))
        args = ["run", "s.yaml", "--no-progress", "--set", f"{dotted(path)}={yaml_value(value)}"]
        if command == "validate":  # validate takes no --set: write the change into the file
            Path("s.yaml").write_text(yaml.safe_dump(put(copy.deepcopy(BASE), path, value)))
            args = ["validate", "s.yaml"]
        result = runner.invoke(app, args)
        assert_named_failure(result)
        assert not results_under(Path.cwd())


@settings(FUZZ, max_examples=60)
@given(
    text=st.one_of(
        st.binary(min_size=1, max_size=300),
        st.text(alphabet="[]{}:,-&*!|>'\"%@` \n\tab1", min_size=1, max_size=60).map(str.encode),
    )
)
def test_arbitrary_bytes_as_scenario_or_campaign_fail_cleanly(text):
    with scratch():
        Path("s.yaml").write_bytes(text)
        for args in (["validate", "s.yaml"], ["run", "s.yaml", "--no-progress"]):
            assert_named_failure(runner.invoke(app, args))
        assert_named_failure(runner.invoke(app, ["campaign", "s.yaml", "--no-progress"]))
        assert not results_under(Path.cwd())


CAMPAIGN = {"name": "sweep", "base": "base.yaml", "mode": "random", "samples": 2, "axes": {}}
CAMPAIGN["axes"] = {"seed": [1, 2], "assets.battery[0].soc_init": {"min": 0.2, "max": 0.8}}
#: Values each key of a campaign file refuses.
CAMPAIGN_INVALID = {
    "name": ["", "..", "../x", "/etc/passwd", "a b", "x" * 65],
    "base": ["", "..", "missing.yaml", "/nonexistent/x.yaml", True, None],
    "mode": ["abc", "", None, True, 3],
    "samples": ["abc", -3, 0, True, None, 1.5, 10**9],
    "seed": ["abc", -3, True, None, 1.5, 2**40],
    "axes": [None, [], {}, "x", {"seed": []}, {"seed": {"min": 1.0, "max": 0.0}}]
    + [{"seed": {"min": math.nan, "max": 1.0}}, {"nope": [1]}, {"seed": [-1]}],
}


@settings(FUZZ, max_examples=60)
@given(
    change=st.sampled_from(sorted(CAMPAIGN_INVALID)).flatmap(
        lambda key: st.tuples(
            st.just(key), st.one_of(NEVER_VALID, st.sampled_from(CAMPAIGN_INVALID[key]))
        )
    )
)
def test_invalid_campaign_files_raise_a_scenario_error(change):
    key, value = change
    spec = {**copy.deepcopy(CAMPAIGN), key: value}
    with scratch():
        Path("base.yaml").write_text(yaml.safe_dump(BASE))
        Path("c.yaml").write_text(yaml.safe_dump(spec))
        with pytest.raises(ScenarioError) as caught:
            load_campaign("c.yaml")
        assert caught.value.problems
        assert_named_failure(runner.invoke(app, ["campaign", "c.yaml", "--no-progress"]))
        assert not results_under(Path.cwd())


@st.composite
def valid_raw(draw: st.DrawFn) -> dict:
    """The base scenario with its numbers moved anywhere inside the documented bounds."""
    raw = copy.deepcopy(BASE)
    finite = {"allow_nan": False, "allow_infinity": False}
    e_kwh = draw(st.floats(0.01, 1e7, **finite))
    c_rate = draw(st.floats(0.011, 19.99, **finite))
    soc_min = draw(st.floats(0.0, 0.45, **finite))
    soc_max = draw(st.floats(0.55, 1.0, **finite))
    battery = raw["assets"]["battery"][0]
    battery.update(
        e_kwh=e_kwh,
        p_max_kw=min(e_kwh * c_rate, 1e7),
        soc_min=soc_min,
        soc_init=draw(st.floats(soc_min, soc_max, **finite)),
        soc_max=soc_max,
        eta_ch=draw(st.floats(0.5, 1.0, **finite)),
        t_ambient_c=draw(st.floats(-50.0, 60.0, **finite)),
    )
    p_dc = draw(st.floats(0.001, 5e6, **finite))
    raw["assets"]["pv"][0].update(
        p_dc_kw=p_dc,
        p_ac_kw=p_dc / draw(st.floats(0.51, 2.99, **finite)),
        tilt_deg=draw(st.floats(0.0, 90.0, **finite)),
        azimuth_deg=draw(st.floats(0.0, 360.0, **finite)),
    )
    raw["site"]["altitude"] = draw(st.floats(-500.0, 9000.0, **finite))
    raw["tariff"]["import_eur_kwh"] = draw(st.floats(-100.0, 100.0, **finite))
    raw["seed"] = draw(st.integers(0, 2**32 - 1))
    raw["name"] = draw(st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9_.-]{0,40}\Z"))
    raw["description"] = draw(st.text(max_size=200))
    raw["step"] = draw(st.sampled_from(["1s", "60s", "5min", "15min", "1h", "1d"]))
    return raw


@settings(FUZZ, max_examples=40)
@given(raw=valid_raw())
def test_valid_perturbations_within_bounds_validate(raw):
    scenario = validate_scenario(raw)
    assert scenario.name == raw["name"]
