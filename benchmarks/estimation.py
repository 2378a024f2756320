"""Time per state-estimation step: pandapower's ``estimate`` vs the fast WLS estimator.

Usage: python benchmarks/estimation.py [--steps N] [--large-steps N] [--no-large]

Each grid gets a measurement time series: every step the loads and generators are
scaled randomly, runpp gives the truth, and every sensor reads the truth plus seeded
Gaussian noise (v 0.003 pu, p/q 0.2 % of sn_mva, i 1 A). The sensors are one per
(type, location): v/p/q at every bus, p/q at both ends of every line, p/q/i at both
ends of every transformer (the large grid: line p at the from end only).

- ``pandapower``: ``pandapower.estimation.estimate(net, init="flat")`` every step, as a
  user would (the measurement values are updated in ``net.measurement`` in place).
- ``fast``: ``WLSEstimator.estimate(values, std)`` (warm start, tolerance 1e-8),
  the state and branch flows only.
- ``fast + bad data``: the same plus the normalised residuals and the
  largest-normalised-residual removal loop (rN > 3, re-estimating after each removal).
  With thousands of sensors rN > 3 happens by chance (0.27 % of healthy sensors per
  step), so ``fast + bad data (t)`` also shows a threshold for 5 % false alarms per
  step over all sensors: t = Phi^-1(1 - 0.05 / (2 m)) (Bonferroni).

The table gives the median and 99th percentile per step after a warm-up, the speed-up
of the medians, the median Gauss-Newton iterations, and the largest difference of the
fast state to pandapower's over the series (|V| in pu, angle in rad).
"""

from __future__ import annotations

import argparse
import copy
import time
import warnings

import numpy as np
import pandapower as pp
from scipy.stats import norm

from benchmarks.machine import machine
from models.estimation import SEModel, Sensors, WLSEstimator
from models.gridnet import load_net

#: (grid, large?): the large one (SimBench HV + MV) has 1791 buses and ~6,800 sensors.
GRIDS = (
    ("1-LV-rural1--0-sw", False),
    ("1-LV-semiurb4--0-sw", False),
    ("1-MV-urban--0-sw", False),
    ("1-HVMV-urban-all-0-sw", True),
)


def sensor_table(net: pp.pandapowerNet, model: SEModel, both_ends: bool = True) -> Sensors:
    """One sensor per (type, location); bus p/q once per ppci bus (fused buses)."""
    rows = []
    primary = set(net.bus.index[model.primary])
    for b in net.bus.index[net.bus.in_service]:
        rows.append(("v", "bus", b, None))
        if b in primary:
            rows += [("p", "bus", b, None), ("q", "bus", b, None)]
    for e in net.line.index[net.line.in_service]:
        if both_ends:
            rows += [(t, "line", e, s) for s in ("from", "to") for t in ("p", "q")]
        else:
            rows.append(("p", "line", e, "from"))
    for e in net.trafo.index[net.trafo.in_service]:
        rows += [(t, "trafo", e, s) for s in ("hv", "lv") for t in ("p", "q", "i")]
    return Sensors.from_records(rows)


def measurement_series(spec: str, steps: int, both_ends: bool, seed: int = 5):
    """(net, model, sensors, values (steps, m), std (m,)) for a random load series."""
    net = load_net(spec)
    net.measurement = net.measurement.iloc[0:0]
    model = SEModel.from_net(net)
    sensors = sensor_table(net, model, both_ends)
    std = np.select(
        [sensors.meas_type == "v", sensors.meas_type == "i"], [0.003, 1e-3], 0.002 * net.sn_mva
    )
    rng = np.random.default_rng(seed)
    base = {t: net[t][["p_mw", "q_mvar"]].to_numpy().copy() for t in ("load", "sgen")}
    values = np.empty((steps, len(sensors)))
    for k in range(steps):
        for table, pq in base.items():
            net[table][["p_mw", "q_mvar"]] = pq * rng.uniform(0.5, 1.2, (len(pq), 1))
        pp.runpp(net, numba=False, calculate_voltage_angles=True, max_iteration=30)
        truth = model.measure(
            net.res_bus.vm_pu.to_numpy(), net.res_bus.va_degree.to_numpy(), sensors
        )
        values[k] = truth + rng.normal(0.0, std)
    return net, model, sensors, values, std


