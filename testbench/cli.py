"""The ``loongtlb`` command line (interfaces.md section 4).

Exit status: 0 success; 1 a check failed; 2 bad input, reported in one line on stderr; 3 an
internal error (one line; the traceback with LOONGTLB_DEBUG=1).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from loongtlb.sw_model.errors import InputError
from loongtlb.sw_model.geometry import load_geometry

from .backends import BACKENDS, SIMULATORS, make_backend, progress_bar, say

PROG = "loongtlb"


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line and exit status 2."""

    def error(self, message):
        raise InputError(message)


def _writable_target(path: str, what: str) -> str:
    """Fail early (before a long run) when an output path cannot be written."""
    if not path:
        raise InputError(f"the {what} path is empty")
    p = Path(path)
    if p.is_dir():
        raise InputError(f"{path}: {what} path is a directory")
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        raise InputError(f"{path}: cannot write {what}: no such directory {parent}")
    if not os.access(parent, os.W_OK) or (p.exists() and not os.access(p, os.W_OK)):
        raise InputError(f"{path}: cannot write {what}: permission denied")
    return path


def cmd_info(args) -> int:
    geom = load_geometry(args.config)
    print("\n".join(geom.summary()))
    return 0


def cmd_replay(args) -> int:
    from .replay import replay
    from .trace import load_trace

    geom = load_geometry(args.config)
    if args.backend == "qemu" and (args.vcd or args.sim != "pysim"):
        raise InputError("--backend qemu runs QEMU beside the model: --sim and --vcd do not "
                         "apply")
    if args.vcd is not None:
        _writable_target(args.vcd, "waveform")
    result = None
    exe = None
    if (args.backend == "rtl" and args.sim == "verilator" and not args.vcd
            and Path(args.trace).is_file()):
        from .verilator_backend import build, replay_file
        exe = build(geom, progress=say)        # before the clock starts: cached after once
    start = time.perf_counter()
    if exe is not None:
        # the harness parses and checks the trace itself; None: Python's parser decides
        result = replay_file(geom, args.trace, exe)
    if result is None:
        ops = load_trace(args.trace, geom)
        cpus = 1 + max((op.cpu for op in ops), default=0)
        backend = make_backend(geom, args.backend, cpus, sim=args.sim, vcd=args.vcd)
        batch = 4000 if args.backend == "qemu" else 1024      # one QEMU run per batch
        try:
            result = replay(ops, backend, args.trace, batch=batch, progress=progress_bar)
        finally:
            backend.close()
        if sys.stderr.isatty():
            print("", file=sys.stderr)          # end the progress bar's line
    elapsed = time.perf_counter() - start
    if not result.ok:
        print(f"FAIL {result.failure}", file=sys.stderr)
        return 1
    cpus = result.cpus
    rate = f"{result.ops / max(elapsed, 1e-9):,.0f} ops/s"
    clock = ""
    if result.cycles is not None:
        clock = f", {result.cycles:,} RTL cycles"
        rate += f", {result.cycles / max(elapsed, 1e-9):,.0f} cycles/s"
    print(f"ok {args.trace}: {result.ops} ops on {cpus} CPU{'s' if cpus > 1 else ''}, "
          f"{result.expects} expected values met, backend {args.backend}{clock}, "
          f"{elapsed:.2f} s ({rate})")
    if args.backend == "qemu":
        print(backend.summary())
    return 0


def cmd_export(args) -> int:
    from loongtlb.rtl.export import convert, format_of
    from .trace import write_lines

    geom = load_geometry(args.config)
    _writable_target(args.output, "output")
    fmt = format_of(args.output)
    start = time.perf_counter()
    text = convert(geom, fmt)
    write_lines(args.output, [text.rstrip("\n")])
    print(f"wrote {args.output}: {fmt} of {geom.name}, {len(text.splitlines())} lines, "
          f"{time.perf_counter() - start:.1f} s", file=sys.stderr)
    return 0


