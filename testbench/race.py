"""The lost-race driver: the kernel model on several CPUs, one TLB port each.

Scenarios (interfaces.md section 4, decisions.md K7): ``anon`` (threads touch the same
never-mapped anonymous page), ``cow`` (a private page shared copy-on-write with a forked
child; every thread stores), ``file-private`` and ``file-shared`` (a file mapped private or
shared, its pages cached or not). ``--prefault read`` has every CPU read the page before the
race, so a store race goes through do_wp_page.

Schedules: ``canonical`` (interfaces.md section 5), ``random`` (seeded), ``exhaustive``
(every interleaving of two CPUs at the kernel's scheduling points, K5). The exhaustive
search replays each schedule prefix on a fresh system (the model is deterministic) and
caches what it found below each state it reached: two prefixes that end in the same state
(memory, locks, TLBs, counters and every CPU's place in its code, down to its local
variables) have the same futures, so their subtrees are counted once and shared. The counts
are exact: every schedule is counted, none is run twice.
"""

from __future__ import annotations

import random
import sys
from collections import Counter
from dataclasses import dataclass, field

from loongtlb.sw_model.errors import InputError
from loongtlb.sw_model.geometry import Geometry
from loongtlb.sw_model.kernel.cpu import VARIANTS, Kernel, Violation
from loongtlb.sw_model.kernel.mm import VM_READ, VM_SHARED, VM_WRITE, CachedPage, File, Vma
from loongtlb.sw_model.kernel.pte import MODIFIED, PAGE_SIZE, PROT_PRIVATE_RW, pfn_pte

from .backends import make_backend
from .backends import Mismatch
from .port import TLBPort

SCENARIOS = ("anon", "cow", "file-private", "file-shared")
ACCESSES = ("load", "store")
PREFAULTS = ("none", "read")
PAGE_CACHES = ("cold", "warm")
SCHEDULES = ("canonical", "random", "exhaustive")
EXC_KINDS = ("TLBR", "PIL", "PIS", "PIF", "PME", "PNR", "PNX", "PPI")
#: modelled cycles per exception kind: a refill is a short handler; the fast handlers walk
#: the tables, update the PTE with ll/sc and rewrite the TLB; PNR/PNX/PPI go to C code
DEFAULT_COSTS = {"TLBR": 40, "PIL": 90, "PIS": 90, "PIF": 90, "PME": 90, "PNR": 600,
                 "PNX": 600, "PPI": 600}
VMA_START = 0x120000000
VMA_PAGES = 64
RACE_VA = VMA_START + 5 * PAGE_SIZE + 0x128      # an odd page: the pair's buddy stays empty


def check_geometry(geom: Geometry) -> None:
    """The Linux model needs LA64 tables and 16 KiB pages in the STLB."""
    problems = []
    if geom.grlen != 64:
        problems.append("grlen 64")
    if geom.valen < 47:
        problems.append("valen >= 47")
    if geom.palen > 48:
        problems.append("palen <= 48")
    if 14 not in geom.page_shifts or geom.stlb_page_shift != 14:
        problems.append("page shift 14 listed and stlb_page_shift 14")
    if problems:
        raise InputError(f"{geom.source}: the Linux model needs {', '.join(problems)}")


def is_file(scenario: str) -> bool:
    return scenario.startswith("file")


def combination_problem(scenario: str, access: str, prefault: str,
                        page_cache: str | None) -> str | None:
    """Why the kernel cannot produce this race, or None when it can."""
    if scenario == "cow" and access != "store":
        return "--scenario cow races stores: --access load does not apply"
    if prefault == "read" and access == "load":
        return ("--prefault read with --access load: the page is mapped and every TLB "
                "holds it before the race, so no CPU faults")
    if page_cache is not None and not is_file(scenario):
        return f"--page-cache applies to the file scenarios, not to {scenario}"
    return None


