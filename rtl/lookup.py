"""A translation port: the lookup pipeline from a VA to a PA or an exception."""

from __future__ import annotations

from types import SimpleNamespace

from amaranth import Cat, Const, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from loongtlb.sw_model.geometry import Geometry

from .csrfile import exception_signature, regs_signature
from .layouts import Access, Exc, half_layout, tag_layout
from .match import Match
from .pagesize import PageSize
from .storage import mtlb_read_signature, mtlb_regs_signature, stlb_read_signature
from .util import delayed, onehot_mux, priority

__all__ = ["LookupSignature", "LookupPort"]


class LookupSignature(wiring.Signature):
    """One translation port, as seen from the TLB unit.

    In: ``valid``, ``va``, ``access`` (load / store / fetch), ``effect`` (1: an exception
    takes effect, D13; 0: a probe that changes nothing). Out, ``lookup_latency`` cycles
    after ``valid``: ``resp_valid``, ``exc``, ``pa``, ``mat``; an exception's CSR writes take
    effect at the edge that ends that cycle. With latency 3 the MTLB's halves are read a
    cycle after its compare, so a lookup overlapping a TLB write may see the written halves
    with the old tags: drain the lookups before TLB maintenance.
    """

    def __init__(self, geom: Geometry):
        super().__init__({
            "valid": In(1), "va": In(geom.grlen), "access": In(Access), "effect": In(1),
            "resp_valid": Out(1), "exc": Out(Exc), "pa": Out(geom.palen), "mat": Out(2),
        })


def _after_tag(geom, entry):
    """The bits of an STLB row after its tag: what a lookup uses of the row it hit."""
    return entry.as_value()[tag_layout(geom).size:]


def _pick_after_tag(geom, onehot, after_tags, layout):
    """The fields after the tag of the row ``onehot`` selects (``after_tags``: every row's,
    :func:`_after_tag`), as a view of the rows' ``layout`` with the tag zero: one mux for
    all of them."""
    picked = onehot_mux(onehot, after_tags)
    return layout(Cat(Const(0, tag_layout(geom).size), picked))


