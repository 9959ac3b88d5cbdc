"""The bare-metal LA64 program that runs one CPU's ops under QEMU, generated in step with
the reference model, and the window of physical memory it observes."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

from loongtlb.sw_model.errors import InputError
from loongtlb.sw_model.geometry import Geometry
from loongtlb.sw_model.tlb import Entry, ReferenceTLB

from ..la64 import CSR_NUMBER, Asm, R
from ..trace import Op
from .rules import half, privileged, qemu_exception

QEMU_BINARY = "qemu-system-loongarch64"

ALIAS = 0x9000_0000_0000_0000      # DMW0's window: VA ALIAS | PA, cached, at PLV0 and PLV3
BIOS = 0x1C00_0000                  # where -bios is loaded and the CPU starts
BIOS_LIMIT = 4 << 20
UART = 0x1FE0_01E0                  # ns16550: THR at +0, LSR at +5
GED_SLEEP = 0x100E_001C             # ACPI GED sleep control: 0x34 powers off
DATA = 0x0030_0000                  # the program's own data: +0 ESTAT at the last TLB
#                                     exception, +8 BADV kept across the program's own traps
WINDOW, WINDOW_END = 0x0040_0000, 0x0080_0000   # physical memory the program can observe
RAM = ((0, 0x1000_0000), (0x9000_0000, 0x1_0000_0000))  # QEMU virt with -m 2G
NOTHING = 0x1_0000_0000             # from here up nothing is mapped: an access is a bus error
DA_CRMD = 0xA8                      # PLV0, IE 0, DA 1, PG 0, DATF = DATM = 1 (QEMU's reset)
RET = 0x4C000020                    # jirl zero, ra, 0
NOP = 0x03400000                    # andi zero, zero, 0
STORE_MARK = NOP << 32 | RET        # what a store writes: harmless if fetched afterwards
DONE = 0x454E_4F44_424C_544C        # the program's last word
END_OF_CELLS = (1 << 64) - 1

STATUS_GENERAL = 1 << 62            # an exception through EENTRY (ESTAT in the low bits)
STATUS_REFILL = 1 << 63             # an exception through TLBRENTRY
STATUS_SKIPPED = 1 << 61            # the program did not run the instruction (Q7, Q13, Q16)

#: what the program puts in BADV, TLBEHI, TLBRBADV, TLBREHI and its copy of ESTAT before
#: an access, so that what the access writes shows, also when it writes what was there
SENTINEL = {"BADV": 0x5A5A_5A5A_5A5A_5A5A, "TLBEHI": 0x0000_5A5A_5A5A_4000,
            "TLBRBADV": 0xA5A5_A5A5_A5A5_A5A5, "TLBREHI": 0x0000_A5A5_A5A5_800E,
            "ESTAT": 0x3F << 16}


def pristine_cell(pa: int) -> list[int]:
    """The four instruction words the program puts at every 16-byte cell of the window:
    ``lu12i.w a1, PA >> 12; ori a1, a1, PA & 0xfff; lu12i.w zero, PA >> 4; jirl zero, ra,
    0``. A fetch at the cell returns with a1 = its PA; every doubleword differs from every
    other, so a load's value names its PA."""
    a1 = R["a1"]
    return [0x14000000 | ((pa >> 12) & 0xFFFFF) << 5 | a1,
            0x03800000 | (pa & 0xFFF) << 10 | a1 << 5 | a1,
            0x14000000 | ((pa >> 4) & 0xFFFFF) << 5, RET]