def combinations() -> list[tuple[str, str, str, str | None]]:
    """Every (scenario, access, prefault, page cache) the kernel can produce, in the order
    of the matrix."""
    out = []
    for scenario in SCENARIOS:
        for access in ACCESSES:
            for prefault in PREFAULTS:
                for cache in (PAGE_CACHES if is_file(scenario) else (None,)):
                    if combination_problem(scenario, access, prefault, cache) is None:
                        out.append((scenario, access, prefault, cache))
    return out


@dataclass
class RunResult:
    """One schedule of one kernel variant."""
    exceptions: list[Counter]
    tlb_ops: list[Counter]
    roles: dict[int, str]
    valid_after: dict[str, dict[int, bool]]
    sites: Counter
    events: Counter
    violation: str | None = None
    mismatch: str | None = None

    @property
    def total(self) -> int:
        return sum(sum(c.values()) for c in self.exceptions)


@dataclass
class Summary:
    """What a set of schedules did: counts added up, largest counts, what was seen."""
    cpus: int
    schedules: int = 0
    #: per CPU: exceptions added up, the largest count of each kind in one schedule, TLB
    #: instructions added up, the roles seen
    exceptions: list[Counter] = field(default_factory=list)
    most: list[Counter] = field(default_factory=list)
    tlb_ops: list[Counter] = field(default_factory=list)
    roles: list[set] = field(default_factory=list)
    #: "winner" / "loser" -> the entry probes seen when such a fault returned
    valid: dict[str, set] = field(default_factory=lambda: {"winner": set(), "loser": set()})
    sites: Counter = field(default_factory=Counter)
    events: Counter = field(default_factory=Counter)
    total_max: int = 0
    violations: list[str] = field(default_factory=list)
    violation_count: int = 0
    mismatches: list[str] = field(default_factory=list)
    mismatch_count: int = 0
    #: the exhaustive search: distinct states expanded, prefixes replayed
    states: int | None = None
    runs: int = 0

    def __post_init__(self):
        for name in ("exceptions", "most", "tlb_ops"):
            setattr(self, name, [Counter() for _ in range(self.cpus)])
        self.roles = [set() for _ in range(self.cpus)]

    @classmethod
    def of(cls, cpus: int, r: RunResult) -> Summary:
        s = cls(cpus, 1)
        for cpu in range(cpus):
            s.exceptions[cpu].update(r.exceptions[cpu])
            s.most[cpu].update(r.exceptions[cpu])
            s.tlb_ops[cpu].update(r.tlb_ops[cpu])
            s.roles[cpu].add(r.roles.get(cpu, "none"))
        for role, by_cpu in r.valid_after.items():
            s.valid[role].update(by_cpu.values())
        s.sites.update(r.sites)
        s.events.update(r.events)
        s.total_max = r.total
        for text, kind in ((r.violation, "violation"), (r.mismatch, "mismatch")):
            if text:
                getattr(s, kind + "s").append(text)
                setattr(s, kind + "_count", 1)
        return s

    def add(self, other: Summary) -> None:
        self.schedules += other.schedules
        for cpu in range(self.cpus):
            self.exceptions[cpu].update(other.exceptions[cpu])
            self.most[cpu] |= other.most[cpu]
            self.tlb_ops[cpu].update(other.tlb_ops[cpu])
            self.roles[cpu] |= other.roles[cpu]
        for role in self.valid:
            self.valid[role] |= other.valid[role]
        self.sites.update(other.sites)
        self.events.update(other.events)
        self.total_max = max(self.total_max, other.total_max)
        self.violations = (self.violations + other.violations)[:3]
        self.mismatches = (self.mismatches + other.mismatches)[:3]
        self.violation_count += other.violation_count
        self.mismatch_count += other.mismatch_count


def _freeze(value):
    """A hashable image of a generator frame's local variable."""
    if value is None or isinstance(value, (int, str, float)):
        return value
    if isinstance(value, (tuple, list)):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, _freeze(v)) for k, v in value.items()))
    key = getattr(value, "key", None)
    if callable(key):
        return key()
    # shared objects (the kernel, memory, a port): their state is in the kernel's key
    return type(value).__name__


