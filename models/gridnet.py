"""Loading pandapower networks from the three sources a scenario may name."""

from __future__ import annotations

import copy
import re
from functools import lru_cache
from pathlib import Path

import pandapower as pp
import pandapower.networks as pn

from models.filecache import file_stamp

__all__ = [
    "REPLACED_ELEMENTS",
    "UNSUPPORTED_ELEMENTS",
    "GridSourceError",
    "bus_index",
    "load_net",
    "unsupported_elements",
]

#: Every code ``simbench.collect_all_simbench_codes()`` lists: single-level
#: (``1-LV-rural1--0-sw``), multi-level (``1-HVMV-mixed-1.105-0-sw``) and complete data.
SIMBENCH_CODE = re.compile(r"^\d-[A-Za-z_]+-[A-Za-z0-9]+-[A-Za-z0-9.]*-[0-2]-(sw|no_sw)$")

#: Elements that inject or draw power: the scenario's assets replace them, so the grid
#: loader takes them out of service (see :func:`models.grid.prepare_net`). Wards and
#: extended wards are equivalents of load and generation behind a bus.
REPLACED_ELEMENTS = (
    "load",
    "sgen",
    "storage",
    "gen",
    "motor",
    "asymmetric_load",
    "asymmetric_sgen",
    "ward",
    "xward",
)
#: Elements whose power the twin's balance cannot account for (DC links, FACTS devices,
#: DC grids): a grid with one of them in service is rejected by name.
UNSUPPORTED_ELEMENTS = (
    "dcline",
    "svc",
    "tcsc",
    "ssc",
    "vsc",
    "vsc_stacked",
    "vsc_bipolar",
    "bus_dc",
    "line_dc",
    "source_dc",
    "load_dc",
)


class GridSourceError(ValueError):
    """The grid named by a scenario cannot be found or loaded."""


@lru_cache(maxsize=8)
def _load(spec: str, stamp: tuple[int, int] | None = None) -> pp.pandapowerNet:
    # ``stamp`` only keys the cache: a JSON file edited in place is read again.
    if SIMBENCH_CODE.match(spec):
        import simbench

        try:
            return simbench.get_simbench_net(spec)
        except Exception as exc:  # simbench raises bare errors for unknown codes
            raise GridSourceError(f"SimBench code {spec!r} could not be loaded: {exc}") from exc
    path = Path(spec)
    if path.suffix.lower() == ".json":
        if not path.is_file():
            raise GridSourceError(f"pandapower JSON file {spec!r} does not exist")
        return pp.from_json(str(path))
    builder = getattr(pn, spec, None)
    if callable(builder) and not spec.startswith("_"):
        return builder()
    raise GridSourceError(
        f"grid {spec!r} is neither a SimBench code (e.g. '1-LV-rural1--0-sw'), "
        "a pandapower.networks function (e.g. 'case33bw'), nor a .json file"
    )


def load_net(spec: str) -> pp.pandapowerNet:
    """A fresh copy of the pandapower net named by ``spec``.

    Parameters
    ----------
    spec : str
        A SimBench code, the name of a ``pandapower.networks`` function, or the path
        of a pandapower JSON file.
    """
    return copy.deepcopy(_load(spec, file_stamp(spec)))


def unsupported_elements(net: pp.pandapowerNet) -> list[str]:
    """Problems that make a net unusable by the twin, one sentence each (empty if none).

    Names every in-service element of :data:`UNSUPPORTED_ELEMENTS` and a net with no
    external grid in service (its slack would be a generator the assets replace).
    """
    problems = []
    for table in UNSUPPORTED_ELEMENTS:
        frame = net.get(table)
        if frame is None or not hasattr(frame, "columns") or frame.empty:
            continue
        live = frame["in_service"].astype(bool).sum() if "in_service" in frame else len(frame)
        if live:
            problems.append(
                f"{live} {table} element(s) in service: the twin cannot account for their "
                "power; take them out of service or remove them"
            )
    if not net.ext_grid["in_service"].astype(bool).any():
        problems.append(
            "no ext_grid in service: the point of connection must be an external grid "
            "(a slack generator is replaced by the scenario's assets like every gen)"
        )
    return problems


def bus_index(net: pp.pandapowerNet, bus: int | str) -> int:
    """Resolve a bus given by index or by name.

    Raises
    ------
    KeyError
        Naming the bus and what the grid has.
    """
    if isinstance(bus, int) or (isinstance(bus, str) and bus.isdigit()):
        idx = int(bus)
        if idx in net.bus.index:
            return idx
    else:
        matches = net.bus.index[net.bus["name"] == bus]
        if len(matches) == 1:
            return int(matches[0])
    sample = ", ".join(str(i) for i in list(net.bus.index[:8]))
    raise KeyError(
        f"bus {bus!r} does not exist in the grid (it has {len(net.bus)} buses, "
        f"indices {sample}{', ...' if len(net.bus) > 8 else ''}, or use a bus name)"
    )