class Window:
    """The window's contents as the model expects them: pristine cells, then every store
    the model says reached it."""

    def __init__(self):
        self.bytes: dict[int, int] = {}

    @staticmethod
    def holds(pa: int, size: int = 1) -> bool:
        return WINDOW <= pa and pa + size <= WINDOW_END

    def byte(self, pa: int) -> int:
        if pa in self.bytes:
            return self.bytes[pa]
        word = pristine_cell(pa & ~15)[(pa >> 2) & 3]
        return word >> (8 * (pa & 3)) & 0xFF

    def read(self, pa: int, size: int) -> int:
        return sum(self.byte(pa + i) << (8 * i) for i in range(size))

    def write(self, pa: int, size: int, value: int) -> None:
        for i in range(size):
            self.bytes[pa + i] = value >> (8 * i) & 0xFF

    def fetch(self, pa: int) -> int | None:
        """a1 after a fetch at ``pa`` (0 on entry), or None if it runs into anything but the
        cell's own instructions (a byte store may have changed one)."""
        a1 = 0
        for addr in range(pa, (pa & ~15) + 16, 4):
            word, pristine = self.read(addr, 4), pristine_cell(addr & ~15)
            if word == RET:
                return a1
            if word == pristine[0] and addr & 15 == 0:
                hi = word >> 5 & 0xFFFFF
                a1 = ((hi - (1 << 20) if hi >> 19 else hi) << 12) & ((1 << 64) - 1)
            elif word == pristine[1] and addr & 15 == 4:
                a1 |= word >> 10 & 0xFFF
            elif not (word == NOP or word == pristine[2] and addr & 15 == 8):
                return None
        return None

    def changed_cells(self) -> dict[int, tuple[int, int]]:
        cells = {pa & ~15 for pa in self.bytes}
        out = {}
        for cell in sorted(cells):
            lo, hi = self.read(cell, 8), self.read(cell + 8, 8)
            pristine = pristine_cell(cell)
            if (lo, hi) != (pristine[0] | pristine[1] << 32, pristine[2] | pristine[3] << 32):
                out[cell] = (lo, hi)
        return out


def in_ram(pa: int) -> bool:
    return any(lo <= pa < hi for lo, hi in RAM)


def reachable(pa: int) -> bool:
    """RAM, or the range where nothing is mapped (a bus error): the places an access may
    go. The rest holds the machine's devices and the program's own code and data."""
    return (in_ram(pa) and not DATA <= pa < DATA + 0x1000) or pa >= NOTHING


@dataclass
class Step:
    """One op as generated: the model's result, the words the program reports for it, and
    what the check needs to know of the model's state."""

    op: Op
    result: dict
    layout: list[str]
    info: dict = field(default_factory=dict)


@dataclass
class State:
    """Where one CPU's program starts: the model's TLB, the window as the model expects it,
    CRMD.PLV (from the trace's csrwr)."""

    model: ReferenceTLB
    window: Window
    plv: int = 0

    @classmethod
    def reset(cls, geom: Geometry) -> "State":
        return cls(ReferenceTLB(geom), Window())


