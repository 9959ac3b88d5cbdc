"""Directed tests: one or more per row D1-D21 of decisions.md, on every backend.

Geometry ``tiny`` unless named: STLB 2 ways x 4 sets (Index = way * 4 + set, set = VA[16:15]
at PS 14), MTLB 4 entries at Index 8..11, VALEN = PALEN = 48, LFSR seed 0xACE1.
Expected values are literals worked out by hand from the spec.
"""

import pytest

from tlbutil import E_NE, csrs, elo, elo32, exc, fill, read, tlbidx, wr, write

ALL_ONES = (1 << 64) - 1


def live(tlb, slots):
    """The slots of ``slots`` holding an entry with E = 1 (TLBRD; it changes ASID.ASID)."""
    asid = tlb.csrrd("ASID")
    found = {s for s in slots if not read(tlb, s)["TLBIDX"] & E_NE}
    tlb.csrwr("ASID", asid)
    return found


# ---- D1, D2: set index and Index numbering ----------------------------------------------------

def test_d1_set_index_keeps_both_halves_in_one_set(make_tlb):
    tlb = make_tlb()
    assert fill(tlb, 0x8000, elo(0x100), elo(0x200))["slot"] == 1       # set (VA >> 15) & 3 = 1
    assert fill(tlb, 0x10000, elo(0x300), elo(0x400))["slot"] == 2      # set 2
    assert fill(tlb, 0x18000, elo(0x500), elo(0x600))["slot"] == 3      # set 3
    # both halves of the pair at 0x8000 (VA[14] = 0 and 1) hit slot 1
    assert tlb.translate(0x8123, "load") == {"exc": "NONE", "pa": 0x100123, "mat": 1,
                                             "multi_hit": False}
    assert tlb.translate(0xC123, "load")["pa"] == 0x200123


def test_d2_index_numbering(make_tlb):
    tlb = make_tlb()
    assert fill(tlb, 0x8000, elo(1), elo(2))["slot"] == 1        # way 0, set 1
    assert fill(tlb, 0x28000, elo(1), elo(2))["slot"] == 5       # way 1, set 1: 1 * 4 + 1
    assert fill(tlb, 0x200000, elo(1), elo(2), ps=21)["slot"] == 8   # MTLB entry 0
    assert fill(tlb, 0x600000, elo(1), elo(2), ps=21)["slot"] == 9


def test_d2_index_width(make_tlb):
    tlb = make_tlb()
    tlb.csrwr("TLBIDX", ALL_ONES)
    assert tlb.csrrd("TLBIDX") == 0xBF00000F      # 12 entries: 4 Index bits


def test_d2_geometry_mapping():
    from conftest import GEOMS
    g = GEOMS["la464"]
    assert g.index_bits == 12 and g.total_entries == 2112
    assert g.slot_of_index(0x7FF).way == 7 and g.slot_of_index(0x7FF).set == 255
    assert g.slot_of_index(257).way == 1 and g.slot_of_index(257).set == 1
    assert g.slot_of_index(2048).bank == "mtlb" and g.slot_of_index(2111).entry == 63
    assert g.slot_of_index(2112) is None
    assert GEOMS["la32r"].index_bits == 5 and GEOMS["mtlb6"].index_bits == 3


@pytest.mark.parametrize("name, value", [("la464", 0x008073F2), ("tiny", 0x00201032),
                                         ("la32r", 0x000001F1), ("mtlb6", 0x00000051)])
def test_prcfg3_of_every_preset(name, value):
    from conftest import GEOMS
    assert GEOMS[name].prcfg3 == value


# ---- D3: one G per entry ------------------------------------------------------------------------

def test_d3_g_is_the_and_of_both_halves(make_tlb):
    tlb = make_tlb()
    fill(tlb, 0x40000000, elo(0x10, g=1), elo(0x11, g=0), asid=1)
    tlb.csrwr("ASID", 2)
    assert exc(tlb, 0x40000000) == "TLBR"          # not global: ASID 2 misses
    tlb.ertn()
    rd = read(tlb, 0)
    assert rd["TLBELO0"] == elo(0x10) and rd["TLBELO1"] == elo(0x11)   # G = 0 in both
    fill(tlb, 0x40008000, elo(0x20, g=1), elo(0x21, g=1), asid=1)
    tlb.csrwr("ASID", 3)
    assert exc(tlb, 0x40008000) == "NONE"          # global: any ASID hits
    rd = read(tlb, 1)
    assert rd["TLBELO0"] == elo(0x20, g=1) and rd["TLBELO1"] == elo(0x21, g=1)


# ---- D4, D5: E on write, the refill context -----------------------------------------------------

