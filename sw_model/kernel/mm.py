"""Physical memory, page allocation, page tables, address spaces and ASIDs."""

from __future__ import annotations

from dataclasses import dataclass, field

from .pte import PAGE_SHIFT, PGDIR_SHIFT, PMD_SHIFT, PTRS_PER_TABLE

VM_READ, VM_WRITE, VM_EXEC, VM_SHARED = 1, 2, 4, 8


class PhysMem:
    """Word-addressed physical memory with 16 KiB page frames and reference counts.

    Words are 64 bits; a word never written reads 0. Each frame also carries a content
    tag, so that a copy-on-write copy can be told from its source.
    """

    def __init__(self, first_pfn: int = 0x100):
        self.words: dict[int, int] = {}
        self.next_pfn = first_pfn
        self.refcount: dict[int, int] = {}
        self.mapcount: dict[int, int] = {}
        self.content: dict[int, str] = {}
        #: the frames that are anonymous pages (PageAnon)
        self.anon: set[int] = set()
        #: stores per 64-byte cache line (the granule of an ll.d reservation)
        self.stores: dict[int, int] = {}
        #: an order-independent digest of ``words`` and ``stores``, kept up to date by write()
        self.digest = 0
        #: page-table pages whose every word not yet written reads as the value given
        self.fills: dict[int, int] = {}

    def read(self, pa: int) -> int:
        value = self.words.get(pa)
        return self.fills.get(pa >> PAGE_SHIFT, 0) if value is None else value

    def write(self, pa: int, value: int) -> None:
        """A store: it also breaks every ll.d reservation on its 64-byte cache line."""
        value &= (1 << 64) - 1
        if pa in self.words:
            self.digest ^= hash((pa, self.words[pa]))
        self.digest ^= hash((pa, value))
        self.words[pa] = value
        line = pa >> 6
        version = self.stores.get(line, 0)
        self.digest ^= hash(("line", line, version)) ^ hash(("line", line, version + 1))
        self.stores[line] = version + 1

    def line_version(self, pa: int) -> int:
        """How many stores the cache line of ``pa`` has taken (an ll.d remembers it, and its
        sc.d fails when it changed)."""
        return self.stores.get(pa >> 6, 0)

    def alloc_page(self, content: str = "zero", anon: bool = False) -> int:
        pfn = self.next_pfn
        self.next_pfn += 1
        self.refcount[pfn] = 1
        self.mapcount[pfn] = 0
        self.content[pfn] = content
        if anon:
            self.anon.add(pfn)
        return pfn

    def state_key(self) -> tuple:
        """What a later step can observe of memory (for the exhaustive search's cache)."""
        return (self.digest, tuple(sorted(self.fills.items())), self.next_pfn,
                tuple(sorted(self.refcount.items())),
                tuple(sorted(self.mapcount.items())))

    def get_page(self, pfn: int) -> None:
        self.refcount[pfn] += 1

    def put_page(self, pfn: int) -> None:
        self.refcount[pfn] -= 1
        assert self.refcount[pfn] >= 0, f"page {pfn:#x} freed twice"

    def fill_table(self, pfn: int, value: int) -> None:
        """Set every entry of a page-table page (a new directory pointing at a table)."""
        self.fills[pfn] = value


@dataclass
class CachedPage:
    """A page of a file in the page cache: its frame, and whether its data has been read."""

    pfn: int
    uptodate: bool = False
    #: PG_readahead: the mark read-ahead leaves where the next asynchronous read-ahead
    #: starts; fault-around skips such a page
    readahead: bool = False


@dataclass
class File:
    """A file of ``pages`` pages and its page cache (page index -> CachedPage).

    The filesystem provides ->map_pages (filemap_map_pages, so read faults go through
    fault-around), ->fault (filemap_fault) and ->page_mkwrite (a disk filesystem's, like
    ext4's: it locks the page and returns VM_FAULT_LOCKED), so a shared writable mapping is
    write-notified: its pages are mapped read-only first (decisions.md K7)."""

    name: str
    pages: int
    cache: dict[int, CachedPage] = field(default_factory=dict)

    def state_key(self) -> tuple:
        return tuple(sorted((i, p.pfn, p.uptodate, p.readahead) for i, p in self.cache.items()))


