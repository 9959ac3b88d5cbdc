"""Seeded RTL bugs: does the regression catch each one? Do the formal properties?

    python benchmarks/mutants.py [--ops N]
    python benchmarks/mutants.py --prove [--depth K]

Each bug is a one-place patch of the RTL source, applied to a copy of the ``rtl`` package
loaded under another name at run time: the product code carries no bug switches. The
regression runs against each variant until its first detection: the hand-written traces in
cosim, then seeded random cosim runs on several geometries. With ``--prove``, the properties
of ``loongtlb prove`` run on configs/formal.yaml (then under D4's other reading) until one
fails, and its counterexample is replayed in cosim against the same bug. One line per bug,
then ``killed K of N``.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import types
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import loongtlb.rtl.layouts  # noqa: E402
import loongtlb.rtl.util  # noqa: E402
from loongtlb.sw_model.geometry import load_geometry  # noqa: E402
from loongtlb.testbench.backends import make_backend  # noqa: E402
from loongtlb.testbench.fuzz import fuzz  # noqa: E402
from loongtlb.testbench.replay import replay  # noqa: E402
from loongtlb.testbench.trace import load_trace  # noqa: E402


@dataclass(frozen=True)
class Bug:
    name: str
    file: str            # module of the rtl package
    old: str             # text that occurs exactly once there
    new: str


#: the line of rtl/match.py that makes an entry's hit, up to its page compare
_HIT = "hits.append(self.e[i] & (tag.g | self.asid_eq[i]) & "

BUGS = [
    Bug("match ignores G", "match", _HIT, "hits.append(self.e[i] & self.asid_eq[i] & "),
    Bug("match ignores ASID", "match", _HIT, "hits.append(self.e[i] & (tag.g | 1) & "),
    Bug("match ignores E", "match", _HIT, "hits.append((tag.g | self.asid_eq[i]) & "),
    Bug("even/odd chosen by VA[12]", "pagesize", "{p: self.va[p] for p in shifts}",
        "{p: self.va[12] for p in shifts}"),
    Bug("STLB set index one bit high", "pagesize",
        "table = {p: self.vpn[p - 12:p - 12 + g.set_bits] for p in shifts}",
        "table = {p: self.vpn[p - 11:p - 11 + g.set_bits] for p in shifts}"),
    Bug("page mask off by one", "pagesize", "if p - 12 <= lo)", "if p - 11 <= lo)"),
    Bug("NE not inverted on TLBWR/TLBFILL", "operands",
        "e = istlbr | ~csr.TLBIDX.NE", "e = istlbr | csr.TLBIDX.NE"),
    Bug("TLBFILL follows NE under tlbfill_ne ignore", "operands",
        "if g.tlbfill_ne == \"ignore\":", "if g.tlbfill_ne == \"never\":"),
    Bug("TLBFILL ignores NE under tlbfill_ne manual", "operands",
        "if g.tlbfill_ne == \"ignore\":", "if True:"),
    Bug("refill-context bank switch missing", "operands",
        "entry.tag.vppn.eq(Mux(istlbr, csr.TLBREHI.VPPN, csr.TLBEHI.VPPN))",
        "entry.tag.vppn.eq(csr.TLBEHI.VPPN)"),
    Bug("INVTLB op 5 also clears globals", "operands", "Mux(inv_op == 5, g_bits, 0)",
        "Mux(inv_op == 7, g_bits, 0)"),
    Bug("INVTLB op 6 ignores G", "operands", "Mux(inv_op == 5, g_bits, 0)",
        "Mux(inv_op >= 5, g_bits, 0)"),
    Bug("TLBFILL ignores free slots", "replacement",
        "slot_out.eq(Mux(full, policy_choice, free))",
        "slot_out.eq(policy_choice)"),
    Bug("PME raised with D = 1", "lookup", "(access == Access.STORE) & ~half.d & ~dwpl_off",
        "(access == Access.STORE) & half.d & ~dwpl_off"),
    Bug("RPLV ignored", "lookup", "priv_ok = Mux(rplv, plv == half.plv, plv <= half.plv)",
        "priv_ok = plv <= half.plv"),
    Bug("DWPL ignored", "lookup", "dwpl_off = (plv <= 2) & (self.csr.MISC.DWPL >> plv)[0]",
        "dwpl_off = Const(0)"),
    Bug("TLBRD copies G to one half only", "operands",
        "_elo_from_half(g, res.elo1, entry.lo1, entry.tag.g)",
        "_elo_from_half(g, res.elo1, entry.lo1, 0)"),
    Bug("TLBSRCH leaves NE set on a hit", "csrfile",
        "csr[\"TLBIDX\"].NE.eq(0)]", "]"),
    Bug("TLBR writes TLBEHI instead of TLBREHI", "csrfile",
        "csr[\"TLBRBADV\"].VA.eq(req.va), csr[\"TLBREHI\"].VPPN.eq(vpn),",
        "csr[\"TLBRBADV\"].VA.eq(req.va), csr[\"TLBEHI\"].VPPN.eq(vpn),"),
    Bug("ESTAT.Ecode off by one", "csrfile", "csr[\"ESTAT\"].Ecode.eq(req.exc.as_value() - 1)",
        "csr[\"ESTAT\"].Ecode.eq(req.exc.as_value())"),
    Bug("LFSR with a wrong tap", "replacement", "(lfsr >> 1) ^ 0xB400", "(lfsr >> 1) ^ 0xB408"),
    Bug("TLBCLR ignores the ASID", "operands", "Cat(~t.g & (t.asid == self.cur_asid)",
        "Cat(~t.g & (t.asid == t.asid)"),
]

_loaded: dict[str, type] = {}
#: the rtl modules the unit is built from, each after those it imports
RTL_MODULES = ("util", "match", "pagesize", "storage", "csrfile", "replacement", "lookup",
               "operands", "insn", "unit")


def unit_class(bug: Bug) -> type:
    """The TLBUnit class of the rtl package with ``bug`` applied."""
    if bug.name in _loaded:
        return _loaded[bug.name]
    package = f"loongtlb.rtl_bug_{len(_loaded)}"
    pkg = types.ModuleType(package)
    pkg.__path__ = [str(ROOT / "rtl")]
    sys.modules[package] = pkg
    sys.modules[f"{package}.layouts"] = loongtlb.rtl.layouts      # the enums the backend drives
    for name in RTL_MODULES:
        if name == "util" and bug.file != "util":
            sys.modules[f"{package}.util"] = loongtlb.rtl.util
            continue
        source = (ROOT / "rtl" / f"{name}.py").read_text()
        if name == bug.file:
            count = source.count(bug.old)
            if count != 1:
                raise SystemExit(f"bug {bug.name!r}: the patched text occurs {count} times "
                                 f"in rtl/{name}.py")
            source = source.replace(bug.old, bug.new)
        module = types.ModuleType(f"{package}.{name}")
        module.__package__ = package
        module.__file__ = str(ROOT / "rtl" / f"{name}.py")
        sys.modules[module.__name__] = module
        exec(compile(source, f"<{bug.name}: rtl/{name}.py>", "exec"), module.__dict__)
    _loaded[bug.name] = sys.modules[f"{package}.unit"].TLBUnit
    return _loaded[bug.name]


def hunt(bug: Bug, ops: int = 2000) -> str | None:
    """The first check that catches ``bug``, or None."""
    cls = unit_class(bug)
    tiny = load_geometry(ROOT / "configs" / "tiny.yaml")

    def factory(geom, name, cpus):
        return make_backend(geom, name, cpus, unit_class=cls)

    for trace in sorted((ROOT / "tests" / "traces").glob("*.jsonl")):
        if trace.name.startswith("bad_"):
            continue                     # written to fail on any correct TLB
        ops_ = load_trace(trace, tiny)
        cpus = 1 + max(op.cpu for op in ops_)
        backend = factory(tiny, "cosim", cpus)
        try:
            result = replay(ops_, backend, trace.name)
        finally:
            backend.close()
        if not result.ok:
            return f"trace {trace.name}: {result.failure.split(': ', 1)[-1]}"
    for config, seed in (("tiny", 1), ("la32r", 2), ("tiny", 3), ("tiny ignore", 4)):
        geom = load_geometry(ROOT / "configs" / f"{config.split()[0]}.yaml")
        if config.endswith("ignore"):
            geom = dataclasses.replace(geom, tlbfill_ne="ignore")      # D4's other reading
        result = fuzz(geom, ops, seed, backend_factory=factory)
        if result.failure:
            return f"fuzz {config} seed {seed} op {result.failed_at}: {result.failure}"
    return None


#: the properties in the order --prove tries them: the quick ones first
PROVE_ORDER = ("handshake", "fill_placement", "written_hit", "search_read", "invalidated_miss",
               "multi_hit", "exceptions")


def hunt_prove(bug: Bug, depth: int) -> str | None:
    """The first property whose proof fails on ``bug``, with the time it took and whether
    its counterexample trace fails in cosim against the same bug; or None."""
    import tempfile
    import time

    from loongtlb.testbench.prove import prove
    cls = unit_class(bug)
    formal = load_geometry(ROOT / "configs" / "formal.yaml")
    start = time.monotonic()
    for geom in (formal, dataclasses.replace(formal, tlbfill_ne="ignore")):
        for prop in PROVE_ORDER:
            with tempfile.TemporaryDirectory() as out:
                outcome = prove(geom, prop, "prove", depth, Path(out), unit_class=cls)
            if outcome.status != "FAIL":
                continue
            reading = "" if geom is formal else " (tlbfill_ne ignore)"
            replays = "replays in cosim" in outcome.detail
            return (f"{prop}{reading} at cycle {outcome.reached}, "
                    f"{time.monotonic() - start:.0f} s; counterexample "
                    f"{'replays in cosim' if replays else 'not replayed'}")
    return None


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--ops", type=int, default=2000, help="random ops per fuzz run")
    parser.add_argument("--prove", action="store_true",
                        help="the formal properties instead of the regression")
    parser.add_argument("--depth", type=int, default=7, help="--prove: induction length")
    args = parser.parse_args()
    killed = 0
    for bug in BUGS:
        caught = hunt_prove(bug, args.depth) if args.prove else hunt(bug, args.ops)
        killed += caught is not None
        print(f"{'killed' if caught else 'SURVIVED':8s} {bug.name}: {caught or '-'}",
              flush=True)
    print(f"killed {killed} of {len(BUGS)}")
    return 0 if killed == len(BUGS) else 1


if __name__ == "__main__":
    sys.exit(main())
