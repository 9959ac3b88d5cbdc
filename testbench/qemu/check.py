"""QEMU's report of a program checked against the model's steps, rule by rule."""

from __future__ import annotations

from collections import Counter

from loongtlb.sw_model.csr import EXC_CODES
from loongtlb.sw_model.geometry import Geometry

from .program import (END_OF_CELLS, STATUS_GENERAL, STATUS_REFILL, STATUS_SKIPPED, Program, Step,
                      in_ram)
from .rules import Divergence, qemu_exception


def _is(status: int, ecode: int) -> bool:
    """The status of an exception through EENTRY with that ESTAT.Ecode."""
    return bool(status & STATUS_GENERAL) and status >> 16 & 0x3F == ecode


def _estat_code(estat: int) -> tuple[int, int]:
    return estat >> 16 & 0x3F, estat >> 22 & 0x1FF


class Checker:
    """Compares QEMU's words with the model's steps, rule by rule."""

    def __init__(self, geom: Geometry, program: Program, words: list[int]):
        self.geom, self.program, self.words = geom, program, words
        self.pos = 0
        self.rules: Counter = Counter()
        self.unobserved: Counter = Counter()

    def take(self) -> int:
        if self.pos >= len(self.words):
            raise RuntimeError("QEMU's output ended early")
        self.pos += 1
        return self.words[self.pos - 1]

    def check(self) -> None:
        for step in self.program.steps:
            got = {name: self.take() for name in step.layout}
            getattr(self, f"_{step.op.kind}", self._plain)(step, got)
        cells = {}
        while (pa := self.take()) != END_OF_CELLS:
            cells[pa] = (self.take(), self.take())
        want = self.program.window.changed_cells()
        if cells != want:
            first = min(set(cells) ^ set(want) or {pa for pa in cells if cells[pa] != want[pa]})
            op = self.program.steps[-1].op
            raise Divergence(op, f"window cell {first:#x} after the batch",
                             want.get(first), cells.get(first))

    def explain(self, rule: str) -> None:
        self.rules[rule] += 1

    def status(self, step: Step, got: dict, want: int = 0) -> None:
        if got["status"] != want:
            raise Divergence(step.op, "exception in QEMU", want, got["status"])

    def _plain(self, step, got):
        self.status(step, got)

    def _csrrd(self, step, got):
        self.status(step, got)
        name = step.op.args["csr"]
        if "value" not in got:
            self.unobserved["CRMD (kept by the program)"] += 1
            return
        want, value = step.result["value"], got["value"]
        if name == "ESTAT":             # the unit's fields: Ecode, EsubCode (not IS)
            want, value = want & 0x7FFF0000, value & 0x7FFF0000
        elif name == "TLBRERA":         # IsTLBR: the unit has no PC (interfaces.md)
            want, value = want & 1, value & 1
        if name == "MISC" and value != want and value == want & ~(7 << 16):
            self.explain("Q8")
            return
        if value != want:
            raise Divergence(step.op, f"CSR {name}", want, value)

    def _csrwr(self, step, got):
        self.status(step, got)
        if "skipped" in step.info:
            if step.info["skipped"] == "MISC":
                self.explain("Q8")
            return
        if "readback" in got:
            if got["readback"] != step.info["qemu_view"]:
                raise Divergence(step.op, f"CSR {step.op.args['csr']} read back",
                                 step.info["qemu_view"], got["readback"])
            self.explain("Q6")

    def _tlbsrch(self, step, got):
        self.status(step, got)
        if got["TLBIDX"] != step.result["TLBIDX"]:
            raise Divergence(step.op, "TLBIDX", step.result["TLBIDX"], got["TLBIDX"])

    def _tlbrd(self, step, got):
        res = step.result
        if got["status"] == STATUS_SKIPPED:
            self.explain("Q13")
            return
        self.status(step, got)
        for name in ("TLBIDX", "TLBELO0", "TLBELO1"):
            if got[name] != res[name]:
                raise Divergence(step.op, name, res[name], got[name])
        ehi = res["TLBEHI"]
        if got["TLBEHI"] != ehi:
            if got["TLBEHI"] != ehi & ((1 << 48) - 1):
                raise Divergence(step.op, "TLBEHI", ehi, got["TLBEHI"])
            self.explain("Q5")
        before = step.info["before"]["asid"]
        qemu_asid = before if step.info["valid"] else before & ~0x3FF
        if got["ASID"] != qemu_asid:
            raise Divergence(step.op, "ASID (QEMU's rule Q4)", qemu_asid, got["ASID"])
        if qemu_asid != res["ASID"]:
            self.explain("Q4")

    def _tlbwr(self, step, got):
        if not step.info["in_range"] or step.info["ps_unlisted"]:
            self.status(step, got, STATUS_SKIPPED)
            self.explain("Q13" if not step.info["in_range"] else "Q7")
            return
        self.status(step, got)
        if step.info["q18"]:
            self.explain("Q18")
        elif step.info["g_split"]:
            self.explain("Q3")

    def _tlbfill(self, step, got):
        if step.info.get("skipped"):
            self.status(step, got, STATUS_SKIPPED)
            self.explain("Q7")
            return
        self.status(step, got)
        model_slot = step.info["model_slot"]
        found = got["found"]
        if found >> 31 & 1:
            raise Divergence(step.op, "the entry TLBFILL wrote (TLBSRCH after it)",
                             model_slot, "not found")
        slot = found & 0xFFF
        if slot != step.info["qemu_slot"]:
            raise Divergence(step.op, "TLBFILL's slot, as QEMU's -seed 1 chooses it",
                             step.info["qemu_slot"], slot)
        g = self.geom
        want = g.slot_of_index(model_slot)
        have = g.slot_of_index(slot)
        if have is None or have.bank != want.bank or have.set != want.set:
            raise Divergence(step.op, "TLBFILL's bank and set", model_slot, slot)
        if slot != model_slot:
            self.explain("Q1")
        if step.info["ne"] and g.tlbfill_ne == "manual":
            self.explain("Q2")
        if step.info["g_split"]:
            self.explain("Q3")

    def _invtlb(self, step, got):
        if step.op.args["inv_op"] >= 7:
            status = got["status"]
            if not (_is(status, 0xD) or step.info["before"]["refill"] and
                    status == STATUS_REFILL):
                raise Divergence(step.op, "INVTLB op >= 7", "INE", status)
            self.explain("Q12")
            return
        self.status(step, got)

    def _translate(self, step, got):
        info, res, va = step.info, step.result, step.op.args["va"]
        before = info["before"]
        exc = res["exc"]
        canonical = (va >> 48) in (0, 0xFFFF)
        qemu_exc = qemu_exception(info["hit"], va, step.op.args["access"], info["plv"]) \
            if canonical else "ADE"
        status = got["status"]
        if info["not_run"]:
            self.status(step, got, STATUS_SKIPPED)
            self.explain("Q16")
            return
        if qemu_exc == "ADE":
            if not (_is(status, 0x8) or before["refill"] and status == STATUS_REFILL):
                raise Divergence(step.op, "exc (QEMU's rule Q15)", "ADEM/ADEF", status)
            self.explain("Q15")
            return
        if qemu_exc != exc:
            self.explain("Q9" if exc == "PPI" and qemu_exc == "PNR" else "Q8")
        if qemu_exc == "NONE":
            if info.get("q17"):
                self.explain("Q17")
            self._translated(step, got, info["pa"])
            return
        if qemu_exc == "TLBR":
            if status != STATUS_REFILL:
                raise Divergence(step.op, "exc", "TLBR", status)
            for name, want in (("TLBRBADV", va), ("TLBRERA", 1)):
                if got[name] & (1 if name == "TLBRERA" else ~0) != want:
                    raise Divergence(step.op, name, want, got[name])
            if got["TLBREHI"] >> 13 & ((1 << 35) - 1) != va >> 13 & ((1 << 35) - 1):
                raise Divergence(step.op, "TLBREHI.VPPN", va >> 13, got["TLBREHI"])
            return
        code = EXC_CODES[qemu_exc]
        if before["refill"]:
            if status != STATUS_REFILL:
                raise Divergence(step.op, "exc (QEMU's rule Q11)", qemu_exc, status)
            self.explain("Q11")
        else:
            if not status & STATUS_GENERAL or _estat_code(status) != (code, 0):
                raise Divergence(step.op, "exc", qemu_exc, status)
            if _estat_code(got["ESTAT"]) != (code, 0):
                raise Divergence(step.op, "ESTAT", code << 16, got["ESTAT"])
        if got["BADV"] != va:
            raise Divergence(step.op, "BADV", va, got["BADV"])
        if got["TLBEHI"] != va & ~0x7FFF:
            raise Divergence(step.op, "TLBEHI (QEMU's rule Q10)", va & ~0x7FFF, got["TLBEHI"])
        if va & 0x6000:
            self.explain("Q10")

    def _translated(self, step, got, pa):
        """No exception in the model: QEMU's access went through, to the PA it found."""
        status, access = got["status"], step.op.args["access"]
        if not in_ram(pa):
            refill = step.info["before"]["refill"]
            if not (_is(status, 0x8) or refill and status == STATUS_REFILL):
                raise Divergence(step.op, "exc (QEMU's rule Q14)", "ADEM/ADEF", status)
            self.explain("Q14")
            return
        if "expect_a1" not in step.info:
            self.unobserved["PA outside the window"] += 1
            if access == "fetch" and status:
                # RAM outside the window holds no code of the program's: QEMU decodes what
                # is there, and an INE (through the refill entry while IsTLBR = 1) is a
                # fetch that translated
                refill = step.info["before"]["refill"]
                if not (_is(status, 0xD) or refill and status == STATUS_REFILL):
                    raise Divergence(step.op, "exc", "NONE", status)
                return
            self.status(step, got)
            return
        self.status(step, got)
        if got["a1"] != step.info["expect_a1"]:
            raise Divergence(step.op, f"{access} at PA {pa:#x}", step.info["expect_a1"],
                             got["a1"])
