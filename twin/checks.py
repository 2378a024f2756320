"""Checks a run must pass before it may call itself ``finished``.

A run can complete every step and still not have done what it was asked: the energy
balance did not close, a device answered too rarely, the database did not store the
data. Each such condition is a *run check*: a function of the scenario, the run
metadata and the KPIs that returns the failures it found. :func:`twin.run.run_scenario`
evaluates every registered check after the results are written; any failure makes
the run's ``status`` ``failed`` in ``run.json``, is printed by the CLI and gives a
non-zero exit code. Results and KPIs stay on disk for diagnosis.

The core holds the checks every run has (:data:`CORE_CHECKS`); each component
declares its own (:meth:`twin.component.Component.checks`), and the core never names
them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from types import MappingProxyType
from typing import Any

from twin.errors import TwinError

__all__ = [
    "BALANCE_ABS_TOL_KWH",
    "BALANCE_REL_TOL",
    "CORE_CHECKS",
    "CheckFailure",
    "CheckNameError",
    "RunCheck",
    "all_checks",
    "evaluate_checks",
]


@dataclass(frozen=True)
class CheckFailure:
    """One failed run check: which check and what it found (with numbers)."""

    check: str
    message: str

    def __str__(self) -> str:
        return f"{self.check}: {self.message}"

    def as_dict(self) -> dict[str, str]:
        """The failure as a JSON-ready mapping (for ``run.json``)."""
        return asdict(self)


#: A run check: ``(scenario, metadata, kpis) -> failures`` (an empty list when it holds).
RunCheck = Callable[[Any, dict[str, Any], dict[str, float]], list[CheckFailure]]


def evaluate_checks(
    scenario: Any,
    metadata: dict[str, Any],
    kpis: dict[str, float],
    checks: Mapping[str, RunCheck] | None = None,
) -> tuple[list[str], list[CheckFailure]]:
    """Run ``checks`` (default: :func:`all_checks` of every available component).

    Returns
    -------
    passed : list of str
        Names of the checks that held.
    failures : list of CheckFailure
        Everything that did not.
    """
    passed: list[str] = []
    failures: list[CheckFailure] = []
    for name, check in (all_checks() if checks is None else checks).items():
        try:
            found = check(scenario, metadata, kpis)
        except Exception as exc:  # a check that cannot decide has not passed
            found = [CheckFailure(name, f"the check itself failed: {type(exc).__name__}: {exc}")]
        if found:
            failures.extend(found)
        else:
            passed.append(name)
    return passed, failures


#: The energy balance must close to this many kWh ...
BALANCE_ABS_TOL_KWH = 1e-3
#: ... or to this share of the energy that crossed the site's buses, if larger.
BALANCE_REL_TOL = 1e-6


def _energy_balance(
    scenario: Any, metadata: dict[str, Any], kpis: dict[str, float]
) -> list[CheckFailure]:
    """Injections + grid exchange - losses must sum to zero over the run."""
    residual = kpis.get("balance_residual_kwh")
    if residual is None:
        return []
    energies = ("e_import_kwh", "e_export_kwh", "e_pv_kwh", "e_load_kwh")
    moved = sum(abs(kpis.get(key, 0.0)) for key in energies)
    tolerance = max(BALANCE_ABS_TOL_KWH, BALANCE_REL_TOL * moved)
    if residual != residual or residual > tolerance:
        return [
            CheckFailure(
                "energy_balance",
                f"residual {residual:.6g} kWh exceeds the tolerance {tolerance:.3g} kWh: "
                "some power enters or leaves the grid outside the assets the twin accounts "
                "for (a generator or load of the grid file left in service?)",
            )
        ]
    return []


#: The checks of every run, whatever its components.
CORE_CHECKS: Mapping[str, RunCheck] = MappingProxyType({"energy_balance": _energy_balance})


class CheckNameError(TwinError):
    """Two components declare run checks of the same name."""


def all_checks(active: list[Any] | None = None) -> dict[str, RunCheck]:
    """The core's checks, then each component's (:meth:`~twin.component.Component.checks`).

    ``active``: the components of the run (default: every available one).

    Raises
    ------
    CheckNameError
        If two declare a check of the same name.
    """
    from twin.component import components

    found = dict(CORE_CHECKS)
    for component in components() if active is None else active:
        for name, check in component.checks().items():
            if name in found:
                raise CheckNameError(
                    f"run check {name!r} of component {component.name!r} is declared twice"
                )
            found[name] = check
    return found