def test_d4_ne_writes_an_empty_entry_outside_the_refill_context(make_tlb):
    tlb = make_tlb()
    assert fill(tlb, 0x40000000, elo(1), elo(2), ne=1)["slot"] == 0
    assert exc(tlb, 0x40000000) == "TLBR"
    tlb.ertn()
    assert fill(tlb, 0x40000000, elo(1), elo(2))["slot"] == 0     # slot 0 was still free
    wr(tlb, 0, 0x40000000, elo(1), elo(2), ne=1)
    assert live(tlb, [0]) == set()


@pytest.mark.parametrize("geom, fill_e", [("tiny", False), ("tiny_ignore", True)])
def test_d4_tlbfill_ne_readings(make_tlb, geom, fill_e):
    """tlbfill_ne: manual, TLBFILL with NE = 1 writes an empty entry; ignore, a live one.
    TLBWR follows NE under both readings, and the refill context writes E = 1 under both."""
    tlb = make_tlb(geom)
    assert fill(tlb, 0x40000000, elo(1), elo(2), ne=1)["slot"] == 0
    assert exc(tlb, 0x40000000) == ("NONE" if fill_e else "TLBR")
    tlb.ertn()
    assert live(tlb, [0]) == ({0} if fill_e else set())
    # the next fill goes to slot 0 when it was left empty, else to the free way 1
    assert fill(tlb, 0x40000000, elo(3), elo(4), ne=1)["slot"] == (4 if fill_e else 0)
    wr(tlb, 0, 0x40000000, elo(1), elo(2), ne=1)
    assert 0 not in live(tlb, [0])
    write(tlb, TLBREHI=14, TLBIDX=tlbidx(0, 14, ne=1))
    assert exc(tlb, 0x50000000) == "TLBR"
    write(tlb, TLBRELO0=elo(5), TLBRELO1=elo(6))
    slot = tlb.tlbfill()["slot"]
    tlb.ertn()
    assert slot in live(tlb, [slot]) and exc(tlb, 0x50000000) == "NONE"


def test_d4_d5_refill_context_round_trip(make_tlb):
    tlb = make_tlb()
    write(tlb, TLBREHI=14, TLBIDX=tlbidx(0, 14, ne=1), ASID=5)
    assert exc(tlb, 0x12344123) == "TLBR"
    assert tlb.csrrd("TLBRBADV") == 0x12344123
    assert tlb.csrrd("TLBREHI") == 0x12344000 | 14           # VPPN = VA[47:13], PS kept
    assert tlb.csrrd("TLBRERA") == 1
    assert tlb.csrrd("TLBEHI") == 0 and tlb.csrrd("ESTAT") == 0 and tlb.csrrd("BADV") == 0
    # the handler: TLBRELO0/1, TLBFILL (NE = 1 still writes E = 1), ertn
    write(tlb, TLBRELO0=elo(0x777), TLBRELO1=elo(0x778), TLBELO0=elo(0x1), TLBEHI=0x8000)
    assert tlb.tlbfill() == {"illegal": False, "multi_hit": False, "slot": 0}
    tlb.ertn()
    assert tlb.csrrd("TLBRERA") == 0
    assert tlb.translate(0x12344123, "load")["pa"] == 0x778123   # VA[14] = 1: odd half
    rd = read(tlb, 0)
    assert rd["TLBEHI"] == 0x12344000 and rd["ASID"] == 0x000A0005
    assert rd["TLBELO0"] == elo(0x777) and rd["TLBIDX"] == tlbidx(0, 14)


def test_d5_refill_context_tlbsrch_tlbwr_and_tlbrd_banks(make_tlb):
    tlb = make_tlb()
    fill(tlb, 0x8000, elo(1), elo(2))                          # slot 1
    write(tlb, TLBREHI=0x8000 | 21, TLBEHI=0x10000, TLBRERA=1)
    assert tlb.tlbsrch()["TLBIDX"] == tlbidx(1, 14)            # key from TLBREHI
    # TLBWR in the refill context: TLBREHI VPPN, TLBREHI.PS (21: MTLB slot), TLBRELO, E = 1
    write(tlb, TLBRELO0=elo(0x400), TLBRELO1=elo(0x401), TLBIDX=tlbidx(9, 12, ne=1),
          TLBREHI=0x600000 | 21)
    assert tlb.tlbwr()["illegal"] is False
    rd = read(tlb, 9)                                           # TLBRD writes TLBEHI, not TLBREHI
    assert rd["TLBIDX"] == tlbidx(9, 21) and rd["TLBEHI"] == 0x600000
    assert rd["TLBELO1"] == elo(0x401)
    assert tlb.csrrd("TLBREHI") == 0x600000 | 21
    tlb.ertn()
    assert tlb.translate(0x600055, "load")["pa"] == 0x400055   # odd half of the 4 MiB pair


