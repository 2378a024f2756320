r"""EV charging parks: chargers at a bus and a fleet of EVs driven by a simpy process.

Arrivals are a time-of-day dependent Poisson process (simulated with simpy by thinning
a homogeneous process at the peak rate); each EV draws a battery capacity, an arrival
SoC, a target SoC and a dwell time (the requested departure) from seeded
distributions. An EV that finds every plug of its park busy is turned away.

Charging per charger (vectorised over all chargers of all parks), over ``[t, t+dt)``:

.. math:: P = \min(P_{set}, P_{max}, P_{accept}(SoC)/\eta, E_{need} / (\eta \Delta t))

with the EV's acceptance tapering linearly from full power at 80% SoC to zero at
100%. Sign convention: ``p_kw`` < 0 (charging draws power from the bus).

Arrivals and departures are quantised to the step: after charging over a step the
model advances the simpy clock to the step's end, unplugs EVs whose departure time has
come and plugs in the EVs that arrived. State outputs (``connected``, ``soc``...) are
therefore the state at the *end* of the step, i.e. what a controller sees next step.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import numpy as np

from models.base import Clock, Model, Port

if TYPE_CHECKING:
    import simpy

__all__ = [
    "ARRIVAL_PROFILES",
    "DEFAULT_DWELL_H",
    "EVArrival",
    "EVCharging",
    "arrival_rate_per_h",
    "draw",
    "taper",
]

#: Relative arrival intensity per local hour (0..23) for each kind of charging park.
ARRIVAL_PROFILES: dict[str, tuple[float, ...]] = {
    # Commuters arrive 6-10 h, few later; nobody at night.
    "workplace": (0, 0, 0, 0, 0, 0.2, 1.0, 3.0, 4.0, 2.0, 0.8, 0.5,
                  0.6, 0.5, 0.3, 0.2, 0.1, 0.05, 0, 0, 0, 0, 0, 0),
    # Drivers come home in the evening.
    "residential": (0.1, 0.05, 0, 0, 0, 0, 0.1, 0.2, 0.2, 0.2, 0.3, 0.4,
                    0.5, 0.5, 0.6, 0.9, 1.4, 2.2, 2.6, 2.0, 1.3, 0.8, 0.4, 0.2),
    # Short stops during the day.
    "public": (0.05, 0.02, 0.02, 0.02, 0.05, 0.1, 0.3, 0.6, 0.9, 1.1, 1.2, 1.3,
               1.4, 1.3, 1.2, 1.2, 1.3, 1.4, 1.2, 0.9, 0.6, 0.4, 0.2, 0.1),
}  # fmt: skip

#: Mean dwell time (hours) of each kind of park, used when a fleet gives none.
DEFAULT_DWELL_H = {"workplace": 8.5, "residential": 11.0, "public": 1.5}

TAPER_START_SOC = 0.8


def arrival_rate_per_h(profile: str, arrivals_per_day: float, hour: int | np.ndarray) -> Any:
    """Expected arrivals per hour at local ``hour`` for a park of ``profile``.

    The profile's 24 weights are scaled so that they sum to ``arrivals_per_day``.
    """
    weights = np.asarray(ARRIVAL_PROFILES[profile], dtype=float)
    return weights[hour] * arrivals_per_day / weights.sum()


def draw(rng: np.random.Generator, spec: dict[str, float] | float) -> float:
    """One value of a normal distribution clipped to ``[min, max]`` (or a constant)."""
    if not isinstance(spec, dict):
        return float(spec)
    value = rng.normal(spec["mean"], spec.get("std", 0.0)) if spec.get("std", 0.0) else spec["mean"]
    return float(np.clip(value, spec["min"], spec["max"]))


def taper(soc: np.ndarray) -> np.ndarray:
    """Fraction of full charging power an EV accepts at ``soc`` (1 up to 80%, 0 at 100%)."""
    return np.clip((1.0 - soc) / (1.0 - TAPER_START_SOC), 0.0, 1.0)


@dataclass(frozen=True)
class EVArrival:
    """One EV as it arrives (times in simulation seconds)."""

    arrival_s: float
    capacity_kwh: float
    soc: float
    target_soc: float
    departure_s: float


def arrivals_process(
    env: simpy.Environment,
    rng: np.random.Generator,
    fleet: dict[str, Any],
    clock: Clock,
    tz: ZoneInfo,
    queue: list[EVArrival],
):
    """Simpy process: a non-homogeneous Poisson process of EV arrivals (thinning).

    Candidate arrivals come at the peak hourly rate; each is kept with probability
    rate(hour) / peak rate, which gives exactly the time-of-day dependent rate.

    References
    ----------
    .. [1] Lewis, P. A. W. and Shedler, G. S., "Simulation of nonhomogeneous Poisson
       processes by thinning", Naval Research Logistics Quarterly 26(3), 1979.
    """
    rates = arrival_rate_per_h(fleet["profile"], fleet["arrivals_per_day"], np.arange(24))
    peak_per_s = rates.max() / 3600.0
    if peak_per_s <= 0:
        return
    dwell = fleet.get("dwell_h") or {
        "mean": DEFAULT_DWELL_H[fleet["profile"]],
        "std": 0.0,
        "min": 0.0,
        "max": 1e9,
    }
    while True:
        yield env.timeout(rng.exponential(1.0 / peak_per_s))
        hour = clock.time_at(int(env.now)).astimezone(tz).hour
        if rng.random() * rates.max() >= rates[hour]:
            continue
        soc = draw(rng, fleet["arrival_soc"])
        queue.append(
            EVArrival(
                arrival_s=env.now,
                capacity_kwh=draw(rng, fleet["capacity_kwh"]),
                soc=soc,
                target_soc=max(draw(rng, fleet["target_soc"]), soc),
                departure_s=env.now + 3600.0 * draw(rng, dwell),
            )
        )


class EVCharging(Model):
    """Charging parks (units) with their chargers (elements of group ``ev``).

    Unit parameters: ``name``, ``bus``, ``chargers`` (count), ``p_max_kw`` (per
    charger, grid side), ``efficiency`` (grid to battery), ``power_factor`` and
    ``fleet`` (``profile``, ``arrivals_per_day``, and distributions ``capacity_kwh``,
    ``arrival_soc``, ``target_soc``, ``dwell_h`` given as ``{mean, std, min, max}``).
    Chargers are named ``<park>_c<i>``. The context gives ``seed`` and the site ``tz``.
    """

    kind = "ev_park"
    inputs = {
        "p_set_kw": Port(
            "kW", "charging power setpoint (>= 0, grid side); inf = full power", "ev", np.inf
        ),
    }
    outputs = {
        "p_kw": Port(
            "kW",
            "power into the bus (< 0 while charging), average over the step",
            "ev",
            sensor="power",
        ),
        "q_kvar": Port("kvar", "reactive power into the bus", "ev"),
        "connected": Port("1", "an EV is plugged in (0 or 1)", "ev", state=True),
        "soc": Port(
            "1", "SoC of the connected EV (NaN when none)", "ev", may_be_nan=True, state=True
        ),
        "e_needed_kwh": Port(
            "kWh", "energy the connected EV still needs (battery side)", "ev", state=True
        ),
        "t_departure_h": Port(
            "h", "time until the connected EV departs (0 when none)", "ev", state=True
        ),
        "p_max_kw": Port("kW", "charger rating (grid side)", "ev"),
        "e_delivered_kwh": Port("kWh", "energy delivered in the step (grid side)"),
        "e_unmet_kwh": Port("kWh", "energy missing at departure of EVs leaving in the step"),
        "n_arrived": Port("1", "EVs that arrived in the step"),
        "n_departed": Port("1", "EVs that left (were served) in the step"),
        "n_turned_away": Port("1", "EVs turned away for lack of a free plug in the step"),
    }

    def __init__(
        self, units: list[dict[str, Any]], clock: Clock, context: dict[str, Any] | None = None
    ) -> None:
        super().__init__(units, clock, context)
        names, park, p_max, eta, pf = [], [], [], [], []
        for i, unit in enumerate(units):
            for name in self.charger_names(unit):
                names.append(name)
                park.append(i)
                p_max.append(unit["p_max_kw"])
                eta.append(unit["efficiency"])
                pf.append(unit["power_factor"])
        self.elements["ev"] = names
        self.park = np.array(park, dtype=np.int64)
        self.p_max = np.array(p_max, dtype=float)
        self.eta = np.array(eta, dtype=float)
        self.tan_phi = np.tan(np.arccos(np.array(pf, dtype=float)))
        n = len(names)
        self.connected = np.zeros(n, dtype=bool)
        self.capacity = np.ones(n)
        self.soc = np.zeros(n)
        self.target = np.zeros(n)
        self.departure_s = np.zeros(n)
        self.soc_arrival = np.zeros(n)
        self.arrival_s = np.zeros(n)
        #: One record per EV that left: park, charger, times (s), capacity, SoCs.
        self.departed: list[dict[str, float]] = []
        import simpy

        self.env = simpy.Environment()
        self.queues: list[list[EVArrival]] = [[] for _ in units]
        tz = ZoneInfo(self.context.get("site", {}).get("tz", "UTC"))
        seed = int(self.context.get("seed", 0))
        for i, unit in enumerate(units):
            rng = np.random.default_rng([seed, i, 0xE5])
            self.env.process(
                arrivals_process(self.env, rng, unit["fleet"], clock, tz, self.queues[i])
            )

    @classmethod
    def element_names(
        cls, units: list[dict[str, Any]], context: dict[str, Any] | None = None
    ) -> dict[str, list[str]]:
        """One element per park (group ``ev_park``) and one per charger (group ``ev``)."""
        return {
            cls.kind: [u["name"] for u in units],
            "ev": [name for unit in units for name in cls.charger_names(unit)],
        }

    @staticmethod
    def charger_names(unit: dict[str, Any]) -> list[str]:
        """Names of a park's chargers: ``<park>_c0``, ``<park>_c1``..."""
        return [f"{unit['name']}_c{c}" for c in range(int(unit["chargers"]))]

    def needed_kwh(self) -> np.ndarray:
        """Energy (battery side) the connected EVs still need to reach their target."""
        return np.where(self.connected, np.maximum(self.target - self.soc, 0.0) * self.capacity, 0)

    def state(self, t_s: float = 0.0) -> dict[str, np.ndarray]:
        """Plugged-in EVs, their SoC, energy still needed and time to departure at ``t_s``."""
        return {
            "connected": self.connected.astype(float),
            "soc": np.where(self.connected, self.soc, np.nan),
            "e_needed_kwh": self.needed_kwh(),
            "t_departure_h": np.where(
                self.connected, np.maximum(self.departure_s - t_s, 0.0) / 3600.0, 0.0
            ),
        }

    def step(
        self, now: datetime, dt_s: int, inputs: dict[str, np.ndarray]
    ) -> dict[str, np.ndarray]:
        """Charge over the step, then process departures and arrivals up to its end."""
        dt_h = dt_s / 3600.0
        accept = self.p_max * self.eta * taper(self.soc)  # battery side
        p = np.minimum.reduce(
            [
                np.maximum(inputs["p_set_kw"], 0.0),
                self.p_max,
                accept / self.eta,
                self.needed_kwh() / (self.eta * dt_h),
            ]
        )
        p = np.where(self.connected, p, 0.0)
        self.soc = np.where(self.connected, self.soc + p * self.eta * dt_h / self.capacity, 0.0)
        n_parks = len(self.units)
        delivered = np.bincount(self.park, weights=p * dt_h, minlength=n_parks)

        t_end = self.clock.index_of(now) * self.clock.step_s + dt_s
        leaving = self.connected & (self.departure_s <= t_end)
        unmet = np.bincount(
            self.park, weights=np.where(leaving, self.needed_kwh(), 0), minlength=n_parks
        )
        departed = np.bincount(self.park, weights=leaving, minlength=n_parks)
        for c in np.flatnonzero(leaving):
            self.departed.append(
                {
                    "park": int(self.park[c]),
                    "charger": int(c),
                    "arrival_s": float(self.arrival_s[c]),
                    "departure_s": float(self.departure_s[c]),
                    "capacity_kwh": float(self.capacity[c]),
                    "soc_arrival": float(self.soc_arrival[c]),
                    "soc_departure": float(self.soc[c]),
                    "target_soc": float(self.target[c]),
                }
            )
        self.connected &= ~leaving

        self.env.run(until=t_end)
        arrived = np.zeros(n_parks)
        turned_away = np.zeros(n_parks)
        for i, queue in enumerate(self.queues):
            for ev in queue:
                arrived[i] += 1
                free = np.flatnonzero((self.park == i) & ~self.connected)
                if free.size == 0:
                    turned_away[i] += 1
                    continue
                c = free[0]
                self.connected[c] = True
                self.capacity[c] = ev.capacity_kwh
                self.soc[c] = self.soc_arrival[c] = ev.soc
                self.arrival_s[c] = ev.arrival_s
                self.target[c] = ev.target_soc
                self.departure_s[c] = ev.departure_s
            queue.clear()
        return {
            "p_kw": -p,
            "q_kvar": -p * self.tan_phi,
            **self.state(t_end),
            "p_max_kw": self.p_max.copy(),
            "e_delivered_kwh": delivered,
            "e_unmet_kwh": unmet,
            "n_arrived": arrived,
            "n_departed": departed,
            "n_turned_away": turned_away,
        }
