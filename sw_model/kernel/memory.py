"""The generic fault path of v6.0: mm/memory.c from handle_mm_fault down to every call of
update_mmu_tlb and update_mmu_cache, and the parts of mm/filemap.c it reaches
(decisions.md K2, K5, K7). A mixin of :class:`~.cpu.Cpu`: the TLB maintenance, locks and
flushes it calls are the CPU's.

Each function follows its v6.0 namesake step by step; what the model leaves out is said
where it would be (swap, NUMA, userfaultfd, huge pages, memcg, the mmap lock). Call sites
are counted as ``"function:update_mmu_tlb"`` / ``"function:update_mmu_cache"``.
``docs/kernel-race.md`` derives each race's outcome from these paths.
"""

from __future__ import annotations

from dataclasses import dataclass

from .mm import VM_SHARED, VM_WRITE, CachedPage, Vma
from .pte import PAGE_MASK, PAGE_SHIFT, PAGE_SIZE, PTRS_PER_TABLE
from .pte import pfn_pte, pte_mkdirty, pte_mkspecial, pte_mkwrite, pte_mkyoung, pte_none
from .pte import pte_pfn, pte_present, pte_write

#: vm_fault_t bits the model uses
NOPAGE, LOCKED, RETRY = 0x100, 0x200, 0x400
#: v6.0's default fault_around_bytes
FAULT_AROUND_BYTES = 64 * 1024
#: the mmap read-around of a cold page: ra_pages of the default 128 KiB read-ahead window,
#: starting ra_pages / 2 before the fault (do_sync_mmap_readahead)
READ_AROUND_PAGES = 128 * 1024 // PAGE_SIZE


@dataclass(eq=False)
class Vmf:
    """struct vm_fault: what one fault carries down the path."""

    vma: Vma
    address: int            # page aligned
    write: bool
    tried: bool             # FAULT_FLAG_TRIED: handle_mm_fault after a VM_FAULT_RETRY
    ptep: int = 0
    orig_pte: int = 0
    page: int | None = None       # the file page __do_fault returned (locked), a pfn
    cow_page: int | None = None

    @property
    def pgoff(self) -> int:
        return self.vma.pgoff_of(self.address)

    def key(self) -> tuple:
        return ("vmf", self.vma.start, self.address, self.write, self.tried, self.ptep,
                self.orig_pte, self.page, self.cow_page)