# ---- D6: TLBSRCH --------------------------------------------------------------------------------

def test_d6_tlbsrch_hit_miss_and_v0(make_tlb):
    tlb = make_tlb()
    fill(tlb, 0x8000, elo(1, v=0), elo(2, v=0), asid=3)         # V = 0 still matches
    write(tlb, TLBEHI=0x8000, TLBIDX=tlbidx(7, 16, ne=1))
    assert tlb.tlbsrch() == {"illegal": False, "multi_hit": False, "TLBIDX": tlbidx(1, 16)}
    write(tlb, TLBEHI=0x28000, TLBIDX=tlbidx(6, 12))
    assert tlb.tlbsrch()["TLBIDX"] == tlbidx(6, 12, ne=1)      # miss: Index and PS kept
    tlb.csrwr("ASID", 4)
    write(tlb, TLBEHI=0x8000, TLBIDX=tlbidx(2, 14))
    assert tlb.tlbsrch()["TLBIDX"] == tlbidx(2, 14, ne=1)      # other ASID misses


# ---- D7: several matches ------------------------------------------------------------------------

def test_d7_multi_hit_lowest_index_wins_and_flag_is_sticky(make_tlb):
    tlb = make_tlb()
    assert fill(tlb, 0x40000000, elo(0x10), elo(0x11))["multi_hit"] is False   # slot 0
    assert fill(tlb, 0x40000000, elo(0x90), elo(0x91), ps=16)["slot"] == 8    # MTLB overlaps
    assert tlb.translate(0x40000004, "load") == {"exc": "NONE", "pa": 0x10004, "mat": 1,
                                                 "multi_hit": True}
    tlb.csrwr("TLBEHI", 0x40000000)
    assert tlb.tlbsrch()["TLBIDX"] == tlbidx(0, 16)          # PS as the last fill left it
    assert tlb.tlbflush()["multi_hit"] is True                 # sticky


def test_d7_probe_and_single_hits_leave_the_flag_alone(make_tlb):
    tlb = make_tlb()
    fill(tlb, 0x40000000, elo(0x10), elo(0x11))
    fill(tlb, 0x40000000, elo(0x90), elo(0x91), ps=16)
    assert tlb.probe(0x40000000, "load")["multi_hit"] is False
    assert tlb.translate(0x50000000, "load")["multi_hit"] is False


# ---- D8: TLBRD ----------------------------------------------------------------------------------

def test_d8_tlbrd_returns_every_written_bit(make_tlb):
    tlb = make_tlb()
    lo0 = elo((1 << 36) - 1, v=1, d=0, plv=3, mat=2, nr=1, nx=1, rplv=1)
    lo1 = elo(0x123456789, v=0, d=1, plv=1, mat=0)
    # MTLB, PS 21, VPPN with every bit set (also those below PS + 1)
    assert fill(tlb, 0x7FFFFFFFE000, lo0, lo1, ps=21, asid=0x2AB)["slot"] == 8
    tlb.csrwr("ASID", 0)
    assert read(tlb, 8) == {"illegal": False, "multi_hit": False, "TLBIDX": tlbidx(8, 21),
                            "TLBEHI": 0x7FFFFFFFE000, "TLBELO0": lo0, "TLBELO1": lo1,
                            "ASID": 0x000A02AB}
    # STLB slot written with a VPPN of another set: kept as written; PS reads STLBPS
    wr(tlb, 6, 0xFFFFFFFFFFFFE000, elo(5), elo(6), ps=24)
    rd = read(tlb, 6)
    assert rd["TLBEHI"] == 0xFFFFFFFFFFFFE000 and rd["TLBIDX"] == tlbidx(6, 14)


def test_d8_tlbrd_of_an_empty_slot(make_tlb):
    tlb = make_tlb()
    write(tlb, TLBEHI=0x1234000, TLBELO0=elo(9), TLBELO1=elo(8), ASID=0x55)
    assert read(tlb, 3) == {"illegal": False, "multi_hit": False, "TLBIDX": tlbidx(3, 0, 1),
                            "TLBEHI": 0, "TLBELO0": 0, "TLBELO1": 0, "ASID": 0x000A0055}


# ---- D9, D10: placement and replacement ---------------------------------------------------------

def test_d9_first_free_way_always_wins(make_tlb):
    tlb = make_tlb()
    assert fill(tlb, 0x00000, elo(1), elo(1))["slot"] == 0
    assert fill(tlb, 0x20000, elo(2), elo(2))["slot"] == 4
    wr(tlb, 0, 0, 0, 0, ne=1)                                  # free way 0
    assert fill(tlb, 0x40000, elo(3), elo(3))["slot"] == 0
    # the LFSR did not step: the first full-set victim is still the first LFSR value (way 1)
    assert fill(tlb, 0x60000, elo(4), elo(4))["slot"] == 4


