"""Issue #5: the fuzzer, its coverage, failure reproduction and shrinking, seeded bugs."""

import sys

import pytest

from conftest import CONFIGS, GEOMS, ROOT
from loongtlb.testbench.backends import make_backend
from loongtlb.testbench.cli import main
from loongtlb.testbench.fuzz import coverage_bins, fuzz, shrink, still_fails
from loongtlb.testbench.trace import load_trace

sys.path.insert(0, str(ROOT / "benchmarks"))
import mutants  # noqa: E402


@pytest.mark.parametrize("name", ["tiny", "tiny_ignore", "mtlb6", "odd"])
def test_fuzz_10000_ops_no_mismatch(name):
    result = fuzz(GEOMS[name], 10000, seed=1)        # the CLI default seed
    assert result.failure is None and result.done == 10000
    if name == "tiny":
        assert result.coverage.missed == [], result.coverage.missed   # every bin on tiny


def test_coverage_bins_fit_the_geometry():
    assert "tlbfill stlb full (lfsr)" in coverage_bins(GEOMS["tiny"])
    assert "tlbfill stlb full (round_robin)" in coverage_bins(GEOMS["odd"])
    la32 = coverage_bins(GEOMS["la32r"])
    assert "load PNR" not in la32 and "tlbfill stlb" not in la32
    assert "tlbwr out of range" not in la32          # 32 entries fill the 5-bit Index
    assert len(coverage_bins(GEOMS["tiny"])) == 52


def test_fuzz_cli_summary(capsys):
    assert main(["fuzz", str(CONFIGS / "tiny.yaml"), "--ops", "600", "--seed", "5"]) == 0
    out = capsys.readouterr().out
    assert "coverage:" in out and "never hit:" in out and "0 mismatches" in out


def _factory(bug_name):
    bug = next(b for b in mutants.BUGS if b.name == bug_name)
    cls = mutants.unit_class(bug)
    return lambda geom, name, cpus, **kw: make_backend(geom, name, cpus, unit_class=cls, **kw)


def test_shrink_keeps_the_failure_and_shortens_it():
    factory = _factory("LFSR with a wrong tap")
    result = fuzz(GEOMS["tiny"], 2000, seed=1, backend_factory=factory)
    assert result.failure is not None
    small = shrink(GEOMS["tiny"], result.ops, 1, budget_s=60, backend_factory=factory)
    assert still_fails(GEOMS["tiny"], small, 1, factory)
    assert len(small) < len(result.ops) // 4
    assert not still_fails(GEOMS["tiny"], small, 1)            # the correct RTL passes it


def test_failing_fuzz_writes_and_shrinks(monkeypatch, tmp_path, capsys):
    factory = _factory("TLBRD copies G to one half only")
    monkeypatch.setattr("loongtlb.testbench.fuzz.make_backend", factory)
    out = tmp_path / "fail.jsonl"
    code = main(["fuzz", str(CONFIGS / "tiny.yaml"), "--ops", "3000", "--seed", "1",
                 "--shrink", "--out", str(out), "--vcd", str(tmp_path / "fail.vcd")])
    assert code == 1
    text = capsys.readouterr().out
    assert "FAIL tiny seed 1" in text and "still failing" in text
    full = load_trace(out, GEOMS["tiny"])
    short = load_trace(tmp_path / "fail.shrunk.jsonl", GEOMS["tiny"])
    assert 0 < len(short) < len(full)
    assert (tmp_path / "fail.vcd").stat().st_size > 0


@pytest.mark.parametrize("bug", mutants.BUGS, ids=[b.name for b in mutants.BUGS])
def test_every_seeded_bug_is_caught(bug):
    assert mutants.hunt(bug, ops=2000) is not None
