"""A model of the Linux LoongArch page-fault path (v6.0 mm plus the 2022 update_mmu_tlb
series), driving one TLB per CPU through a TLB port. See ``docs/spec/decisions.md`` K1-K7
and ``docs/kernel-race.md``."""
