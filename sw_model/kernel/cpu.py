"""The kernel's LoongArch side, one :class:`Cpu` per CPU, each with its TLB port: the refill
and fast handlers of tlbex.S, do_page_fault, ``__update_tlb``, the flushes and IPIs. The
generic fault path (mm/memory.c, mm/filemap.c) is :class:`~.memory.FaultPaths`.

Every path issues the TLB-unit CSR accesses and TLB instructions the kernel issues, in the
kernel's order, through the CPU's port (any object with the methods of
``testbench.port.TLBPort``). CSRs outside the TLB unit (PGDL, KS0.., ERA, PRMD) are plain
Python state here.

Code that may be preempted is written as generators. A CPU yields at the kernel's own
scheduling points (decisions.md K5), each a place where another CPU can act between two of
this CPU's steps that touch shared state (the page tables, a lock, another CPU's TLB):

- ``"access"``: before each user access;
- ``"lock"``: before taking a lock (the page-table lock, a page lock, or a page trylock);
- ``"llsc"``: between a fast handler's ll.d of the PTE and its sc.d;
- ``"fault"``: between a fast handler falling through to do_page_fault (and each retry of
  handle_mm_fault) and handle_pte_fault's unlocked PTE read;
- ``"pte"``: inside a lock-held section, before each further access to a PTE and before a
  flush IPI: the refill and fast handlers take no lock, so they run on other CPUs while
  this CPU holds the page-table lock;
- ``"io"``: while a page is read from the file (the mmap lock dropped).

A CPU that waits for a lock another CPU holds, or for an IPI to reach a CPU whose interrupts
are off (inside an exception handler, before do_page_fault enables them), is blocked
(:meth:`Cpu.blocked`): the scheduler does not run it until that changes. An IPI runs its
function on the target CPU at once when that CPU's interrupts are on.

Variants (decisions.md K2): ``pre-series`` (v6.0), ``mm-only`` (Qi Zheng's mm patch alone),
``full-series`` (with "LoongArch: update local TLB if PTE entry exists").
"""

from __future__ import annotations

from collections import Counter

from .memory import RETRY, FaultPaths
from .mm import VM_EXEC, VM_READ, VM_WRITE, AsidAllocator, File, Mm, PageTables, PhysMem, Vma
from .pte import DIRTY, MODIFIED, PAGE_SHIFT, PAGE_SIZE, PRESENT, PS_DEFAULT_SIZE, VALID, WRITE
from .pte import pte_pfn, pte_present

VARIANTS = ("pre-series", "mm-only", "full-series")
TLB_INSNS = ("tlbsrch", "tlbrd", "tlbwr", "tlbfill", "tlbclr", "tlbflush", "invtlb")
#: exceptions one user access may take before it counts as a livelock
LIVELOCK_LIMIT = 8
TLBIDX_PS_MASK = 0x3F << 24
TLBREHI_PS_MASK = 0x3F

__all__ = ["VARIANTS", "Kernel", "Cpu", "Violation", "SegmentationFault"]


class Violation(Exception):
    """An invariant of the run failed (wrong page, multi-hit, livelock, deadlock)."""


class SegmentationFault(Exception):
    """do_page_fault found no VMA or no permission: the access is killed."""


class Kernel:
    """State shared by every CPU: memory, page tables, files, locks, ASIDs, the variant, and
    what the racing faults did (for the report)."""

    def __init__(self, variant: str, asid_bits: int, ports: list):
        if variant not in VARIANTS:
            raise ValueError(f"unknown kernel variant {variant!r}")
        self.variant = variant
        self.mem = PhysMem()
        self.pt = PageTables(self.mem)
        self.asids = AsidAllocator(asid_bits, len(ports))
        self.zero_pfn = self.mem.alloc_page("zero page")
        self.mem.get_page(self.zero_pfn)
        self.files: list[File] = []
        #: lock key -> the CPU holding it: ("ptl", mm name), ("page", pfn)
        self.locks: dict[tuple, int] = {}
        self.cpus = [Cpu(self, i, port) for i, port in enumerate(ports)]
        #: counting starts at the first racing access (set-up is not counted)
        self.counting = False
        #: the address the CPUs race on: roles and entry probes are about its page
        self.race_va: int | None = None
        #: cpu -> "winner" (its fault changed the PTE) / "loser" (found it changed)
        self.roles: dict[int, str] = {}
        #: role -> cpu -> whether the CPU's TLB translated the address when that fault returned
        self.valid_after: dict[str, dict[int, bool]] = {"winner": {}, "loser": {}}
        #: "function:update_mmu_tlb" / "function:update_mmu_cache" -> calls while counting
        self.sites: Counter = Counter()
        #: interleaving events while counting: "sc.d failed", "VM_FAULT_RETRY",
        #: "IPI waited" (an IPI's sender waited for the target's interrupts)
        self.events: Counter = Counter()

    def new_mm(self, name: str) -> Mm:
        return Mm(name, self.pt.new_pgd())

    def site(self, name: str) -> None:
        if self.counting:
            self.sites[name] += 1

    def event(self, name: str) -> None:
        if self.counting:
            self.events[name] += 1

    def state_key(self) -> tuple:
        """Everything of the kernel a later step can observe or the report shows, for the
        exhaustive search's cache of explored states (the TLBs are the backend's)."""
        return (self.mem.state_key(), tuple(f.state_key() for f in self.files),
                tuple(sorted(self.locks.items())), tuple(sorted(self.roles.items())),
                tuple((r, tuple(sorted(v.items()))) for r, v in self.valid_after.items()),
                tuple(sorted(self.sites.items())), tuple(sorted(self.events.items())),
                tuple(cpu.state_key() for cpu in self.cpus))


