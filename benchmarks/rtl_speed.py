"""Simulation speed and Verilog export time.

    python benchmarks/rtl_speed.py [--ops N]

Random operations (testbench.randomops, seed 7) on tiny and la464 through: the reference
model alone; the RTL alone and in cosim, in Amaranth's simulator (pysim) and compiled by
Verilator; then the time to export la464 to Verilog. Building a Verilator model is cached
and not counted (the first run builds it).
"""

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rtl.export import convert  # noqa: E402
from sw_model.geometry import load_geometry  # noqa: E402
from testbench.backends import make_backend  # noqa: E402
from testbench.randomops import RandomOps  # noqa: E402


def rate(geom, backend: str, sim: str, ops: int) -> float:
    be = make_backend(geom, backend, sim=sim)
    work = RandomOps(geom, seed=7).take(ops)
    start = time.perf_counter()
    for op in work:
        be.execute(op)
    elapsed = time.perf_counter() - start
    be.close()
    return ops / elapsed


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--ops", type=int, default=2000, help="ops per pysim run (x20 else)")
    args = parser.parse_args()
    print(f"{'geometry':8s} {'model':>9s} {'pysim rtl':>10s} {'pysim cosim':>12s} "
          f"{'verilator rtl':>14s} {'verilator cosim':>16s}   (ops/s)")
    for name in ("tiny", "la464"):
        geom = load_geometry(ROOT / "configs" / f"{name}.yaml")
        make_backend(geom, "rtl", sim="verilator").close()        # build (cached) first
        model = rate(geom, "model", "pysim", args.ops * 20)
        p_rtl = rate(geom, "rtl", "pysim", args.ops)
        p_cosim = rate(geom, "cosim", "pysim", args.ops)
        v_rtl = rate(geom, "rtl", "verilator", args.ops * 20)
        v_cosim = rate(geom, "cosim", "verilator", args.ops * 20)
        print(f"{name:8s} {model:9.0f} {p_rtl:10.0f} {p_cosim:12.0f} {v_rtl:14.0f} "
              f"{v_cosim:16.0f}   cosim: verilator {v_cosim / p_cosim:.0f}x pysim")
    geom = load_geometry(ROOT / "configs" / "la464.yaml")
    start = time.perf_counter()
    text = convert(geom)
    print(f"la464 export to Verilog: {time.perf_counter() - start:.1f} s "
          f"({len(text.splitlines())} lines)")


if __name__ == "__main__":
    main()
