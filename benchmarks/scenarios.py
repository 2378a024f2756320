"""The benchmarks' scenarios: the demo day with fields changed, written where a run reads it.

Every benchmark that runs the demo site (``scenarios/microgrid_day.yaml``) stretched,
moved to another grid or given other assets starts from :func:`day_scenario`, so they
all measure the same site.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
#: The demo site: one summer day on 1-LV-rural1, two PV plants, a battery, the feeder's loads.
DAY = ROOT / "scenarios" / "microgrid_day.yaml"

__all__ = ["DAY", "day_scenario", "write_scenario"]


def day_scenario(**changes: Any) -> dict[str, Any]:
    """The demo day's scenario as a dict, with the top-level fields in ``changes`` replaced."""
    import yaml

    raw = yaml.safe_load(DAY.read_text())
    raw.update(changes)
    return raw


def write_scenario(raw: dict[str, Any], path: Path) -> Path:
    """Write ``raw`` as a scenario YAML file at ``path``; the path."""
    import yaml

    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path