def _code_position(gen) -> tuple:
    """Where a CPU's generator stands, down the chain of ``yield from``: each frame's
    function, instruction offset and local variables (``self`` aside)."""
    out = []
    while gen is not None:
        frame = gen.gi_frame
        if frame is None:
            out.append("returned")
            break
        local = tuple(sorted((k, _freeze(v)) for k, v in frame.f_locals.items()
                             if k != "self"))
        out.append((gen.gi_code.co_name, frame.f_lasti, local))
        gen = gen.gi_yieldfrom
    return tuple(out)


@dataclass
class _System:
    kernel: Kernel
    gens: list
    backend: object
    at: list = field(default_factory=list)
    done: set = field(default_factory=set)

    def step(self, cpu: int) -> None:
        try:
            self.at[cpu] = next(self.gens[cpu])
        except StopIteration:
            self.done.add(cpu)

    def runnable(self) -> list[int]:
        return [c for c in range(len(self.gens))
                if c not in self.done and not self.kernel.cpus[c].blocked()]

    def state_key(self) -> tuple:
        tlbs = tuple(self.backend.state_key(c) for c in range(len(self.gens)))
        places = tuple(_code_position(g) for g in self.gens)
        return (self.kernel.state_key(), tlbs, places, tuple(self.at),
                tuple(sorted(self.done)))