class Program:
    """The program for one CPU's ops, generated in step with the reference model from
    ``start`` (left as it was). ``choices``: QEMU's choice for each TLBFILL (Q1), as
    run.fill_choices learns them."""

    def __init__(self, geom: Geometry, ops: list[Op], start: State, choices: list[int]):
        self.geom = geom
        start = copy.deepcopy(start)
        self.model, self.window, self.plv = start.model, start.window, start.plv
        self.choices = choices
        self.fills = 0
        self.steps: list[Step] = []
        a = self.a = Asm(ALIAS | BIOS)
        self._prologue()
        for i, op in enumerate(ops):
            self._op(i, op)
        self._epilogue()
        self.image = a.image()
        if len(self.image) > BIOS_LIMIT:
            raise InputError(f"{len(ops)} ops make a QEMU program over 4 MiB; fewer per batch")

    # ---- helpers ------------------------------------------------------------------------------
    def put(self, reg: int) -> None:
        """Report register ``reg`` (8 bytes to the UART)."""
        if reg != R["a0"]:
            self.a.op("or", R["a0"], reg, R["zero"])
        self.a.branch("bl", "putq")

    def put_csr(self, name: str) -> None:
        self.a.op("csrrd", R["a0"], CSR_NUMBER[name])
        self.a.branch("bl", "putq")

    def set_csr(self, name: str, value: int) -> None:
        if value == 0:
            self.a.op("csrwr", R["zero"], CSR_NUMBER[name])
        else:
            self.a.li(R["t0"], value)
            self.a.op("csrwr", R["t0"], CSR_NUMBER[name])

    def sync_csrs(self, *names: str) -> None:
        """QEMU's CSRs as the model reads them (the program's copy of ESTAT for ESTAT)."""
        for name in names:
            value = self.model.read_csr(name)
            if name == "ESTAT":
                self.a.li(R["t0"], value)
                self.a.op("st.d", R["t0"], R["s1"], 0)
            else:
                self.set_csr(name, value)

    def sync_slot(self, index: int) -> None:
        """QEMU's slot ``index`` as the model holds it, by a TLBWR outside the refill
        context; then the CSRs that took back to the model's."""
        entry = self.model.entry_at(index) or Entry()
        g = self.geom
        self.set_csr("TLBRERA", 0)
        if entry.e:
            gbit = 1 << 6 if entry.g else 0
            ps = entry.ps if index >= g.stlb_entries else self.model.stlbps
            self.set_csr("TLBEHI", entry.vppn << 13)
            self.set_csr("TLBELO0", entry.lo0 | gbit)
            self.set_csr("TLBELO1", entry.lo1 | gbit)
            self.set_csr("ASID", entry.asid)
            self.set_csr("TLBIDX", index | ps << 24)
        else:
            self.set_csr("TLBIDX", index | 1 << 31)
        self.a.op("tlbwr")
        self.sync_csrs("TLBEHI", "TLBELO0", "TLBELO1", "ASID", "TLBIDX", "TLBRERA")

    # ---- the program's frame --------------------------------------------------------------------
    def _prologue(self) -> None:
        a, r = self.a, R
        emit_entry(a)
        self._handlers()
        a.label("start")
        a.li(r["t0"], ALIAS | 0x10 | 0x9)        # DMW0: VSEG 9, MAT CC, PLV0 and PLV3
        a.op("csrwr", r["t0"], CSR_NUMBER["DMW0"])
        a.op("csrwr", r["zero"], CSR_NUMBER["ECFG"])
        a.li(r["t0"], a.address("general"))
        a.op("csrwr", r["t0"], CSR_NUMBER["EENTRY"])
        a.li(r["t0"], a.address("refill"))
        a.op("csrwr", r["t0"], CSR_NUMBER["TLBRENTRY"])
        a.li(r["s0"], ALIAS | UART)
        a.li(r["s1"], ALIAS | DATA)
        a.op("st.d", r["zero"], r["s1"], 0)
        a.op("st.d", r["zero"], r["s1"], 8)
        # the window: a cell every 16 bytes
        self._window_start()
        a.label("fill")
        self._cell_words()
        a.op("st.d", r["t3"], r["t0"], 0)
        a.op("st.d", r["t5"], r["t0"], 8)
        a.op("addi.d", r["t0"], r["t0"], 16)
        a.op("addi.d", r["t2"], r["t2"], 16)
        a.branch("bltu", r["t0"], r["t1"], "fill")
        # the state the ops start from: the window's stores, the model's entries and CSRs
        for pa in sorted({pa & ~7 for pa in self.window.bytes}):
            a.li(r["t0"], ALIAS | pa)
            a.li(r["t1"], self.window.read(pa, 8))
            a.op("st.d", r["t1"], r["t0"], 0)
        a.op("ibar", 0)
        for index in range(self.geom.total_entries):
            entry = self.model.entry_at(index)
            if entry.e:
                self.sync_slot(index)
        self.sync_csrs("TLBIDX", "TLBEHI", "TLBELO0", "TLBELO1", "ASID", "STLBPS", "TLBRBADV",
                       "TLBRERA", "TLBRELO0", "TLBRELO1", "TLBREHI", "BADV", "ESTAT")

    def _window_start(self) -> None:
        """For a walk over the window's cells: t0 the first (its alias), t1 the end, t2 its
        PA; t4, t6, s5 the opcode bits of a cell's words (pristine_cell)."""
        a, r = self.a, R
        a.li(r["t0"], ALIAS | WINDOW)
        a.li(r["t1"], ALIAS | WINDOW_END)
        a.li(r["t2"], WINDOW)
        a.li(r["t4"], 0x14000000 | r["a1"])
        a.li(r["t6"], 0x03800000 | r["a1"] << 5 | r["a1"])
        a.li(r["s5"], RET << 32 | 0x14000000)

    def _cell_words(self) -> None:
        """t3, t5 = the two doublewords of the cell at physical t2 (pristine_cell)."""
        a, r = self.a, R
        a.op("srli.d", r["t3"], r["t2"], 12)
        a.op("slli.d", r["t3"], r["t3"], 5)
        a.op("or", r["t3"], r["t3"], r["t4"])
        a.op("andi", r["t5"], r["t2"], 0xFFF)
        a.op("slli.d", r["t5"], r["t5"], 10)
        a.op("or", r["t5"], r["t5"], r["t6"])
        a.op("slli.d", r["t5"], r["t5"], 32)
        a.op("or", r["t3"], r["t3"], r["t5"])
        a.op("srli.d", r["t5"], r["t2"], 4)
        a.op("slli.d", r["t5"], r["t5"], 5)
        a.op("or", r["t5"], r["t5"], r["s5"])

    def _handlers(self) -> None:
        """The exception entries. s4 says what the op expects: 0 an exception of the access
        (recorded in s3), 1 the program's own syscall back from PLV3, 2 INVTLB's INE. Each
        goes on at the op's continuation (s2), at PLV0; BADV, which QEMU writes on a syscall
        or INE, is put back."""
        a, r = self.a, R
        for entry in ("general", "refill"):
            a.label(entry)
            a.op("ori", r["t7"], r["zero"], 1)
            a.branch("beq", r["s4"], r["t7"], "back")
            if entry == "general":
                a.op("csrrd", r["t7"], CSR_NUMBER["ESTAT"])
                a.op("ori", r["t6"], r["zero"], 2)
                a.branch("beq", r["s4"], r["t6"], "general_ine")
                a.op("st.d", r["t7"], r["s1"], 0)          # ESTAT at a TLB exception
                a.label("general_ine")
                a.li(r["t6"], STATUS_GENERAL)
                a.op("or", r["s3"], r["t7"], r["t6"])
            else:
                a.li(r["s3"], STATUS_REFILL)
            a.op("ori", r["t7"], r["zero"], 2)
            a.branch("beq", r["s4"], r["t7"], "back")
            a.op("jirl", r["zero"], r["s2"], 0)
        a.label("back")
        a.op("ld.d", r["t7"], r["s1"], 8)
        a.op("csrwr", r["t7"], CSR_NUMBER["BADV"])
        a.op("jirl", r["zero"], r["s2"], 0)

    def _epilogue(self) -> None:
        """Report every TLB slot as TLBRD reads it (TLBIDX, TLBEHI, TLBELO0, TLBELO1), then
        every window cell that differs from its pristine contents (address, both
        doublewords), an end mark, the done word; power off."""
        a, r = self.a, R
        a.op("or", r["s6"], r["zero"], r["zero"])
        a.li(r["s7"], self.geom.total_entries)
        a.label("dump")
        a.op("or", r["t0"], r["s6"], r["zero"])
        a.op("csrwr", r["t0"], CSR_NUMBER["TLBIDX"])
        a.op("tlbrd")
        for name in ("TLBIDX", "TLBEHI", "TLBELO0", "TLBELO1"):
            self.put_csr(name)
        a.op("addi.d", r["s6"], r["s6"], 1)
        a.branch("bltu", r["s6"], r["s7"], "dump")
        self._window_start()
        a.label("scan")
        self._cell_words()
        a.op("ld.d", r["s6"], r["t0"], 0)
        a.branch("bne", r["s6"], r["t3"], "scan_diff")
        a.op("ld.d", r["s6"], r["t0"], 8)
        a.branch("bne", r["s6"], r["t5"], "scan_diff")
        a.label("scan_next")
        a.op("addi.d", r["t0"], r["t0"], 16)
        a.op("addi.d", r["t2"], r["t2"], 16)
        a.branch("bltu", r["t0"], r["t1"], "scan")
        a.branch("b", "scan_done")
        a.label("scan_diff")
        self.put(r["t2"])
        a.op("ld.d", r["a0"], r["t0"], 0)
        a.branch("bl", "putq")
        a.op("ld.d", r["a0"], r["t0"], 8)
        a.branch("bl", "putq")
        a.branch("b", "scan_next")
        a.label("scan_done")
        a.li(r["a0"], END_OF_CELLS)
        a.branch("bl", "putq")
        a.li(r["a0"], DONE)
        a.branch("bl", "putq")
        emit_poweroff(a)

    # ---- one op ---------------------------------------------------------------------------------
    def _op(self, i: int, op: Op) -> None:
        a, r = self.a, R
        model = self.model
        before = {"asid": model.read_csr("ASID"), "refill": model.in_refill,
                  "estat": model.read_csr("ESTAT"), "stlbps": model.stlbps,
                  "tlbfill_ne": self.geom.tlbfill_ne}
        if op.kind == "csrwr":
            before["csr"] = model.read_csr(op.args["csr"])
        info: dict = {}
        layout = ["status"]
        cont = f"c{i}"
        a.branch("pcaddi", r["s2"], cont)
        a.op("or", r["s3"], r["zero"], r["zero"])
        a.op("or", r["s4"], r["zero"], r["zero"])
        kind, args = op.kind, op.args
        body = getattr(self, f"_{kind}")
        result, after = body(op, args, layout, info, before)
        a.label(cont)
        if kind in ("translate", "ertn"):
            self.set_csr("CRMD", DA_CRMD)
            a.op("or", r["s4"], r["zero"], r["zero"])
        self.put(r["s3"])
        if after is not None:
            after()
        self.steps.append(Step(op, result, layout, {**info, "before": before}))

    def _csrrd(self, op, args, layout, info, before):
        name = args["csr"]
        result = self.model.csrrd(name)
        if name == "CRMD":
            return result, None             # the program keeps QEMU at PLV0 between ops
        layout.append("value")

        def after():
            if name == "ESTAT":             # ESTAT as QEMU wrote it at the last TLB exception
                self.a.op("ld.d", R["a0"], R["s1"], 0)
                self.a.branch("bl", "putq")
            else:
                self.put_csr(name)
        return result, after

    def _csrwr(self, op, args, layout, info, before):
        name, value = args["csr"], args["value"]
        model = self.model
        result = model.csrwr(name, value)
        info["model_view"] = model.read_csr(name)
        if name == "CRMD":
            self.plv = model.read_csr("CRMD") & 3
            return result, None
        if name in ("MISC", "ESTAT", "PRCFG3"):
            # read-only in QEMU (csrwr raises INE) or, for ESTAT, only IS[1:0]: not run
            info["skipped"] = name
            return result, None
        self.set_csr(name, value)
        qemu_view = value & ((1 << 64) - 1)
        if name == "ASID":
            qemu_view = (before["asid"] & ~0x3FF) | (value & 0x3FF)
        info["qemu_view"] = qemu_view
        if qemu_view != model.read_csr(name):
            layout.append("readback")

            def after():
                self.put_csr(name)
                self.sync_csrs(name)
            return result, after
        return result, None

    def _ertn(self, op, args, layout, info, before):
        a, r = self.a, R
        result = self.model.ertn()
        info["model_refill"] = self.model.in_refill
        a.op("csrrd", r["t0"], CSR_NUMBER["TLBRERA"])
        a.op("andi", r["t0"], r["t0"], 1)
        a.op("or", r["t0"], r["t0"], r["s2"])
        a.op("csrwr", r["t0"], CSR_NUMBER["TLBRERA"])
        a.op("or", r["t1"], r["s2"], r["zero"])
        a.op("csrwr", r["t1"], CSR_NUMBER["ERA"])
        a.op("csrwr", r["zero"], CSR_NUMBER["PRMD"])
        a.op("csrwr", r["zero"], CSR_NUMBER["TLBRPRMD"])
        a.op("ertn")

        def after():
            self.put_csr("TLBRERA")
            layout.append("TLBRERA")
            self.sync_csrs("TLBRERA")
        return result, after

    def _tlbsrch(self, op, args, layout, info, before):
        result = self.model.tlbsrch()
        self.a.op("tlbsrch")
        layout.append("TLBIDX")

        def after():
            self.put_csr("TLBIDX")
            self.sync_csrs("TLBIDX")
        return result, after

    def _index(self) -> int:
        return self.model.csr["TLBIDX"] & 0xFFF

    def _tlbrd(self, op, args, layout, info, before):
        names = ("TLBIDX", "TLBEHI", "TLBELO0", "TLBELO1", "ASID")
        out_of_range = self._index() >= self.geom.total_entries
        entry = self.model.entry_at(self._index())
        info["valid"] = bool(entry and entry.e)
        info["entry_asid"] = entry.asid if info["valid"] else None
        result = self.model.tlbrd()
        if out_of_range:
            self.a.li(R["s3"], STATUS_SKIPPED)
        else:
            self.a.op("tlbrd")
        layout.extend(names)

        def after():
            for name in names:
                self.put_csr(name)
            self.sync_csrs(*names)
        return result, after

    def _written(self) -> dict:
        """What TLBWR/TLBFILL take from the CSRs (D5), as the model holds them (QEMU's CSRs
        are the same)."""
        model = self.model
        refill = model.in_refill
        ehi = "TLBREHI" if refill else "TLBEHI"
        return {"vppn": model._field(ehi, "VPPN"),
                "ps": model._field("TLBREHI" if refill else "TLBIDX", "PS"),
                "lo0": model.csr["TLBRELO0" if refill else "TLBELO0"],
                "lo1": model.csr["TLBRELO1" if refill else "TLBELO1"],
                "ne": bool(model._field("TLBIDX", "NE")), "refill": refill}

    def read_back(self, index: int, layout: list[str], tag: str = "read") -> None:
        """TLBRD of QEMU's slot ``index``, reported (``tag`` TLBIDX, TLBEHI, TLBELO0,
        TLBELO1) before anything rewrites it; the CSRs it wrote are set back to the
        model's."""
        self.set_csr("TLBIDX", index)
        self.a.op("tlbrd")
        for name in ("TLBIDX", "TLBEHI", "TLBELO0", "TLBELO1"):
            self.put_csr(name)
            layout.append(f"{tag} {name}")
        self.sync_csrs("TLBIDX", "TLBEHI", "TLBELO0", "TLBELO1", "ASID")

    def _tlbwr(self, op, args, layout, info, before):
        model = self.model
        index = self._index()
        info["written"] = w = self._written()
        result = model.tlbwr()
        info["in_range"] = index < self.geom.total_entries
        info["ps_unlisted"] = result["illegal"]
        info["g_split"] = bool((w["lo0"] ^ w["lo1"]) >> 6 & 1)
        if not info["in_range"] or result["illegal"]:
            # past QEMU's array, or an MTLB entry with a PS it would shift by (Q13, Q7)
            self.a.li(R["s3"], STATUS_SKIPPED)
            return result, None
        self.a.op("tlbwr")
        info.update(slot=index, entry=copy.copy(model.entry_at(index)), qemu_e=not w["ne"])

        def after():
            self.read_back(index, layout)
            if info["entry"].e != info["qemu_e"] or info["g_split"]:
                self.sync_slot(index)
        return result, after

    def _tlbfill(self, op, args, layout, info, before):
        a, r, model = self.a, R, self.model
        info["written"] = w = self._written()
        # TLBSRCH after it finds the lowest entry that matches the new one's VA and ASID:
        # QEMU's new entry, unless an older one (D7) sits lower
        older = [i for i, _, _ in model.matches(w["vppn"] << 13, model.asid)]
        result = model.tlbfill()
        if result["illegal"]:
            a.li(r["s3"], STATUS_SKIPPED)    # a PS QEMU would shift by (Q7): not run
            info["skipped"] = True
            return result, None
        k = self.fills
        self.fills += 1
        model_slot = result["slot"]
        # QEMU's choice, the k-th random number of -seed 1 (Q1): a way of the same set, or
        # an MTLB entry
        slot = self.geom.slot_of_index(model_slot)
        qemu_slot = self.geom.index_of_stlb(self.choices[k] % 8, slot.set) \
            if slot.bank == "stlb" else self.geom.index_of_mtlb(self.choices[k] % 64)
        others = [i for i in older if i != qemu_slot]
        info.update(fill=k, g_split=bool((w["lo0"] ^ w["lo1"]) >> 6 & 1), ne=w["ne"],
                    model_slot=model_slot, qemu_slot=qemu_slot, found=min(others + [qemu_slot]),
                    slot=qemu_slot, entry=copy.copy(model.entry_at(model_slot)), qemu_e=True)
        a.op("tlbfill")
        layout.append("found")

        def after():
            a.op("csrrd", r["t1"], CSR_NUMBER["TLBIDX"])
            a.op("tlbsrch")
            self.put_csr("TLBIDX")
            a.op("csrwr", r["t1"], CSR_NUMBER["TLBIDX"])
            self.read_back(qemu_slot, layout)
            if qemu_slot != model_slot or info["g_split"] or not info["entry"].e:
                for s in sorted({qemu_slot, model_slot}):
                    self.sync_slot(s)
        return result, after

    def _tlbclr(self, op, args, layout, info, before):
        result = self.model.tlbclr()
        self.a.op("tlbclr")
        return result, None

    def _tlbflush(self, op, args, layout, info, before):
        result = self.model.tlbflush()
        self.a.op("tlbflush")
        return result, None

    def _invtlb(self, op, args, layout, info, before):
        a, r = self.a, R
        info["q19"] = extra = self._other_sets(args) if args["inv_op"] in (5, 6) else []
        result = self.model.invtlb(args["inv_op"], args["asid"], args["va"])
        a.li(r["t1"], args["asid"])
        a.li(r["t2"], args["va"])
        if args["inv_op"] >= 7:
            a.op("csrrd", r["t3"], CSR_NUMBER["BADV"])
            a.op("st.d", r["t3"], r["s1"], 8)
            a.op("ori", r["s4"], r["zero"], 2)
        a.op("invtlb", args["inv_op"], r["t1"], r["t2"])

        def after():
            for index in extra:                 # Q19: QEMU cleared them; the model did not
                self.read_back(index, layout, f"q19 {index}")
                self.sync_slot(index)
        return result, after if extra else None

    def _other_sets(self, args) -> list[int]:
        """The STLB entries outside the VA's set that INVTLB op 5/6 matches: QEMU 7.2 looks
        at every entry (Q19), D15 at the VA's set only."""
        g, model = self.geom, self.model
        ps, va, asid = model.stlbps, args["va"] & ((1 << 48) - 1), args["asid"] & 0x3FF
        home = g.stlb_set_of(va, ps)
        out = []
        for way in range(g.stlb_ways):
            for set_ in range(g.stlb_sets):
                e = model.stlb[way][set_]
                if not e.e or set_ == home or (e.vppn << 13) >> (ps + 1) != va >> (ps + 1):
                    continue
                if (not e.g and e.asid == asid) if args["inv_op"] == 5 else \
                        (e.g or e.asid == asid):
                    out.append(g.index_of_stlb(way, set_))
        return out

    #: the CSRs a translation may write, which the program reports after one
    TRANSLATION_CSRS = ("BADV", "TLBEHI", "TLBRBADV", "TLBREHI", "TLBRERA", "ESTAT")

    def _translate(self, op, args, layout, info, before):
        a, r, model = self.a, R, self.model
        va, access = args["va"], args["access"]
        self._runnable(va, access)
        hits = model.matches(va, model.asid)
        canonical = (va >> 48) in (0, 0xFFFF)
        qemu_exc = qemu_exception(hits[0] if hits else None, va, access, self.plv) \
            if canonical else "ADE"
        info.update(hit=hits[0] if hits else None, plv=self.plv, qemu_exc=qemu_exc,
                    ppi=bool(hits) and not privileged(half(hits[0], va), self.plv),
                    dwpl=model._field("MISC", "DWPL"),
                    pre={name: model.read_csr(name) for name in self.TRANSLATION_CSRS})
        result = model.translate(va, access)
        info["post"] = {name: model.read_csr(name) for name in self.TRANSLATION_CSRS}
        size = 8 if va & 7 == 0 and access != "fetch" else (4 if access == "fetch" else 1)
        pa = None
        if qemu_exc == "NONE":
            pa = result["pa"] if result["exc"] == "NONE" else self._pa(info["hit"], va)
            if info["hit"][2] < 14:
                # Q17: QEMU's own TLB maps 16 KiB pages, the 16 KiB around the VA to the 16
                # KiB around the PA
                info["q17"] = (pa & ~0x3FFF | va & 0x3FFF) != pa
                pa = pa & ~0x3FFF | va & 0x3FFF
            if result["exc"] == "NONE" and not (reachable(pa) and reachable(pa + size - 1)):
                raise InputError(f"{op.kind} of VA {va:#x} reaches PA {pa:#x}, which QEMU's "
                                 f"virt machine gives to a device or to the program itself")
        info.update(pa=pa, size=size, not_run=access == "fetch" and qemu_exc in ("PNX", "PPI"))
        # QEMU's own TLB (its softmmu cache) flushed: ASID away and back; the CSRs an access
        # may write set to values no access writes (SENTINEL)
        a.op("csrrd", r["t1"], CSR_NUMBER["ASID"])
        a.op("addi.d", r["t2"], r["t1"], 1)
        a.op("csrwr", r["t2"], CSR_NUMBER["ASID"])
        a.op("csrwr", r["t1"], CSR_NUMBER["ASID"])
        for name in ("BADV", "TLBEHI", "TLBRBADV", "TLBREHI"):
            self.set_csr(name, SENTINEL[name])
        a.li(r["t3"], SENTINEL["ESTAT"])
        a.op("st.d", r["t3"], r["s1"], 0)
        a.li(r["t3"], SENTINEL["BADV"])          # what the program's own traps put back
        a.op("st.d", r["t3"], r["s1"], 8)
        a.li(r["t0"], va)
        a.op("or", r["a1"], r["zero"], r["zero"])
        if access == "store":
            if size == 8:
                a.li(r["t5"], STORE_MARK)
            else:
                a.op("ori", r["t5"], r["zero"], STORE_MARK & 0xFF)
        a.li(r["t1"], self.plv | 1 << 4 | 1 << 5 | 1 << 7)      # PG, DATF = DATM = CC
        a.op("csrwr", r["t1"], CSR_NUMBER["CRMD"])
        if info["not_run"]:
            a.li(r["s3"], STATUS_SKIPPED)
        elif access == "load":
            a.op("ld.d" if size == 8 else "ld.bu", r["a1"], r["t0"], 0)
        elif access == "store":
            a.op("st.d" if size == 8 else "st.b", r["t5"], r["t0"], 0)
        else:
            a.op("jirl", r["ra"], r["t0"], 0)
        if self.plv:
            a.op("ori", r["s4"], r["zero"], 1)
            a.op("syscall", 0)
        layout.extend(["a1", *self.TRANSLATION_CSRS])
        stored = None
        if qemu_exc == "NONE" and Window.holds(pa, size):
            if access == "load":
                info["expect_a1"] = self.window.read(pa, size)
            elif access == "store":
                self.window.write(pa, size, STORE_MARK & ((1 << (8 * size)) - 1))
                stored = pa & ~7                    # read back where QEMU should have put it
                info["expect_a1"] = self.window.read(stored, 8)
            else:
                info["expect_a1"] = self.window.fetch(pa)
                if info["expect_a1"] is None:
                    raise InputError(f"a fetch of VA {va:#x} runs into a cell a one-byte "
                                     f"store changed: what QEMU then runs cannot be told")

        def after():
            if stored is not None:
                a.li(r["t0"], ALIAS | stored)
                a.op("ld.d", r["a1"], r["t0"], 0)
            self.put(r["a1"])
            for name in self.TRANSLATION_CSRS[:-1]:
                self.put_csr(name)
            a.op("ld.d", r["a0"], r["s1"], 0)
            a.branch("bl", "putq")
            self.sync_csrs(*self.TRANSLATION_CSRS)
        return result, after

    def _runnable(self, va: int, access: str) -> None:
        """Refuse what QEMU 7.2 cannot run (docs/spec/qemu.md)."""
        if self.plv in (1, 2):
            raise InputError(f"translate at PLV{self.plv} cannot run on QEMU 7.2: its DMW "
                             f"windows match at PLV0 and PLV3 only, so the program's own code "
                             f"would need TLB entries")
        if access == "fetch" and va & 3:
            raise InputError(f"a fetch at {va:#x} (not a multiple of 4) cannot run on QEMU")
        if va >> 48 == ALIAS >> 48:
            raise InputError(f"VA {va:#x} lies in the program's own DMW window on QEMU")

    @staticmethod
    def _pa(hit, va: int) -> int:
        """The PA an entry gives (where the model raised an exception QEMU does not)."""
        mask = (1 << hit[2]) - 1
        return ((half(hit, va) >> 12 & ((1 << 36) - 1)) << 12 & ~mask) | (va & mask)