@dataclass(eq=False)
class Vma:
    start: int
    end: int
    flags: int
    page_prot: int
    #: a file mapping: the file, and the file page at ``start``
    file: File | None = None
    pgoff: int = 0

    def contains(self, address: int) -> bool:
        return self.start <= address < self.end

    def pgoff_of(self, address: int) -> int:
        return self.pgoff + ((address - self.start) >> PAGE_SHIFT)

    def address_of(self, pgoff: int) -> int:
        return self.start + ((pgoff - self.pgoff) << PAGE_SHIFT)

    def key(self) -> tuple:
        return ("vma", self.start)


@dataclass
class Mm:
    """An address space: its PGD, VMAs, users, the CPUs it ran on, its ASID per CPU."""

    name: str
    pgd: int                                   # physical address of the PGD page
    vmas: list[Vma] = field(default_factory=list)
    users: int = 1
    cpumask: set[int] = field(default_factory=set)
    context: dict[int, int] = field(default_factory=dict)   # cpu -> version | asid

    def find_vma(self, address: int) -> Vma | None:
        for vma in self.vmas:
            if vma.contains(address):
                return vma
        return None


class PageTables:
    """The kernel's 3-level tables. Empty directory entries point at the invalid tables,
    so that a walk never faults and an unmapped address reads a zero PTE."""

    def __init__(self, mem: PhysMem):
        self.mem = mem
        self.invalid_pte_table = mem.alloc_page("invalid_pte_table") << PAGE_SHIFT
        self.invalid_pmd_table = mem.alloc_page("invalid_pmd_table") << PAGE_SHIFT
        mem.fill_table(self.invalid_pmd_table >> PAGE_SHIFT, self.invalid_pte_table)

    def new_pgd(self) -> int:
        pfn = self.mem.alloc_page("pgd")
        self.mem.fill_table(pfn, self.invalid_pmd_table)
        return pfn << PAGE_SHIFT

    @staticmethod
    def pgd_index(va: int) -> int:
        return (va >> PGDIR_SHIFT) & (PTRS_PER_TABLE - 1)

    @staticmethod
    def pmd_index(va: int) -> int:
        return (va >> PMD_SHIFT) & (PTRS_PER_TABLE - 1)

    @staticmethod
    def pte_index(va: int) -> int:
        return (va >> PAGE_SHIFT) & (PTRS_PER_TABLE - 1)

    def pte_address(self, pgd: int, va: int) -> int:
        """Walk as the fast handlers do (plain loads): the address of the PTE slot, which is
        inside invalid_pte_table when the tables are not populated."""
        pmd_table = self.mem.read(pgd + 8 * self.pgd_index(va))
        pte_table = self.mem.read(pmd_table + 8 * self.pmd_index(va))
        return pte_table + 8 * self.pte_index(va)

    def alloc_tables(self, pgd: int, va: int) -> int:
        """pmd_alloc + pte_alloc: populate the directories for ``va``; returns the PTE slot."""
        slot = pgd + 8 * self.pgd_index(va)
        if self.mem.read(slot) == self.invalid_pmd_table:
            pfn = self.mem.alloc_page("pmd")
            self.mem.fill_table(pfn, self.invalid_pte_table)
            self.mem.write(slot, pfn << PAGE_SHIFT)
        pmd_table = self.mem.read(slot)
        slot = pmd_table + 8 * self.pmd_index(va)
        if self.mem.read(slot) == self.invalid_pte_table:
            pfn = self.mem.alloc_page("pte")
            self.mem.write(slot, pfn << PAGE_SHIFT)
        return self.mem.read(slot) + 8 * self.pte_index(va)


class AsidAllocator:
    """Per-CPU ASIDs with versions (asm/mmu_context.h): the bits above the ASID mask are
    the version; a wrap starts a new version and flushes the CPU's user entries."""

    def __init__(self, asid_bits: int, cpus: int):
        self.mask = (1 << asid_bits) - 1
        self.first_version = self.mask + 1
        self.cache = {cpu: self.first_version for cpu in range(cpus)}

    def valid(self, mm: Mm, cpu: int) -> bool:
        ctx = mm.context.get(cpu, 0)
        return ctx != 0 and not ((ctx ^ self.cache[cpu]) & ~self.mask)

    def new_context(self, mm: Mm, cpu: int, flush_user) -> None:
        """get_new_mmu_context: the next ASID; on a wrap, ``flush_user()`` (INVTLB op 3)."""
        asid = self.cache[cpu] + 1
        if not (asid & self.mask):
            flush_user()
        self.cache[cpu] = asid
        mm.context[cpu] = asid

    def asid(self, mm: Mm, cpu: int) -> int:
        return mm.context[cpu] & self.mask


