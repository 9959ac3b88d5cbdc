"""QEMU's report of a program checked against the model's steps, rule by rule."""

from __future__ import annotations

from collections import Counter

from loongtlb.sw_model.csr import EXC_CODES
from loongtlb.sw_model.geometry import Geometry

from .program import (DONE, END_OF_CELLS, SENTINEL, STATUS_GENERAL, STATUS_REFILL,
                      STATUS_SKIPPED, Program, Step, in_ram)
from .rules import Divergence, csr_view

_MASK48 = (1 << 48) - 1
_VPPN = ((1 << 35) - 1) << 13          # VA[47:13], the VPPN of TLBEHI and TLBREHI
_PAGE = ("PIL", "PIS", "PIF", "PME", "PNR", "PNX", "PPI")


def _vppn(value: int) -> int:
    return value & _VPPN


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

    def take(self, step: Step | None = None) -> int:
        if self.pos >= len(self.words) - 1:          # the last word is DONE
            op = (step or self.program.steps[-1]).op
            raise Divergence(op, "QEMU's report, which ended early", "more", "the end")
        self.pos += 1
        return self.words[self.pos - 1]

    def check(self) -> None:
        for step in self.program.steps:
            got = {name: self.take(step) for name in step.layout}
            getattr(self, f"_{step.op.kind}", self._plain)(step, got)
        self._dump()
        cells = {}
        while (pa := self.take()) != END_OF_CELLS:
            cells[pa] = (self.take(), self.take())
        if self.pos != len(self.words) - 1 or self.words[-1] != DONE:
            raise Divergence(self.program.steps[-1].op, "QEMU's report, which went on",
                             "the end", "more")
        want = self.program.window.changed_cells()
        if cells != want:
            first = min(set(cells) ^ set(want) or {pa for pa in cells if cells[pa] != want[pa]})
            op = self.program.steps[-1].op
            raise Divergence(op, f"window cell {first:#x} after the batch",
                             want.get(first), cells.get(first))

    def _dump(self) -> None:
        """Every slot at the end, as QEMU's TLBRD reads it, against the model's entries
        (the ASID apart, which TLBRD does not report)."""
        g, model = self.geom, self.program.model
        last = self.program.steps[-1] if self.program.steps else None
        for index in range(g.total_entries):
            have = [self.take(last) for _ in range(4)]
            entry = model.entry_at(index)
            if entry.e:
                ps = entry.ps if index >= g.stlb_entries else model.stlbps
                gbit = 1 << 6 if entry.g else 0
                want = [index | ps << 24, entry.vppn << 13, entry.lo0 | gbit, entry.lo1 | gbit]
            else:
                want = [index | 1 << 31, 0, 0, 0]
            have[1] &= _MASK48
            if have != want:
                raise Divergence(last.op, f"the entry at Index {index:#x} after the batch "
                                 f"(TLBIDX, TLBEHI, TLBELO0, TLBELO1)",
                                 [hex(v) for v in want], [hex(v) for v in have])

    def explain(self, rule: str) -> None:
        self.rules[rule] += 1

    def status(self, step: Step, got: dict, want: int = 0) -> None:
        if got["status"] != want:
            raise Divergence(step.op, "exception in QEMU", want, got["status"])

    def _plain(self, step, got):
        self.status(step, got)

    def _ertn(self, step, got):
        self.status(step, got)
        for who, value in (("QEMU's", got["TLBRERA"] & 1),
                           ("the model's", int(step.info["model_refill"]))):
            if value:
                raise Divergence(step.op, f"{who} TLBRERA.IsTLBR after it", 0, value)

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
        name, value = step.op.args["csr"], step.op.args["value"]
        want = csr_view(name, value, step.info["before"]["csr"], self.geom.page_shifts)
        if step.info["model_view"] != want:
            raise Divergence(step.op, f"the model's {name} after csrwr", want,
                             step.info["model_view"], model_only=True)
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
        # D8: the entry's ASID for a valid entry, else ASID as it was
        model_asid = before & ~0x3FF | step.info["entry_asid"] if step.info["valid"] else before
        if res["ASID"] != model_asid:
            raise Divergence(step.op, "the model's ASID after TLBRD (D8)", model_asid,
                             res["ASID"], model_only=True)
        if qemu_asid != res["ASID"]:
            self.explain("Q4")

    def _entry(self, step, got) -> None:
        """QEMU's TLBRD of the slot TLBWR/TLBFILL wrote against the entry the model wrote
        (``info["entry"]``): valid as QEMU's rules say (Q2, Q18), then VPPN, PS and both
        halves, G per half where they were written differing (Q3)."""
        info, g = step.info, self.geom
        entry, index = info["entry"], info["slot"]
        idx, ehi = got["read TLBIDX"], got["read TLBEHI"]
        elo = got["read TLBELO0"], got["read TLBELO1"]
        if bool(idx >> 31 & 1) == info["qemu_e"]:
            raise Divergence(step.op, f"E of the entry at Index {index:#x} (TLBRD)",
                             int(info["qemu_e"]), int(not idx >> 31 & 1))
        if not info["qemu_e"]:
            return
        w = info["written"]
        ps = w["ps"] if index >= g.stlb_entries else info["before"]["stlbps"]
        want = {"TLBIDX": index | ps << 24, "TLBEHI": w["vppn"] << 13,
                "TLBELO0": w["lo0"], "TLBELO1": w["lo1"]}
        have = {"TLBIDX": idx, "TLBEHI": ehi & _MASK48, "TLBELO0": elo[0], "TLBELO1": elo[1]}
        for name, value in want.items():
            if have[name] != value:
                raise Divergence(step.op, f"{name} of the entry at Index {index:#x} (TLBRD)",
                                 value, have[name])
        # the model's entry is what QEMU holds, G apart (one G per entry, D3)
        gbit = 1 << 6
        if entry.e and (entry.vppn != w["vppn"] or entry.lo0 != w["lo0"] & ~gbit or
                        entry.lo1 != w["lo1"] & ~gbit or entry.g != bool(w["lo0"] & w["lo1"] & gbit)
                        or (index >= g.stlb_entries and entry.ps != ps)):
            raise Divergence(step.op, "the model's entry against QEMU's (TLBRD)", entry, want)

    def _tlbwr(self, step, got):
        info = step.info
        if not info["in_range"] or info["ps_unlisted"]:
            self.status(step, got, STATUS_SKIPPED)
            self.explain("Q13" if not info["in_range"] else "Q7")
            return
        self.status(step, got)
        self._entry(step, got)
        w = info["written"]
        if info["entry"].e != (w["refill"] or not w["ne"]):          # D4
            raise Divergence(step.op, "E of the entry the model's TLBWR wrote (D4)",
                             int(w["refill"] or not w["ne"]), int(info["entry"].e),
                             model_only=True)
        if info["entry"].e != info["qemu_e"]:
            self.explain("Q18")
        if info["g_split"]:
            self.explain("Q3")

    def _tlbfill(self, step, got):
        info = step.info
        if info.get("skipped"):
            self.status(step, got, STATUS_SKIPPED)
            self.explain("Q7")
            return
        self.status(step, got)
        model_slot, slot = info["model_slot"], info["qemu_slot"]
        found = got["found"]
        if found >> 31 & 1 or found & 0xFFF != info["found"]:
            raise Divergence(step.op, "the Index TLBSRCH finds after it (QEMU's slot, as "
                             "-seed 1 chooses it, or an older match below)", info["found"],
                             "none" if found >> 31 & 1 else found & 0xFFF)
        g = self.geom
        want, have = g.slot_of_index(model_slot), g.slot_of_index(slot)
        if have.bank != want.bank or have.set != want.set:
            raise Divergence(step.op, "TLBFILL's bank and set", model_slot, slot)
        self._entry(step, got)
        if slot != model_slot:
            self.explain("Q1")
        w = info["written"]
        model_e = w["refill"] or not w["ne"] or g.tlbfill_ne == "ignore"          # D4
        if info["entry"].e != model_e:
            raise Divergence(step.op, "E of the entry the model's TLBFILL wrote (D4)",
                             int(model_e), int(info["entry"].e), model_only=True)
        if not model_e:
            self.explain("Q2")
        if info["g_split"]:
            self.explain("Q3")

    def _invtlb(self, step, got):
        for index in step.info.get("q19", []):
            if not got[f"q19 {index} TLBIDX"] >> 31 & 1:
                raise Divergence(step.op, f"the entry at Index {index:#x} (QEMU's rule Q19)",
                                 "cleared", "kept")
            self.explain("Q19")
        if step.op.args["inv_op"] >= 7:
            status = got["status"]
            if not (_is(status, 0xD) or step.info["before"]["refill"] and
                    status == STATUS_REFILL):
                raise Divergence(step.op, "INVTLB op >= 7", "INE", status)
            self.explain("Q12")
            return
        self.status(step, got)

    def _translate(self, step, got):
        """The exception (the model's, or one a listed rule gives QEMU instead), the way
        QEMU took it, every CSR it wrote against the sentinels the program put there, the
        model's writes against QEMU's, and the access itself."""
        info, op = step.info, step.op
        va, access, exc = op.args["va"], op.args["access"], step.result["exc"]
        qemu_exc, refill, status = info["qemu_exc"], info["before"]["refill"], got["status"]
        if info["not_run"]:
            self.status(step, got, STATUS_SKIPPED)
            self.explain("Q16")
            return
        rule = None
        spared = access == "store" and info["plv"] <= 2 and info["dwpl"] >> info["plv"] & 1
        if qemu_exc == exc == "PME" and spared or qemu_exc == exc == "PNR" and info["ppi"]:
            # D11: the model must give DWPL's NONE, or the privilege check's PPI first
            raise Divergence(op, "exc (D11)", "NONE" if spared else "PPI", exc,
                             model_only=True)
        if qemu_exc != exc:
            if qemu_exc == "ADE":
                rule = "Q15"
            elif exc == "PPI" and qemu_exc == "PNR" and info["ppi"]:
                rule = "Q9"
            elif exc == "NONE" and qemu_exc == "PME" and spared:
                rule = "Q8"
            else:
                raise Divergence(op, "exc (QEMU's checks on the model's entry)", exc, qemu_exc)
            self.explain(rule)
        bus = qemu_exc == "NONE" and not in_ram(info["pa"])
        if bus:
            self.explain("Q14")
        # how the exception came, and what it wrote
        written = {}
        if qemu_exc == "TLBR":
            written = {"TLBRBADV": va, "TLBREHI": SENTINEL["TLBREHI"] & ~_VPPN | va & _VPPN}
        elif qemu_exc in _PAGE or qemu_exc == "ADE":
            written = {"BADV": va, "TLBEHI": va & ~0x7FFF}
        code = None
        if qemu_exc in _PAGE:
            code = EXC_CODES[qemu_exc], 0
        elif qemu_exc == "ADE" or bus:
            code = 8, int(access != "fetch")
        if qemu_exc == "TLBR":
            want_status = STATUS_REFILL
        elif code is None:
            want_status = 0
        elif refill:
            want_status = STATUS_REFILL
            if qemu_exc in _PAGE:
                self.explain("Q11")
        else:
            want_status = STATUS_GENERAL
            written["ESTAT"] = code[0] << 16 | code[1] << 22
        if qemu_exc == "NONE" and not bus and "expect_a1" not in info:
            written.update(self._unobserved(step, got))
        elif want_status == STATUS_GENERAL:
            if not status & STATUS_GENERAL or _estat_code(status) != code:
                raise Divergence(op, "exc", qemu_exc, status)
        elif status != want_status:
            raise Divergence(op, "exc", qemu_exc, status)
        for name in ("BADV", "TLBEHI", "TLBRBADV", "TLBREHI", "ESTAT"):
            want = written.get(name, SENTINEL[name])
            have = got[name] & (0x7FFF0000 if name == "ESTAT" else ~0)
            if have != want:
                raise Divergence(op, f"{name} after the access", want, have)
        if got["TLBRERA"] & 1 != int(refill or qemu_exc == "TLBR"):
            raise Divergence(op, "TLBRERA.IsTLBR after the access",
                             int(refill or qemu_exc == "TLBR"), got["TLBRERA"] & 1)
        if qemu_exc in _PAGE and va & 0x6000:
            self.explain("Q10")
        if rule in (None, "Q9"):
            self._model_wrote(step, written)
        if qemu_exc == "NONE" and not bus and "expect_a1" in info:
            if info.get("q17"):
                self.explain("Q17")
            if got["a1"] != info["expect_a1"]:
                raise Divergence(op, f"{access} at PA {info['pa']:#x}", info["expect_a1"],
                                 got["a1"])

    def _model_wrote(self, step, written: dict) -> None:
        """Where model and QEMU raised the same exception, the model wrote what QEMU wrote
        (BADV, the VPPN of TLBEHI or TLBREHI, TLBRBADV, IsTLBR, ESTAT's code; Q9 apart) and
        left the rest as it was."""
        info, op, va = step.info, step.op, step.op.args["va"]
        pre, post, exc = info["pre"], info["post"], step.result["exc"]
        want = dict(pre)
        if exc == "TLBR":
            want["TLBRBADV"] = va
            want["TLBREHI"] = pre["TLBREHI"] & ~_VPPN | va & _VPPN
            want["TLBRERA"] = 1
        elif exc in _PAGE:
            want["BADV"] = va
            want["TLBEHI"] = pre["TLBEHI"] & ~_VPPN | va & _VPPN
            want["ESTAT"] = pre["ESTAT"] & ~0x7FFF0000 | EXC_CODES[exc] << 16
        for name, value in want.items():
            have = post[name]
            if name in ("TLBEHI", "TLBREHI"):         # D17: bits 63:48 copy bit 47
                value, have = value & _MASK48, have & _MASK48
            if have != value:
                raise Divergence(op, f"the model's {name} after the access", value, have,
                                 model_only=True)

    def _unobserved(self, step, got) -> dict:
        """A load or fetch that translated to RAM outside the window: its PA cannot be
        checked. A fetch decodes what RAM holds there, and an INE (through the refill entry
        while IsTLBR = 1) is a fetch that translated; it writes BADV (the PC) and, through
        EENTRY, ESTAT. The CSRs it wrote."""
        self.unobserved["PA outside the window"] += 1
        status, va = got["status"], step.op.args["va"]
        if not status:
            return {}
        if step.op.args["access"] == "fetch":
            if _is(status, 0xD):
                return {"BADV": va, "ESTAT": 0xD << 16}
            if step.info["before"]["refill"] and status == STATUS_REFILL:
                return {"BADV": va}
        raise Divergence(step.op, "exc", "NONE", status)
