"""The kernel's TLB and fault paths, one :class:`Cpu` per CPU, each with its TLB port.

Every path issues the TLB-unit CSR accesses and TLB instructions the kernel issues, in the
kernel's order, through the CPU's port (any object with the methods of
``testbench.port.TLBPort``). CSRs outside the TLB unit (PGDL, KS0.., ERA, PRMD) are plain
Python state here.

Code that may be preempted is written as generators. A CPU yields at the kernel's own
scheduling points: ``"access"`` before each user access, ``"lock"`` just before taking the
page-table lock. Exception handlers run with interrupts off and lock-held sections are short
and atomic, so neither contains a yield; an IPI therefore always finds its target CPU at a
yield point and runs on it at once.

Variants (decisions.md K2): ``pre-series`` (v6.0), ``mm-only`` (Qi Zheng's mm patch alone),
``full-series`` (with "LoongArch: update local TLB if PTE entry exists").
"""

from __future__ import annotations

from collections import Counter

from .mm import VM_EXEC, VM_READ, VM_WRITE, AsidAllocator, Mm, PageTables, PhysMem, Vma
from .pte import (DIRTY, MODIFIED, PAGE_SHIFT, PAGE_SIZE, PRESENT, PS_DEFAULT_SIZE, VALID,
                  WRITE, pfn_pte, pte_mkdirty, pte_mkspecial, pte_mkwrite, pte_mkyoung,
                  pte_none, pte_pfn, pte_present, pte_write)

VARIANTS = ("pre-series", "mm-only", "full-series")
TLB_INSNS = ("tlbsrch", "tlbrd", "tlbwr", "tlbfill", "tlbclr", "tlbflush", "invtlb")
#: exceptions one user access may take before it counts as a livelock
LIVELOCK_LIMIT = 8
TLBIDX_PS_MASK = 0x3F << 24
TLBREHI_PS_MASK = 0x3F


class Violation(Exception):
    """An invariant of the run failed (wrong page, multi-hit, livelock)."""


class SegmentationFault(Exception):
    """do_page_fault found no VMA or no permission: the access is killed."""


class Kernel:
    """State shared by every CPU: memory, page tables, ASIDs, the variant, and what the
    racing faults did (for the report)."""

    def __init__(self, variant: str, asid_bits: int, ports: list):
        if variant not in VARIANTS:
            raise ValueError(f"unknown kernel variant {variant!r}")
        self.variant = variant
        self.mem = PhysMem()
        self.pt = PageTables(self.mem)
        self.asids = AsidAllocator(asid_bits, len(ports))
        self.zero_pfn = self.mem.alloc_page("zero page")
        self.mem.get_page(self.zero_pfn)
        self.cpus = [Cpu(self, i, port) for i, port in enumerate(ports)]
        #: counting starts at the first racing access (set-up is not counted)
        self.counting = False
        #: cpu -> "winner" (its fault changed the PTE) / "loser" (found it changed)
        self.roles: dict[int, str] = {}
        #: cpu -> whether its TLB translated the address when its lost fault returned
        self.loser_valid: dict[int, bool] = {}

    def new_mm(self, name: str) -> Mm:
        return Mm(name, self.pt.new_pgd())


