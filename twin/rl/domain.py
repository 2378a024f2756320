"""The sites an agent trains on (domain randomisation) and the sites it is tested on.

A **base site** is a grid with its loads, a weather file and a PV plant orientation: its
year of PV output (per plant rating) and loads is computed once. A **site** is a base
site with its PV scaled, its loads scaled, a battery and a tariff: sampling one is cheap,
so every training episode can be another site (:meth:`Domain.sample`).

Training distribution (:class:`DomainConfig`, ranges drawn uniformly, "log" ones
log-uniformly): SimBench LV feeders ``rural1``, ``semiurb4`` and ``urban6`` with their
own load profiles (loads scaled by 0.7..1.4) on the Greensboro TMY, PV south 30 deg,
south-west 15 deg or south-east 20 deg sized 0.5..5 kWp per kW of mean load (log);
one battery of 0.05..0.6 days of mean load (log) with 1..4 h of storage at full power,
efficiencies 0.90..0.98, SoC window ``[0.05..0.15, 0.85..0.95]``, replacement cost
0..500 EUR/kWh; tariffs flat, two-level (a peak of 1.2..2 x base for 2..5 h starting at
16..19 h) or three-level (plus a valley of 0.5..0.85 x base for 5..8 h starting at
21..24 h), base 0.15..0.40 EUR/kWh, export 0..0.5 x base; days from the training
days of the year (:func:`split_days`); no demand charge.

Held out (:func:`held_out_sites`): other feeders (``rural2``, ``semiurb5``), another
climate (Sand Point, Alaska), a dynamic price series, a winter three-level tariff
beyond the sampled levels, the issue's 100 kWh / 30 kW battery, all on validation days.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from models.base import Clock
from models.grid import Grid
from models.load import Load
from models.pv import PVPlant
from models.tariff import Tariff
from twin.scenario import ScenarioBase, validate_scenario

__all__ = [
    "BaseSite",
    "Domain",
    "DomainConfig",
    "HeldOut",
    "Site",
    "held_out_sites",
    "split_days",
]

#: Orientations (tilt, azimuth) of the sampled PV plants.
ORIENTATIONS = ((30.0, 180.0), (15.0, 240.0), (20.0, 120.0))
GREENSBORO = {"lat": 36.1, "lon": -79.95, "altitude": 273.0, "tz": "America/New_York"}
SAND_POINT = {"lat": 55.32, "lon": -160.52, "altitude": 7.0, "tz": "America/Anchorage"}


def split_days(n_days: int, every: int = 5) -> tuple[list[int], list[int]]:
    """Training and validation day indices, kept apart: every ``every``-th day validates."""
    days = list(range(n_days))
    return [d for d in days if d % every != 2], [d for d in days if d % every == 2]


@dataclass(frozen=True)
class DomainConfig:
    """Ranges of the sampled sites (see the module notes)."""

    grids: tuple[str, ...] = ("1-LV-rural1--0-sw", "1-LV-semiurb4--0-sw", "1-LV-urban6--0-sw")
    weather: str = "723170TYA.CSV"
    site: tuple[tuple[str, Any], ...] = tuple(GREENSBORO.items())
    year_start: str = "2016-01-01"
    orientations: tuple[tuple[float, float], ...] = ORIENTATIONS
    load_scale: tuple[float, float] = (0.7, 1.4)
    pv_kwp_per_mean_load_kw: tuple[float, float] = (0.5, 5.0)  # log-uniform
    battery_days_of_load: tuple[float, float] = (0.05, 0.6)  # log-uniform
    storage_hours: tuple[float, float] = (1.0, 4.0)
    efficiency: tuple[float, float] = (0.90, 0.98)
    soc_min: tuple[float, float] = (0.05, 0.15)
    soc_max: tuple[float, float] = (0.85, 0.95)
    replacement_eur_kwh: tuple[float, float] = (0.0, 500.0)
    tariff_kinds: tuple[str, ...] = ("flat", "two-level", "three-level")
    base_price: tuple[float, float] = (0.15, 0.40)
    peak_factor: tuple[float, float] = (1.2, 2.0)
    peak_hours: tuple[int, int] = (2, 5)
    peak_start_h: tuple[int, int] = (16, 19)
    valley_factor: tuple[float, float] = (0.5, 0.85)
    valley_hours: tuple[int, int] = (5, 8)
    valley_start_h: tuple[int, int] = (21, 24)
    export_factor: tuple[float, float] = (0.0, 0.5)

    def as_dict(self) -> dict[str, Any]:
        """The configuration as plain JSON-able data."""
        return json.loads(json.dumps(asdict(self)))

    def digest(self) -> str:
        """A short hash of the configuration (for training metadata)."""
        text = json.dumps(self.as_dict(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]


@dataclass
class Site:
    """One site: a base site's index, scales, batteries and tariff.

    Attributes
    ----------
    base : int
        Index into :attr:`Domain.bases`.
    pv_scale : float or tuple of float
        Multiplier on the base site's PV ratings (one, or one per plant: 0 leaves a
        plant out).
    load_scale : float
        Multiplier on the base site's load ratings.
    batteries : list of dict
        Battery unit parameters (as a scenario's resolved units).
    tariff : dict
        Tariff unit parameters (``import_eur_kwh``, ``export_eur_kwh``, ``periods``,
        ``price_csv``, ``demand_charge_eur_kw``).
    name : str
        A label for tables.
    terminal_price : float, optional
        ``control.terminal_price_eur_kwh`` (overrides the terminal value).
    """

    base: int
    pv_scale: float | tuple[float, ...]
    load_scale: float
    batteries: list[dict[str, Any]]
    tariff: dict[str, Any]
    name: str = "site"
    terminal_price: float | None = None


class BaseSite:
    """A grid, its loads and PV plants over a year, precomputed once.

    The clock starts one day before the first day's local midnight and ends a day
    after the last day, so that every day has a yesterday and a look-ahead.

    Parameters
    ----------
    scenario : ScenarioBase
        A resolved scenario (its PV, loads, grid, site, weather; battery and tariff
        only as the default site's).
    year_days : int
        Days to prepare from the scenario's first local midnight.
    first_day : str, optional
        Local date of day 0 (default: the scenario's start date).
    """

    def __init__(
        self, scenario: ScenarioBase, year_days: int = 365, first_day: str | None = None
    ) -> None:
        self.scenario = scenario
        tz = scenario.site.tz
        start = pd.Timestamp(first_day or scenario.start)
        start = start.tz_localize(tz) if start.tzinfo is None else start.tz_convert(tz)
        first = start.normalize()
        self.step_s = scenario.clock().step_s
        self.steps_per_day = 86400 // self.step_s
        self.year_days = year_days
        # One day before the first, one after the last (look-ahead at the end).
        self.clock = Clock(
            first - pd.Timedelta(days=1), self.step_s, (year_days + 2) * self.steps_per_day
        )
        self.times_local = self.clock.times.tz_convert(tz)
        # local midnights (a day of 23 or 25 h at a daylight-saving change)
        midnights = pd.date_range(first, periods=year_days, freq="D")
        offset = (midnights - self.clock.start).total_seconds().to_numpy()
        self._midnight = (offset // self.step_s).astype(np.int64)
        self.context = {
            "site": scenario.site.model_dump(),
            "weather": scenario.weather,
            "grid": scenario.grid.source,
            "seed": scenario.seed,
        }
        self.pv_units = scenario.units("pv")
        self.load_units = scenario.units("load")
        n = self.clock.n_steps
        self.pv_kw = (
            PVPlant(self.pv_units, self.clock, self.context).exogenous()["p_kw"]
            if self.pv_units
            else np.zeros((n, 0))
        )
        if self.load_units:
            load = Load(self.load_units, self.clock, self.context).exogenous()
            self.load_kw, self.load_kvar = load["p_kw"], load["q_kvar"]
        else:
            self.load_kw = self.load_kvar = np.zeros((n, 0))
        unit = {"name": "poc", "grid": scenario.grid.source, "solver": scenario.grid.solver}
        self.grid = Grid([unit], self.clock, self.context)
        bus_pos = {bus: i for i, bus in enumerate(self.grid.net.bus.index)}
        self.bus = {
            kind: np.array([bus_pos[u["bus"]] for u in scenario.units(kind)], dtype=np.int64)
            for kind in ("pv", "load")
        }
        self.battery_bus = np.array(
            [bus_pos[u["bus"]] for u in scenario.units("battery")], dtype=np.int64
        )
        self.mean_load_kw = float(-self.load_kw.sum(axis=1).mean())

    def day_start(self, day: int) -> int:
        """Clock index of day ``day``'s first step (its local midnight)."""
        return int(self._midnight[day])

    def site_from_scenario(self, index: int) -> Site:
        """The scenario's own site (its battery and tariff, scales 1)."""
        sc = self.scenario
        return Site(
            index,
            1.0,
            1.0,
            sc.units("battery"),
            sc.tariff.model_dump(),
            sc.name,
            sc.control.terminal_price_eur_kwh,
        )

    def controller_context(self, site: Site) -> dict[str, Any]:
        """A run context for a controller of ``site`` (assets scaled, the site's tariff)."""
        scales = np.broadcast_to(np.asarray(site.pv_scale, float), (len(self.pv_units),))
        pv = [_scaled_pv(u, s) for u, s in zip(self.pv_units, scales, strict=True) if s > 0.0]
        load = [
            {**u, "p_kw": u["p_kw"] * site.load_scale, "q_kvar": u["q_kvar"] * site.load_scale}
            for u in self.load_units
        ]
        return {
            **self.context,
            "assets": {"pv": pv, "load": load},
            "tariff": {"name": "tariff", **site.tariff},
            "chargers": [],
            "p_import_max_kw": None,
        }

    def prices(self, site: Site, k0: int, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Import and export prices of steps ``k0 .. k0 + n`` (EUR/kWh)."""
        clock = Clock(pd.Timestamp(self.clock.time_at(k0 * self.step_s)), self.step_s, n)
        out = Tariff([{"name": "tariff", **site.tariff}], clock, self.context).exogenous()
        return out["price_import_eur_kwh"][:, 0], out["price_export_eur_kwh"][:, 0]


def _scaled_pv(unit: dict[str, Any], scale: float) -> dict[str, Any]:
    return {**unit, "p_dc_kw": unit["p_dc_kw"] * scale, "p_ac_kw": unit["p_ac_kw"] * scale}


def _base_scenario(
    grid: str,
    weather: str,
    site: dict[str, Any],
    orientations: tuple[tuple[float, float], ...],
    start: str,
) -> ScenarioBase:
    """A base scenario: the grid's loads, 10 kWp plants of each orientation, a battery.

    The plants and the (placeholder) battery sit at the middle one of the load buses.
    """
    raw = {
        "name": "base",
        "start": pd.Timestamp(start, tz=site["tz"]).isoformat(),
        "duration": "1d",
        "step": "15min",
        "seed": 0,
        "site": dict(site),
        "grid": grid,
        "weather": weather,
        "assets": {"load": [{"from_grid": True}]},
    }
    probe = validate_scenario(raw)
    buses = sorted({u["bus"] for u in probe.units("load")})
    bus = buses[len(buses) // 2]
    pv = [
        {"name": f"pv{i}", "bus": bus, "p_dc_kw": 10.0, "tilt_deg": tilt, "azimuth_deg": azimuth}
        for i, (tilt, azimuth) in enumerate(orientations)
    ]
    raw["assets"] = {
        "pv": pv,
        "battery": [{"name": "bess", "bus": bus, "e_kwh": 10.0, "p_max_kw": 5.0}],
        "load": [{"from_grid": True}],
    }
    return validate_scenario(raw)


def _uniform(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    return float(rng.uniform(*bounds))


def _log_uniform(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    return float(np.exp(rng.uniform(np.log(bounds[0]), np.log(bounds[1]))))


def _hhmm(hour: float) -> str:
    hour = int(hour) % 24
    return f"{hour:02d}:00"


def sample_tariff(rng: np.random.Generator, config: DomainConfig) -> dict[str, Any]:
    """A flat, two- or three-level tariff drawn from ``config``'s ranges."""
    kind = config.tariff_kinds[int(rng.integers(len(config.tariff_kinds)))]
    base = _uniform(rng, config.base_price)
    periods = []
    if kind in ("two-level", "three-level"):
        start = int(rng.integers(config.peak_start_h[0], config.peak_start_h[1] + 1))
        hours = int(rng.integers(config.peak_hours[0], config.peak_hours[1] + 1))
        price = base * _uniform(rng, config.peak_factor)
        periods.append(
            {"start": _hhmm(start), "end": _hhmm(start + hours), "import_eur_kwh": price}
        )
    if kind == "three-level":
        start = int(rng.integers(config.valley_start_h[0], config.valley_start_h[1] + 1))
        hours = int(rng.integers(config.valley_hours[0], config.valley_hours[1] + 1))
        price = base * _uniform(rng, config.valley_factor)
        # the peak wins where the two overlap (later periods win)
        periods.insert(
            0, {"start": _hhmm(start), "end": _hhmm(start + hours), "import_eur_kwh": price}
        )
    return {
        "import_eur_kwh": base,
        "export_eur_kwh": base * _uniform(rng, config.export_factor),
        "periods": periods,
        "price_csv": None,
        "demand_charge_eur_kw": 0.0,
    }


def battery_unit(
    e_kwh: float,
    p_max_kw: float,
    bus: int,
    *,
    eta_ch: float = 0.95,
    eta_dis: float = 0.95,
    soc_min: float = 0.1,
    soc_max: float = 0.9,
    soc_init: float = 0.5,
    replacement_eur_kwh: float = 300.0,
) -> dict[str, Any]:
    """A battery's unit parameters, thermal data sized to its rating."""
    return {
        "name": "bess",
        "bus": bus,
        "e_kwh": e_kwh,
        "p_max_kw": p_max_kw,
        "eta_ch": eta_ch,
        "eta_dis": eta_dis,
        "soc_min": soc_min,
        "soc_max": soc_max,
        "soc_init": soc_init,
        "soh_init": 1.0,
        "t_init_c": 25.0,
        "t_ambient_c": 25.0,
        # a converter's cooling grows with its rating: full-power losses heat by ~10 K
        "r_th_k_per_kw": 150.0 / p_max_kw,
        "c_th_kj_per_k": 200.0 * e_kwh / 60.0,
        "cycle_life_efc": 6000.0,
        "calendar_life_years": 15.0,
        "soh_eol": 0.8,
        "t_derate_c": 45.0,
        "t_trip_c": 55.0,
        "replacement_eur_kwh": replacement_eur_kwh,
    }


@dataclass
class Domain:
    """Base sites and how sites are drawn from them.

    Build with :meth:`training` (the randomised distribution) or :meth:`fixed` (one
    scenario's own site, nothing randomised).
    """

    bases: list[BaseSite]
    config: DomainConfig | None = None
    fixed_site: Site | None = None
    sites: list[Site] = field(default_factory=list)

    @classmethod
    def training(cls, config: DomainConfig | None = None, year_days: int = 365) -> Domain:
        """The training distribution's base sites (one per grid, a plant per orientation)."""
        config = config or DomainConfig()
        bases = [
            BaseSite(
                _base_scenario(
                    grid, config.weather, dict(config.site), config.orientations, config.year_start
                ),
                year_days,
            )
            for grid in config.grids
        ]
        return cls(bases, config)

    @classmethod
    def fixed(cls, scenario: ScenarioBase, year_days: int = 365) -> Domain:
        """One scenario's site, every episode."""
        base = BaseSite(scenario, year_days)
        return cls([base], None, base.site_from_scenario(0))

    @property
    def steps_per_day(self) -> int:
        """Steps per day (the same for every base site)."""
        return self.bases[0].steps_per_day

    def sample(self, rng: np.random.Generator) -> Site:
        """A site: the fixed one, or one drawn from the configuration's ranges."""
        if self.fixed_site is not None:
            return self.fixed_site
        config = self.config
        assert config is not None
        index = int(rng.integers(len(self.bases)))
        base = self.bases[index]
        load_scale = _uniform(rng, config.load_scale)
        mean_load = base.mean_load_kw * load_scale
        kwp = mean_load * _log_uniform(rng, config.pv_kwp_per_mean_load_kw)
        plant = int(rng.integers(len(base.pv_units)))
        pv_scale = tuple(
            kwp / u["p_dc_kw"] if j == plant else 0.0 for j, u in enumerate(base.pv_units)
        )
        e_kwh = 24.0 * mean_load * _log_uniform(rng, config.battery_days_of_load)
        p_max = e_kwh / _uniform(rng, config.storage_hours)
        soc_min, soc_max = _uniform(rng, config.soc_min), _uniform(rng, config.soc_max)
        battery = battery_unit(
            e_kwh,
            p_max,
            int(base.scenario.units("battery")[0]["bus"]),
            eta_ch=_uniform(rng, config.efficiency),
            eta_dis=_uniform(rng, config.efficiency),
            soc_min=soc_min,
            soc_max=soc_max,
            soc_init=_uniform(rng, (soc_min, soc_max)),
            replacement_eur_kwh=_uniform(rng, config.replacement_eur_kwh),
        )
        tariff = sample_tariff(rng, config)
        return Site(index, pv_scale, load_scale, [battery], tariff, "sampled")


@dataclass
class HeldOut:
    """A held-out test case: a site on given days, and what makes it held out."""

    name: str
    domain: Domain
    site: Site
    days: list[int]
    why: str


def _validation_days(first: int, last: int, count: int) -> list[int]:
    """``count`` validation days (index % 5 == 2) spread over ``first..last``."""
    _, val = split_days(365)
    pool = [d for d in val if first <= d <= last]
    idx = np.linspace(0, len(pool) - 1, min(count, len(pool))).round().astype(int)
    return [pool[i] for i in idx]


def dynamic_price_csv(path: Path, year_start: str, tz: str, seed: int = 7) -> Path:
    """A synthetic hourly day-ahead price series for a year (seeded, EUR/kWh).

    A duck curve (low at midday, high in the evening) with day-to-day level changes and
    hourly noise: a shape no sampled time-of-use tariff has.
    """
    rng = np.random.default_rng(seed)
    times = pd.date_range(pd.Timestamp(year_start, tz=tz), periods=368 * 24, freq="h")
    hour = times.hour.to_numpy()
    shape = (
        0.22
        + 0.06 * np.cos(2 * np.pi * (hour - 3) / 24)
        - 0.05 * np.exp(-(((hour - 13) / 3.0) ** 2))
    )
    shape += 0.12 * np.exp(-(((hour - 19) / 1.8) ** 2))
    level = np.repeat(rng.uniform(0.8, 1.25, len(times) // 24 + 1), 24)[: len(times)]
    price = np.maximum(shape * level + rng.normal(0, 0.01, len(times)), 0.01)
    frame = pd.DataFrame(
        {
            "time": times.tz_convert("UTC").strftime("%Y-%m-%dT%H:%M:%SZ"),
            "import_eur_kwh": price.round(4),
            "export_eur_kwh": (0.6 * price).round(4),
        }
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)
    return path


def held_out_sites(
    data_dir: Path, days_per_case: int = 8, config: DomainConfig | None = None
) -> list[HeldOut]:
    """The held-out test cases (see the module notes), with their days.

    ``data_dir`` receives the dynamic price series (written, seeded).
    """
    config = config or DomainConfig()
    site = dict(config.site)
    three_level = {
        "import_eur_kwh": 0.30,
        "export_eur_kwh": 0.05,
        "periods": [
            {"start": "22:00", "end": "06:00", "import_eur_kwh": 0.12},
            {"start": "17:00", "end": "21:00", "import_eur_kwh": 0.65},
        ],
        "price_csv": None,
        "demand_charge_eur_kw": 0.0,
    }
    two_level = {
        "import_eur_kwh": 0.28,
        "export_eur_kwh": 0.08,
        "periods": [{"start": "17:00", "end": "21:00", "import_eur_kwh": 0.42}],
        "price_csv": None,
        "demand_charge_eur_kw": 0.0,
    }
    csv = dynamic_price_csv(data_dir / "dynamic_prices.csv", config.year_start, site["tz"])
    dynamic = {**two_level, "periods": [], "price_csv": str(csv)}
    cases = []

    def case(
        name, grid, weather, where, orientation, pv_per_load, e_days, hours, tariff, season, why
    ):
        domain = Domain(
            [BaseSite(_base_scenario(grid, weather, where, (orientation,), config.year_start), 365)]
        )
        base = domain.bases[0]
        e_kwh = 24.0 * base.mean_load_kw * e_days
        bat = battery_unit(e_kwh, e_kwh / hours, int(base.scenario.units("battery")[0]["bus"]))
        pv_scale = base.mean_load_kw * pv_per_load / 10.0
        s = Site(0, pv_scale, 1.0, [bat], tariff, name)
        domain.fixed_site = s
        cases.append(HeldOut(name, domain, s, _validation_days(*season, days_per_case), why))

    summer, winter, spring = (152, 243), (0, 59), (60, 151)
    case(
        "rural2 summer 2-level",
        "1-LV-rural2--0-sw",
        config.weather,
        site,
        (25.0, 200.0),
        2.0,
        0.15,
        2.0,
        two_level,
        summer,
        "unseen feeder and orientation",
    )
    case(
        "semiurb5 winter 3-level",
        "1-LV-semiurb5--0-sw",
        config.weather,
        site,
        (30.0, 180.0),
        1.0,
        0.3,
        3.0,
        three_level,
        winter,
        "unseen feeder; 3-level beyond sampled levels",
    )
    case(
        "Alaska summer dynamic",
        "1-LV-rural1--0-sw",
        "703165TY.csv",
        SAND_POINT,
        (35.0, 180.0),
        3.0,
        0.2,
        2.5,
        dynamic,
        summer,
        "unseen climate; dynamic price series",
    )
    case(
        "rural1 spring dynamic",
        "1-LV-rural1--0-sw",
        config.weather,
        site,
        (30.0, 180.0),
        1.5,
        0.25,
        2.0,
        dynamic,
        spring,
        "dynamic price series",
    )
    return cases


def microgrid_day_big_battery(scenario: ScenarioBase, days_per_case: int = 8) -> HeldOut:
    """The issue's case: the day scenario's site with a 100 kWh / 30 kW battery, 3-level."""
    domain = Domain([BaseSite(scenario, 365, f"{pd.Timestamp(scenario.start).year}-01-01")])
    base = domain.bases[0]
    (bat,) = scenario.units("battery")
    big = {**bat, "e_kwh": 100.0, "p_max_kw": 30.0, "replacement_eur_kwh": 300.0}
    big = {**battery_unit(100.0, 30.0, bat["bus"]), **{k: big[k] for k in ("name", "bus")}}
    tariff = {
        "import_eur_kwh": 0.25,
        "export_eur_kwh": 0.06,
        "periods": [
            {"start": "00:00", "end": "07:00", "import_eur_kwh": 0.15},
            {"start": "16:00", "end": "20:00", "import_eur_kwh": 0.45},
        ],
        "price_csv": None,
        "demand_charge_eur_kw": 0.0,
    }
    site = replace(base.site_from_scenario(0), batteries=[big], tariff=tariff)
    site.name = "microgrid_day 100 kWh/30 kW 3-level"
    domain.fixed_site = site
    days = _validation_days(0, 364, days_per_case)
    return HeldOut(site.name, domain, site, days, "the issue's battery and tariff, all seasons")
