"""Shared by the what-if tests: the component registered, the demo day as a raw scenario."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml

from tests.conftest import ROOT
from twin.component import register_component, unregister_component
from twin.whatif.component import WhatIfComponent

DAY = yaml.safe_load((ROOT / "scenarios" / "microgrid_day.yaml").read_text())


@pytest.fixture(autouse=True, scope="module")
def whatif_registered():
    """The component, also where the installed entry points predate it (a stale install)."""
    register_component(WhatIfComponent)
    yield
    unregister_component("whatif")


def day(**sections: Any) -> dict[str, Any]:
    """The demo day with ``sections`` set."""
    raw = copy.deepcopy(DAY)
    raw.update(sections)
    return raw
