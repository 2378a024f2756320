import warnings

import numpy as np
import pandapower as pp
import pytest

from models.gridnet import load_net

GRIDS = ("1-LV-rural1--0-sw", "1-LV-semiurb4--0-sw", "case14", "1-MV-urban--0-sw")


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        yield


def solved_net(spec: str, seed: int = 0, scale: tuple[float, float] = (0.5, 1.5)):
    """A fresh net with randomly scaled loads and generators, solved by runpp."""
    net = load_net(spec)
    rng = np.random.default_rng(seed)
    for table in ("load", "sgen"):
        frame = net[table]
        if len(frame):
            factor = rng.uniform(*scale, len(frame))
            frame["p_mw"] = frame["p_mw"] * factor
            frame["q_mvar"] = frame["q_mvar"] * factor
    pp.runpp(net, numba=False, calculate_voltage_angles=True, tolerance_mva=1e-11, max_iteration=30)
    return net