class Race:
    """Builds and runs the race for one geometry and options."""

    def __init__(self, geom: Geometry, scenario: str = "anon", access: str | None = None,
                 cpus: int = 2, backend: str = "cosim", sim: str = "pysim",
                 prefault: str = "none", page_cache: str | None = None):
        check_geometry(geom)
        if scenario not in SCENARIOS:
            raise InputError(f"unknown scenario {scenario!r} (one of {', '.join(SCENARIOS)})")
        access = access or ("store" if scenario == "cow" else "load")
        problem = combination_problem(scenario, access, prefault, page_cache)
        if problem:
            raise InputError(problem)
        if not 2 <= cpus <= 8:
            raise InputError(f"--cpus {cpus}: a race needs 2 to 8 CPUs")
        self.geom, self.scenario, self.access = geom, scenario, access
        self.prefault = prefault
        self.page_cache = (page_cache or "cold") if is_file(scenario) else None
        self.cpus, self.backend_name, self.sim = cpus, backend, sim

    # ---- one system -----------------------------------------------------------------------
    def _build(self, variant: str, recorder=None, vcd=None) -> _System:
        backend = make_backend(self.geom, self.backend_name, self.cpus, sim=self.sim, vcd=vcd)
        ports = [TLBPort(backend, i, recorder) for i in range(self.cpus)]
        kernel = Kernel(variant, self.geom.asid_bits, ports)
        kernel.race_va = RACE_VA
        for cpu, port in zip(kernel.cpus, ports, strict=True):
            port.observer = cpu
        mm = kernel.new_mm("parent")
        mm.users = self.cpus                          # one thread per CPU
        vma = Vma(VMA_START, VMA_START + VMA_PAGES * PAGE_SIZE, VM_READ | VM_WRITE,
                  PROT_PRIVATE_RW)
        if is_file(self.scenario):
            vma.file = self._file(kernel)
            if self.scenario == "file-shared":
                # write-notify (the filesystem has page_mkwrite): vm_page_prot is that of
                # the private mapping, without the WRITE bit
                vma.flags |= VM_SHARED
        mm.vmas.append(vma)
        for cpu in kernel.cpus:
            cpu.tlb_init()
            cpu.switch_mm(mm)
        if self.scenario == "cow":
            self._fork_shared_page(kernel, mm, vma)
        if self.prefault == "read":
            for cpu in kernel.cpus:                    # set-up: each CPU reads in turn
                for _ in cpu.run([(RACE_VA, "load")]):
                    assert not cpu.blocked()
        kernel.counting = True
        gens = [cpu.run([(RACE_VA, self.access)]) for cpu in kernel.cpus]
        return _System(kernel, gens, backend, at=[None] * self.cpus)

    def _file(self, kernel: Kernel) -> File:
        file = File("file", VMA_PAGES)
        if self.page_cache == "warm":
            for i in range(VMA_PAGES):
                file.cache[i] = CachedPage(kernel.mem.alloc_page(f"file page {i}"), True)
        kernel.files.append(file)
        return file

    @staticmethod
    def _fork_shared_page(kernel: Kernel, parent, vma: Vma) -> None:
        """The state after the parent wrote the page and forked: both address spaces map it
        read-only (copy_present_pte write-protects a private writable page)."""
        mem, pt = kernel.mem, kernel.pt
        pfn = mem.alloc_page("written by the parent before fork", anon=True)
        child = kernel.new_mm("child")
        child.vmas.append(Vma(vma.start, vma.end, vma.flags, vma.page_prot))
        pte = pfn_pte(pfn, vma.page_prot) | MODIFIED
        for mm in (parent, child):
            mem.write(pt.alloc_tables(mm.pgd, RACE_VA), pte)
        mem.mapcount[pfn] = 2
        mem.refcount[pfn] = 2

    def _result(self, system: _System, violation=None, mismatch=None) -> RunResult:
        k = system.kernel
        return RunResult([c.exceptions for c in k.cpus], [c.tlb_ops for c in k.cpus],
                         dict(k.roles), {r: dict(v) for r, v in k.valid_after.items()},
                         Counter(k.sites), Counter(k.events), violation, mismatch)

    def _run(self, variant: str, choose, recorder=None, vcd=None) -> RunResult:
        """Run one schedule; ``choose(system)`` advances the system to its end."""
        system = self._build(variant, recorder, vcd)
        try:
            choose(system)
        except Violation as err:
            return self._result(system, violation=str(err))
        except Mismatch as err:
            return self._result(system, mismatch=str(err))
        finally:
            system.backend.close()
        return self._result(system)

    # ---- schedules --------------------------------------------------------------------------
    @staticmethod
    def _finish(system: _System, first: int) -> None:
        """Run CPU ``first`` to its end; while it waits for another CPU, run the lowest
        runnable one."""
        while first not in system.done:
            runnable = system.runnable()
            if not runnable:
                raise Violation("deadlock: every CPU waits for another")
            system.step(first if first in runnable else runnable[0])

    @classmethod
    def _canonical(cls, system: _System) -> None:
        n = len(system.gens)
        for cpu in range(n):                   # (1), (2): each CPU up to its first lock
            while cpu not in system.done and cpu in system.runnable():
                system.step(cpu)
                if system.at[cpu] == "lock":
                    break
        for cpu in range(n):                   # (3), (4): CPU 0 first, then the others
            cls._finish(system, cpu)

    def run(self, variant: str, schedule: str = "canonical", seed: int = 1,
            recorder=None, vcd=None, progress=None) -> Summary:
        if schedule == "canonical":
            return Summary.of(self.cpus, self._run(variant, self._canonical, recorder, vcd))
        if schedule == "random":
            rng = random.Random(seed)

            def pick(system):
                while len(system.done) < len(system.gens):
                    runnable = system.runnable()
                    if not runnable:
                        raise Violation("deadlock: every CPU waits for another")
                    system.step(rng.choice(runnable))
            return Summary.of(self.cpus, self._run(variant, pick, recorder, vcd))
        if schedule != "exhaustive":
            raise InputError(f"unknown schedule {schedule!r} (one of {', '.join(SCHEDULES)})")
        if self.cpus != 2:
            raise InputError("--schedule exhaustive enumerates 2-CPU races: use --cpus 2")
        if self.backend_name == "rtl":
            raise InputError("--schedule exhaustive needs the model or cosim backend "
                             "(it caches explored states by the model's TLB state)")
        return self._exhaustive(variant, progress)

    def _exhaustive(self, variant: str, progress=None) -> Summary:
        """Depth first over the choice of CPU at every scheduling point, each prefix replayed
        on a fresh system; the summary below a state is cached by the state's key."""
        memo: dict[tuple, Summary] = {}
        on_path: set[tuple] = set()
        stats = {"runs": 0}

        def explore(prefix: list[int]) -> Summary:
            system = self._build(variant)
            stats["runs"] += 1
            try:
                for cpu in prefix:
                    system.step(cpu)
                runnable = system.runnable()
                if not runnable and len(system.done) < len(system.gens):
                    raise Violation("deadlock: every CPU waits for another")
                key = system.state_key() if runnable else None
            except Violation as err:
                return Summary.of(self.cpus, self._result(system, violation=str(err)))
            except Mismatch as err:
                return Summary.of(self.cpus, self._result(system, mismatch=str(err)))
            finally:
                system.backend.close()
            if not runnable:
                return Summary.of(self.cpus, self._result(system))
            if key in memo:
                return memo[key]
            if key in on_path:                  # a state that returns to itself
                return Summary.of(self.cpus, self._result(
                    system, violation=f"livelock: the schedule {prefix} returns to a state "
                                      "it has been in"))
            on_path.add(key)
            total = Summary(self.cpus)
            for cpu in runnable:
                total.add(explore(prefix + [cpu]))
            on_path.discard(key)
            memo[key] = total
            if progress:
                progress(len(memo))
            return total

        limit = sys.getrecursionlimit()
        sys.setrecursionlimit(max(limit, 20000))
        try:
            summary = explore([])
        finally:
            sys.setrecursionlimit(limit)
        summary.states, summary.runs = len(memo), stats["runs"]
        return summary