def test_d10_lfsr_victims_bit_exact(make_tlb):
    tlb = make_tlb()
    vas = [i << 17 for i in range(8)]                          # all in set 0
    slots = [fill(tlb, va, elo(i + 1), elo(i + 1))["slot"] for i, va in enumerate(vas)]
    # free ways 0 and 1, then LFSR 0xACE1 -> 0xE270 0x7138 0x389C 0x1C4E 0x0E27 0xB313
    assert slots == [0, 4, 4, 0, 0, 0, 0, 4]
    # the MTLB shares the LFSR: 0xB313 -> 0xED89, victim (0xED89 * 4) >> 16 = 3
    for i in range(4):
        assert fill(tlb, (i + 1) << 22, elo(1), elo(1), ps=21)["slot"] == 8 + i
    assert fill(tlb, 5 << 22, elo(1), elo(1), ps=21)["slot"] == 11


def test_d10_lfsr_mtlb_alone(make_tlb):
    tlb = make_tlb()
    slots = [fill(tlb, (i + 1) << 22, elo(1), elo(1), ps=21)["slot"] for i in range(7)]
    # victims (s * 4) >> 16 for s = 0xE270, 0x7138, 0x389C
    assert slots == [8, 9, 10, 11, 11, 9, 8]


def test_d10_round_robin_one_pointer_per_bank(make_tlb):
    tlb = make_tlb("tiny_rr")
    stlb = lambda i: fill(tlb, i << 17, elo(1), elo(1))["slot"]           # noqa: E731
    mtlb = lambda i: fill(tlb, (i + 1) << 22, elo(1), elo(1), ps=21)["slot"]  # noqa: E731
    assert [stlb(0), stlb(1), mtlb(0), mtlb(1), mtlb(2), mtlb(3)] == [0, 4, 8, 9, 10, 11]
    assert [stlb(2), mtlb(4), stlb(3), mtlb(5), stlb(4)] == [0, 8, 4, 9, 0]
    # another set shares the STLB pointer
    fill(tlb, 0x8000, elo(1), elo(1))
    fill(tlb, 0x28000, elo(1), elo(1))
    assert fill(tlb, 0x48000, elo(1), elo(1))["slot"] == 5


# ---- D11, D12: checks after a hit ---------------------------------------------------------------

@pytest.mark.parametrize("access, fields, plv, expected", [
    # V = 0 comes first, whatever else is wrong
    ("load", dict(v=0, nr=1, plv=0), 3, "PIL"),
    ("store", dict(v=0, d=0, plv=0), 3, "PIS"),
    ("fetch", dict(v=0, nx=1, plv=0), 3, "PIF"),
    # fetch: NX before privilege
    ("fetch", dict(nx=1, plv=0), 3, "PNX"),
    ("fetch", dict(plv=0), 3, "PPI"),
    ("fetch", dict(plv=3), 3, "NONE"),
    # load: privilege before NR
    ("load", dict(nr=1, plv=0), 3, "PPI"),
    ("load", dict(nr=1, plv=3), 3, "PNR"),
    ("load", dict(nr=1, nx=1, plv=3), 0, "PNR"),
    ("load", dict(nx=1, plv=0), 0, "NONE"),
    # store: privilege before D
    ("store", dict(d=0, plv=0), 3, "PPI"),
    ("store", dict(d=0, plv=3), 3, "PME"),
    ("store", dict(d=1, nr=1, plv=3), 3, "NONE"),
    # D12: RPLV = 0 allows CRMD.PLV <= PLV; RPLV = 1 needs equality
    ("load", dict(plv=2), 1, "NONE"),
    ("load", dict(plv=1), 2, "PPI"),
    ("load", dict(plv=2, rplv=1), 1, "PPI"),
    ("load", dict(plv=2, rplv=1), 2, "NONE"),
    ("store", dict(plv=3, rplv=1), 0, "PPI"),
])
def test_d11_d12_check_order(make_tlb, access, fields, plv, expected):
    tlb = make_tlb()
    fill(tlb, 0x40000000, elo(0x1234, **fields), elo(0))
    tlb.csrwr("CRMD", plv)
    assert exc(tlb, 0x40000008, access) == expected


@pytest.mark.parametrize("plv, dwpl, expected", [
    (0, 0b001, "NONE"), (0, 0b110, "PME"), (1, 0b010, "NONE"), (1, 0b101, "PME"),
    (2, 0b100, "NONE"), (3, 0b111, "PME"),
])
def test_d11_dwpl_disables_pme_for_plv0_to_2(make_tlb, plv, dwpl, expected):
    tlb = make_tlb()
    fill(tlb, 0x40000000, elo(0x1234, d=0, plv=3), elo(0))
    write(tlb, CRMD=plv, MISC=dwpl << 16)
    assert exc(tlb, 0x40000000, "store") == expected


