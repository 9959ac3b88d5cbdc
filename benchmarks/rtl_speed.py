"""RTL speed in Amaranth's simulator, and Verilog export time.

    python benchmarks/rtl_speed.py [--ops N]

Prints cosim operations per second (random operations, model and RTL in lock step) on tiny
and la464, the cycles the simulator ran, and the time `loongtlb export` takes for la464.
Targets (issue #3): 1,000 cosim ops/s on tiny, 300 on la464, export of la464 in 10 s.
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


def cosim_rate(name: str, ops: int) -> None:
    geom = load_geometry(ROOT / "configs" / f"{name}.yaml")
    start = time.perf_counter()
    backend = make_backend(geom, "cosim")
    built = time.perf_counter() - start
    work = RandomOps(geom, seed=7).take(ops)
    start = time.perf_counter()
    for op in work:
        backend.execute(op)
    elapsed = time.perf_counter() - start
    cycles = backend.rtl.cycles
    print(f"{name:6s} cosim {ops / elapsed:7.0f} ops/s  ({cycles / elapsed:6.0f} cycles/s, "
          f"{cycles / ops:.1f} cycles/op; simulator built in {built:.1f} s)")
    backend.close()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--ops", type=int, default=3000)
    args = parser.parse_args()
    for name in ("tiny", "la464"):
        cosim_rate(name, args.ops)
    geom = load_geometry(ROOT / "configs" / "la464.yaml")
    start = time.perf_counter()
    text = convert(geom)
    print(f"la464  export {time.perf_counter() - start:.1f} s ({len(text.splitlines())} lines "
          f"of Verilog)")


if __name__ == "__main__":
    main()
