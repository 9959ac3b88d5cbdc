"""The formal properties in full (``loongtlb prove``): every property on configs/formal.yaml
(and with lookup latency 2 and 3, and round-robin replacement), every property on tiny under a
time limit, and which property kills each seeded bug.

    python benchmarks/formal.py [--limit SECONDS] [--no-tiny] [--no-mutants] [--markdown FILE]

Per property: the mode, the result (proved by k-induction, or the base case's depth when the
time limit stops it), the seconds, and on configs/formal.yaml whether its cover is reached.
``--limit`` bounds each tiny run (default 600).
``--markdown FILE`` writes the tables docs/formal-results.md carries. Exit 1 when a property
fails on the correct RTL or a seeded bug survives.
"""

import argparse
import dataclasses
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import mutants  # noqa: E402

from loongtlb.sw_model.geometry import load_geometry  # noqa: E402
from loongtlb.testbench.properties import PROPERTIES  # noqa: E402
from loongtlb.testbench.prove import prove  # noqa: E402


def result(outcome) -> str:
    return {"proved": f"proved (k-induction, k = {outcome.depth})",
            "bounded": f"base case to {outcome.depth} cycles; induction did not close",
            "TIMEOUT": f"no failure to {outcome.reached} cycles (time limit)",
            "FAIL": f"FAIL: {outcome.detail}"}[outcome.status]


def properties(config: str, limit: float | None, covers: bool = False,
               **changes) -> tuple[list[str], bool]:
    geom = dataclasses.replace(load_geometry(ROOT / "configs" / f"{config}.yaml"), **changes)
    label = " ".join([config, *(f"{k} {v}" for k, v in changes.items())])
    rows, ok = [], True
    for name, prop in PROPERTIES.items():
        with tempfile.TemporaryDirectory() as out:
            outcome = prove(geom, name, prop.mode, prop.depth, Path(out), timeout=limit)
            cover = prove(geom, name, "cover", 20, Path(out)) if covers else None
        ok &= outcome.status != "FAIL" and (cover is None or cover.status == "covered")
        reached = "-" if cover is None else (
            f"reached ({cover.seconds:.0f} s)" if cover.status == "covered" else "NOT reached")
        rows.append(f"| {name} | {label} | {prop.mode} | {result(outcome)} | "
                    f"{outcome.seconds:.0f} | {reached} |")
        print(rows[-1], flush=True)
    return rows, ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=float, default=600.0,
                        help="seconds per property on tiny (600)")
    parser.add_argument("--no-tiny", action="store_true", help="skip the tiny runs")
    parser.add_argument("--no-mutants", action="store_true", help="skip the seeded bugs")
    parser.add_argument("--no-formal", action="store_true",
                        help="skip the properties on configs/formal.yaml and its variants")
    parser.add_argument("--markdown", metavar="FILE", help="also write the tables as markdown")
    args = parser.parse_args()
    head = ("| property | geometry | mode | result | seconds | its cover |\n"
            "|---|---|---|---|---|---|")
    print(head)
    start = time.monotonic()
    rows, ok = ([], True) if args.no_formal else properties("formal", None, covers=True)
    formal_seconds = time.monotonic() - start
    for changes in ({"lookup_latency": 2}, {"lookup_latency": 3}, {"policy": "round_robin"}):
        if args.no_formal:
            break
        more, more_ok = properties("formal", None, **changes)
        rows += more
        ok &= more_ok
    tiny = []
    if not args.no_tiny:
        tiny, tiny_ok = properties("tiny", args.limit)
        ok &= tiny_ok
    bugs = []
    if not args.no_mutants:
        print("| seeded bug | killed by |\n|---|---|")
        for bug in mutants.BUGS:
            caught = mutants.hunt_prove(bug, 6)
            ok &= caught is not None
            bugs.append(f"| {bug.name} | {caught or 'SURVIVED'} |")
            print(bugs[-1], flush=True)
    if args.markdown:
        text = ["# Formal results", "",
                "Written by `python benchmarks/formal.py "
                f"--limit {args.limit:g} --markdown docs/formal-results.md` "
                "([formal.md](formal.md) says what each property asserts).", "",
                f"All properties on configs/formal.yaml: {formal_seconds:.0f} s on this "
                "2-core machine.", "", head, *rows, *tiny]
        if bugs:
            killed = sum("SURVIVED" not in b for b in bugs)
            text += ["", f"Seeded bugs (benchmarks/mutants.py): {killed} of {len(bugs)} "
                     "killed. Each runs the properties in the order of `PROVE_ORDER` on "
                     "configs/formal.yaml, then under `tlbfill_ne: ignore`, until one fails; "
                     "the seconds count from the bug's first property.", "",
                     "| seeded bug | killed by |", "|---|---|", *bugs]
        Path(args.markdown).write_text("\n".join(text) + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