# ---- D13: the side effects of an exception ------------------------------------------------------

@pytest.mark.parametrize("access, fields, name, code", [
    ("load", dict(v=0), "PIL", 1), ("store", dict(v=0), "PIS", 2),
    ("fetch", dict(v=0), "PIF", 3), ("store", dict(d=0, plv=3), "PME", 4),
    ("load", dict(nr=1, plv=3), "PNR", 5), ("fetch", dict(nx=1), "PNX", 6),
    ("load", dict(plv=0), "PPI", 7),
])
def test_d13_page_exceptions_write_badv_tlbehi_estat_only(make_tlb, access, fields, name,
                                                          code):
    tlb = make_tlb()
    fill(tlb, 0x7FFF40000000, elo(0x1234, **fields), elo(0), asid=7)
    write(tlb, CRMD=3, ESTAT=ALL_ONES, TLBREHI=0x4000 | 14)
    before = csrs(tlb)
    va = 0x7FFF40003FFF
    assert exc(tlb, va, access) == name
    after = csrs(tlb)
    assert after.pop("BADV") == va
    assert after.pop("TLBEHI") == 0x7FFF40002000            # VA[47:13]
    assert after.pop("ESTAT") == code << 16                  # EsubCode 0
    for key in ("BADV", "TLBEHI", "ESTAT"):
        before.pop(key)
    assert after == before


def test_d13_tlbr_writes_tlbrbadv_tlbrehi_istlbr_only(make_tlb):
    tlb = make_tlb()
    write(tlb, TLBREHI=0x12 << 13 | 21, ESTAT=5 << 16, CRMD=3)
    before = csrs(tlb)
    assert exc(tlb, 0x123456789ABC, "fetch") == "TLBR"
    after = csrs(tlb)
    assert after.pop("TLBRBADV") == 0x123456789ABC
    assert after.pop("TLBREHI") == 0x123456788000 | 21
    assert after.pop("TLBRERA") == 1
    for key in ("TLBRBADV", "TLBREHI", "TLBRERA"):
        before.pop(key)
    assert after == before


def test_d13_probe_changes_nothing(make_tlb):
    tlb = make_tlb()
    fill(tlb, 0x40000000, elo(1, v=0), elo(1))
    before = csrs(tlb)
    assert tlb.probe(0x40000000, "load")["exc"] == "PIL"
    assert tlb.probe(0x50000000, "store")["exc"] == "TLBR"
    assert csrs(tlb) == before


def test_d13_ertn_only_clears_istlbr(make_tlb):
    tlb = make_tlb()
    write(tlb, TLBRERA=1, CRMD=3, TLBREHI=0x4000 | 14)
    before = csrs(tlb)
    tlb.ertn()
    assert csrs(tlb) == dict(before, TLBRERA=0)


# ---- D14: VA bits above VALEN -------------------------------------------------------------------

def test_d14_va_bits_above_valen_are_ignored(make_tlb):
    tlb = make_tlb()
    fill(tlb, 0x40000000, elo(0x54), elo(0x64))
    assert tlb.translate(0xABCD000040000010, "load")["pa"] == 0x54010
    assert tlb.translate(0xFFFF000040004010, "store")["pa"] == 0x64010


# ---- even/odd selection and page sizes -----------------------------------------------------------

@pytest.mark.parametrize("ps", [12, 14, 16, 21, 24])
def test_even_odd_select_is_va_bit_ps(make_tlb, ps):
    tlb = make_tlb()
    base = 0x3 << 26                                          # aligned for every PS here
    ppn0, ppn1 = 0xABCDE, 0x13579B                            # low PPN bits are ignored
    result = fill(tlb, base, elo(ppn0), elo(ppn1), ps=ps)
    assert result["slot"] == (0 if ps == 14 else 8)           # STLB only at STLBPS
    offset = (1 << ps) - 8
    low = lambda ppn: (ppn << 12) & ~((1 << ps) - 1)          # noqa: E731
    assert tlb.translate(base + offset, "load")["pa"] == low(ppn0) + offset
    assert tlb.translate(base + (1 << ps) + offset, "load")["pa"] == low(ppn1) + offset
    assert exc(tlb, base + (2 << ps)) == "TLBR"               # the next pair misses
    assert exc(tlb, base - 8) == "TLBR"


