"""Exact branch flows of the true plant, from its true bus voltages.

One function, :func:`branch_flows`, on :mod:`models.estimation`'s measurement model
(``SEModel.from_net(net).measure``: pandapower's own branch equations, so the flows equal
``runpp``'s ``res_line``/``res_trafo`` for the same voltages). No flow equations here.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from adapters.field.errors import FieldError
from models.estimation import SEModel, SensorError, Sensors

__all__ = ["BRANCH_QUANTITIES", "branch_flows"]

#: Twin quantities of a branch side: (pandapower meas_type, twin quantity stem, to twin unit).
BRANCH_QUANTITIES = (("p", "p", 1e3), ("q", "q", 1e3), ("i", "i", 1.0))
_UNITS = {"p": "kw", "q": "kvar", "i": "ka"}
SIDES = {"line": ("from", "to"), "trafo": ("hv", "lv")}


def branch_flows(
    net: Any, vm_pu: np.ndarray, va_degree: np.ndarray, elements: list[str]
) -> dict[tuple[str, str], np.ndarray]:
    """Powers and currents at both ends of the branches ``elements``, every step.

    Parameters
    ----------
    net : pandapowerNet
        The grid (its ``bus`` order is the voltages' column order).
    vm_pu, va_degree : numpy.ndarray
        True bus voltages, shape (steps, buses).
    elements : list of str
        ``line_<i>`` and ``trafo_<i>`` names.

    Returns
    -------
    dict
        ``(element, quantity) -> values`` (steps,), twin units (kW, kvar, kA; power into
        the branch at that side positive).

    Raises
    ------
    FieldError
        When a branch is not in the grid or out of service.
    """
    if not elements:
        return {}
    meas, kinds, index, side, keys = [], [], [], [], []
    for element in elements:
        kind, _, i = element.partition("_")
        for s in SIDES[kind]:
            for meas_type, stem, _ in BRANCH_QUANTITIES:
                meas.append(meas_type)
                kinds.append(kind)
                index.append(int(i))
                side.append(s)
                keys.append((element, f"{stem}_{s}_{_UNITS[meas_type]}"))
    model = SEModel.from_net(net)
    try:
        sensors = model.compile(
            Sensors(
                np.array(meas, object),
                np.array(kinds, object),
                np.array(index, np.int64),
                np.array(side, object),
            )
        )
    except SensorError as exc:
        raise FieldError(f"branch sensors: {exc}") from None
    to_twin = {m: f for m, _, f in BRANCH_QUANTITIES}
    scale = np.array([to_twin[m] for m in meas])
    out = np.empty((len(vm_pu), len(keys)))
    for k in range(len(vm_pu)):
        out[k] = model.measure(vm_pu[k], va_degree[k], sensors) * scale
    return {key: out[:, j] for j, key in enumerate(keys)}
