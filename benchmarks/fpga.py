"""FPGA resources and Fmax of the presets against the targets of issue #6.

    python benchmarks/fpga.py [--configs la32r la464] [--latency 1|2|3] [--no-route | --no-place]
                              [--workdir DIR] [--json FILE]

Each preset goes through ``loongtlb synth`` (YoWASP Yosys and nextpnr, the fpga extra) on an
ECP5-85, speed grade 8, out of context. la32r takes about 4 minutes on a 2-core machine and
la464 well over an hour: this is not a CI job. Targets:

- la464: at least 100 MHz, with the STLB in block RAM;
- la32r: at most 6,860 LUT4s (openLA500's 32-entry TLB on the same flow) at 150 MHz or more.
"""

import argparse
import dataclasses
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from loongtlb.testbench.synth import synthesize  # noqa: E402
from loongtlb.sw_model.geometry import load_geometry  # noqa: E402

TARGETS = {
    "la464": lambda r: ((r.fmax_mhz or 0) >= 100 and r.brams > 0, "100 MHz, STLB in block RAM"),
    "la32r": lambda r: ((r.fmax_mhz or 0) >= 150 and r.lut_sites <= 6860,
                        "<= 6,860 LUT4 sites (LUT RAMs included), 150 MHz"),
}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--configs", nargs="+", default=["la32r", "la464"])
    parser.add_argument("--workdir", help="keep each run's files in DIR/NAME")
    parser.add_argument("--latency", type=int, choices=(1, 2, 3),
                        help="override the presets' lookup_latency")
    parser.add_argument("--no-route", action="store_true",
                        help="stop after placement (Fmax estimated; la464 routes for hours)")
    parser.add_argument("--no-place", action="store_true",
                        help="stop after Yosys: resources and the deepest paths only")
    parser.add_argument("--json", help="also write the reports to this file")
    parser.add_argument("--markdown", metavar="FILE", help="also write a markdown table")
    args = parser.parse_args()
    reports, rows = [], []
    for name in args.configs:
        geom = load_geometry(ROOT / "configs" / f"{name}.yaml")
        if args.latency:
            geom = dataclasses.replace(geom, lookup_latency=args.latency)
        work = str(Path(args.workdir) / name) if args.workdir else None
        report = synthesize(geom, "ecp5", "85k", "8", workdir=work, route=not args.no_route,
                            place=not args.no_place,
                            progress=lambda s: print(s, file=sys.stderr, flush=True))
        print("\n".join(report.lines()))
        if name in TARGETS:
            met, text = TARGETS[name](report)
            print(f"  target       {text}: {'met' if met else 'NOT met'}")
        reports.append(report.as_json())
        rows.append(_row(name, geom, report.as_json()))
        sys.stdout.flush()
    if args.markdown:
        Path(args.markdown).write_text(
            "| preset | lookup latency | LUT4 sites (LUT RAMs) | FFs | block RAMs | Fmax | "
            "deepest path (levels) |\n|---|---|---|---|---|---|---|\n" + "\n".join(rows)
            + "\n")
    if args.json:
        Path(args.json).write_text(json.dumps(reports, indent=2) + "\n")


def _row(name, geom, r) -> str:
    fmax = (f"{r['fmax_mhz']:.1f} MHz" + ("" if r.get("routed") else ", placed")
            if r.get("fmax_mhz") else "not placed")
    deepest = r.get("depth", {}).get("paths", [{}])[0]
    path = (f"{deepest['levels']}: {deepest['from']} -> {deepest['to']}" if deepest else "-")
    return (f"| {name} | {geom.lookup_latency} | {r['lut_sites']:,} ({r.get('lut_rams', 0)}) | "
            f"{r['ffs']:,} | {r['brams']} | {fmax} | {path} |")


if __name__ == "__main__":
    main()