def test_mtlb_pa_literals(make_tlb):
    tlb = make_tlb()
    fill(tlb, 0x40000000, elo(0x7FFFF), elo(0x80FFF), ps=21)
    assert tlb.translate(0x40201234, "load")["pa"] == 0x80E01234
    assert tlb.translate(0x40001234, "load")["pa"] == 0x7FE01234


# ---- D15: INVTLB --------------------------------------------------------------------------------

A, B, C, D, E = 0, 1, 2, 8, 9          # slots of the entries set up below
VA_A, VA_B, VA_C, VA_D, VA_E = 0x40000000, 0x40008000, 0x40010000, 0x80000000, 0xC0000000


def _invtlb_setup(tlb):
    assert fill(tlb, VA_A, elo(1), elo(1), asid=1)["slot"] == A            # ASID 1
    assert fill(tlb, VA_B, elo(2, g=1), elo(2, g=1), asid=1)["slot"] == B  # global
    assert fill(tlb, VA_C, elo(3), elo(3), asid=2)["slot"] == C            # ASID 2
    assert fill(tlb, VA_D, elo(4), elo(4), ps=21, asid=1)["slot"] == D     # MTLB, ASID 1
    assert fill(tlb, VA_E, elo(5, g=1), elo(5, g=1), ps=21)["slot"] == E   # MTLB, global


@pytest.mark.parametrize("op, asid, va, remaining", [
    (0, 0, 0, set()), (1, 7, 0x123, set()),
    (2, 0, 0, {A, C, D}),
    (3, 0, 0, {B, E}),
    (4, 1, 0, {B, C, E}), (4, 3, 0, {A, B, C, D, E}),
    (5, 1, VA_A + 0x7FFF, {B, C, D, E}),          # hit, non-global, STLB
    (5, 1, VA_B, {A, B, C, D, E}),                # a global entry is never hit by op 5
    (5, 2, VA_A, {A, B, C, D, E}),                # ASID differs: miss
    (5, 1, VA_D + 0x3FFFFF, {A, B, C, E}),        # MTLB, anywhere in the 4 MiB pair
    (5, 1, VA_D + 0x400000, {A, B, C, D, E}),     # the next pair: miss
    (6, 2, VA_B, {A, C, D, E}),                   # global, STLB
    (6, 2, VA_E + 0x1000, {A, B, C, D}),          # global, MTLB
    (6, 2, VA_A, {A, B, C, D, E}),                # not global, ASID differs: miss
    (6, 2, VA_C, {A, B, D, E}),                   # ASID equal
    (6, 0x401, VA_A, {B, C, D, E}),               # rj bits above 9 are not the ASID
])
def test_d15_invtlb(make_tlb, op, asid, va, remaining):
    tlb = make_tlb()
    _invtlb_setup(tlb)
    assert tlb.invtlb(op, asid & 0x3FF, va) == {"illegal": False, "multi_hit": False}
    assert live(tlb, [A, B, C, D, E]) == remaining


def test_d15_invtlb_va_ops_look_only_at_the_va_set(make_tlb):
    tlb = make_tlb()
    wr(tlb, 1, VA_A, elo(1), elo(1))          # VA_A belongs to set 0; written into set 1
    tlb.invtlb(5, 0, VA_A)
    tlb.invtlb(6, 0, VA_A)
    assert live(tlb, [1]) == {1}
    tlb.invtlb(4, 0, 0)                       # ops 0..4 see every entry
    assert live(tlb, [1]) == set()


@pytest.mark.parametrize("op", [7, 8, 0x16, 31])
def test_d15_invtlb_reserved_ops_are_illegal(make_tlb, op):
    tlb = make_tlb()
    _invtlb_setup(tlb)
    assert tlb.invtlb(op, 1, VA_A)["illegal"] is True
    assert live(tlb, [A, B, C, D, E]) == {A, B, C, D, E}


# ---- D16: TLBCLR, TLBFLUSH ----------------------------------------------------------------------

def _clr_setup(tlb):
    assert fill(tlb, 0x8000, elo(1), elo(1), asid=1)["slot"] == 1
    assert fill(tlb, 0x48000, elo(1, g=1), elo(1, g=1), asid=1)["slot"] == 5
    assert fill(tlb, 0x10000, elo(1), elo(1), asid=1)["slot"] == 2
    assert fill(tlb, 0x200000, elo(1), elo(1), ps=21, asid=1)["slot"] == 8
    assert fill(tlb, 0x600000, elo(1, g=1), elo(1, g=1), ps=21, asid=1)["slot"] == 9
    assert fill(tlb, 0xA00000, elo(1), elo(1), ps=21, asid=2)["slot"] == 10
    tlb.csrwr("ASID", 1)


SLOTS = [1, 2, 5, 8, 9, 10]