# ---- reports ----------------------------------------------------------------------------------

def _order(counter: Counter) -> list[str]:
    """Exception kinds in the order of EXC_KINDS (TLBR first), anything else by name."""
    rank = {k: i for i, k in enumerate(EXC_KINDS)}
    return sorted((k for k in counter if counter[k]), key=lambda k: (rank.get(k, 99), k))


def _counts(counter: Counter) -> dict:
    return {k: counter[k] for k in _order(counter)}


def _mean(counter: Counter, n: int) -> dict:
    return {k: round(counter[k] / n, 3) for k in _order(counter)}


def _valid(seen: set) -> bool | None:
    return None if not seen else all(seen)


def summarize(race: Race, variant: str, schedule: str, s: Summary) -> dict:
    """The JSON object of interfaces.md section 5 for one variant (plus a few keys)."""
    cpus = []
    for cpu in range(race.cpus):
        roles = s.roles[cpu]
        role = next(iter(roles)) if len(roles) == 1 else "mixed"
        entry = {"cpu": cpu, "role": role, "exceptions": _counts(s.exceptions[cpu]),
                 "tlb_ops": _counts(s.tlb_ops[cpu])}
        if s.schedules > 1:
            entry["mean"] = _mean(s.exceptions[cpu], s.schedules)
            entry["max"] = _counts(s.most[cpu])
        cpus.append(entry)
    total = sum(sum(c.values()) for c in s.exceptions)
    report = {
        "scenario": race.scenario, "kernel": variant, "backend": race.backend_name,
        "access": race.access, "prefault": race.prefault, "page_cache": race.page_cache,
        "schedule": schedule, "schedules": s.schedules, "cpus": cpus,
        "loser_entry_valid_after_fault": _valid(s.valid["loser"]),
        "winner_entry_valid_after_fault": _valid(s.valid["winner"]),
        "sites": dict(sorted(s.sites.items())),
        "events": dict(sorted(s.events.items())),
        "tlbfill_ne": race.geom.tlbfill_ne,
        "mismatches": s.mismatch_count,
        "exceptions_total": total,
        "exceptions_mean": round(total / s.schedules, 3) if s.schedules else 0,
        "exceptions_max": s.total_max,
        "violations": s.violations[:1] if s.violation_count else [],
        "violation_count": s.violation_count,
        "mismatch_details": s.mismatches[:1],
    }
    if s.states is not None:
        report["states"] = s.states
    return report


