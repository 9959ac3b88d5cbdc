"""``loongtlb prove``: the quick subset of the formal properties on configs/formal.yaml (the
full set runs in benchmarks/formal.py), counterexamples of seeded bugs replayed in cosim,
and the command's refusals."""

import sys

import pytest

from conftest import CONFIGS, ROOT, in_ci
from loongtlb.sw_model.geometry import load_geometry
from loongtlb.testbench.backends import make_backend
from loongtlb.testbench.cli import main
from loongtlb.testbench.prove import available, prove
from loongtlb.testbench.replay import replay
from loongtlb.testbench.trace import load_trace

sys.path.insert(0, str(ROOT / "benchmarks"))
import mutants  # noqa: E402

FORMAL = CONFIGS / "formal.yaml"


@pytest.fixture(autouse=True)
def formal_tools():
    if not available():
        if in_ci():
            pytest.fail("the formal extra is missing under CI")
        pytest.skip("the formal extra is not installed")


def _bug(name):
    return mutants.unit_class(next(b for b in mutants.BUGS if b.name == name))


@pytest.mark.parametrize("prop", ["handshake", "written_hit"])
def test_quick_properties_are_proved(prop, capsys, tmp_path):
    """The CI subset: both close by k-induction (forever, not to a depth)."""
    assert main(["prove", str(FORMAL), "--property", prop, "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"PASS {prop}" in out and "proved (k-induction, 7 steps)" in out
    assert "ok: 1 of 1 passed" in out
    assert not list(tmp_path.iterdir())                 # no counterexample written


@pytest.mark.parametrize("prop", ["exceptions", "fill_placement"])
def test_checker_builds_for_an_mtlb_only_la32_tlb(prop):
    """MTLB-only, LA32 layouts (no NR, NX, RPLV), round robin, latency 2, two ports
    (la32r): the mirror of every slot and the placement checker elaborate (benchmarks/
    formal.py runs every property on tiny)."""
    from amaranth.back import rtlil

    from loongtlb.testbench.formal import Harness
    geom = load_geometry(CONFIGS / "la32r.yaml")
    assert "$check" in rtlil.convert(Harness(geom, prop), name="top")


def test_handshake_proved_on_an_mtlb_only_la32_tlb(capsys):
    assert main(["prove", str(CONFIGS / "la32r.yaml"), "--property", "handshake"]) == 0
    assert "proved (k-induction" in capsys.readouterr().out


def test_time_limit_reports_the_depth_reached(capsys):
    """A run stopped by --timeout is no failure: it says how far it got, and it stops when
    the limit passes, not when the solver next prints (exceptions takes a minute)."""
    import time

    start = time.monotonic()
    assert main(["prove", str(FORMAL), "--property", "exceptions", "--timeout", "3"]) == 0
    assert time.monotonic() - start < 30
    assert "before the time limit" in capsys.readouterr().out


def test_covers_are_reachable(capsys):
    """Each property's cover, under the same assumptions: the assertions are not vacuous."""
    assert main(["prove", str(FORMAL), "--property", "fill_placement", "--mode", "cover",
                 "--depth", "16"]) == 0
    assert "every cover reached within 16 cycles" in capsys.readouterr().out


def test_counterexample_replays_in_cosim(tmp_path):
    geom = load_geometry(FORMAL)
    cls = _bug("match ignores ASID")
    outcome = prove(geom, "written_hit", "prove", 7, tmp_path, unit_class=cls)
    assert outcome.status == "FAIL" and "replays in cosim" in outcome.detail
    assert outcome.vcd.read_text().startswith("$")
    ops = load_trace(outcome.trace, geom)
    assert ops and ops[-1].kind != "csrwr"          # ends at the op that shows the bug
    for unit_class, fails in ((cls, True), (None, False)):     # the correct RTL passes it
        backend = make_backend(geom, "cosim", 1, **({"unit_class": unit_class}
                                                    if unit_class else {}))
        try:
            assert replay(ops, backend, "cex").ok is not fails
        finally:
            backend.close()


def test_failure_inside_the_unit_is_found_again_from_outside(tmp_path):
    """A wrong compare mask is first seen in the MTLB's registers; the second search finds
    the lookup it spoils, as a trace that fails in cosim."""
    geom = load_geometry(FORMAL)
    outcome = prove(geom, "written_hit", "prove", 6, tmp_path,
                    unit_class=_bug("page mask off by one"))
    assert outcome.status == "FAIL"
    assert "inside the unit" in outcome.detail and "replays in cosim" in outcome.detail
    assert outcome.trace.name == "written_hit.visible.jsonl"
    assert (tmp_path / "written_hit.vcd").exists()              # the first counterexample


@pytest.mark.parametrize("argv, message", [
    (["configs/la464.yaml"], "2112 entries"),
    ([str(FORMAL), "--depth", "0"], "--depth 0"),
    ([str(FORMAL), "--timeout", "-1"], "--timeout -1"),
    ([str(FORMAL), "--property", "nonsense"], "invalid choice"),
    ([str(FORMAL), "--out", str(FORMAL)], "not a directory"),
])
def test_prove_refuses_bad_input(argv, message, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    assert main(["prove", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_witness_reads_back_as_ops_cosim_runs():
    """A counterexample's VCD as smtbmc writes it (the top scope, one sample per clock
    phase) becomes trace ops that the backends run as they are."""
    from loongtlb.testbench.prove import _replays, witness_ops
    from loongtlb.rtl.unit import TLBUnit

    vcd = "\n".join([
        "$scope module top $end",
        *(f"$var wire {w} {i} {n} $end" for w, i, n in [
            (1, "!", "clk"), (1, '"', "ev_csrwr"), (1, "#", "ev_insn"), (1, "$", "ev_lookup"),
            (2, "%", "f_kind"), (4, "&", "f_csr"), (64, "'", "f_wdata"), (3, "(", "f_op"),
            (64, ")", "f_va"), (2, "*", "f_access")]),
        "$upscope $end", "$enddefinitions $end",
        "#0", "1!", '1"', "0#", "0$", "b1 %", "b101 &", "b1000000000001 '", "b0 (", "b0 )",
        "b0 *",
        "#5", "0!",
        "#10", "1!", '0"', "1#", "b10 %", "b11 (",
        "#15", "0!",
        "#20", "1!", "0#", "1$", "b11 %", "b1000000000000 )", "b10 *",
        "#25", "0!", ""])
    geom = load_geometry(FORMAL)
    ops, last = witness_ops(vcd, geom)
    assert [op.kind for op in ops] == ["csrwr", "tlbfill", "translate"]
    assert ops[0].args == {"csr": "TLBEHI", "value": 0x1001}
    assert ops[2].args == {"va": 0x1000, "access": "fetch", "port": 0}
    assert last == 2
    assert not _replays(geom, ops, TLBUnit)         # the correct RTL agrees with the model