def emit_entry(a: Asm) -> None:
    """A program's first words: go on at the DMW alias of the next one, jump to the label
    ``start`` (which the program defines after its routines), and the routine putq."""
    r = R
    a.li(r["t0"], a.base + 20)
    a.op("jirl", r["zero"], r["t0"], 0)
    a.branch("b", "start")
    emit_putq(a)


def emit_putq(a: Asm) -> None:
    """putq: a0's 8 bytes to the UART (base in s0), low first; clobbers a0, t7, t8."""
    r = R
    a.label("putq")
    a.op("ori", r["t8"], r["zero"], 8)
    a.label("putq_wait")
    a.op("ld.bu", r["t7"], r["s0"], 5)
    a.op("andi", r["t7"], r["t7"], 0x20)
    a.branch("beqz", r["t7"], "putq_wait")
    a.op("st.b", r["a0"], r["s0"], 0)
    a.op("srli.d", r["a0"], r["a0"], 8)
    a.op("addi.d", r["t8"], r["t8"], -1)
    a.branch("bnez", r["t8"], "putq_wait")
    a.op("jirl", r["zero"], r["ra"], 0)


def emit_poweroff(a: Asm) -> None:
    """Power the machine off (ACPI GED sleep), so that QEMU exits."""
    r = R
    a.li(r["t0"], ALIAS | GED_SLEEP)
    a.op("ori", r["t1"], r["zero"], 0x34)
    a.op("st.b", r["t1"], r["t0"], 0)
    a.label("halt")
    a.branch("b", "halt")