def _variant_path(path: str, variant: str, several: bool) -> str:
    """With several kernel variants, one output file each: NAME.VARIANT.EXT."""
    if not several:
        return path
    p = Path(path)
    return str(p.with_name(f"{p.stem}.{variant}{p.suffix}"))


def _readings(geom, choice: str | None, matrix: bool) -> list:
    """The geometry once per D4 reading asked for with --tlbfill-ne (default: its own)."""
    import dataclasses

    if choice is None:
        return [geom]
    if choice == "both":
        if not matrix:
            raise InputError("--tlbfill-ne both needs --matrix (one table per reading)")
        return [dataclasses.replace(geom, tlbfill_ne=r) for r in ("manual", "ignore")]
    return [dataclasses.replace(geom, tlbfill_ne=choice)]


def cmd_race(args) -> int:
    import json

    from loongtlb.sw_model.kernel.cpu import VARIANTS

    from .port import Recorder
    from .race import Race, format_table, parse_costs, summarize

    geom = load_geometry(args.config)
    costs = parse_costs(args.cost)
    geoms = _readings(geom, args.tlbfill_ne, args.matrix)
    if args.matrix:
        return _race_matrix(args, geoms)
    geom = geoms[0]
    race = Race(geom, args.scenario or "anon", args.access, args.cpus, args.backend, args.sim,
                args.prefault or "none", args.page_cache)
    variants = VARIANTS if args.kernel == "all" else (args.kernel,)
    several = len(variants) > 1
    if args.schedule == "exhaustive" and (args.trace or args.vcd):
        raise InputError("--trace and --vcd record one schedule: not with --schedule exhaustive")
    for path, what in ((args.trace, "trace"), (args.vcd, "waveform")):
        if path is not None:
            _writable_target(path, what)             # the path as given, then per variant
            for v in variants:
                _writable_target(_variant_path(path, v, several), what)
    if args.vcd and args.backend == "model":
        raise InputError("--vcd needs the rtl or cosim backend")

    def progress(count):
        if sys.stderr.isatty() and count % 50 == 0:
            print(f"\r{count} states", end="", file=sys.stderr, flush=True)

    reports = []
    start = time.perf_counter()
    for variant in variants:
        recorder = Recorder() if args.trace else None
        vcd = _variant_path(args.vcd, variant, several) if args.vcd else None
        results = race.run(variant, args.schedule, args.seed, recorder, vcd, progress)
        reports.append(summarize(race, variant, args.schedule, results))
        if recorder is not None:
            from .trace import write_lines
            path = _variant_path(args.trace, variant, several)
            write_lines(path, recorder.lines)
            say(f"wrote {path} ({len(recorder.lines)} ops)")
        if vcd:
            say(f"wrote {vcd}")
    elapsed = time.perf_counter() - start
    if sys.stderr.isatty() and args.schedule == "exhaustive":
        print("", file=sys.stderr)
    failed = any(r["violations"] or r["mismatches"] for r in reports)
    print(json.dumps(reports if several else reports[0], indent=2) if args.json
          else format_table(reports, costs, race))
    print(f"race: {elapsed:.2f} s", file=sys.stderr)
    return 1 if failed else 0


def _race_matrix(args, geoms) -> int:
    """race --matrix: every combination the kernel allows, under the three variants."""
    import json

    from .race import format_matrix, matrix_rows

    given = [flag for flag, value in (("--scenario", args.scenario), ("--access", args.access),
                                      ("--prefault", args.prefault),
                                      ("--page-cache", args.page_cache),
                                      ("--trace", args.trace), ("--vcd", args.vcd))
             if value is not None]
    if given or args.kernel != "all" or args.cpus != 2:
        flags = given + (["--kernel"] if args.kernel != "all" else []) + \
            (["--cpus"] if args.cpus != 2 else [])
        raise InputError(f"--matrix runs every scenario under every kernel on 2 CPUs: "
                         f"{', '.join(flags)} does not apply")

    def progress(text):
        if sys.stderr.isatty():
            print(f"\r\x1b[K{text}", end="", file=sys.stderr, flush=True)

    start = time.perf_counter()
    tables, reports = [], []
    for geom in geoms:
        rows = matrix_rows(geom, args.schedule, args.backend, args.sim, args.seed, progress)
        reports += rows
        tables.append(format_matrix(rows, geom))
    if sys.stderr.isatty():
        print("\r\x1b[K", end="", file=sys.stderr, flush=True)
    elapsed = time.perf_counter() - start
    print(json.dumps(reports, indent=2) if args.json else "\n\n".join(tables))
    print(f"race --matrix: {elapsed:.2f} s", file=sys.stderr)
    return 1 if any(r["violations"] or r["mismatches"] for r in reports) else 0


