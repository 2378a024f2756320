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

__all__ = ["EXTRAS", "KIND_INDICES", "KIND_QUANTITIES", "SENSOR_STATS", "feature_names"]

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