class Cpu:
    def __init__(self, kernel: Kernel, index: int, port):
        self.kernel = kernel
        self.index = index
        self.port = port
        self.mm: Mm | None = None
        self.pgdl = 0
        self.exceptions: Counter = Counter()
        self.tlb_ops: Counter = Counter()
        self.completed: list[tuple[int, str, int]] = []     # (va, access, pa)
        self._lost = False                                  # the current fault lost a race

    # ---- TLB ports and counting -----------------------------------------------------------
    def count_op(self, op, result) -> None:
        """Port hook: count TLB instructions; check that no multi-hit is ever raised."""
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
        for va, access in program:
            for _ in range(LIVELOCK_LIMIT + 1):
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
        """The vector for each TLB exception (setup_tlb_handler)."""
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

    def handle_tlb_refill(self) -> None:
        """The refill handler: CSR.PGD, LDDIR, LDDIR, LDPTE 0/1, TLBFILL (no present check).
        The hardware reads TLBRBADV for CSR.PGD, LDDIR and LDPTE: one csrrd here."""
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
        """handle_tlb_load / store / modify: walk, check, update the PTE, TLBSRCH, TLBWR;
        or fall through to do_page_fault."""
        mem = self.kernel.mem
        badv = self.port.csrrd("BADV")
        ptep = self.kernel.pt.pte_address(self.pgdl, badv)
        pte = mem.read(ptep)
        if (pte & required) != required:
            badv = self.port.csrrd("BADV")          # tlb_do_page_fault_N: SAVE_ALL, BADV
            yield from self.do_page_fault(write, badv, access)
            return
        mem.write(ptep, pte | set_bits)              # ll.d / sc.d
        self.port.tlbsrch()
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

    # ---- do_page_fault and the mm fault path ------------------------------------------------
    def do_page_fault(self, write: int, address: int, access: str):
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
        self._lost = False
        yield from self.handle_mm_fault(vma, address, write)
        if self._lost:
            # the report's loser_entry_valid_after_fault: a probe, no side effects
            probe = self.port.probe(address, access)
            self.kernel.loser_valid[self.index] = probe["exc"] == "NONE"

    def handle_mm_fault(self, vma: Vma, address: int, write: int):
        ptep = self.kernel.pt.alloc_tables(self.mm.pgd, address)   # pmd_alloc, pte_alloc
        yield from self.handle_pte_fault(vma, address, ptep, write)

    def handle_pte_fault(self, vma: Vma, address: int, ptep: int, write: int):
        mem = self.kernel.mem
        orig = mem.read(ptep)                   # read without the lock
        if pte_none(orig):
            yield from self.do_anonymous_page(vma, address, ptep, write)
            return
        yield from self.lock()
        if mem.read(ptep) != orig:              # !pte_same: another CPU changed it
            self._lose()
            self.update_mmu_tlb(vma, address, ptep)
            self.unlock()
            return
        entry = orig
        if write:
            if not pte_write(entry):
                yield from self.do_wp_page(vma, address, ptep, orig)   # releases the lock
                return
            entry = pte_mkdirty(entry)
        entry = pte_mkyoung(entry)
        if self.ptep_set_access_flags(vma, address, ptep, entry):
            self.update_mmu_cache(vma, address, ptep)
        elif write:
            self.flush_tlb_fix_spurious_fault(vma, address)
        self.unlock()

    def do_anonymous_page(self, vma: Vma, address: int, ptep: int, write: int):
        k = self.kernel
        if not write:
            entry = pte_mkspecial(pfn_pte(k.zero_pfn, vma.page_prot))
            yield from self.lock()
            try:
                if not pte_none(k.mem.read(ptep)):
                    self._lose()
                    self.update_mmu_tlb(vma, address, ptep)
                    return
                self._install(ptep, entry)
                self.update_mmu_cache(vma, address, ptep)
            finally:
                self.unlock()
            return
        pfn = k.mem.alloc_page(f"anon {address:#x} by cpu {self.index}")
        entry = pfn_pte(pfn, vma.page_prot)
        if vma.flags & VM_WRITE:
            entry = pte_mkwrite(pte_mkdirty(entry))
        yield from self.lock()
        try:
            if not pte_none(k.mem.read(ptep)):
                self._lose()
                if k.variant == "pre-series":
                    self.update_mmu_cache(vma, address, ptep)   # the accidental v6.0 call
                else:
                    self.update_mmu_tlb(vma, address, ptep)
                k.mem.put_page(pfn)                             # release the new page
                return
            k.mem.mapcount[pfn] += 1
            self._install(ptep, entry)
            self.update_mmu_cache(vma, address, ptep)
        finally:
            self.unlock()

    def do_wp_page(self, vma: Vma, address: int, ptep: int, orig: int):
        """Called with the lock held, returns with it released. An anonymous page mapped
        once is reused; a shared one is copied (wp_page_copy) with the lock dropped."""
        mem = self.kernel.mem
        pfn = pte_pfn(orig)
        if pfn != self.kernel.zero_pfn and mem.mapcount[pfn] == 1:
            entry = pte_mkwrite(pte_mkdirty(pte_mkyoung(orig)))      # wp_page_reuse
            if self.ptep_set_access_flags(vma, address, ptep, entry):
                self.update_mmu_cache(vma, address, ptep)
            self.unlock()
            return
        mem.get_page(pfn)
        self.unlock()
        yield from self.wp_page_copy(vma, address, ptep, orig)
        mem.put_page(pfn)

    def wp_page_copy(self, vma: Vma, address: int, ptep: int, orig: int):
        k = self.kernel
        old = pte_pfn(orig)
        new = k.mem.alloc_page(f"copy of {old:#x} by cpu {self.index}")
        yield from self.lock()
        try:
            if k.mem.read(ptep) != orig:
                self._lose()
                self.update_mmu_tlb(vma, address, ptep)
                k.mem.put_page(new)
                return
            entry = pte_mkwrite(pte_mkdirty(pfn_pte(new, vma.page_prot)))
            self.ptep_clear_flush(vma, address, ptep)
            k.mem.mapcount[new] += 1
            self._install(ptep, entry)
            self.update_mmu_cache(vma, address, ptep)
            k.mem.mapcount[old] -= 1
            k.mem.put_page(old)
        finally:
            self.unlock()

    def _install(self, ptep: int, entry: int) -> None:
        """set_pte_at by the CPU that wins the race."""
        self.kernel.mem.write(ptep, entry)
        if self.kernel.counting:
            self.kernel.roles.setdefault(self.index, "winner")

    def _lose(self) -> None:
        self._lost = True
        if self.kernel.counting:
            self.kernel.roles.setdefault(self.index, "loser")

    # ---- locks ------------------------------------------------------------------------------
    def lock(self):
        yield "lock"
        mm = self.mm
        assert mm.ptl_holder is None, "the page-table lock is held across a yield"
        mm.ptl_holder = self.index

    def unlock(self) -> None:
        assert self.mm.ptl_holder == self.index
        self.mm.ptl_holder = None

    # ---- TLB maintenance ----------------------------------------------------------------------
    def update_mmu_cache(self, vma: Vma, address: int, ptep: int) -> None:
        self.__update_tlb(vma, address, ptep)

    def update_mmu_tlb(self, vma: Vma, address: int, ptep: int) -> None:
        """Empty on LoongArch until "update local TLB if PTE entry exists" (full-series)."""
        if self.kernel.variant == "full-series":
            self.update_mmu_cache(vma, address, ptep)

    def __update_tlb(self, vma: Vma, address: int, ptep: int) -> None:
        if vma not in self.mm.vmas:
            return                              # current->active_mm != vma->vm_mm
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

    def ptep_set_access_flags(self, vma: Vma, address: int, ptep: int, entry: int) -> bool:
        """The generic one: write the PTE if it changed, then flush_tlb_fix_spurious_fault."""
        mem = self.kernel.mem
        changed = mem.read(ptep) != entry
        if changed:
            mem.write(ptep, entry)
            self.flush_tlb_fix_spurious_fault(vma, address)
        return changed

    def flush_tlb_fix_spurious_fault(self, vma: Vma, address: int) -> None:
        self.flush_tlb_page(vma, address)       # the generic definition

    def ptep_clear_flush(self, vma: Vma, address: int, ptep: int) -> None:
        pte = self.kernel.mem.read(ptep)
        self.kernel.mem.write(ptep, 0)
        if pte_present(pte):
            self.flush_tlb_page(vma, address)

    def flush_tlb_page(self, vma: Vma, page: int) -> None:
        """K3: with more than one user, INVTLB op 5 on every CPU of the mm (IPIs, waited
        for; the caller included), else locally and the other CPUs' ASIDs dropped."""
        mm = self.mm
        if mm.users != 1:
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

