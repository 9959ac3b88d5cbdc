"""Simulation speed and Verilog export time.

    python benchmarks/rtl_speed.py [--ops N] [--replay-ops M] [--markdown FILE]

Random operations (testbench.randomops, seed 7) on tiny and la464 through: the reference
model alone; the RTL alone and in cosim, in Amaranth's simulator (pysim) and compiled by
Verilator, one op per exchange; then ``loongtlb replay --backend rtl --sim verilator`` of an
M-op trace with every expect (default 1,000,000), end to end in a fresh process, where the
harness parses and checks the trace itself, with the RTL clock cycles it reports (per op
and per second), and the same for a trace on two CPUs, which the harness runs side by
side; then the time to export la464 to Verilog. ``--markdown FILE`` writes the table as
docs/performance.md carries it.
Building a Verilator model is cached and not counted (the first run builds it); writing the
replay trace (with the model) is not counted either.
"""

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from loongtlb.rtl.export import convert  # noqa: E402
from loongtlb.sw_model.geometry import load_geometry  # noqa: E402
from loongtlb.testbench.backends import make_backend  # noqa: E402
from loongtlb.testbench.backends import ModelBackend
from loongtlb.testbench.port import Recorder  # noqa: E402
from loongtlb.testbench.randomops import RandomOps  # noqa: E402
from loongtlb.testbench.trace import write_lines  # noqa: E402


def rate(geom, backend: str, sim: str, ops: int) -> float:
    be = make_backend(geom, backend, sim=sim)
    work = RandomOps(geom, seed=7).take(ops)
    start = time.perf_counter()
    for op in work:
        be.execute(op)
    elapsed = time.perf_counter() - start
    be.close()
    return ops / elapsed


def pipe_round_trip(n: int = 20_000) -> float:
    """Microseconds per one-byte round trip through a pipe to ``cat`` and back: what bounds
    the Verilator backends that exchange each op (``verilator rtl`` and ``cosim``) on this
    machine, whatever the design."""
    proc = subprocess.Popen(["cat"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0)
    start = time.perf_counter()
    for _ in range(n):
        proc.stdin.write(b"x")
        proc.stdout.read(1)
    elapsed = time.perf_counter() - start
    proc.stdin.close()
    proc.wait()
    return elapsed / n * 1e6


def replay_rate(geom, ops: int, workdir: str, cpus: int = 1) -> tuple[float, int]:
    """End-to-end ops/s of replay (rtl, verilator) of an ``ops``-op trace with expects on
    ``cpus`` CPUs, and the RTL clock cycles the replay reports."""
    path = Path(workdir) / f"{geom.name}-{ops}-{cpus}.jsonl"
    model, recorder = ModelBackend(geom, cpus), Recorder()
    for op in RandomOps(geom, seed=7, cpus=cpus).take(ops):
        recorder.record(op, model.execute(op))
    write_lines(path, recorder.lines)
    cmd = [sys.executable, "-m", "loongtlb.testbench.cli", "replay", geom.source, str(path),
           "--backend", "rtl", "--sim", "verilator"]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"replay failed: {proc.stdout}{proc.stderr}")
    cycles = re.search(r"([\d,]+) RTL cycles", proc.stdout)
    if cycles is None:
        raise SystemExit(f"replay reported no cycle count: {proc.stdout}")
    return ops / elapsed, int(cycles.group(1).replace(",", ""))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--ops", type=int, default=2000, help="ops per pysim run (x20 else)")
    parser.add_argument("--replay-ops", type=int, default=1_000_000,
                        help="ops in the replayed trace")
    parser.add_argument("--markdown", metavar="FILE", help="also write the table as markdown")
    args = parser.parse_args()
    rows = []
    print(f"{'geometry':8s} {'model':>9s} {'pysim rtl':>10s} {'pysim cosim':>12s} "
          f"{'verilator rtl':>14s} {'verilator cosim':>16s} {'verilator replay':>17s} "
          f"{'replay, 2 CPUs':>15s}   (ops/s)")
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("tiny", "la464"):
            geom = load_geometry(ROOT / "configs" / f"{name}.yaml")
            make_backend(geom, "rtl", sim="verilator").close()      # build (cached) first
            model = rate(geom, "model", "pysim", args.ops * 20)
            p_rtl = rate(geom, "rtl", "pysim", args.ops)
            p_cosim = rate(geom, "cosim", "pysim", args.ops)
            v_rtl = rate(geom, "rtl", "verilator", args.ops * 20)
            v_cosim = rate(geom, "cosim", "verilator", args.ops * 20)
            v_replay, cycles = replay_rate(geom, args.replay_ops, tmp)
            v_replay2, _cycles = replay_rate(geom, args.replay_ops, tmp, cpus=2)
            print(f"{name:8s} {model:9.0f} {p_rtl:10.0f} {p_cosim:12.0f} {v_rtl:14.0f} "
                  f"{v_cosim:16.0f} {v_replay:17.0f} {v_replay2:15.0f}")
            print(f"{'':8s} ratios: verilator/pysim rtl {v_rtl / p_rtl:.0f}x, cosim "
                  f"{v_cosim / p_cosim:.0f}x; replay/pysim rtl {v_replay / p_rtl:.0f}x; "
                  f"model/verilator cosim {model / v_cosim:.1f}x", flush=True)
            per_op = cycles / args.replay_ops
            print(f"{'':8s} replay: {cycles:,} RTL cycles, {per_op:.2f} per op, "
                  f"{v_replay * per_op:,.0f} cycles/s end to end", flush=True)
            rows.append(f"| {name} | {model:,.0f} | {p_rtl:,.0f} | {p_cosim:,.0f} | "
                        f"{v_rtl:,.0f} | {v_cosim:,.0f} | {v_replay:,.0f} | {v_replay2:,.0f} | "
                        f"{per_op:.2f} |")
    geom = load_geometry(ROOT / "configs" / "la464.yaml")
    start = time.perf_counter()
    text = convert(geom)
    export = time.perf_counter() - start
    print(f"la464 export to Verilog: {export:.1f} s ({len(text.splitlines())} lines)")
    pipe = pipe_round_trip()
    print(f"a pipe round trip to another process: {pipe:.1f} us")
    if args.markdown:
        Path(args.markdown).write_text(
            "| geometry | model | pysim rtl | pysim cosim | verilator rtl | verilator cosim "
            "| verilator replay | replay, 2 CPUs | RTL cycles per op |\n"
            "|---|---|---|---|---|---|---|---|---|\n" + "\n".join(rows) + "\n\n"
            f"Operations per second: {args.ops * 20:,} random ops (model, Verilator), "
            f"{args.ops:,} (pysim), one op per exchange; replay: a {args.replay_ops:,}-op "
            f"trace end to end. la464 exports to Verilog in {export:.1f} s "
            f"({len(text.splitlines()):,} lines). A pipe round trip to another process took "
            f"{pipe:.0f} us on this machine, which bounds the Verilator backends that "
            f"exchange each op.\n")


if __name__ == "__main__":
    main()