def cycles(report: dict, costs: dict[str, int]) -> float:
    """Modelled cycles of the exceptions per schedule (the mean over the schedules)."""
    n = max(1, report["schedules"])
    return sum(costs[kind] * count for cpu in report["cpus"]
               for kind, count in cpu["exceptions"].items()) / n


def parse_costs(text: str | None) -> dict[str, int]:
    costs = dict(DEFAULT_COSTS)
    if not text:
        return costs
    for item in text.split(","):
        kind, _, value = item.partition("=")
        kind = kind.strip().upper()
        if kind not in costs:
            raise InputError(f"--cost: {item.strip()[:40]!r}: {kind or 'the kind'} is not one "
                             f"of {' '.join(EXC_KINDS)} (expected KIND=CYCLES)")
        if not value.strip().isdigit() or len(value.strip()) > 9:
            raise InputError(f"--cost: {item.strip()[:40]!r}: the cycles must be a whole "
                             "number from 0 to 999999999")
        costs[kind] = int(value)
    return costs


def _num(x) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:.2f}".rstrip("0")


def _short(counter: dict) -> str:
    return " ".join(f"{k} {_num(v)}" for k, v in counter.items()) or "-"


def describe(race: Race) -> str:
    """The race's combination as the flags that choose it."""
    parts = [f"{race.scenario}/{race.access}", f"prefault {race.prefault}"]
    if race.page_cache:
        parts.append(f"page cache {race.page_cache}")
    return ", ".join(parts)


def format_table(reports: list[dict], costs: dict[str, int], race: Race) -> str:
    """One column per kernel variant. With several schedules the exception rows are means
    per schedule, and so is the modelled cost."""
    first = reports[0]
    several = any(r["schedules"] > 1 for r in reports)
    exc_key = "mean" if several else "exceptions"
    cells = [_short(c.get(exc_key, c["exceptions"])) for r in reports for c in r["cpus"]] + \
        [_short(c["tlb_ops"]) for r in reports for c in r["cpus"]]
    width = max(14, max(len(c) for c in cells) + 2)
    counts = sorted({r["schedules"] for r in reports})
    nsched = "/".join(str(r["schedules"]) for r in reports) if len(counts) > 1 else \
        str(counts[0])
    lines = [f"race {describe(race)} on {race.geom.name}, {first['schedule']} schedule "
             f"({nsched} schedule{'s' if counts != [1] else ''}), backend {first['backend']}, "
             f"tlbfill_ne {race.geom.tlbfill_ne}",
             " " * 22 + "".join(f"{r['kernel']:<{width}}" for r in reports)]
    for i, cpu in enumerate(first["cpus"]):
        role = f"cpu {i} {cpu['role']}"
        label = "exc/run " if several else "exc     "
        lines.append(f"{role:<14}{label}" + "".join(
            f"{_short(r['cpus'][i].get(exc_key, r['cpus'][i]['exceptions'])):<{width}}"
            for r in reports))
        lines.append(f"{'':<14}tlb ops " + "".join(
            f"{_short(r['cpus'][i]['tlb_ops']):<{width}}" for r in reports))
    show = {True: "yes", False: "no", None: "-"}
    for who in ("winner", "loser"):
        lines.append(f"{who + ' entry valid':<22}" + "".join(
            f"{show[r[who + '_entry_valid_after_fault']]:<{width}}" for r in reports))
    if several:
        lines.append(f"{'schedules':<22}" + "".join(f"{r['schedules']:<{width}}"
                                                     for r in reports))
        lines.append(f"{'exceptions mean/max':<22}" + "".join(
            f"{_num(r['exceptions_mean']) + ' / ' + str(r['exceptions_max']):<{width}}"
            for r in reports))
    lines.append(f"{'mismatches':<22}" + "".join(f"{r['mismatches']:<{width}}"
                                                 for r in reports))
    lines.append(f"{'modelled cycles' + ('/run' if several else ''):<22}" + "".join(
        f"{_num(cycles(r, costs)):<{width}}" for r in reports))
    by = {r["kernel"]: cycles(r, costs) for r in reports}
    if "full-series" in by and len(by) > 1:
        saved = [f"{_num(by[v] - by['full-series'])} over {v}" for v in VARIANTS
                 if v in by and v != "full-series"]
        lines.append("full-series saves " + ", ".join(saved) + " modelled cycles"
                     + (" per schedule" if several else "")
                     + f" (costs: {', '.join(f'{k} {v}' for k, v in costs.items())})")
    sites = sorted({s for r in reports for s in r["sites"]})
    if sites:
        lines.append("sites: " + ", ".join(sites))
    for r in reports:
        for text in r["violations"][:1] + r["mismatch_details"]:
            lines.append(f"FAIL {r['kernel']}: {text}")
    return "\n".join(lines)