class LookupPort(wiring.Component):
    """One translation port: ``lookup_latency`` cycles (1 to 3) from a request to its
    response, a new request every cycle.

    - s0, the request's cycle: the STLB reads the set the VA selects (D1), rows and E bits.
    - s1: both banks' tags matched (the STLB's rows, the MTLB's registers); with latency 1
      also the hit entry selected (the STLB before the MTLB: the lower Index, D7), checked
      (D11, D12) and answered.
    - latency 3: a register after the compare (both banks' hit vectors, the STLB's rows
      and E bits; the STLB's tags are compared alone); s2 gates the STLB's hits with the E
      bits, takes each bank's lowest hit, reads the MTLB's halves and selects the entry.
    - latency 2 and 3: a register before the checks; the last stage checks and answers.

    Members
    -------
    port : Out(LookupSignature)
        The port of :class:`~rtl.unit.TLBUnit`.
    csr : In(regs_signature)
        CRMD.PLV, ASID.ASID, MISC.DWPL, STLBPS.
    stlb, stlb_care : the STLB's set read (rows and E bits), its compare bits (with an STLB)
    mtlb_regs, mtlb : the MTLB's registers and a data read
    exc : Out(exception_signature)
        The exception to take effect (D13), in the response's cycle.
    multi : Out(1)
        A multi-hit (D7) in a lookup that takes effect, in the response's cycle.
    """

    LATENCY = {"response": "lookup_latency", "throughput": "1 lookup per cycle"}

    def __init__(self, geom: Geometry):
        self.geom = geom
        members = {
            "port": Out(LookupSignature(geom)),
            "csr": In(regs_signature(geom)),
            "mtlb_regs": Out(mtlb_regs_signature(geom)),
            "mtlb": Out(mtlb_read_signature(geom)),
            "exc": Out(exception_signature(geom)),
            "multi": Out(1),
        }
        if geom.has_stlb:
            members.update(stlb=Out(stlb_read_signature(geom)), stlb_care=In(geom.vppn_bits))
        super().__init__(members)

    def elaborate(self, platform):
        g = self.geom
        m = Module()
        # s0 -> s1: the request
        req = self._stage_request(m, 1, self.port)
        s, mm, rows = self._match(m, req)
        req, hit, multi, lo0, lo1, ps = self._select(m, req, s, mm, rows)
        sizes = m.submodules.sizes = PageSize(g, odd=True, offset=True)
        m.d.comb += [sizes.ps.eq(ps), sizes.va.eq(req.va)]
        half, even, odd = (Signal(half_layout(g), name=n) for n in ("half", "even", "odd"))
        m.d.comb += [even.eq(lo0), odd.eq(lo1), half.eq(Mux(sizes.odd, odd, even))]
        # both halves checked beside the choice of the half (VA[PS]), not after it
        exc = Signal(Exc, name="exc")
        m.d.comb += exc.eq(Mux(sizes.odd, self._check(m, req.access, hit, odd, "exc_odd"),
                               self._check(m, req.access, hit, even, "exc_even")))
        port = self.port
        frame = Cat(Const(0, 12), half.ppn)
        m.d.comb += [
            port.resp_valid.eq(req.valid),
            port.exc.eq(exc),
            port.pa.eq((frame & ~sizes.offset) | (req.va[:g.palen] & sizes.offset)),
            port.mat.eq(half.mat),
            # D13: an exception that takes effect; D7: the sticky flag
            self.exc.valid.eq(req.valid & req.effect), self.exc.exc.eq(exc),
            self.exc.va.eq(req.va), self.multi.eq(req.valid & req.effect & multi),
        ]
        return m

    def _stage_request(self, m, n, req) -> SimpleNamespace:
        """The request (va, access, effect, valid) one cycle later, as stage ``n``."""
        return SimpleNamespace(**{k: delayed(m, getattr(req, k), f"s{n}_{k}")
                                  for k in ("va", "access", "effect", "valid")})

    def _match(self, m, req):
        """s0: the STLB reads the set the incoming VA selects; s1: both banks' tags are
        matched with the request's VA and the current ASID."""
        g = self.geom
        W, M = g.stlb_ways, g.mtlb_entries
        csr = self.csr
        vpn = req.va[13:g.valen]
        asid = csr.ASID.ASID
        s = rows = None
        if W:
            sets = m.submodules.s0_set = PageSize(g, set=True)
            m.d.comb += [sets.ps.eq(csr.STLBPS.PS), sets.vpn.eq(self.port.va[13:g.valen]),
                         self.stlb.addr.eq(sets.set)]
            rows = [self.stlb.rows[w] for w in range(W)]
            s = m.submodules.s1_stlb = Match(g, W)
            for w in range(W):
                m.d.comb += [s.tags[w].eq(rows[w].tag), s.cares[w].eq(self.stlb_care)]
            # latency 3: the tags alone, the E bits gate the hits a cycle later
            e = -1 if g.lookup_latency == 3 else self.stlb.e
            m.d.comb += [s.e.eq(e), s.key_vpn.eq(vpn), s.key_asid.eq(asid)]
        mm = m.submodules.s1_mtlb = Match(g, M)
        for i in range(M):
            m.d.comb += [mm.tags[i].eq(self.mtlb_regs.tags[i]),
                         mm.cares[i].eq(self.mtlb_regs.cares[i])]
        m.d.comb += [mm.e.eq(self.mtlb_regs.e), mm.key_vpn.eq(vpn), mm.key_asid.eq(asid)]
        return s, mm, rows

    def _select(self, m, req, s, mm, rows):
        """The hit entry: the STLB's before the MTLB's (the lower Index), then the lowest
        way or entry; with the registers of latency 2 and 3."""
        g = self.geom
        def stage(value, name):
            return delayed(m, value, name)
        s_hit = s.hit if s is not None else Const(0)
        s_multi = s.multi if s is not None else Const(0)
        m_first, m_hit_any, m_multi = mm.first, mm.hit, mm.multi
        if s is not None:
            s_onehot = s.first_onehot
            after_tags = [_after_tag(g, row) for row in rows]
        if g.lookup_latency == 3:
            # a register right after the compare: both banks' hit vectors and the STLB's
            # rows; each bank's lowest hit, the MTLB's read and the STLB's row select come a
            # cycle after the match
            req = self._stage_request(m, 2, req)
            _onehot, m_first, m_hit_any, m_multi = priority(m, stage(mm.hits, "s2_mtlb_hits"),
                                                            "s2_mtlb_first")
            if s is not None:
                # the set's E bits, read with its rows, registered
                valid = stage(s.hits, "s2_stlb_hits") & stage(self.stlb.e, "s2_stlb_e")
                s_onehot, _first, s_hit, s_multi = priority(m, valid, "s2_stlb_first")
                after_tags = [stage(v, f"s2_stlb_row{w}") for w, v in enumerate(after_tags)]
        if s is not None:
            # the STLB's hit row (the lowest way): a small one-hot select of W rows
            s_hit_row = _pick_after_tag(g, s_onehot, after_tags, rows[0].shape())
            s_lo0, s_lo1 = s_hit_row.lo0, s_hit_row.lo1
        hit = s_hit | m_hit_any
        multi = m_multi | s_multi | (s_hit & m_hit_any)
        m.d.comb += self.mtlb.addr.eq(m_first)
        m_hit = self.mtlb.data
        if s is not None:
            lo0, lo1 = Mux(s_hit, s_lo0, m_hit.lo0), Mux(s_hit, s_lo1, m_hit.lo1)
            ps = Mux(s_hit, self.csr.STLBPS.PS, m_hit.ps)
        else:
            lo0, lo1, ps = m_hit.lo0, m_hit.lo1, m_hit.ps
        ps_sig = Signal(6, name="ps")
        m.d.comb += ps_sig.eq(ps)
        if g.lookup_latency >= 2:
            # a register between the select and the checks: the hit entry's halves and what
            # the checks and the exception's CSR writes need, one cycle on
            n = g.lookup_latency
            req = self._stage_request(m, n, req)
            hit, multi = stage(hit, f"s{n}_hit"), stage(multi, f"s{n}_multi")
            lo0, lo1 = stage(lo0, f"s{n}_lo0"), stage(lo1, f"s{n}_lo1")
            ps_sig = stage(ps_sig, f"s{n}_ps")
        return req, hit, multi, lo0, lo1, ps_sig

    def _check(self, m, access, hit, half, name):
        """D11/D12: the checks after a hit on ``half``, in the manual's order."""
        g = self.geom
        plv = self.csr.CRMD.PLV
        nr, nx, rplv = (Const(0), Const(0), Const(0)) if g.is_la32 else (half.nr, half.nx,
                                                                          half.rplv)
        priv_ok = Mux(rplv, plv == half.plv, plv <= half.plv)
        dwpl_off = (plv <= 2) & (self.csr.MISC.DWPL >> plv)[0]
        exc = Signal(Exc, name=name)
        with m.If(~hit):
            m.d.comb += exc.eq(Exc.TLBR)
        with m.Elif(~half.v):
            with m.Switch(access):
                with m.Case(Access.LOAD):
                    m.d.comb += exc.eq(Exc.PIL)
                with m.Case(Access.STORE):
                    m.d.comb += exc.eq(Exc.PIS)
                with m.Default():
                    m.d.comb += exc.eq(Exc.PIF)
        with m.Elif(access == Access.FETCH):
            with m.If(nx):
                m.d.comb += exc.eq(Exc.PNX)
            with m.Elif(~priv_ok):
                m.d.comb += exc.eq(Exc.PPI)
        with m.Elif(~priv_ok):
            m.d.comb += exc.eq(Exc.PPI)
        with m.Elif((access == Access.LOAD) & nr):
            m.d.comb += exc.eq(Exc.PNR)
        with m.Elif((access == Access.STORE) & ~half.d & ~dwpl_off):
            m.d.comb += exc.eq(Exc.PME)
        return exc
