"""Loading pandapower networks from the three sources a scenario may name.

Extracting a SimBench grid from its CSV files takes seconds; every grid is therefore
kept in the user's disk cache (:mod:`models.diskcache`) once extracted, keyed by its
source (SimBench code, ``pandapower.networks`` name, or a JSON file's digest) and the
versions of simbench and pandapower. Validation reads only :func:`load_tables` and
:func:`load_profiles`, which come from that cache without importing pandapower.
"""

from __future__ import annotations

import copy
import hashlib
import re
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from models.diskcache import MISSING, CacheEntry, package_versions
from models.filecache import file_stamp

if TYPE_CHECKING:
    import pandapower as pp
    import pandas as pd

__all__ = [
    "REPLACED_ELEMENTS",
    "UNSUPPORTED_ELEMENTS",
    "GridSourceError",
    "GridTables",
    "bus_index",
    "load_net",
    "load_profiles",
    "load_tables",
    "source_key",
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


class GridTables(dict):
    """The element tables of a grid (``tables.bus``, ``tables.get("dcline")``) as DataFrames.

    What validation reads of a net, with a net's access by key and by attribute, loaded
    without importing pandapower. Result tables (``res_*``) and controllers are left out.
    """

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


def source_key(spec: str) -> tuple[str, ...]:
    """What a grid extracted from ``spec`` depends on (the disk cache's key)."""
    if SIMBENCH_CODE.match(spec):
        return ("simbench", spec, *package_versions("simbench", "pandapower"))
    path = Path(spec)
    if path.suffix.lower() == ".json":
        try:
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
        except OSError as exc:
            raise GridSourceError(f"pandapower JSON file {spec!r} does not exist") from exc
        return ("json", digest, *package_versions("pandapower"))
    return ("networks", spec, *package_versions("pandapower"))


def _extract(spec: str) -> pp.pandapowerNet:
    """The net named by ``spec``, built from its source (slow: seconds for SimBench)."""
    import pandapower as pp
    import pandapower.networks as pn

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


def _tables_of(net: pp.pandapowerNet) -> GridTables:
    import pandas as pd

    return GridTables(
        {
            name: frame
            for name, frame in net.items()
            if isinstance(frame, pd.DataFrame)
            and not name.startswith(("res_", "_"))
            and name != "controller"  # holds pandapower controller objects
        }
    )


def _load_profiles_of(net: pp.pandapowerNet) -> pd.DataFrame | None:
    profiles = getattr(net, "profiles", None)
    if profiles is None or "load" not in profiles or profiles["load"].empty:
        return None
    return profiles["load"].drop(columns=["time"]).astype(float)


def _cached(spec: str, part: str) -> Any:
    """One part of the grid's disk-cache entry, extracting (and storing) every part on a miss."""
    entry = CacheEntry("grids", source_key(spec))
    value = entry.read(part)
    if value is MISSING:
        net = _extract(spec)
        parts = {"net": net, "tables": _tables_of(net), "load_profiles": _load_profiles_of(net)}
        entry.write(parts)
        value = parts[part]
    return value


@lru_cache(maxsize=8)
def _load(spec: str, stamp: tuple[int, int] | None = None) -> pp.pandapowerNet:
    # ``stamp`` only keys the cache: a JSON file edited in place is read again.
    return _cached(spec, "net")


def load_net(spec: str) -> pp.pandapowerNet:
    """A fresh copy of the pandapower net named by ``spec``.

    Parameters
    ----------
    spec : str
        A SimBench code, the name of a ``pandapower.networks`` function, or the path
        of a pandapower JSON file.

    Raises
    ------
    GridSourceError
        If ``spec`` names no grid.
    """
    return copy.deepcopy(_load(spec, file_stamp(spec)))


@lru_cache(maxsize=8)
def _tables(spec: str, stamp: tuple[int, int] | None = None) -> GridTables:
    # copied once here: a copy's blocks are consolidated, so each caller's copy is cheap
    return GridTables({name: frame.copy() for name, frame in _cached(spec, "tables").items()})


def load_tables(spec: str) -> GridTables:
    """The element tables of the grid named by ``spec`` (fresh copies), as :func:`load_net`.

    From a warm disk cache this imports neither pandapower nor simbench.

    Raises
    ------
    GridSourceError
        If ``spec`` names no grid.
    """
    return GridTables({k: v.copy() for k, v in _tables(spec, file_stamp(spec)).items()})


def load_profiles(spec: str) -> pd.DataFrame | None:
    """Relative load profiles of the grid (columns ``<profile>_pload``/``_qload``), if any.

    A year (2016) of 15-minute values for a SimBench grid; None for a grid without load
    profiles. Read from the disk cache like :func:`load_tables`.

    Raises
    ------
    GridSourceError
        If ``spec`` names no grid.
    """
    return _cached(spec, "load_profiles")


def unsupported_elements(net: pp.pandapowerNet | GridTables) -> list[str]:
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


def bus_index(net: pp.pandapowerNet | GridTables, bus: int | str) -> int:
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
