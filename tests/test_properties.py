"""Properties of the reference model (hypothesis), and one on the RTL of a tiny geometry."""

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import GEOMS
from loongtlb.sw_model.tlb import ReferenceTLB
from loongtlb.testbench.backends import make_backend
from loongtlb.testbench.port import TLBPort

TINY = GEOMS["tiny"]
U64 = st.integers(0, (1 << 64) - 1)
PS = st.sampled_from(TINY.page_shifts)
ELO_MASK = 0xE000FFFFFFFFF07F          # tiny (PALEN 48): V D PLV MAT G PPN NR NX RPLV


def fresh(geom=TINY) -> ReferenceTLB:
    return ReferenceTLB(geom)


@settings(max_examples=300)
@given(index=st.integers(0, TINY.total_entries - 1), va=U64, lo0=U64, lo1=U64, ps=PS,
       asid=st.integers(0, 1023))
def test_tlbwr_then_tlbrd_round_trips_through_the_write_masks(index, va, lo0, lo1, ps, asid):
    tlb = fresh()
    tlb.csrwr("ASID", asid)
    tlb.csrwr("TLBEHI", va)
    tlb.csrwr("TLBELO0", lo0)
    tlb.csrwr("TLBELO1", lo1)
    tlb.csrwr("TLBIDX", index | ps << 24)
    assert tlb.tlbwr()["illegal"] is False
    tlb.csrwr("ASID", 0)
    rd = tlb.tlbrd()
    g = lo0 & lo1 & (1 << 6)                  # one G per entry (D3), read into both halves
    assert rd["TLBELO0"] == (lo0 & ELO_MASK & ~(1 << 6)) | g
    assert rd["TLBELO1"] == (lo1 & ELO_MASK & ~(1 << 6)) | g
    vppn = va & 0xFFFFFFFFE000
    assert rd["TLBEHI"] == vppn | (0xFFFF000000000000 if vppn >> 47 else 0)
    assert rd["ASID"] == 0xA0000 | asid
    stlb = index < TINY.stlb_entries
    assert rd["TLBIDX"] == index | (14 if stlb else ps) << 24


fills = st.lists(st.tuples(U64, U64, U64, PS, st.integers(0, 3)), min_size=1, max_size=20)


@settings(max_examples=200)
@given(entries=fills, probes=st.lists(U64, min_size=1, max_size=10))
def test_after_invtlb_0_nothing_translates(entries, probes):
    tlb = fresh()
    for va, lo0, lo1, ps, asid in entries:
        for name, value in (("ASID", asid), ("TLBEHI", va), ("TLBELO0", lo0),
                            ("TLBELO1", lo1), ("TLBIDX", ps << 24)):
            tlb.csrwr(name, value)
        tlb.tlbfill()
    tlb.invtlb(0, 0, 0)
    for va in probes + [e[0] for e in entries]:
        assert tlb.probe(va, "load")["exc"] == "TLBR"


@settings(max_examples=300)
@given(entries=fills)
def test_tlbsrch_after_tlbfill_finds_that_slot_unless_multi_hit(entries):
    tlb = fresh()
    for va, lo0, lo1, ps, asid in entries:
        for name, value in (("ASID", asid), ("TLBEHI", va), ("TLBELO0", lo0),
                            ("TLBELO1", lo1), ("TLBIDX", ps << 24)):
            tlb.csrwr(name, value)
        slot = tlb.tlbfill()["slot"]
        result = tlb.tlbsrch()
        if not result["multi_hit"]:
            assert result["TLBIDX"] & 0xF == slot and not result["TLBIDX"] >> 31


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(va=U64, lo0=U64, lo1=U64, access=st.sampled_from(["load", "store", "fetch"]),
       plv=st.integers(0, 3))
def test_rtl_translation_equals_the_model(va, lo0, lo1, access, plv):
    """Cheap on the RTL: one fill and one translation per example, in cosim."""
    backend = make_backend(TINY, "cosim")
    port = TLBPort(backend)
    try:
        for name, value in (("TLBEHI", va), ("TLBELO0", lo0), ("TLBELO1", lo1),
                            ("TLBIDX", 14 << 24), ("CRMD", plv)):
            port.csrwr(name, value)
        port.tlbfill()
        port.translate(va, access)             # cosim raises on any disagreement
    finally:
        backend.close()
