"""PTE bits (``pgtable-bits.h``, 16 KiB pages) and the pte_* helpers of v6.0."""

PAGE_SHIFT = 14
PAGE_SIZE = 1 << PAGE_SHIFT
PAGE_MASK = ~(PAGE_SIZE - 1)
PS_DEFAULT_SIZE = PAGE_SHIFT
PTRS_PER_TABLE = PAGE_SIZE // 8          # 2048 entries of 8 bytes per table page
#: 3 levels: PTE VA[24:14], PMD VA[35:25], PGD VA[46:36]
PMD_SHIFT = PAGE_SHIFT + 11
PGDIR_SHIFT = PMD_SHIFT + 11

VALID = 1 << 0          # also "young"
DIRTY = 1 << 1          # hardware D
PLV_USER = 3 << 2
CACHE_CC = 1 << 4
GLOBAL = 1 << 6
PRESENT = 1 << 7
WRITE = 1 << 8
MODIFIED = 1 << 9       # software dirty
PROTNONE = 1 << 10
SPECIAL = 1 << 11
NO_READ = 1 << 61
NO_EXEC = 1 << 62
PFN_MASK = ((1 << 48) - 1) & PAGE_MASK


def pte_none(pte: int) -> bool:
    return not (pte & ~GLOBAL)


def pte_present(pte: int) -> bool:
    return bool(pte & (PRESENT | PROTNONE))


def pte_write(pte: int) -> bool:
    return bool(pte & WRITE)


def pte_pfn(pte: int) -> int:
    return (pte & PFN_MASK) >> PAGE_SHIFT


def pfn_pte(pfn: int, prot: int) -> int:
    return (pfn << PAGE_SHIFT) | prot


def pte_mkyoung(pte: int) -> int:
    return pte | VALID


def pte_mkdirty(pte: int) -> int:
    return pte | DIRTY | MODIFIED


def pte_mkwrite(pte: int) -> int:
    return pte | WRITE | DIRTY


def pte_wrprotect(pte: int) -> int:
    return pte & ~(WRITE | DIRTY)


def pte_mkspecial(pte: int) -> int:
    return pte | SPECIAL


#: vm_page_prot of a private anonymous VM_READ|VM_WRITE mapping (protection_map): readable
#: user page, valid at once, no WRITE bit (private writable mappings are copy-on-write),
#: not executable
PROT_PRIVATE_RW = PRESENT | VALID | PLV_USER | CACHE_CC | NO_EXEC