def time_pandapower(net, sensors, values, std):
    """Seconds per step, (vm, va_rad) per step of ``estimate(net, init="flat")``."""
    from pandapower.estimation import estimate

    ref = copy.deepcopy(net)
    for i in range(len(sensors)):
        t, et, e, side = sensors.row(i)
        pp.create_measurement(ref, t, et, values[0, i], std[i], e, side=side, index=i)
    estimate(ref, init="flat")  # warm-up
    seconds, vm, va, iterations = [], [], [], []
    for k in range(len(values)):
        ref.measurement["value"] = values[k]
        started = time.perf_counter_ns()
        result = estimate(ref, init="flat")
        seconds.append((time.perf_counter_ns() - started) * 1e-9)
        assert result["success"], f"pandapower failed at step {k}"
        vm.append(ref.res_bus_est.vm_pu.to_numpy())
        va.append(np.radians(ref.res_bus_est.va_degree.to_numpy()))
        iterations.append(result["num_iterations"])
    return np.array(seconds), np.array(vm), np.array(va), iterations


def time_fast(model, sensors, values, std, bad_data: bool, rn_threshold: float = 3.0):
    """Seconds per step, (vm, va_rad) per step, iterations and flagged counts."""
    estimator = WLSEstimator(model, sensors, bad_data=bad_data, rn_threshold=rn_threshold)
    estimator.estimate(values[0], std)  # warm-up (imports, first factorisation)
    seconds, vm, va, iterations, flagged = [], [], [], [], []
    for k in range(len(values)):
        started = time.perf_counter_ns()
        est = estimator.estimate(values[k], std)
        seconds.append((time.perf_counter_ns() - started) * 1e-9)
        assert est.success, est.reason
        vm.append(est.vm_pu)
        va.append(np.radians(est.va_degree))
        iterations.append(est.iterations)
        flagged.append(int(est.flagged.sum()))
    return np.array(seconds), np.array(vm), np.array(va), iterations, flagged, estimator


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--large-steps", type=int, default=20)
    parser.add_argument("--no-large", action="store_true")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    print(f"machine: {machine()}")
    header = (
        f"{'grid':<21} {'buses':>5} {'z':>5} {'x':>5} {'method':<25} {'median us':>10} "
        f"{'p99 us':>10} {'speed-up':>9} {'iter':>4} {'max|dV| pu':>11} {'max|dth| rad':>12}"
    )
    print(header)
    print("-" * len(header))
    for spec, large in GRIDS:
        if large and args.no_large:
            continue
        steps = args.large_steps if large else args.steps
        net, model, sensors, values, std = measurement_series(spec, steps, both_ends=not large)
        ref_s, ref_vm, ref_va, ref_it = time_pandapower(net, sensors, values, std)
        rows = [("pandapower", ref_s, ref_vm, ref_va, ref_it, None)]
        fast_s, vm, va, it, _, estimator = time_fast(model, sensors, values, std, False)
        rows.append(("fast", fast_s, vm, va, it, None))
        bad_s, bvm, bva, bit, flagged, _ = time_fast(model, sensors, values, std, True)
        rows.append(("fast + bad data", bad_s, bvm, bva, bit, flagged))
        t = float(norm.isf(0.05 / (2 * len(sensors))))
        bad_s, bvm, bva, bit, flagged, _ = time_fast(model, sensors, values, std, True, t)
        rows.append((f"fast + bad data ({t:.2f})", bad_s, bvm, bva, bit, flagged))
        base = np.median(ref_s)
        for label, seconds, vm_k, va_k, iterations, flags in rows:
            dv = np.nanmax(np.abs(vm_k - ref_vm)) if label == "fast" else float("nan")
            da = np.nanmax(np.abs(va_k - ref_va)) if label == "fast" else float("nan")
            print(
                f"{spec:<21} {len(net.bus):>5} {len(sensors):>5} {estimator.n_state:>5} "
                f"{label:<25} {np.median(seconds) * 1e6:>10.0f} "
                f"{np.percentile(seconds, 99) * 1e6:>10.0f} {base / np.median(seconds):>8.1f}x "
                f"{int(np.median(iterations)):>4} {dv:>11.1e} {da:>12.1e}"
                + (f"  (flagged/step: mean {np.mean(flags):.2f})" if flags is not None else "")
            )
        print(f"{'':<21} steps {steps}, solver {estimator.solver}")


if __name__ == "__main__":
    main()