@pytest.mark.parametrize("insn, index, remaining", [
    ("tlbclr", 5, {2, 5, 8, 9, 10}),      # set 1: the non-global ASID 1 entry
    ("tlbclr", 9, {1, 2, 5, 9, 10}),      # the whole MTLB: ASID 1, non-global
    ("tlbflush", 1, {2, 8, 9, 10}),       # set 1, every way
    ("tlbflush", 11, {1, 2, 5}),          # the whole MTLB
    ("tlbclr", 13, set(SLOTS)),           # out of range (D18)
    ("tlbflush", 15, set(SLOTS)),
])
def test_d16_tlbclr_tlbflush(make_tlb, insn, index, remaining):
    tlb = make_tlb()
    _clr_setup(tlb)
    write(tlb, TLBIDX=index)
    assert getattr(tlb, insn)()["illegal"] is False
    assert live(tlb, SLOTS) == remaining


# ---- D17: CSR write masks, read as literals -----------------------------------------------------

TINY_ALL_ONES = {
    "CRMD": 0x3, "MISC": 0x70000, "ESTAT": 0, "BADV": ALL_ONES,
    "TLBIDX": 0xBF00000F, "TLBEHI": 0xFFFFFFFFFFFFE000,
    "TLBELO0": 0xE000FFFFFFFFF07F, "TLBELO1": 0xE000FFFFFFFFF07F,
    "ASID": 0x000A03FF, "STLBPS": 14, "PRCFG3": 0x00201032, "TLBRBADV": ALL_ONES,
    "TLBRERA": 1, "TLBREHI": 0xFFFFFFFFFFFFE03F,
    "TLBRELO0": 0xE000FFFFFFFFF07F, "TLBRELO1": 0xE000FFFFFFFFF07F,
}
LA32R_ALL_ONES = {
    "CRMD": 0x3, "MISC": 0x70000, "ESTAT": 0, "BADV": 0xFFFFFFFF,
    "TLBIDX": 0xBF00001F, "TLBEHI": 0xFFFFE000, "TLBELO0": 0x0FFFFF7F, "TLBELO1": 0x0FFFFF7F,
    "ASID": 0x000A03FF, "STLBPS": 12, "PRCFG3": 0x000001F1, "TLBRBADV": 0xFFFFFFFF,
    "TLBRERA": 1, "TLBREHI": 0xFFFFE03F, "TLBRELO0": 0x0FFFFF7F, "TLBRELO1": 0x0FFFFF7F,
}
NARROW_ALL_ONES = dict(TINY_ALL_ONES, TLBELO0=0xE000000FFFFFF07F, TLBELO1=0xE000000FFFFFF07F,
                       TLBRELO0=0xE000000FFFFFF07F, TLBRELO1=0xE000000FFFFFF07F)


@pytest.mark.parametrize("geom, expected", [("tiny", TINY_ALL_ONES),
                                            ("la32r", LA32R_ALL_ONES),
                                            ("narrow", NARROW_ALL_ONES)])
def test_d17_every_csr_after_writing_all_ones(make_tlb, geom, expected):
    tlb = make_tlb(geom)
    ones = ALL_ONES if geom != "la32r" else 0xFFFFFFFF
    for name in expected:
        tlb.csrwr(name, ones)
    assert csrs(tlb) == expected


def test_d17_sign_extension_follows_bit_valen_minus_1(make_tlb):
    tlb = make_tlb("narrow")                                   # VALEN 40
    tlb.csrwr("TLBEHI", 0x8000000000)
    assert tlb.csrrd("TLBEHI") == 0xFFFFFF8000000000
    tlb.csrwr("TLBEHI", 0xFFFFFF0000002000)
    assert tlb.csrrd("TLBEHI") == 0x2000
    tlb.csrwr("TLBREHI", 0x7FFFFFE015)
    assert tlb.csrrd("TLBREHI") == 0x7FFFFFE015
    assert exc(tlb, 0x8000004000) == "TLBR"                   # hardware write, D13
    assert tlb.csrrd("TLBREHI") == 0xFFFFFF8000004015


# ---- D18: Index out of range --------------------------------------------------------------------

def test_d18_index_out_of_range(make_tlb):
    tlb = make_tlb()
    fill(tlb, 0x8000, elo(4), elo(8))
    assert read(tlb, 13)["TLBIDX"] == tlbidx(13, 0, 1)
    assert wr(tlb, 12, 0x8000, elo(2), elo(2)) == {"illegal": False, "multi_hit": False}
    assert live(tlb, range(12)) == {1}
    assert tlb.translate(0x8000, "load")["pa"] == 0x4000


# ---- D19: unsupported page sizes ----------------------------------------------------------------

