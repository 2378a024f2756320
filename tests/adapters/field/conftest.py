"""A tiny true plant (the LV feeder for 10 s at 1 s steps), prepared once per module."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from adapters.field.emulator import FieldOptions, prepare
from adapters.field.impair import Impairments
from adapters.field.plan import PlanOptions
from tests.adapters.mqtt.conftest import subscriber_factory  # noqa: F401 - a shared fixture

ROOT = Path(__file__).resolve().parents[3]


def tiny_raw(seconds: int = 10) -> dict:
    raw = yaml.safe_load((ROOT / "scenarios" / "microgrid_day.yaml").read_text())
    raw.update(start="2016-06-21T12:00:00-04:00", duration=f"{seconds}s", step="1s")
    return copy.deepcopy(raw)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from twin.scenario import validate_scenario

    return validate_scenario(tiny_raw())


@pytest.fixture(scope="module")
def tiny_path(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("scenario") / "tiny.yaml"
    raw = tiny_raw()
    path.write_text(yaml.safe_dump(raw))
    return path


IMPAIRED = Impairments(jitter_s=0.4, reorder=0.2, duplicates=0.2, dropout=0.1, skew_s=0.5, seed=3)


@pytest.fixture(scope="module")
def prepared(tiny, tmp_path_factory):
    """The tiny plant prepared as gateway JSON batches with every impairment."""
    options = FieldOptions(plan=PlanOptions(fmt="json", gateway_size=40), impair=IMPAIRED)
    return prepare(tiny, options, tmp_path_factory.mktemp("field"))
