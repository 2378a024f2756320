r"""Weighted-least-squares state estimation, updated per step on a model built once.

Gauss-Newton on the WLS objective (Schweppe [1]_; Abur & Exposito [2]_ ch. 2):

.. math::

    J(x) = \sum_i w_i (z_i - h_i(x))^2, \qquad
    G \Delta x = H^T W (z - h(x)), \qquad G = H^T W H,

with :math:`w_i = 1 / \max(\sigma_i, 10^{-5})^2` (σ in pu, pandapower's clip) and the
step limited to :math:`\max|\Delta x| \le 0.35`, stopping when
:math:`\max|\Delta x| \le` ``tolerance``: exactly ``pandapower.estimation.estimate``'s
``WLSAlgorithm`` [3]_. The sensor set (the pattern of H and G) is fixed when the
estimator is built; per step only values, standard deviations and the ``present``
mask change (a missing sensor gets :math:`w_i = 0`). Each step starts from the last
estimate (warm start); :meth:`WLSEstimator.reset` forgets it.

After convergence: the chi-square test on :math:`J`, normalised residuals, and (by
default) the largest-normalised-residual loop that removes the worst sensor and
re-estimates while :math:`\max r^N` exceeds the threshold: by default ("auto") the
Bonferroni bound :math:`\max(3, \Phi^{-1}(1 - \alpha_{rN} / 2m))` over the m sensors used,
so a step of healthy sensors loses one by chance with probability about
:math:`\alpha_{rN}` whatever the number of sensors (see
:func:`models.estimation.baddata.rn_threshold`).

References
----------
.. [1] F. C. Schweppe and J. Wildes, "Power System Static-State Estimation, Part I:
   Exact Model", *IEEE Trans. PAS*, vol. 89, no. 1, pp. 120-125, 1970.
.. [2] A. Abur and A. G. Exposito, *Power System State Estimation: Theory and
   Implementation*. New York: Marcel Dekker, 2004.
.. [3] pandapower, "State Estimation",
   https://pandapower.readthedocs.io/en/latest/estimation.html
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from models.estimation.baddata import chi2_threshold, normalised_residuals, rn_threshold
from models.estimation.gain import DenseGain, SingularGainError, SparseGain
from models.estimation.model import SEModel
from models.estimation.sensors import EstimatorOptionError, Sensors

__all__ = ["Estimate", "WLSEstimator"]

#: pandapower's floor of a standard deviation (pu) before weighting.
STD_FLOOR_PU = 1e-5
#: pandapower's largest Gauss-Newton step (rad or pu).
MAX_STEP = 0.35
#: Above this many states the sparse factorisation is used (``solver="auto"``).
DENSE_MAX_STATES = 150
SQRT3 = np.sqrt(3.0)


@dataclass
class Estimate:
    r"""One state estimate, per pandapower element (``net.bus``/``line``/``trafo`` order).

    Attributes
    ----------
    success : bool
        Converged (and observable). When False the other fields are NaN and ``reason``
        says why.
    reason : str
        Why the estimate failed ("" on success).
    iterations : int
        Gauss-Newton iterations of the final estimate.
    vm_pu, va_degree : numpy.ndarray
        Estimated bus voltages (as ``res_bus_est``).
    p_mw, q_mvar : numpy.ndarray
        Estimated bus power, load sign, shunt power included, 0 on buses fused into
        another one (as ``res_bus_est``).
    line, trafo : dict of str to numpy.ndarray
        ``res_line_est``/``res_trafo_est`` columns: ``p_from_mw``, ``q_from_mvar``,
        ``i_from_ka``, ``p_to_mw``, ``q_to_mvar``, ``i_to_ka`` (trafo: ``hv``/``lv``);
        power into the branch > 0; 0 for out-of-service elements.
    residuals : numpy.ndarray
        :math:`z - h(\hat x)` per sensor in the sensor's unit (NaN if not used).
    J : float
        :math:`r^T W r` over the rows used (sensors and virtual zero-injection rows).
    dof : int
        Degrees of freedom :math:`m - n` (rows used minus states).
    chi2_threshold : float
        :math:`\chi^2_{dof}(1 - \alpha)`.
    bad_data : bool
        ``J > chi2_threshold`` of the FIRST estimate of the step (before removals).
    rn : numpy.ndarray
        Normalised residual per sensor of the final estimate; NaN for sensors not
        used (missing or flagged) and for unverifiable ones.
    unverifiable : numpy.ndarray
        Sensors whose errors cannot be detected (critical measurements).
    flagged : numpy.ndarray
        Sensors removed by the largest-normalised-residual loop, in no particular
        order (bool mask); the estimate is the one without them.
    used : numpy.ndarray
        Sensors that took part in the final estimate (present and not flagged).
    """

    success: bool
    reason: str
    iterations: int
    vm_pu: np.ndarray
    va_degree: np.ndarray
    p_mw: np.ndarray
    q_mvar: np.ndarray
    line: dict = field(default_factory=dict)
    trafo: dict = field(default_factory=dict)
    residuals: np.ndarray = field(default_factory=lambda: np.zeros(0))
    J: float = float("nan")
    dof: int = 0
    chi2_threshold: float = float("nan")
    bad_data: bool = False
    rn: np.ndarray = field(default_factory=lambda: np.zeros(0))
    unverifiable: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    flagged: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    used: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))


class WLSEstimator:
    r"""WLS state estimator for a fixed sensor table on a model built once.

    Parameters
    ----------
    model : SEModel
        The grid.
    sensors : Sensors
        The sensor table (fixed: a new table needs a new estimator).
    tolerance : float
        Convergence: largest state change (rad or pu) of the last step.
    max_iterations : int
        Gauss-Newton iterations per estimate (pandapower's ``estimate`` default: 50).
    zero_injection : {"aux_bus", None} or list of int
        Virtual P = Q = 0 rows, as ``pandapower.estimation.estimate`` (see
        :meth:`SEModel.compile`).
    flat_start : bool
        Start every estimate from pandapower's flat start instead of the last estimate.
    solver : {"auto", "dense", "sparse"}
        Factorisation of the gain matrix; ``"auto"`` is dense up to 150 states.
    alpha : float
        False-alarm probability of the chi-square test.
    rn_threshold : float or "auto"
        Normalised residual above which the largest one is removed. ``"auto"``
        (default): per estimate :math:`\max(3, \Phi^{-1}(1 - \alpha_{rN} / 2m))`, m the
        sensors used (:func:`models.estimation.baddata.rn_threshold`); a float is used
        as is (3.0 is the textbook value, right for tens of sensors).
    alpha_rn : float
        With ``rn_threshold="auto"``: chance that a step of healthy sensors loses one
        to the removal loop (Bonferroni bound).
    max_removals : int
        Sensors removed per step at most; 0 computes ``rn`` but removes nothing.
    bad_data : bool
        Compute normalised residuals and run the removal loop (False: only ``J`` and
        the chi-square test; ``rn`` is NaN).
    """

    def __init__(
        self,
        model: SEModel,
        sensors: Sensors,
        *,
        tolerance: float = 1e-8,
        max_iterations: int = 50,
        zero_injection: str | None | list = "aux_bus",
        flat_start: bool = False,
        solver: str = "auto",
        alpha: float = 0.05,
        rn_threshold: float | str = "auto",
        alpha_rn: float = 0.05,
        max_removals: int = 10,
        bad_data: bool = True,
    ) -> None:
        if solver not in ("auto", "dense", "sparse"):
            raise EstimatorOptionError(
                f"solver: {solver!r} is not one of ['auto', 'dense', 'sparse']"
            )
        if isinstance(rn_threshold, str):
            if rn_threshold != "auto":
                raise EstimatorOptionError(
                    f"rn_threshold: {rn_threshold!r} is neither 'auto' nor a number > 0"
                )
        elif not (np.isfinite(rn_threshold) and rn_threshold > 0):
            raise EstimatorOptionError(
                f"rn_threshold: expected 'auto' or a finite number > 0, got {rn_threshold!r}"
            )
        if not 0.0 < alpha_rn < 1.0:
            raise EstimatorOptionError(f"alpha_rn: expected 0 < alpha_rn < 1, got {alpha_rn!r}")
        self.alpha_rn = alpha_rn
        self.model = model
        self.sensors = sensors
        self.tolerance = tolerance
        self.max_iterations = max_iterations
        self.flat_start = flat_start
        self.alpha = alpha
        self.rn_threshold = rn_threshold
        self.max_removals = max_removals
        self.bad_data = bad_data
        self.mset = mset = model.compile(sensors, zero_injection)
        self.n_sensors = mset.n_sensors
        self.n_state = mset.n_state
        shape = (mset.n_rows, mset.n_state)
        dense = solver == "dense" or (solver == "auto" and mset.n_state <= DENSE_MAX_STATES)
        self.solver = "dense" if dense else "sparse"
        gain_class = DenseGain if dense else SparseGain
        self._gain = gain_class(mset.h_row, mset.h_col, shape)
        non_slack = np.ones(model.n_bus, bool)
        non_slack[model.slack] = False
        self._non_slack = np.flatnonzero(non_slack)
        self._n_theta = len(self._non_slack)
        self._factor = mset.factor
        self._abs_factor = np.abs(mset.factor)
        self._init_results()
        self.reset()

    def _init_results(self) -> None:
        model = self.model
        self._branch = {}
        for table, (a, b) in (("line", ("from", "to")), ("trafo", ("hv", "lv"))):
            rows = model.branch_row[table]
            live = rows >= 0
            ends = model.branch_end_bus[table]
            base_i = {side: model.base_mva / (SQRT3 * model.vn_kv[ends[side]]) for side in (a, b)}
            self._branch[table] = (rows, live, (a, b), base_i)

    def reset(self) -> None:
        """Forget the warm start: the next estimate starts from pandapower's flat start."""
        self._theta = self.model.va_init_rad.copy()
        self._vm = self.model.v_init.copy()

    def estimate(
        self, values: np.ndarray, std: np.ndarray, present: np.ndarray | None = None
    ) -> Estimate:
        """Estimate the state from one set of readings.

        Parameters
        ----------
        values : numpy.ndarray
            One reading per sensor, in sensor order and units (see :class:`Sensors`).
        std : numpy.ndarray
            Standard deviation per sensor, same units; finite and > 0 for every present
            sensor (clipped at 1e-5 pu as pandapower does); ignored for missing ones.
        present : numpy.ndarray of bool, optional
            Sensors with a reading this step (default: all). Missing ones get weight 0;
            their ``values`` are ignored (may be NaN).

        Returns
        -------
        Estimate
            Never raises for a bad step: an unobservable or diverging step returns
            ``success=False`` with a ``reason``; the warm start is then kept.

        Raises
        ------
        EstimatorOptionError
            Wrong array lengths, or a present sensor whose ``std`` is not finite and > 0.
        """
        mset = self.mset
        n = self.n_sensors
        if present is None:
            present = np.ones(n, bool)
        else:
            present = np.asarray(present, bool)
        values = np.asarray(values, float)
        std = np.asarray(std, float)
        if values.shape != (n,) or std.shape != (n,) or present.shape != (n,):
            raise EstimatorOptionError(
                f"values, std, present: expected {n} entries each (one per sensor), got "
                f"{values.shape}, {std.shape}, {present.shape}"
            )
        bad_std = np.flatnonzero(present & ~(np.isfinite(std) & (std > 0)))
        if len(bad_std):
            i = int(bad_std[0])
            raise EstimatorOptionError(
                f"std[{i}]: expected a finite standard deviation > 0 for a present sensor, "
                f"got {std[i]!r} ({len(bad_std)} present sensor(s) affected)"
            )
        present = present & np.isfinite(values)
        z = np.zeros(mset.n_rows)
        sigma = np.ones(mset.n_rows)
        z[:n] = np.where(present, values, 0.0) / self._factor[:n]
        sigma[:n] = np.where(present, std, 1.0) / self._abs_factor[:n]
        sigma[n:] = mset.virtual_std_pu
        sigma = np.maximum(sigma, STD_FLOOR_PU)
        variance = sigma**2
        w_all = 1.0 / variance
        active = np.ones(mset.n_rows, bool)
        active[:n] = present
        flagged = np.zeros(n, bool)
        first_chi2 = None
        kept = None  # the last good estimate, if a removal makes the next one fail
        while True:
            w = np.where(active, w_all, 0.0)
            solved = self._solve(z, w, active)
            if isinstance(solved, str):
                if kept is None:
                    return self._failure(solved, flagged, active)
                # the removed sensor was needed after all: keep it, stop removing
                worst = kept[-1]
                flagged[worst], active[worst] = False, True
                self._theta, self._vm = kept[-2]
                return self._result(*kept[:-2], flagged, active)
            v, iterations, r, J = solved
            dof = int(active.sum()) - self.n_state
            threshold = chi2_threshold(dof, self.alpha)
            if first_chi2 is None:
                first_chi2 = bool(J > threshold) if dof > 0 else False
            rn = np.full(mset.n_rows, np.nan)
            unverifiable = np.zeros(mset.n_rows, bool)
            if self.bad_data:
                rn, unverifiable = normalised_residuals(
                    r, variance, self._gain.hgh_diagonal(), active
                )
                candidates = rn[:n]
                limit = self._rn_limit(int(active[:n].sum()))
                if flagged.sum() < self.max_removals and np.any(candidates > limit):
                    worst = int(np.nanargmax(candidates))
                    state = (self._theta.copy(), self._vm.copy())
                    result = (v, iterations, r, J, dof, threshold, first_chi2, rn, unverifiable)
                    kept = (*result, state, worst)
                    flagged[worst] = True
                    active[worst] = False
                    continue
            break
        return self._result(
            v, iterations, r, J, dof, threshold, first_chi2, rn, unverifiable, flagged, active
        )

    def _rn_limit(self, m: int) -> float:
        """The normalised-residual threshold for ``m`` sensors used."""
        if self.rn_threshold == "auto":
            return rn_threshold(m, self.alpha_rn)
        return float(self.rn_threshold)

    def _solve(self, z: np.ndarray, w: np.ndarray, active: np.ndarray):
        """Gauss-Newton from the warm start; (V, iterations, r, J) or a failure reason."""
        if int(active.sum()) < self.n_state:
            return f"unobservable: {int(active.sum())} measurement rows for {self.n_state} states"
        mset, gain = self.mset, self._gain
        if self.flat_start:
            self.reset()
        theta, vm = self._theta.copy(), self._vm.copy()
        ns, n_theta = self._non_slack, self._n_theta
        iterations = 0
        error = np.inf
        try:
            while error > self.tolerance and iterations < self.max_iterations:
                v = vm * np.exp(1j * theta)
                h, current = mset.evaluate(v)
                r = z - h
                gain.factor(mset.jacobian_values(v, current), w)
                dx = gain.solve(r)
                error = float(np.max(np.abs(dx)))
                if not np.isfinite(error):
                    return "diverged: non-finite state update"
                if error > MAX_STEP:
                    dx *= MAX_STEP / error
                theta[ns] += dx[:n_theta]
                vm += dx[n_theta:]
                iterations += 1
        except SingularGainError as exc:
            return f"unobservable: {exc}"
        if error > self.tolerance:
            return f"not converged in {iterations} iterations (last step {error:.1e})"
        v = vm * np.exp(1j * theta)
        h, current = mset.evaluate(v)
        r = z - h
        r[~active] = 0.0
        J = float(np.sum(w * r**2))
        if self.bad_data:
            try:
                gain.factor(mset.jacobian_values(v, current), w)
            except SingularGainError as exc:
                return f"unobservable: {exc}"
        self._theta, self._vm = theta, vm
        return v, iterations, r, J

    def _result(
        self, v, iterations, r, J, dof, threshold, bad, rn, unverifiable, flagged, active
    ) -> Estimate:
        model, n = self.model, self.n_sensors
        vm, va = model.to_bus(v)
        s_bus = v * np.conj(model.ybus @ v)
        ok = model.primary
        p = np.zeros(len(vm))
        q = np.zeros(len(vm))
        load = -s_bus[model.bus_lookup[ok]] + model.shunt_pu[ok] * vm[ok] ** 2
        p[ok] = load.real * model.base_mva
        q[ok] = load.imag * model.base_mva
        p[model.bus_lookup < 0] = np.nan
        q[model.bus_lookup < 0] = np.nan
        residuals = np.where(active[:n], r[:n] * self._factor[:n], np.nan)
        return Estimate(
            success=True,
            reason="",
            iterations=iterations,
            vm_pu=vm,
            va_degree=va,
            p_mw=p,
            q_mvar=q,
            **self._branch_flows(v),
            residuals=residuals,
            J=J,
            dof=dof,
            chi2_threshold=threshold,
            bad_data=bad,
            rn=rn[:n],
            unverifiable=unverifiable[:n],
            flagged=flagged,
            used=active[:n].copy(),
        )

    def _branch_flows(self, v: np.ndarray) -> dict:
        model = self.model
        i_f = model.yf @ v
        i_t = model.yt @ v
        s_f = v[model.f_bus] * np.conj(i_f) * model.base_mva
        s_t = v[model.t_bus] * np.conj(i_t) * model.base_mva
        out = {}
        for table, (rows, live, sides, base_i) in self._branch.items():
            columns = {}
            for side, s, i in ((sides[0], s_f, i_f), (sides[1], s_t, i_t)):
                for name, values in (
                    (f"p_{side}_mw", s.real),
                    (f"q_{side}_mvar", s.imag),
                    (f"i_{side}_ka", np.abs(i)),
                ):
                    col = np.zeros(len(rows))
                    col[live] = values[rows[live]]
                    if name.startswith("i_"):
                        col *= base_i[side]
                    columns[name] = col
            out[table] = columns
        return out

    def _failure(self, reason: str, flagged: np.ndarray, active: np.ndarray) -> Estimate:
        n_bus = len(self.model.bus_lookup)
        nan = np.full(n_bus, np.nan)
        n = self.n_sensors
        return Estimate(
            success=False,
            reason=reason,
            iterations=0,
            vm_pu=nan,
            va_degree=nan.copy(),
            p_mw=nan.copy(),
            q_mvar=nan.copy(),
            residuals=np.full(n, np.nan),
            rn=np.full(n, np.nan),
            unverifiable=np.zeros(n, bool),
            flagged=flagged,
            used=active[:n].copy(),
        )