# ---- the matrix -------------------------------------------------------------------------------



#: the matrix's short names of the exceptions
SHORT = {"TLBR": "R", "PIL": "L", "PIS": "S", "PIF": "F", "PME": "M", "PNR": "NR", "PNX": "NX",
         "PPI": "PP"}


def _cell_exc(counts: dict) -> str:
    return " ".join(SHORT.get(k, k) + (f"×{_num(v)}" if v != 1 else "")
                    for k, v in counts.items()) or "-"


def matrix_rows(geom: Geometry, schedule: str = "canonical", backend: str = "model",
                sim: str = "pysim", seed: int = 1, progress=None) -> list[dict]:
    """Every combination under the three variants: one report per (combination, variant)."""
    reports = []
    for scenario, access, prefault, cache in combinations():
        race = Race(geom, scenario, access, 2, backend, sim, prefault, cache)
        for variant in VARIANTS:
            if progress:
                progress(f"{describe(race)}: {variant}")
            reports.append(summarize(race, variant, schedule,
                                     race.run(variant, schedule, seed)))
    return reports


def format_matrix(reports: list[dict], geom: Geometry) -> str:
    """A markdown table: a row per combination, a column per variant with each CPU's
    exceptions (means over the schedules when there are several) and whether the winner's
    and the loser's entries were valid when their faults returned; then the update_mmu_tlb
    sites each row reached under full-series."""
    show = {True: "✓", False: "✗", None: "-"}
    rows: dict[tuple, dict[str, dict]] = {}
    for r in reports:
        rows.setdefault((r["scenario"], r["access"], r["prefault"], r["page_cache"]),
                        {})[r["kernel"]] = r
    several = any(r["schedules"] > 1 for r in reports)
    first = reports[0]
    lines = [f"`tlbfill_ne: {geom.tlbfill_ne}` on {geom.name}, {first['schedule']} schedule"
             f"{' (exceptions: means per schedule)' if several else ''}, backend "
             f"{first['backend']}; R TLBR, L PIL, S PIS, M PME", "",
             "| scenario | access | prefault | page cache | " + " | ".join(VARIANTS) +
             " | update_mmu_tlb sites (full-series) |",
             "|---|---|---|---|" + "---|" * len(VARIANTS) + "---|"]
    for (scenario, access, prefault, cache), by in rows.items():
        cells = []
        for v in VARIANTS:
            r = by[v]
            key = "mean" if several else "exceptions"
            excs = " / ".join(_cell_exc(c.get(key, c["exceptions"])) for c in r["cpus"])
            valid = (f"w{show[r['winner_entry_valid_after_fault']]} "
                     f"l{show[r['loser_entry_valid_after_fault']]}")
            bad = " **FAIL**" if r["violations"] or r["mismatches"] else ""
            cells.append(f"{excs} · {valid}{bad}")
        sites = sorted(s.split(":")[0] for s in by["full-series"]["sites"]
                       if s.endswith(":update_mmu_tlb"))
        lines.append(f"| {scenario} | {access} | {prefault} | {cache or '-'} | "
                     + " | ".join(cells) + f" | {', '.join(sites) or '-'} |")
    return "\n".join(lines)
