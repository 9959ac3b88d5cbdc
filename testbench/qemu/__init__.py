"""QEMU 7.2's LoongArch TLB as an outside oracle (docs/spec/qemu.md).

The ops of each CPU become one bare-metal LA64 program that QEMU's ``virt`` machine runs as
its firmware (``-bios``, in direct-address mode at PLV0). The program performs every op with
the real instruction (csrrd/csrwr, TLBSRCH, TLBRD, TLBWR, TLBFILL, TLBCLR, TLBFLUSH, INVTLB,
ERTN; a translation as a load, store or fetch in mapped mode at the op's privilege level)
and writes what it observed to the UART, where the host reads it back.

The reference model runs beside the generation of the program, so that the program knows
at every op the state the model is in. Where QEMU 7.2 departs from decisions.md in a way
docs/spec/qemu.md lists, the program observes QEMU's own result first, then brings QEMU's
state to the model's (rewrites the CSR, moves an entry), so that the next op starts from
the same state on both sides; the check afterwards requires QEMU's result to be exactly
what the listed rule predicts. Anything else is an unexplained difference. Before an
access the CSRs it may write hold sentinels, so that what it writes shows; after TLBWR and
TLBFILL, TLBRD reads back what QEMU wrote.

TLBFILL picks a random slot in QEMU; under ``-seed 1`` the k-th TLBFILL of any run draws the
k-th number of one sequence, which a program that does nothing else learns once per
process, so that every program knows where each TLBFILL lands and moves the entry to the
model's slot (D9).
"""

from __future__ import annotations

from .fuzz import QemuOps, fuzz, shrink, still_diverges
from .program import State
from .rules import RULES, Divergence, check_geometry
from .run import QEMU_BINARY, QemuBackend, fill_choices, format_rules, run_ops

__all__ = ["QEMU_BINARY", "RULES", "Divergence", "QemuBackend", "QemuOps", "State",
           "check_geometry", "fill_choices", "format_rules", "fuzz", "run_ops", "shrink",
           "still_diverges"]
