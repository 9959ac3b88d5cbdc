"""The lost-race driver: the kernel model on several CPUs, one TLB port each.

Scenarios (issue #4): ``anon`` (threads touch the same never-mapped anonymous page) and
``cow`` (a private page shared copy-on-write with a forked child; every CPU's TLB holds its
read-only entry; every thread stores). Schedules: ``canonical`` (interfaces.md section 5),
``random`` (seeded), ``exhaustive`` (every interleaving of two CPUs at the kernel's
scheduling points).
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field

from sw_model.errors import InputError
from sw_model.geometry import Geometry
from sw_model.kernel.cpu import VARIANTS, Kernel, Violation
from sw_model.kernel.mm import VM_READ, VM_WRITE, Vma
from sw_model.kernel.pte import MODIFIED, PAGE_SIZE, PROT_PRIVATE_RW, pfn_pte

from .backends import make_backend
from .port import Mismatch, TLBPort

SCENARIOS = ("anon", "cow")
SCHEDULES = ("canonical", "random", "exhaustive")
EXC_KINDS = ("TLBR", "PIL", "PIS", "PIF", "PME", "PNR", "PNX", "PPI")
#: modelled cycles per exception kind: a refill is a short handler; the fast handlers walk
#: the tables, update the PTE with ll/sc and rewrite the TLB; PNR/PNX/PPI go to C code
DEFAULT_COSTS = {"TLBR": 40, "PIL": 90, "PIS": 90, "PIF": 90, "PME": 90, "PNR": 600,
                 "PNX": 600, "PPI": 600}
VMA_START = 0x120000000
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


@dataclass
class RunResult:
    """One schedule of one kernel variant."""
    exceptions: list[Counter]
    tlb_ops: list[Counter]
    roles: dict[int, str]
    loser_valid: dict[int, bool]
    violation: str | None = None
    mismatch: str | None = None

    @property
    def total(self) -> int:
        return sum(sum(c.values()) for c in self.exceptions)


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
        return [c for c in range(len(self.gens)) if c not in self.done]


class Race:
    """Builds and runs the race for one geometry and options."""

    def __init__(self, geom: Geometry, scenario: str = "anon", access: str | None = None,
                 cpus: int = 2, backend: str = "cosim", sim: str = "pysim"):
        check_geometry(geom)
        if scenario not in SCENARIOS:
            raise InputError(f"unknown scenario {scenario!r}")
        if scenario == "cow":
            if access not in (None, "store"):
                raise InputError("--scenario cow races stores: --access load does not apply")
            access = "store"
        access = access or "load"
        if not 2 <= cpus <= 8:
            raise InputError(f"--cpus {cpus}: a race needs 2 to 8 CPUs")
        self.geom, self.scenario, self.access = geom, scenario, access
        self.cpus, self.backend_name, self.sim = cpus, backend, sim

    # ---- one system -----------------------------------------------------------------------
    def _build(self, variant: str, recorder=None, vcd=None) -> _System:
        backend = make_backend(self.geom, self.backend_name, self.cpus, sim=self.sim, vcd=vcd)
        ports = [TLBPort(backend, i, recorder) for i in range(self.cpus)]
        kernel = Kernel(variant, self.geom.asid_bits, ports)
        for cpu, port in zip(kernel.cpus, ports, strict=True):
            port.on_op = cpu.count_op
        mm = kernel.new_mm("parent")
        mm.users = self.cpus                          # one thread per CPU
        vma = Vma(VMA_START, VMA_START + 64 * PAGE_SIZE, VM_READ | VM_WRITE, PROT_PRIVATE_RW)
        mm.vmas.append(vma)
        for cpu in kernel.cpus:
            cpu.tlb_init()
            cpu.switch_mm(mm)
        if self.scenario == "cow":
            self._fork_shared_page(kernel, mm, vma)
            for cpu in kernel.cpus:                    # earlier reads load the RO entry
                for _ in cpu.run([(RACE_VA, "load")]):
                    pass
        kernel.counting = True
        access = "store" if self.scenario == "cow" else self.access
        gens = [cpu.run([(RACE_VA, access)]) for cpu in kernel.cpus]
        return _System(kernel, gens, backend, at=[None] * self.cpus)

    @staticmethod
    def _fork_shared_page(kernel: Kernel, parent, vma: Vma) -> None:
        """The state after the parent wrote the page and forked: both address spaces map it
        read-only (copy_present_pte write-protects a private writable page)."""
        mem, pt = kernel.mem, kernel.pt
        pfn = mem.alloc_page("written by the parent before fork")
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
                         dict(k.roles), dict(k.loser_valid), violation, mismatch)

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
    def _canonical(system: _System) -> None:
        def until_lock(cpu):
            while cpu not in system.done:
                system.step(cpu)
                if system.at[cpu] == "lock":
                    return

        def to_end(cpu):
            while cpu not in system.done:
                system.step(cpu)

        n = len(system.gens)
        for cpu in range(n):
            until_lock(cpu)                    # (1), (2): each CPU up to the lock
        for cpu in range(n):
            to_end(cpu)                        # (3), (4): CPU 0 first, then the others

    def run(self, variant: str, schedule: str = "canonical", seed: int = 1,
            recorder=None, vcd=None, progress=None) -> list[RunResult]:
        if schedule == "canonical":
            return [self._run(variant, self._canonical, recorder, vcd)]
        if schedule == "random":
            rng = random.Random(seed)

            def pick(system):
                while system.runnable():
                    system.step(rng.choice(system.runnable()))
            return [self._run(variant, pick, recorder, vcd)]
        if self.cpus != 2:
            raise InputError("--schedule exhaustive enumerates 2-CPU races: use --cpus 2")
        return self._exhaustive(variant, progress)

    def _exhaustive(self, variant: str, progress=None) -> list[RunResult]:
        """Every interleaving at the scheduling points: depth-first over the choice of CPU,
        each prefix replayed on a fresh system (the model is deterministic)."""
        results: list[RunResult] = []

        def replay(prefix):
            """Run ``prefix``; return its result and the CPUs that could run next."""
            runnable = []

            def go(system):
                for cpu in prefix:
                    system.step(cpu)
                runnable.extend(system.runnable())

            return self._run(variant, go), runnable

        stack = [[]]
        while stack:
            prefix = stack.pop()
            result, runnable = replay(prefix)
            if not runnable or result.violation or result.mismatch:
                results.append(result)
                if progress:
                    progress(len(results))
                continue
            for cpu in reversed(runnable):
                stack.append(prefix + [cpu])
        return results


# ---- reports ----------------------------------------------------------------------------------

def summarize(race: Race, variant: str, schedule: str, results: list[RunResult]) -> dict:
    """The JSON object of interfaces.md section 5 for one variant (plus a few keys)."""
    n = race.cpus
    exceptions = [Counter() for _ in range(n)]
    tlb_ops = [Counter() for _ in range(n)]
    roles = [set() for _ in range(n)]
    valid = []
    for r in results:
        for cpu in range(n):
            exceptions[cpu].update(r.exceptions[cpu])
            tlb_ops[cpu].update(r.tlb_ops[cpu])
            roles[cpu].add(r.roles.get(cpu, "none"))
        valid += list(r.loser_valid.values())
    failures = [r.violation for r in results if r.violation]
    mismatches = [r.mismatch for r in results if r.mismatch]
    cpus = []
    for cpu in range(n):
        role = roles[cpu].pop() if len(roles[cpu]) == 1 else "mixed"
        cpus.append({"cpu": cpu, "role": role,
                     "exceptions": dict(sorted(exceptions[cpu].items())),
                     "tlb_ops": dict(sorted(tlb_ops[cpu].items()))})
    return {
        "scenario": race.scenario, "kernel": variant, "backend": race.backend_name,
        "access": "store" if race.scenario == "cow" else race.access,
        "schedule": schedule, "schedules": len(results), "cpus": cpus,
        "loser_entry_valid_after_fault": all(valid) if valid else None,
        "mismatches": len(mismatches),
        "exceptions_total": sum(r.total for r in results),
        "exceptions_max": max((r.total for r in results), default=0),
        "violations": failures,
        "mismatch_details": mismatches[:1],
    }


def cycles(report: dict, costs: dict[str, int]) -> int:
    return sum(costs[kind] * count for cpu in report["cpus"]
               for kind, count in cpu["exceptions"].items())


def parse_costs(text: str | None) -> dict[str, int]:
    costs = dict(DEFAULT_COSTS)
    if not text:
        return costs
    for item in text.split(","):
        kind, _, value = item.partition("=")
        kind = kind.strip().upper()
        if kind not in costs or not value.strip().isdigit():
            raise InputError(f"--cost: {item!r}: expected KIND=CYCLES with KIND one of "
                             f"{' '.join(EXC_KINDS)}")
        costs[kind] = int(value)
    return costs


def _short(counter: dict) -> str:
    return " ".join(f"{k} {v}" for k, v in counter.items()) or "-"


def format_table(reports: list[dict], costs: dict[str, int], geom_name: str) -> str:
    first = reports[0]
    cells = [_short(c[key]) for r in reports for c in r["cpus"] for key in ("exceptions",
                                                                             "tlb_ops")]
    width = max(14, max(len(c) for c in cells) + 2)
    lines = [f"race {first['scenario']}/{first['access']} on {geom_name}, {first['schedule']} "
             f"schedule ({first['schedules']} schedule{'s' if first['schedules'] > 1 else ''})"
             f", backend {first['backend']}",
             " " * 22 + "".join(f"{r['kernel']:<{width}}" for r in reports)]
    for i, cpu in enumerate(first["cpus"]):
        role = f"cpu {i} {cpu['role']}"
        lines.append(f"{role:<14}exc     " + "".join(
            f"{_short(r['cpus'][i]['exceptions']):<{width}}" for r in reports))
        lines.append(f"{'':<14}tlb ops " + "".join(
            f"{_short(r['cpus'][i]['tlb_ops']):<{width}}" for r in reports))
    show = {True: "yes", False: "no", None: "-"}
    lines.append(f"{'loser entry valid':<22}" + "".join(
        f"{show[r['loser_entry_valid_after_fault']]:<{width}}" for r in reports))
    lines.append(f"{'exceptions total/max':<22}" + "".join(
        f"{str(r['exceptions_total']) + ' / ' + str(r['exceptions_max']):<{width}}"
        for r in reports))
    lines.append(f"{'mismatches':<22}" + "".join(f"{r['mismatches']:<{width}}"
                                                 for r in reports))
    lines.append(f"{'modelled cycles':<22}" + "".join(f"{cycles(r, costs):<{width}}"
                                                      for r in reports))
    by = {r["kernel"]: cycles(r, costs) for r in reports}
    if "full-series" in by and len(by) > 1:
        saved = [f"{by[v] - by['full-series']} over {v}" for v in VARIANTS
                 if v in by and v != "full-series"]
        lines.append("full-series saves " + ", ".join(saved) + " modelled cycles "
                     f"(costs: {', '.join(f'{k} {v}' for k, v in costs.items())})")
    for r in reports:
        for text in r["violations"][:1] + r["mismatch_details"]:
            lines.append(f"FAIL {r['kernel']}: {text}")
    return "\n".join(lines)