class Cpu(FaultPaths):
    def __init__(self, kernel: Kernel, index: int, port):
        self.kernel = kernel
        self.index = index
        self.port = port
        self.mm: Mm | None = None
        self.pgdl = 0
        self.exceptions: Counter = Counter()
        self.tlb_ops: Counter = Counter()
        self.completed: list[tuple[int, str, int]] = []     # (va, access, pa)
        #: interrupts off: inside an exception handler until do_page_fault enables them
        self.irqs_off = False
        #: what a yield waits for: ("lock", key) or ("ipi", cpus); None when runnable
        self.waiting: tuple | None = None
        #: the racing fault's role on this CPU, set by the mm code during one fault
        self.fault_role: str | None = None

    def state_key(self) -> tuple:
        return (self.irqs_off, self.waiting, self.fault_role,
                tuple(sorted(self.exceptions.items())), tuple(sorted(self.tlb_ops.items())),
                tuple(self.completed), self.pgdl)

    def blocked(self) -> bool:
        """Whether this CPU waits for another (a lock it holds, or its interrupts to come on
        for an IPI)."""
        if self.waiting is None:
            return False
        what, arg = self.waiting
        if what == "lock":
            return self.kernel.locks.get(arg, self.index) != self.index
        return any(self.kernel.cpus[c].irqs_off for c in arg)

    # ---- TLB ports and counting -----------------------------------------------------------
    def op_done(self, op, result) -> None:
        """The port's observer: count TLB instructions; check that no multi-hit is ever
        raised."""
        if self.kernel.counting and op.kind in TLB_INSNS:
            self.tlb_ops[op.kind] += 1
        if result.get("multi_hit"):
            raise Violation(f"cpu {self.index}: multi-hit raised by {op.kind}")

    # ---- boot and context switch ----------------------------------------------------------
    def tlb_init(self) -> None:
        p = self.port
        p.csrwr("TLBIDX", (p.csrrd("TLBIDX") & ~TLBIDX_PS_MASK) | PS_DEFAULT_SIZE << 24)
        p.csrwr("STLBPS", PS_DEFAULT_SIZE)
        p.csrwr("TLBREHI", (p.csrrd("TLBREHI") & ~TLBREHI_PS_MASK) | PS_DEFAULT_SIZE)
        p.invtlb(1, 0, 0)                                    # local_flush_tlb_all

    def switch_mm(self, mm: Mm) -> None:
        """switch_mm_irqs_off: a new ASID if this CPU's is stale, CSR.ASID, PGDL, cpumask."""
        asids = self.kernel.asids
        if not asids.valid(mm, self.index):
            asids.new_context(mm, self.index, lambda: self.port.invtlb(3, 0, 0))
        self.port.csrwr("ASID", asids.asid(mm, self.index))
        self.pgdl = mm.pgd
        mm.cpumask.add(self.index)
        self.mm = mm

    # ---- user program ---------------------------------------------------------------------
    def run(self, program):
        """Run user accesses ``[(va, access), ...]``; a generator yielding at scheduling
        points. Each access is retried after its exception until it completes."""
        for step in range(len(program)):
            va, access = program[step]
            for tries in range(LIVELOCK_LIMIT + 1):
                yield "access"
                result = self.port.translate(va, access)
                exc = result["exc"]
                if exc == "NONE":
                    self._check_completed(va, access, result["pa"])
                    break
                if self.kernel.counting:
                    self.exceptions[exc] += 1
                try:
                    yield from self.exception(exc, access)
                except SegmentationFault:
                    self.irqs_off = False               # the signal is delivered
                    self.completed.append((va, access, None))
                    break
            else:
                raise Violation(f"cpu {self.index}: livelock: {access} of {va:#x} took "
                                f"{LIVELOCK_LIMIT + 1} exceptions")

    def _check_completed(self, va, access, pa) -> None:
        """Invariant: the access used the page the PTE maps now."""
        pte = self.kernel.mem.read(self.kernel.pt.pte_address(self.mm.pgd, va))
        if not pte_present(pte) or pte_pfn(pte) != pa >> PAGE_SHIFT:
            raise Violation(f"cpu {self.index}: {access} of {va:#x} used page "
                            f"{pa >> PAGE_SHIFT:#x}, the PTE maps {pte:#x}")
        self.completed.append((va, access, pa))

    # ---- exception entry ------------------------------------------------------------------
    def exception(self, exc: str, access: str):
        """The vector for each TLB exception (setup_tlb_handler); interrupts are off from
        the exception to do_page_fault's local_irq_enable and again from its return to
        ertn."""
        self.irqs_off = True
        if exc == "TLBR":
            self.handle_tlb_refill()
        elif exc in ("PIL", "PIF"):
            yield from self.handle_tlb_load(access)
        elif exc == "PIS":
            yield from self.handle_tlb_store(access)
        elif exc == "PME":
            yield from self.handle_tlb_modify(access)
        else:                                               # PNR, PNX, PPI
            yield from self.handle_tlb_protect(access)
        self.port.ertn()
        self.irqs_off = False

    def handle_tlb_refill(self) -> None:
        """The refill handler: CSR.PGD, LDDIR, LDDIR, LDPTE 0/1, TLBFILL (no present check).
        The hardware reads TLBRBADV for CSR.PGD, LDDIR and LDPTE: one csrrd here. Nothing
        another CPU does between its loads and its TLBFILL can reach this TLB (interrupts are
        off), so the handler runs as one step."""
        mem, pt = self.kernel.mem, self.kernel.pt
        badv = self.port.csrrd("TLBRBADV")
        pgd = self.pgdl                      # the model has no kernel-half walks (PGDH)
        pmd_table = mem.read(pgd + 8 * pt.pgd_index(badv))                  # LDDIR 3
        pte_table = mem.read(pmd_table + 8 * pt.pmd_index(badv))            # LDDIR 1
        even = pte_table + 8 * (pt.pte_index(badv) & ~1)
        self.port.csrwr("TLBRELO0", mem.read(even))                         # LDPTE 0
        self.port.csrwr("TLBRELO1", mem.read(even + 8))                     # LDPTE 1
        self.port.tlbfill()

    def _fast_handler(self, access, required: int, set_bits: int, write: int):
        """handle_tlb_load / store / modify as laid out in v6.0's tlbex.S (decisions.md K6):
        walk; ll.d the PTE; TLBSRCH; test the PTE (fall through to do_page_fault when the
        bits are missing); set the bits with sc.d, back to the ll.d when the sc.d fails;
        TLBELO0/1 from the even/odd pair; TLBWR."""
        mem = self.kernel.mem
        badv = self.port.csrrd("BADV")
        ptep = self.kernel.pt.pte_address(self.pgdl, badv)
        while True:
            pte = mem.read(ptep)                     # ll.d
            reserved = mem.line_version(ptep)
            self.port.tlbsrch()
            if (pte & required) != required:
                badv = self.port.csrrd("BADV")      # tlb_do_page_fault_N: SAVE_ALL, BADV
                yield from self.do_page_fault(write, badv, access)
                return
            yield "llsc"
            if mem.line_version(ptep) == reserved:  # sc.d: fails after a store to the line
                mem.write(ptep, pte | set_bits)
                break
            self.kernel.event("sc.d failed")
        even = ptep & ~8
        self.port.csrwr("TLBELO0", mem.read(even))
        self.port.csrwr("TLBELO1", mem.read(even + 8))
        self.port.tlbwr()

    def handle_tlb_load(self, access):
        yield from self._fast_handler(access, PRESENT, VALID, 0)

    def handle_tlb_store(self, access):
        yield from self._fast_handler(access, PRESENT | WRITE, VALID | DIRTY | MODIFIED, 1)

    def handle_tlb_modify(self, access):
        yield from self._fast_handler(access, WRITE, VALID | DIRTY | MODIFIED, 1)

    def handle_tlb_protect(self, access):
        badv = self.port.csrrd("BADV")
        yield from self.do_page_fault(0, badv, access)

    # ---- do_page_fault ------------------------------------------------------------------------
    def do_page_fault(self, write: int, address: int, access: str):
        """arch/loongarch/mm/fault.c: interrupts on, the VMA and permission checks, then
        handle_mm_fault, again with FAULT_FLAG_TRIED while it returns VM_FAULT_RETRY."""
        self.irqs_off = False
        mm = self.mm
        vma = mm.find_vma(address)
        if vma is None:
            raise SegmentationFault(address)
        if write:
            if not vma.flags & VM_WRITE:
                raise SegmentationFault(address)
        elif access == "fetch":
            if not vma.flags & VM_EXEC:
                raise SegmentationFault(address)
        elif not vma.flags & VM_READ:
            raise SegmentationFault(address)
        self.fault_role = None
        tried = False
        while True:
            yield "fault"
            ret = yield from self.handle_mm_fault(vma, address, write, tried)
            if not ret & RETRY:
                break
            self.kernel.event("VM_FAULT_RETRY")
            tried = True
        role, self.fault_role = self.fault_role, None
        if role is not None and self.kernel.counting:
            # the report's *_entry_valid_after_fault: a probe, no side effects
            probe = self.port.probe(address, access)
            self.kernel.valid_after[role][self.index] = probe["exc"] == "NONE"
        self.irqs_off = True                        # the return path, up to ertn

    # ---- locks --------------------------------------------------------------------------------
    def lock(self, key: tuple):
        """spin_lock / lock_page: a scheduling point, then wait while another CPU holds it."""
        self.waiting = ("lock", key)
        yield "lock"
        self.waiting = None
        assert key not in self.kernel.locks, f"cpu {self.index} took {key} while it was held"
        self.kernel.locks[key] = self.index

    def trylock(self, key: tuple):
        """trylock_page / folio_trylock: a scheduling point; True when the lock was free."""
        yield "lock"
        if key in self.kernel.locks:
            return False
        self.kernel.locks[key] = self.index
        return True

    def unlock(self, key: tuple) -> None:
        assert self.kernel.locks.get(key) == self.index, f"cpu {self.index} unlocks {key}"
        del self.kernel.locks[key]

    def ptl(self) -> tuple:
        return ("ptl", self.mm.name)

    # ---- TLB maintenance ----------------------------------------------------------------------
    def update_mmu_cache(self, function: str, vma: Vma, address: int, ptep: int):
        self.kernel.site(f"{function}:update_mmu_cache")
        yield from self.__update_tlb(vma, address, ptep)

    def update_mmu_tlb(self, function: str, vma: Vma, address: int, ptep: int):
        """Empty on LoongArch until "update local TLB if PTE entry exists" (full-series)."""
        self.kernel.site(f"{function}:update_mmu_tlb")
        if self.kernel.variant == "full-series":
            yield from self.__update_tlb(vma, address, ptep)

    def __update_tlb(self, vma: Vma, address: int, ptep: int):
        """arch/loongarch/mm/tlb.c: with interrupts off, TLBSRCH for the pair, then TLBWR
        at the Index found or, when it missed, TLBFILL (TLBIDX.NE is still 1 then: D4)."""
        if vma not in self.mm.vmas:
            return                              # current->active_mm != vma->vm_mm
        yield "pte"
        p, mem = self.port, self.kernel.mem
        ptep &= ~8                              # the even PTE of the pair
        p.csrwr("TLBEHI", address & ~(2 * PAGE_SIZE - 1))
        p.tlbsrch()
        idx = p.csrrd("TLBIDX")
        p.csrwr("TLBIDX", (idx & ~TLBIDX_PS_MASK) | PS_DEFAULT_SIZE << 24)  # csrxchg
        p.csrwr("TLBELO0", mem.read(ptep))
        p.csrwr("TLBELO1", mem.read(ptep + 8))
        if idx & (1 << 31):                     # (int)idx < 0: not found
            p.tlbfill()
        else:
            p.tlbwr()

    def flush_tlb_page(self, vma: Vma, page: int):
        """K3: with more than one user, INVTLB op 5 on every CPU of the mm (IPIs, waited
        for; the caller included), else locally and the other CPUs' ASIDs dropped."""
        mm = self.mm
        yield "pte"
        if mm.users != 1:
            others = tuple(c for c in sorted(mm.cpumask) if c != self.index)
            self.waiting = ("ipi", others)
            if self.blocked():
                self.kernel.event("IPI waited")
            while self.blocked():
                yield "ipi"
            self.waiting = None
            for cpu in sorted(mm.cpumask):
                self.kernel.cpus[cpu].local_flush_tlb_page(mm, page)
        else:
            for cpu in self.kernel.cpus:
                if cpu is not self:
                    mm.context.pop(cpu.index, None)
            self.local_flush_tlb_page(mm, page)

    def local_flush_tlb_page(self, mm: Mm, page: int) -> None:
        asids = self.kernel.asids
        if asids.valid(mm, self.index):
            self.port.invtlb(5, asids.asid(mm, self.index), page & ~(2 * PAGE_SIZE - 1))
        else:
            mm.cpumask.discard(self.index)
