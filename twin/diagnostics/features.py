"""The per-asset feature vector: what the diagnosers (rules or learned) see of an asset.

One fixed list of names per asset kind (:func:`feature_names`): the kind's health
indices, then for every quantity the kind reports six statistics of its sensor, then a
few kind-specific signatures. A sensor the run does not have gives NaN features, so the
vector has the same length in every run; the learned models record these names and the
sensor-set fingerprint (:meth:`twin.diagnostics.catalogue.Catalogue.fingerprint`).

Sensor statistics (``<stat>:<quantity>``):

``z``       normalised residual of this step (NaN: no report or no expectation)
``cusum``   signed CUSUM statistic (S+ if larger, else -S-)
``ewma``    EWMA of the residual
``spread``  square root of the EWMA variance of the residual (1 when healthy)
``stale``   1 while the stale (stuck) check flags the sensor
``gap``     1 while the sensor misses reports
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from twin.diagnostics.indices import INDEX_NAMES

__all__ = [
    "EXTRAS",
    "EXTRA_NAMES",
    "KIND_INDICES",
    "KIND_QUANTITIES",
    "SENSOR_STATS",
    "FeatureLayout",
    "feature_names",
]

#: Quantities per asset kind (``grid``'s ``v_pu`` is the POC bus voltage).
KIND_QUANTITIES: dict[str, tuple[str, ...]] = {
    "pv": ("p_kw", "t_cell_c"),
    "battery": ("p_kw", "soc", "t_c", "soh"),
    "load": ("p_kw", "q_kvar"),
    "grid": ("p_kw", "q_kvar", "f_hz", "v_pu"),
    "bus": ("v_pu",),
    "line": ("loading_pct",),
    "trafo": ("trafo_loading_pct",),
    "ev": ("p_kw",),
}

#: Health indices defined per asset kind (the others are NaN for it).
KIND_INDICES: dict[str, tuple[str, ...]] = {
    "pv": ("pv_performance", "converter_availability", "data_quality"),
    "battery": (
        "soh_estimate",
        "thermal_stress",
        "soc_consistency",
        "converter_availability",
        "data_quality",
    ),
    "load": ("data_quality",),
    "grid": ("voltage_band", "data_quality"),
    "bus": ("voltage_band", "data_quality"),
    "line": ("data_quality",),
    "trafo": ("data_quality",),
    "ev": ("data_quality",),
}

SENSOR_STATS = ("z", "cusum", "ewma", "spread", "stale", "gap")

#: Kind-specific signatures: PV in daylight (1/0); the share of a PV plant's or load's
#: power residual the site's balance shows too (:class:`twin.diagnostics.balance.Balance`:
#: about 1 for a sensor fault, 0 for a physical change); the battery's SoC jump this step, its
#: SoC residual and the estimated SoH's drop below its commissioning value; a load's
#: measured/expected power ratio; the POC exchanging nothing while the site is
#: unbalanced; a line carrying nothing that usually carries power.
EXTRAS: dict[str, tuple[str, ...]] = {
    "pv": ("daylight", "balance_share"),
    "battery": ("soc_jump", "soc_residual", "soh_drop"),
    "load": ("ratio_p", "balance_share"),
    "grid": ("outage",),
    "line": ("dead",),
}


def feature_names(asset_kind: str) -> list[str]:
    """The feature names of an asset kind, in the order of the engine's vectors."""
    stats = [f"{stat}:{q}" for q in KIND_QUANTITIES.get(asset_kind, ()) for stat in SENSOR_STATS]
    return [*KIND_INDICES.get(asset_kind, ()), *stats, *EXTRAS.get(asset_kind, ())]


#: Every extra signature, in the order of the engine's ``extras`` columns.
EXTRA_NAMES = tuple(sorted({n for names in EXTRAS.values() for n in names}))


class FeatureLayout:
    """Where every feature of every asset sits in one step's flat vector of values.

    The vector (:meth:`pool`) is the indices ``(n_assets, 7)``, then the sensor
    statistics (:data:`SENSOR_STATS`, each over all sensors), then the extras
    ``(n_assets, len(EXTRA_NAMES))``, then one NaN (a feature the run lacks).

    Parameters
    ----------
    assets, asset_kinds : sequence of str
        The engine's assets and their kinds.
    keys : sequence of (asset, kind, quantity)
        The sensors in the engine's order.
    poc_voltage : int
        Position of the POC's voltage sensor (the slack bus), -1 if none.
    """

    def __init__(
        self,
        assets: Sequence[str],
        asset_kinds: Sequence[str],
        keys: Sequence[tuple[str, str, str]],
        poc_voltage: int,
    ) -> None:
        n, n_assets, n_idx = len(keys), len(assets), len(INDEX_NAMES)
        index_of = {name: i for i, name in enumerate(INDEX_NAMES)}
        extra_of = {name: i for i, name in enumerate(EXTRA_NAMES)}
        base_stats = n_assets * n_idx
        base_extra = base_stats + len(SENSOR_STATS) * n
        nan_slot = base_extra + n_assets * len(EXTRA_NAMES)
        where = {key: j for j, key in enumerate(keys)}
        #: Per kind: (asset positions, gather indices into the pool, names).
        self.kinds: dict[str, tuple[np.ndarray, np.ndarray, list[str]]] = {}
        self.row_of: dict[int, int] = {}
        for kind in sorted(set(asset_kinds)):
            names = feature_names(kind)
            rows = [a for a, k in enumerate(asset_kinds) if k == kind]
            gather = np.full((len(rows), len(names)), nan_slot, dtype=int)
            for r, a in enumerate(rows):
                self.row_of[a] = r
                for c, name in enumerate(names):
                    if name in index_of:
                        gather[r, c] = a * n_idx + index_of[name]
                    elif ":" in name:
                        stat, q = name.split(":", 1)
                        grid_v = kind == "grid" and q == "v_pu"
                        j = poc_voltage if grid_v else where.get((assets[a], kind, q), -1)
                        if j >= 0:
                            gather[r, c] = base_stats + SENSOR_STATS.index(stat) * n + j
                    else:
                        gather[r, c] = base_extra + a * len(EXTRA_NAMES) + extra_of[name]
            self.kinds[kind] = (np.array(rows, dtype=int), gather, names)

    @staticmethod
    def pool(indices: np.ndarray, stats: Sequence[np.ndarray], extras: np.ndarray) -> np.ndarray:
        """One step's values in one vector (``stats`` in :data:`SENSOR_STATS` order)."""
        return np.concatenate([indices.ravel(), *stats, extras.ravel(), [np.nan]])

    def all(self, pool: np.ndarray) -> dict[str, np.ndarray]:
        """Every asset's features per kind, ``(n_assets_of_kind, n_features)``."""
        return {kind: pool[gather] for kind, (_, gather, _) in self.kinds.items()}

    def of(self, pool: np.ndarray, a: int, kind: str) -> tuple[np.ndarray, list[str]]:
        """The features of asset ``a`` (of ``kind``) and their names."""
        _, gather, names = self.kinds[kind]
        return pool[gather[self.row_of[a]]], names
