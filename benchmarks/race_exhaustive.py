"""Exhaustive two-CPU races: every combination of ``race --matrix`` under every scheduling
at the kernel's scheduling points (decisions.md K5), on the reference model.

    python benchmarks/race_exhaustive.py [--config configs/tiny.yaml]
                                         [--tlbfill-ne manual|ignore|both] [--only SCENARIO]
                                         [--markdown FILE]

Prints a row per combination and variant: schedules, distinct states explored, replays run,
seconds, the mean exceptions per schedule of each CPU, the largest total of one schedule,
and the invariant violations found. Exit status 1 when any schedule broke an invariant or
full-series took more exceptions per schedule, by the mean, than another variant: either is
a finding for README.
``--markdown FILE`` also writes the table as markdown (docs/race-exhaustive.md is made so).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from loongtlb.sw_model.geometry import load_geometry  # noqa: E402
from loongtlb.sw_model.kernel.cpu import VARIANTS  # noqa: E402
from loongtlb.testbench.race import Race, combinations, summarize  # noqa: E402


def _mean(cpu: dict) -> str:
    return " ".join(f"{k} {v:g}" for k, v in cpu.get("mean", cpu["exceptions"]).items()) or "-"


def table(geom, only: str | None) -> tuple[list[str], int]:
    """The rows for one geometry (one D4 reading), printed as they come; and the number of
    violations and mismatches found."""
    header = ("| scenario | access | prefault | page cache | kernel | schedules | states | "
              "replays | s | cpu 0 mean | cpu 1 mean | max | violations |")
    rows = [header, "|" + "---|" * 13]
    print(f"exhaustive 2-CPU races on {geom.name}, tlbfill_ne {geom.tlbfill_ne}, model")
    print(header)
    failures = 0
    for scenario, access, prefault, cache in combinations():
        if only and scenario != only:
            continue
        race = Race(geom, scenario, access, 2, "model", prefault=prefault, page_cache=cache)
        means = {}
        for variant in VARIANTS:
            start = time.perf_counter()
            summary = race.run(variant, "exhaustive")
            seconds = time.perf_counter() - start
            r = summarize(race, variant, "exhaustive", summary)
            failures += r["violation_count"] + r["mismatches"]
            row = (f"| {scenario} | {access} | {prefault} | {cache or '-'} | {variant} | "
                   f"{r['schedules']} | {summary.states} | {summary.runs} | {seconds:.1f} | "
                   f"{_mean(r['cpus'][0])} | {_mean(r['cpus'][1])} | {r['exceptions_max']} | "
                   f"{r['violation_count']} |")
            rows.append(row)
            print(row, flush=True)
            for text in r["violations"]:
                print(f"  violation: {text}", flush=True)
            means[variant] = r["exceptions_mean"]
        for other in VARIANTS[:-1]:      # K4: the series saves exceptions, never adds any
            if means["full-series"] > means[other]:
                failures += 1
                print(f"  FINDING: full-series takes more exceptions per schedule than "
                      f"{other} ({means['full-series']} > {means[other]})", flush=True)
    return rows, failures


def main(argv=None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", default=str(ROOT / "configs" / "tiny.yaml"))
    parser.add_argument("--tlbfill-ne", choices=("manual", "ignore", "both"), default=None,
                        help="D4 reading (default: the geometry's)")
    parser.add_argument("--only", help="one scenario (anon, cow, file-private, file-shared)")
    parser.add_argument("--markdown", metavar="FILE")
    args = parser.parse_args(argv)
    geom = load_geometry(args.config)
    readings = {None: [geom.tlbfill_ne], "both": ["manual", "ignore"]}.get(
        args.tlbfill_ne, [args.tlbfill_ne])
    parts, failures = [], 0
    start = time.perf_counter()
    for reading in readings:
        rows, failed = table(dataclasses.replace(geom, tlbfill_ne=reading), args.only)
        failures += failed
        parts.append(f"`tlbfill_ne: {reading}`\n\n" + "\n".join(rows))
    total = time.perf_counter() - start
    print(f"{total:.0f} s in all")
    if args.markdown:
        flags = " ".join(f for f in (f"--tlbfill-ne {args.tlbfill_ne}" if args.tlbfill_ne
                                      else "", f"--only {args.only}" if args.only else "") if f)
        Path(args.markdown).write_text(
            f"# Exhaustive two-CPU races\n\nEvery schedule of every combination of `race "
            f"--matrix` at the scheduling points of decisions.md K5, on `{geom.name}`, "
            f"reference model, made by `python benchmarks/race_exhaustive.py {flags}`"
            f" ({total:.0f} s in all on the 2-core development machine). *schedules*: "
            "complete interleavings; *states*: distinct states the search expanded; "
            "*replays*: prefixes it ran; the means are exceptions per schedule; *max*: the "
            "most exceptions one schedule took on both CPUs; *violations*: schedules that "
            "broke an invariant (wrong page, multi-hit, livelock, deadlock).\n\n"
            + "\n\n".join(parts) + "\n")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