def test_d19_unlisted_page_sizes(make_tlb):
    tlb = make_tlb()
    assert fill(tlb, 0x8000, elo(1), elo(1), ps=13) == {"illegal": True, "multi_hit": False}
    assert fill(tlb, 0x8000, elo(1), elo(1), ps=0)["illegal"] is True
    assert wr(tlb, 8, 0x8000, elo(1), elo(1), ps=15)["illegal"] is True    # MTLB slot
    assert live(tlb, range(12)) == set()
    assert wr(tlb, 1, 0x8000, elo(1), elo(1), ps=15)["illegal"] is False   # STLB ignores PS
    assert read(tlb, 1)["TLBIDX"] == tlbidx(1, 14)
    tlb.csrwr("STLBPS", 13)
    assert tlb.csrrd("STLBPS") == 14
    tlb.csrwr("STLBPS", 16)
    assert tlb.csrrd("STLBPS") == 16
    write(tlb, TLBRERA=1, TLBREHI=0x8000 | 13)
    assert tlb.tlbfill()["illegal"] is True                    # TLBREHI.PS in the refill context


def test_stlbps_change_moves_fills_between_banks(make_tlb):
    tlb = make_tlb()
    tlb.csrwr("STLBPS", 16)
    assert fill(tlb, 0x40000, elo(1), elo(1), ps=16)["slot"] == 2    # set (VA >> 17) & 3
    assert fill(tlb, 0x40000, elo(1), elo(1), ps=14)["slot"] == 8
    assert read(tlb, 2)["TLBIDX"] == tlbidx(2, 16)


# ---- D20: reset -------------------------------------------------------------------------------

def test_d20_reset_state(make_tlb):
    tlb = make_tlb()
    expected = {name: 0 for name in TINY_ALL_ONES}
    expected.update(STLBPS=14, ASID=0x000A0000, PRCFG3=0x00201032)
    assert csrs(tlb) == expected
    assert live(tlb, range(16)) == set()
    assert exc(tlb, 0, "fetch") == "TLBR"


# ---- D21: narrow ASIDs -------------------------------------------------------------------------

def test_d21_asid_bits_truncate_everywhere(make_tlb):
    tlb = make_tlb("asid4")
    tlb.csrwr("ASID", ALL_ONES)
    assert tlb.csrrd("ASID") == 0x0004000F
    fill(tlb, 0x8000, elo(1), elo(1), asid=0x15)               # ASID 5
    assert read(tlb, 1)["ASID"] == 0x00040005
    tlb.csrwr("ASID", 0x25)
    assert exc(tlb, 0x8000) == "NONE"
    tlb.invtlb(5, 0x35, 0x8000)                                # operand truncated to 5
    assert exc(tlb, 0x8000) == "TLBR"


# ---- LA32 layouts -------------------------------------------------------------------------------

def test_la32_layout_translation_and_tlbrd(make_tlb):
    tlb = make_tlb("la32r")
    lo0, lo1 = elo32(0xABCDE, plv=3), elo32(0x12345, d=0, mat=0, plv=3)
    assert fill(tlb, 0x00400000, lo0, lo1, ps=21, asid=9)["slot"] == 0
    assert fill(tlb, 0x7FFFE000, elo32(0x1), elo32(0x2), ps=12)["slot"] == 1
    tlb.csrwr("CRMD", 3)
    assert tlb.translate(0x00412345, "load") == {"exc": "NONE", "pa": 0xABC12345, "mat": 1,
                                                 "multi_hit": False}
    assert tlb.translate(0x00612345, "store")["exc"] == "PME"
    assert tlb.translate(0x7FFFF123, "fetch")["exc"] == "PPI"
    tlb.csrwr("CRMD", 0)
    assert tlb.translate(0x7FFFF123, "fetch")["pa"] == 0x2123
    assert read(tlb, 0) == {"illegal": False, "multi_hit": False, "TLBIDX": tlbidx(0, 21),
                            "TLBEHI": 0x00400000, "TLBELO0": lo0, "TLBELO1": lo1,
                            "ASID": 0x000A0009}


def test_mtlb_only_fills_and_non_power_of_two(make_tlb):
    tlb = make_tlb("mtlb6")
    slots = [fill(tlb, i << 15, elo(i), elo(i), ps=14)["slot"] for i in range(7)]
    # 6 free entries, then LFSR 0xE270: (0xE270 * 6) >> 16 = 5
    assert slots == [0, 1, 2, 3, 4, 5, 5]
    write(tlb, TLBIDX=3, ASID=1)
    tlb.tlbclr()                                              # the entries have ASID 0
    assert live(tlb, range(8)) == set(range(6))
    write(tlb, TLBIDX=5, ASID=0)
    tlb.tlbclr()                                              # any MTLB Index: the whole MTLB
    assert live(tlb, range(8)) == set()