class FaultPaths:
    """mm/memory.c and mm/filemap.c, run by a CPU (``self``)."""

    # ---- roles: what the racing fault did to the racing page --------------------------------
    def _install(self, ptep: int, entry: int, address: int) -> None:
        """set_pte_at; the CPU whose fault sets the racing page's PTE wins."""
        self.kernel.mem.write(ptep, entry)
        self._role("winner", address)

    def _lose(self, address: int) -> None:
        """The fault found, under the lock, that another CPU changed the PTE."""
        self._role("loser", address)

    def _role(self, role: str, address: int) -> None:
        """Record what this fault did to the racing page (other pages have no role)."""
        race = self.kernel.race_va
        if race is None or (address ^ race) & PAGE_MASK:
            return
        self.fault_role = role
        if self.kernel.counting:
            self.kernel.roles.setdefault(self.index, role)

    # ---- handle_mm_fault, handle_pte_fault ----------------------------------------------------
    def handle_mm_fault(self, vma: Vma, address: int, write: int, tried: bool):
        """__handle_mm_fault: allocate the PMD and PTE tables, then handle_pte_fault (the
        model allocates the PTE table here; v6.0 does it in do_anonymous_page, __do_fault
        or do_fault_around, which changes nothing the TLB sees)."""
        vmf = Vmf(vma, address & PAGE_MASK, bool(write), tried)
        vmf.ptep = self.kernel.pt.alloc_tables(self.mm.pgd, vmf.address)
        ret = yield from self.handle_pte_fault(vmf)
        return ret

    def handle_pte_fault(self, vmf: Vmf):
        mem = self.kernel.mem
        vmf.orig_pte = mem.read(vmf.ptep)                  # read without the lock
        if pte_none(vmf.orig_pte):
            if vmf.vma.file is None:
                ret = yield from self.do_anonymous_page(vmf)
            else:
                ret = yield from self.do_fault(vmf)
            return ret
        # not present (swap) and PROT_NONE (NUMA) PTEs do not occur in the model
        yield from self.lock(self.ptl())
        if mem.read(vmf.ptep) != vmf.orig_pte:              # !pte_same
            self._lose(vmf.address)
            yield from self.update_mmu_tlb("handle_pte_fault", vmf.vma, vmf.address, vmf.ptep)
            self.unlock(self.ptl())
            return 0
        entry = vmf.orig_pte
        if vmf.write:
            if not pte_write(entry):
                ret = yield from self.do_wp_page(vmf)           # releases the lock
                return ret
            entry = pte_mkdirty(entry)
        entry = pte_mkyoung(entry)
        changed = yield from self.ptep_set_access_flags(vmf.vma, vmf.address, vmf.ptep, entry)
        if changed:
            self._role("winner", vmf.address)
            yield from self.update_mmu_cache("handle_pte_fault", vmf.vma, vmf.address,
                                             vmf.ptep)
        elif vmf.write and not vmf.tried:       # FAULT_FLAG_TRIED skips the spurious flush
            yield from self.flush_tlb_page(vmf.vma, vmf.address)   # ..._spurious_fault
        self.unlock(self.ptl())
        return 0

    def ptep_set_access_flags(self, vma: Vma, address: int, ptep: int, entry: int):
        """The generic one: write the PTE if it changed, then flush_tlb_fix_spurious_fault
        (the generic one: flush_tlb_page)."""
        mem = self.kernel.mem
        yield "pte"
        if mem.read(ptep) == entry:
            return False
        yield "pte"
        mem.write(ptep, entry)
        yield from self.flush_tlb_page(vma, address)
        return True

    # ---- anonymous memory ---------------------------------------------------------------------
    def do_anonymous_page(self, vmf: Vmf):
        k, vma = self.kernel, vmf.vma
        if not vmf.write:
            entry = pte_mkspecial(pfn_pte(k.zero_pfn, vma.page_prot))
            yield from self.lock(self.ptl())
            if not pte_none(k.mem.read(vmf.ptep)):
                self._lose(vmf.address)
                yield from self.update_mmu_tlb("do_anonymous_page", vma, vmf.address, vmf.ptep)
                self.unlock(self.ptl())
                return 0
            yield "pte"
            self._install(vmf.ptep, entry, vmf.address)
            yield from self.update_mmu_cache("do_anonymous_page", vma, vmf.address, vmf.ptep)
            self.unlock(self.ptl())
            return 0
        pfn = k.mem.alloc_page(f"anon {vmf.address:#x} by cpu {self.index}", anon=True)
        entry = pfn_pte(pfn, vma.page_prot)
        if vma.flags & VM_WRITE:
            entry = pte_mkwrite(pte_mkdirty(entry))
        yield from self.lock(self.ptl())
        if not pte_none(k.mem.read(vmf.ptep)):
            self._lose(vmf.address)
            if k.variant == "pre-series":              # the call the mm patch changes
                yield from self.update_mmu_cache("do_anonymous_page", vma, vmf.address,
                                                 vmf.ptep)
            else:
                yield from self.update_mmu_tlb("do_anonymous_page", vma, vmf.address,
                                               vmf.ptep)
            self.unlock(self.ptl())
            k.mem.put_page(pfn)                         # release the new page
            return 0
        k.mem.mapcount[pfn] += 1
        yield "pte"
        self._install(vmf.ptep, entry, vmf.address)
        yield from self.update_mmu_cache("do_anonymous_page", vma, vmf.address, vmf.ptep)
        self.unlock(self.ptl())
        return 0

    # ---- write-protect faults -----------------------------------------------------------------
    def do_wp_page(self, vmf: Vmf):
        """Called with the lock held, returns with it released. vm_normal_page is None for
        the zero page; an anonymous page with one reference is reused; a shared writable
        file mapping goes to wp_page_shared; anything else is copied."""
        mem = self.kernel.mem
        page = pte_pfn(vmf.orig_pte)
        if page == self.kernel.zero_pfn:                # vm_normal_page: NULL
            self.unlock(self.ptl())
            ret = yield from self.wp_page_copy(vmf, None)
            return ret
        if page in mem.anon:
            if mem.refcount[page] == 1:                 # page_count(page) == 1
                yield from self.wp_page_reuse(vmf)
                return 0
        elif vmf.vma.flags & (VM_WRITE | VM_SHARED) == VM_WRITE | VM_SHARED:
            ret = yield from self.wp_page_shared(vmf, page)
            return ret
        mem.get_page(page)                              # copy:
        self.unlock(self.ptl())
        ret = yield from self.wp_page_copy(vmf, page)
        return ret

    def wp_page_reuse(self, vmf: Vmf):
        """Make the PTE young, dirty and writable; called with the lock held, releases it."""
        entry = pte_mkwrite(pte_mkdirty(pte_mkyoung(vmf.orig_pte)))     # maybe_mkwrite
        changed = yield from self.ptep_set_access_flags(vmf.vma, vmf.address, vmf.ptep, entry)
        if changed:
            self._role("winner", vmf.address)
            yield from self.update_mmu_cache("wp_page_reuse", vmf.vma, vmf.address, vmf.ptep)
        self.unlock(self.ptl())

    def wp_page_copy(self, vmf: Vmf, old: int | None):
        """Copy the page (the zero page: a zeroed one) without the lock, then under it
        replace the PTE if it is still the one the fault read. ``old`` carries the reference
        do_wp_page took. __wp_page_copy_user's two update_mmu_tlb calls need a source page
        without struct page (a VM_PFNMAP / VM_MIXEDMAP mapping), which the model has not:
        with a page it copies and returns."""
        k, vma = self.kernel, vmf.vma
        what = "zeroed" if old is None else f"copy of {old:#x}"
        new = k.mem.alloc_page(f"{what} by cpu {self.index}", anon=True)
        yield from self.lock(self.ptl())
        if k.mem.read(vmf.ptep) == vmf.orig_pte:
            entry = pte_mkwrite(pte_mkdirty(pfn_pte(new, vma.page_prot)))
            yield from self.ptep_clear_flush(vma, vmf.address, vmf.ptep)
            k.mem.mapcount[new] += 1
            yield "pte"
            self._install(vmf.ptep, entry, vmf.address)
            yield from self.update_mmu_cache("wp_page_copy", vma, vmf.address, vmf.ptep)
            if old is not None:
                k.mem.mapcount[old] -= 1                # page_remove_rmap
            new = old                                   # the mapping's reference goes below
        else:
            self._lose(vmf.address)
            yield from self.update_mmu_tlb("wp_page_copy", vma, vmf.address, vmf.ptep)
        if new is not None:
            k.mem.put_page(new)
        self.unlock(self.ptl())
        if old is not None:
            k.mem.put_page(old)                         # do_wp_page's reference
        return 0

    def ptep_clear_flush(self, vma: Vma, address: int, ptep: int):
        mem = self.kernel.mem
        yield "pte"
        pte = mem.read(ptep)
        mem.write(ptep, 0)
        if pte_present(pte):
            yield from self.flush_tlb_page(vma, address)

    def wp_page_shared(self, vmf: Vmf, page: int):
        """A shared writable file page mapped read-only (write-notify): the filesystem's
        page_mkwrite, then finish_mkwrite_fault; with the lock held, returns without it."""
        mem = self.kernel.mem
        mem.get_page(page)
        self.unlock(self.ptl())
        yield from self.do_page_mkwrite(page)
        ret = yield from self.finish_mkwrite_fault(vmf)
        # on NOPAGE at once, else in fault_dirty_shared_page: the same for the TLB
        self.unlock(("page", page))
        mem.put_page(page)
        return ret

    def do_page_mkwrite(self, page: int):
        """->page_mkwrite of a disk filesystem: lock the page, mark it dirty, return
        VM_FAULT_LOCKED."""
        yield from self.lock(("page", page))
        return LOCKED

    def finish_mkwrite_fault(self, vmf: Vmf):
        yield from self.lock(self.ptl())
        if self.kernel.mem.read(vmf.ptep) != vmf.orig_pte:
            self._lose(vmf.address)
            yield from self.update_mmu_tlb("finish_mkwrite_fault", vmf.vma, vmf.address,
                                           vmf.ptep)
            self.unlock(self.ptl())
            return NOPAGE
        yield from self.wp_page_reuse(vmf)
        return 0

    # ---- file-backed faults (K7) --------------------------------------------------------------
    def do_fault(self, vmf: Vmf):
        if not vmf.write:
            ret = yield from self.do_read_fault(vmf)
        elif not vmf.vma.flags & VM_SHARED:
            ret = yield from self.do_cow_fault(vmf)
        else:
            ret = yield from self.do_shared_fault(vmf)
        return ret

    def do_read_fault(self, vmf: Vmf):
        """Fault-around first (->map_pages, fault_around_bytes of 64 KiB: 4 pages > 1);
        when it did not map the faulting page, __do_fault and finish_fault."""
        ret = yield from self.do_fault_around(vmf)
        if ret:
            return ret
        ret = yield from self.__do_fault(vmf)
        if ret & (NOPAGE | RETRY):
            return ret
        ret |= yield from self.finish_fault(vmf, vmf.page)
        self.unlock(("page", vmf.page))
        if ret & NOPAGE:
            self.kernel.mem.put_page(vmf.page)
        return ret

    def do_cow_fault(self, vmf: Vmf):
        """A write fault on a private file page not yet mapped: copy the file page into a
        new anonymous page and map that."""
        mem = self.kernel.mem
        vmf.cow_page = mem.alloc_page(f"cow of file page {vmf.pgoff} by cpu {self.index}",
                                      anon=True)
        ret = yield from self.__do_fault(vmf)
        if ret & (NOPAGE | RETRY):
            mem.put_page(vmf.cow_page)
            return ret
        ret |= yield from self.finish_fault(vmf, vmf.cow_page)
        self.unlock(("page", vmf.page))
        mem.put_page(vmf.page)
        if ret & NOPAGE:
            mem.put_page(vmf.cow_page)
        return ret

    def do_shared_fault(self, vmf: Vmf):
        """A write fault on a shared file page not yet mapped: page_mkwrite, then map it
        writable."""
        mem = self.kernel.mem
        ret = yield from self.__do_fault(vmf)
        if ret & (NOPAGE | RETRY):
            return ret
        self.unlock(("page", vmf.page))
        yield from self.do_page_mkwrite(vmf.page)
        ret |= yield from self.finish_fault(vmf, vmf.page)
        self.unlock(("page", vmf.page))     # on NOPAGE, or in fault_dirty_shared_page
        if ret & NOPAGE:
            mem.put_page(vmf.page)
        return ret

    def __do_fault(self, vmf: Vmf):
        """->fault: filemap_fault. Returns LOCKED with the page locked and referenced in
        ``vmf.page``, or RETRY after it had to wait with the mmap lock dropped."""
        ret = yield from self.filemap_fault(vmf)
        return ret

    def filemap_fault(self, vmf: Vmf):
        """A cached, uptodate page it can trylock: LOCKED. A cached page another CPU holds
        locked (being read, or held by a fault): wait for it; on the first try with the mmap
        lock dropped (maybe_unlock_mmap_for_io), and then unlock it and RETRY. No cached page:
        read-around (the window's missing pages are added locked and unlocked when read),
        then on the first try RETRY, else lock the page as above."""
        file, mem = vmf.vma.file, self.kernel.mem
        index = vmf.pgoff
        drop = not vmf.tried                # fault_flag_allow_retry_first
        if index not in file.cache:
            start = max(0, index - READ_AROUND_PAGES // 2)
            mark = start + READ_AROUND_PAGES - READ_AROUND_PAGES // 4     # async_size
            reading = []
            for i in range(start, min(file.pages, start + READ_AROUND_PAGES)):
                if i not in file.cache:
                    file.cache[i] = CachedPage(mem.alloc_page(f"{file.name} page {i}"),
                                               readahead=i == mark)
                    self.kernel.locks[("page", file.cache[i].pfn)] = self.index
                    reading.append(i)
            yield "io"
            for i in reading:
                file.cache[i].uptodate = True
                self.unlock(("page", file.cache[i].pfn))
            if drop:
                return RETRY
        key = ("page", file.cache[index].pfn)
        took = yield from self.trylock(key)
        if not took:
            yield from self.lock(key)               # lock_folio_maybe_drop_mmap: wait
            if drop:
                self.unlock(key)                    # fpin: unlock and retry
                return RETRY
        mem.get_page(key[1])
        vmf.page = key[1]
        return LOCKED

    def finish_fault(self, vmf: Vmf, page: int):
        """Map ``page`` if the PTE is still none, then update_mmu_cache; else NOPAGE and
        update_mmu_tlb. v6.0 has 70427f6e9ecf ("mm: bring back update_mmu_cache() to
        finish_fault()", September 2022); from 5.12 to 5.19 update_mmu_tlb ran on both
        paths (docs/kernel-race.md)."""
        yield from self.lock(self.ptl())
        if pte_none(self.kernel.mem.read(vmf.ptep)):        # !vmf_pte_changed
            yield "pte"
            self.do_set_pte(vmf, page, vmf.address, vmf.ptep)
            yield from self.update_mmu_cache("finish_fault", vmf.vma, vmf.address, vmf.ptep)
            ret = 0
        else:
            self._lose(vmf.address)
            yield from self.update_mmu_tlb("finish_fault", vmf.vma, vmf.address, vmf.ptep)
            ret = NOPAGE
        self.unlock(self.ptl())
        return ret

    def do_set_pte(self, vmf: Vmf, page: int, address: int, ptep: int) -> None:
        """mk_pte with vm_page_prot (young: LoongArch's protection map carries VALID); a
        write fault makes it dirty and, in a VM_WRITE mapping, writable."""
        vma = vmf.vma
        entry = pfn_pte(page, vma.page_prot)
        if vmf.write:
            entry = pte_mkdirty(entry)
            if vma.flags & VM_WRITE:
                entry = pte_mkwrite(entry)
        self.kernel.mem.mapcount[page] += 1
        self._install(ptep, entry, address)

    def do_fault_around(self, vmf: Vmf):
        """The fault_around_bytes window around the fault, clipped to the VMA and to the PTE
        table, handed to ->map_pages."""
        vma = vmf.vma
        nr_pages = FAULT_AROUND_BYTES >> PAGE_SHIFT
        mask = ~(nr_pages * PAGE_SIZE - 1) & PAGE_MASK
        address = max(vmf.address & mask, vma.start)
        off = ((vmf.address - address) >> PAGE_SHIFT) & (PTRS_PER_TABLE - 1)
        start = vmf.pgoff - off
        end = start - ((address >> PAGE_SHIFT) & (PTRS_PER_TABLE - 1)) + PTRS_PER_TABLE - 1
        end = min(end, ((vma.end - vma.start) >> PAGE_SHIFT) + vma.pgoff - 1,
                  start + nr_pages - 1)
        ret = yield from self.filemap_map_pages(vmf, start, end)
        return ret

    def filemap_map_pages(self, vmf: Vmf, start: int, end: int):
        """Map every cached, uptodate page of [start, end] it can trylock and whose PTE is
        none, each with update_mmu_cache; NOPAGE when the faulting page was one of them."""
        vma, mem = vmf.vma, self.kernel.mem
        index = yield from self._next_uptodate_page(vma.file, start, end)
        if index is None:
            return 0
        yield from self.lock(self.ptl())
        ret = 0
        first = True
        while index is not None:
            page = vma.file.cache[index].pfn
            address = vma.address_of(index)
            ptep = self.kernel.pt.pte_address(self.mm.pgd, address)
            if not first:
                yield "pte"
            first = False
            if pte_none(mem.read(ptep)):
                if address == vmf.address:
                    ret = NOPAGE
                yield "pte"
                mem.get_page(page)
                self.do_set_pte(vmf, page, address, ptep)
                yield from self.update_mmu_cache("filemap_map_pages", vma, address, ptep)
            self.unlock(("page", page))
            index = yield from self._next_uptodate_page(vma.file, index + 1, end)
        self.unlock(self.ptl())
        return ret

    def _next_uptodate_page(self, file, start: int, end: int):
        """The next page of [start, end] that is cached, uptodate, not marked for
        read-ahead and not locked by another (folio_trylock); it returns locked by this
        CPU."""
        index = start
        while index <= min(end, file.pages - 1):
            cached = file.cache.get(index)
            if cached is not None and cached.uptodate and not cached.readahead:
                took = yield from self.trylock(("page", cached.pfn))
                if took:
                    return index
            index += 1
        return None