def cmd_fuzz(args) -> int:
    from .fuzz import fuzz, shrink, still_fails, trace_lines
    from .trace import write_lines

    geom = load_geometry(args.config)
    if args.ops < 1:
        raise InputError(f"--ops {args.ops}: must be at least 1")
    if args.oracle == "qemu":
        return _fuzz_qemu(args, geom)
    if not 1 <= args.cpus <= 8:
        raise InputError(f"--cpus {args.cpus}: must be 1 to 8")
    fail_path = f"fuzz-{geom.name}-{args.seed}.jsonl" if args.out is None else args.out
    _writable_target(fail_path, "failure trace")
    if args.vcd is not None:
        _writable_target(args.vcd, "waveform")
    start = time.perf_counter()
    result = fuzz(geom, args.ops, args.seed, args.cpus, args.backend, progress=progress_bar,
                  sim=args.sim)
    elapsed = time.perf_counter() - start
    if sys.stderr.isatty():
        print("", file=sys.stderr)
    print(result.coverage.table())
    if result.failure is None:
        print(f"ok {geom.name}: {result.done} ops, seed {args.seed}, backend {args.backend}, "
              f"0 mismatches, {elapsed:.1f} s ({result.done / elapsed:.0f} ops/s)")
        return 0
    print(f"FAIL {geom.name} seed {args.seed}: op {result.failed_at}: "
          f"{result.failure}")
    ops = result.ops
    header = f"loongtlb fuzz {geom.name} --seed {args.seed}: {result.failure}"
    write_lines(fail_path, trace_lines(ops, header))
    print(f"wrote {fail_path} ({len(ops)} ops up to the failure)")
    if args.shrink:
        small = shrink(geom, ops, args.cpus)
        short_path = fail_path.replace(".jsonl", "") + ".shrunk.jsonl"
        write_lines(short_path, trace_lines(small, header + " (shrunk)"))
        print(f"wrote {short_path} ({len(small)} ops still failing)")
        if args.vcd:
            still_fails(geom, small, args.cpus, vcd=args.vcd)     # shrink kept it failing
            print(f"wrote {args.vcd}")
    return 1


def _fuzz_qemu(args, geom) -> int:
    """fuzz --oracle qemu: the model against QEMU's TLB, differences judged by the rules of
    docs/spec/qemu.md."""
    from . import qemu
    from .fuzz import trace_lines
    from .trace import write_lines

    given = [flag for flag, value, default in (
        ("--backend", args.backend, "cosim"), ("--sim", args.sim, "pysim"),
        ("--cpus", args.cpus, 1), ("--vcd", args.vcd, None)) if value != default]
    if given:
        raise InputError(f"--oracle qemu compares the model with QEMU: {', '.join(given)} "
                         f"does not apply")
    qemu.check_geometry(geom)
    fail_path = f"fuzz-{geom.name}-{args.seed}.jsonl" if args.out is None else args.out
    _writable_target(fail_path, "failure trace")
    start = time.perf_counter()
    result = qemu.fuzz(geom, args.ops, args.seed, progress=progress_bar)
    elapsed = time.perf_counter() - start
    if sys.stderr.isatty():
        print("", file=sys.stderr)
    print(qemu.format_rules(result.rules, result.unobserved))
    if result.failure is None:
        print(f"ok {geom.name}: {result.done} ops, seed {args.seed}, oracle qemu "
              f"({result.runs} QEMU run{'s' if result.runs != 1 else ''}), 0 unexplained "
              f"differences, {elapsed:.1f} s "
              f"({result.done / elapsed:.0f} ops/s)")
        return 0
    print(f"FAIL {geom.name} seed {args.seed}: op {result.done}: {result.failure}")
    header = f"loongtlb fuzz {geom.name} --oracle qemu --seed {args.seed}: {result.failure}"
    write_lines(fail_path, trace_lines(result.ops, header))
    print(f"wrote {fail_path} ({len(result.ops)} ops up to the failure)")
    if args.shrink:
        small = qemu.shrink(geom, result.ops, key=result.key)
        short_path = fail_path.replace(".jsonl", "") + ".shrunk.jsonl"
        write_lines(short_path, trace_lines(small, header + " (shrunk)"))
        print(f"wrote {short_path} ({len(small)} ops still differing)")
    return 1


