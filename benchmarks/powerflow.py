"""Time per power-flow step: plain runpp, runpp with recycle, and the fast path.

Usage: python benchmarks/powerflow.py [--steps N]

All three solve the same sequence of varying bus injections on the same grids, after a
warm-up; the table gives microseconds per step, the speed-up over plain runpp, and the
largest voltage difference to runpp over the sequence (so a fast but wrong path shows).
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import pandapower as pp

from benchmarks.run_year import machine
from models.grid import prepare_net
from models.gridnet import load_net
from models.powerflow import FastSolver

GRIDS = ("1-LV-rural1--0-sw", "1-MV-rural--0-sw", "case33bw", "case118")


def injections(spec: str, steps: int, seed: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """(steps, n_bus) MW/Mvar injections: the grid's own loads scaled randomly."""
    net = load_net(spec)
    pos = {bus: i for i, bus in enumerate(net.bus.index)}
    base_p = np.zeros(len(pos))
    base_q = np.zeros(len(pos))
    np.add.at(base_p, [pos[b] for b in net.load["bus"]], -net.load["p_mw"].to_numpy())
    np.add.at(base_q, [pos[b] for b in net.load["bus"]], -net.load["q_mvar"].to_numpy())
    factor = np.random.default_rng(seed).uniform(0.3, 1.3, (steps, 1))
    return base_p * factor, base_q * factor


def time_runpp(spec: str, p: np.ndarray, q: np.ndarray, **options) -> tuple[float, np.ndarray]:
    net, injection = prepare_net(spec)
    pp.runpp(net, **{k: v for k, v in options.items() if k != "recycle"})  # warm-up
    vm = np.empty_like(p)
    started = time.perf_counter()
    for k in range(len(p)):
        net.sgen.loc[injection, "p_mw"] = p[k]
        net.sgen.loc[injection, "q_mvar"] = q[k]
        pp.runpp(net, **options)
        vm[k] = net.res_bus["vm_pu"].to_numpy()
    return (time.perf_counter() - started) / len(p), vm


def time_fast(spec: str, p: np.ndarray, q: np.ndarray) -> tuple[float, np.ndarray]:
    net, injection = prepare_net(spec)
    solver = FastSolver(net, injection)
    solver.solve(p[0], q[0])  # warm-up
    vm = np.empty_like(p)
    started = time.perf_counter()
    for k in range(len(p)):
        vm[k] = solver.solve(p[k], q[k]).vm_pu
    return (time.perf_counter() - started) / len(p), vm


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    print(f"machine: {machine()}")
    header = (
        f"{'grid':<20} {'buses':>5} {'method':<22} {'us/step':>10} {'speed-up':>9} "
        f"{'max|dV| pu':>11}"
    )
    print(header)
    print("-" * len(header))
    for spec in GRIDS:
        p, q = injections(spec, args.steps)
        base_s, base_vm = time_runpp(spec, p, q)
        recycle = {"bus_pq": True, "trafo": False, "gen": False}
        rec_s, rec_vm = time_runpp(spec, p, q, recycle=recycle)
        fast_p, fast_q = injections(spec, args.steps * 10)
        fast_s, _ = time_fast(spec, fast_p, fast_q)
        _, fast_vm = time_fast(spec, p, q)
        n_bus = p.shape[1]
        for label, seconds, vm in (
            ("runpp", base_s, base_vm),
            ("runpp + recycle", rec_s, rec_vm),
            ("fast path", fast_s, fast_vm),
        ):
            dv = np.nanmax(np.abs(vm - base_vm))
            print(
                f"{spec:<20} {n_bus:>5} {label:<22} {seconds * 1e6:>10.0f} "
                f"{base_s / seconds:>8.1f}x {dv:>11.1e}"
            )


if __name__ == "__main__":
    main()