def cmd_synth(args) -> int:
    import json

    from .synth import SynthError, synthesize

    geom = load_geometry(args.config)
    if args.freq <= 0:
        raise InputError(f"--freq {args.freq:g}: must be positive")
    if args.workdir and Path(args.workdir).exists() and not Path(args.workdir).is_dir():
        raise InputError(f"{args.workdir}: --workdir is not a directory")
    try:
        report = synthesize(geom, args.target, args.device, args.speed, args.freq,
                            args.workdir, args.seed, progress=say, route=not args.no_route,
                            place=not args.no_place, router=args.router,
                            density=args.density)
    except SynthError as err:
        if args.json:
            print(json.dumps({"config": geom.name, "target": args.target, "error": str(err)}))
        print(f"FAIL {err}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(report.as_json(), indent=2))
    else:
        print("\n".join(report.lines()))
    return 0


#: the largest TLB ``prove`` takes: several properties mirror every slot
PROVE_MAX_ENTRIES = 64
#: cycles for BMC (each cycle past about 8 costs some four times the last on formal.yaml)
#: and for cover; prove takes each property's induction length
DEFAULT_DEPTH = {"bmc": 10, "cover": 20}


def cmd_prove(args) -> int:
    from .properties import PROPERTIES
    from .prove import check_tools, prove

    geom = load_geometry(args.config)
    if geom.total_entries > PROVE_MAX_ENTRIES:
        raise InputError(f"{args.config}: {geom.total_entries} entries: prove mirrors every "
                         f"slot in the solver, at most {PROVE_MAX_ENTRIES} "
                         "(configs/formal.yaml, configs/tiny.yaml)")
    if args.depth is not None and not 1 <= args.depth <= 200:
        raise InputError(f"--depth {args.depth}: must be 1 to 200")
    if args.timeout is not None and args.timeout <= 0:
        raise InputError(f"--timeout {args.timeout:g}: must be positive")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: --out is not a directory")
    check_tools()
    names = list(PROPERTIES) if args.property == "all" else [args.property]
    tty = sys.stderr.isatty()

    def progress(text):
        if tty:
            print(f"\r{text[:78]:78s}", end="", file=sys.stderr, flush=True)

    failed = 0
    print(f"prove {geom.name}: {len(names)} "
          f"propert{'y' if len(names) == 1 else 'ies'} (docs/formal.md)")
    for name in names:
        spec = PROPERTIES[name]
        mode = args.mode or spec.mode
        depth = args.depth or DEFAULT_DEPTH.get(mode, spec.depth)
        outcome = prove(geom, name, mode, depth, out, timeout=args.timeout, say=progress)
        if tty:
            print("\r" + " " * 78 + "\r", end="", file=sys.stderr, flush=True)
        print(outcome.line(), flush=True)
        failed += outcome.status == "FAIL"
    ok = len(names) - failed
    print(f"{'ok' if not failed else 'FAIL'}: {ok} of {len(names)} passed")
    return 1 if failed else 0


def build_parser() -> argparse.ArgumentParser:
    from .race import SCENARIOS

    parser = _Parser(prog=PROG, description="LoongArch TLB: RTL, reference model and the "
                     "Linux lost-race fault path")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("info", help="geometry summary")
    p.add_argument("config", help="a geometry YAML file (configs/*.yaml)")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("export", help="Verilog (.v) or RTLIL (.il) of the TLB unit")
    p.add_argument("config", help="a geometry YAML file")
    p.add_argument("-o", "--output", required=True, metavar="FILE",
                   help="FILE.v (Verilog) or FILE.il (RTLIL)")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("race", help="the kernel's lost-race fault path on several CPUs")
    p.add_argument("config", help="a geometry YAML file (GRLEN 64, 16 KiB pages)")
    p.add_argument("--scenario", choices=SCENARIOS, default=None,
                   help="anon (default), cow (a store race), file-private, file-shared")
    p.add_argument("--access", choices=("load", "store"), default=None,
                   help="the racing access (default load; store for cow)")
    p.add_argument("--prefault", choices=("none", "read"), default=None,
                   help="read: every CPU reads the page before the race (default none)")
    p.add_argument("--page-cache", choices=("cold", "warm"), default=None,
                   help="file scenarios: the file's pages cached or not (default cold)")
    p.add_argument("--kernel", choices=("pre-series", "mm-only", "full-series", "all"),
                   default="all", help="kernel variant (default all three)")
    p.add_argument("--cpus", type=int, default=2, help="racing CPUs, 2 to 8 (default 2)")
    p.add_argument("--schedule", choices=("canonical", "random", "exhaustive"),
                   default="canonical", help="default canonical; exhaustive needs 2 CPUs")
    p.add_argument("--seed", type=int, default=1, help="random schedule seed (default 1)")
    p.add_argument("--backend", choices=BACKENDS, default="cosim", help="default cosim")
    p.add_argument("--sim", choices=SIMULATORS, default="pysim", help="default pysim")
    p.add_argument("--matrix", action="store_true",
                   help="every combination the kernel allows, under the three variants")
    p.add_argument("--tlbfill-ne", choices=("manual", "ignore", "both"), default=None,
                   help="override the geometry's tlbfill_ne (D4); both: a matrix per reading")
    p.add_argument("--json", action="store_true", help="print the JSON report only")
    p.add_argument("--trace", metavar="OUT", help="write the TLB-level trace of every CPU")
    p.add_argument("--vcd", metavar="FILE", help="waveform (rtl and cosim backends)")
    p.add_argument("--cost", metavar="KIND=CYCLES,...",
                   help="modelled cycles per exception kind (defaults in README)")
    p.set_defaults(func=cmd_race)

    p = sub.add_parser("fuzz", help="constrained-random operations: the RTL against the model, "
                       "or the model against QEMU")
    p.add_argument("config", help="a geometry YAML file")
    p.add_argument("--ops", type=int, default=10000, help="operations (default 10000)")
    p.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    p.add_argument("--cpus", type=int, default=1, help="TLBs, 1 to 8 (default 1)")
    p.add_argument("--backend", choices=("rtl", "cosim"), default="cosim",
                   help="default cosim")
    p.add_argument("--sim", choices=SIMULATORS, default="pysim", help="default pysim")
    p.add_argument("--oracle", choices=("model", "qemu"), default="model",
                   help="what the run is checked against: model (the RTL against the model, "
                   "default) or qemu (the model against QEMU's TLB, la464 only)")
    p.add_argument("--shrink", action="store_true", help="shrink a failing run to a short trace")
    p.add_argument("--vcd", metavar="FILE", help="waveform of the shrunk failing trace")
    p.add_argument("--out", metavar="FILE", help="where a failing run's trace goes "
                   "(default fuzz-NAME-SEED.jsonl)")
    p.set_defaults(func=cmd_fuzz)

    p = sub.add_parser("synth", help="FPGA resources and Fmax (Yosys and nextpnr, the fpga "
                       "extra)")
    p.add_argument("config", help="a geometry YAML file")
    p.add_argument("--target", choices=("ecp5", "ice40"), required=True, help="FPGA family")
    p.add_argument("--device", help="ecp5: 25k 45k 85k ... (default 85k); ice40: hx1k hx8k "
                   "up5k ... (default hx8k)")
    p.add_argument("--speed", help="ECP5 speed grade 6, 7 or 8 (default 8)")
    p.add_argument("--freq", type=float, default=100.0, metavar="MHZ",
                   help="the clock nextpnr aims for (default 100)")
    p.add_argument("--seed", type=int, default=1, help="placer seed")
    p.add_argument("--router", choices=("router1", "router2"), default="router1",
                   help="nextpnr's router (default router1, which routes every preset)")
    p.add_argument("--density", type=float, metavar="D",
                   help="the placer's highest placement density, 0.3 to 1.0 (nextpnr's "
                   "default 0.9; lower spreads the logic, for routability)")
    p.add_argument("--workdir", metavar="DIR", help="keep netlists, logs and reports here")
    p.add_argument("--no-route", action="store_true",
                   help="stop after placement: Fmax is nextpnr's estimate (large designs)")
    p.add_argument("--no-place", action="store_true",
                   help="stop after Yosys: resources and the deepest paths, no Fmax (minutes "
                   "where la464 places and routes for hours)")
    p.add_argument("--json", action="store_true", help="print the JSON report only")
    p.set_defaults(func=cmd_synth)

    from .properties import PROPERTIES
    p = sub.add_parser("prove", help="formal properties of the RTL (SymbiYosys and yices, the "
                       "formal extra)")
    p.add_argument("config", help="a geometry YAML file (configs/formal.yaml)")
    p.add_argument("--property", choices=("all", *PROPERTIES), default="all",
                   help="one property, or all (default)")
    p.add_argument("--mode", choices=("bmc", "prove", "cover"),
                   help="prove: k-induction; bmc: every sequence up to --depth cycles; cover: "
                   "every cover reachable (default: each property's, prove)")
    p.add_argument("--depth", type=int, help="induction length or cycles (default 6 for "
                   "prove, 10 for bmc, 20 for cover)")
    p.add_argument("--timeout", type=float, metavar="SECONDS",
                   help="stop each property after this long and report the depth reached")
    p.add_argument("--out", default="prove-out", metavar="DIR",
                   help="where counterexamples go, as PROPERTY.vcd and PROPERTY.jsonl "
                   "(default prove-out)")
    p.set_defaults(func=cmd_prove)

    p = sub.add_parser("replay", help="run a trace and check every expect")
    p.add_argument("config", help="a geometry YAML file")
    p.add_argument("trace", help="a JSON Lines trace (docs/spec/interfaces.md section 3)")
    p.add_argument("--backend", choices=BACKENDS + ("qemu",), default="cosim",
                   help="default cosim; qemu: QEMU's LoongArch TLB beside the model "
                   "(la464 only, docs/spec/qemu.md)")
    p.add_argument("--sim", choices=SIMULATORS, default="pysim", help="default pysim")
    p.add_argument("--vcd", metavar="FILE", help="write a waveform (pysim)")
    p.set_defaults(func=cmd_replay)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        return args.func(args)
    except InputError as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # stdout closed by the reader (``| head``): stop quietly, and keep Python's own
        # flush at exit from failing again
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except Exception as err:                                    # a bug of the tool
        if os.environ.get("LOONGTLB_DEBUG") == "1":
            raise
        where = err.__traceback__
        while where.tb_next is not None:
            where = where.tb_next
        place = f"{Path(where.tb_frame.f_code.co_filename).name}:{where.tb_lineno}"
        text = str(err).splitlines()[0][:200] if str(err) else ""
        print(f"{PROG}: internal error: {type(err).__name__} at {place}"
              f"{': ' + text if text else ''} (LOONGTLB_DEBUG=1 shows the traceback)",
              file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main())
