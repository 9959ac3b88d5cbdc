"""The lost-race fault path (issue #4): the kernel model on two CPUs, RTL in lock step.

Expected exceptions per CPU (canonical schedule, CPU 0 wins). The anon rows are the
issue's table. The cow rows follow from the kernel code under decisions.md D4: after
wp_page_copy's flush_tlb_page, __update_tlb's TLBSRCH misses, so TLBIDX.NE = 1, and the
TLBFILL that follows (outside the refill context) writes an entry with E = NOT NE = 0.
Neither the winner's update_mmu_cache nor the full-series loser's update_mmu_tlb leaves a
usable entry: both CPUs refill (TLBR) after returning from PME.
"""

import json

import pytest

from conftest import CONFIGS, GEOMS, need_verilator
from sw_model.kernel.cpu import VARIANTS, Cpu
from testbench.cli import main
from testbench.race import Race, summarize

W_LOAD, W_STORE = {"TLBR": 1, "PIL": 1}, {"TLBR": 1, "PIS": 1}
EXPECTED = {
    # (scenario, access): {variant: (winner, loser, loser entry valid)}
    ("anon", "load"): {
        "full-series": (W_LOAD, {"TLBR": 1, "PIL": 1}, True),
        "mm-only": (W_LOAD, {"TLBR": 1, "PIL": 2}, False),
        "pre-series": (W_LOAD, {"TLBR": 1, "PIL": 2}, False),
    },
    ("anon", "store"): {
        "full-series": (W_STORE, {"TLBR": 1, "PIS": 1}, True),
        "mm-only": (W_STORE, {"TLBR": 1, "PIS": 2}, False),
        "pre-series": (W_STORE, {"TLBR": 1, "PIS": 1}, True),
    },
    ("cow", "store"): {
        v: ({"PME": 1, "TLBR": 1}, {"PME": 1, "TLBR": 1}, False) for v in VARIANTS
    },
}


def run_canonical(geom, scenario, access, variant, backend="cosim"):
    race = Race(GEOMS[geom], scenario, access, 2, backend)
    return summarize(race, variant, "canonical", race.run(variant))


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("scenario, access", list(EXPECTED))
def test_canonical_race_in_cosim(scenario, access, variant):
    report = run_canonical("tiny", scenario, access, variant)
    winner, loser, valid = EXPECTED[(scenario, access)][variant]
    assert report["mismatches"] == 0 and report["violations"] == []
    assert [c["role"] for c in report["cpus"]] == ["winner", "loser"]
    assert report["cpus"][0]["exceptions"] == winner
    assert report["cpus"][1]["exceptions"] == loser
    assert report["loser_entry_valid_after_fault"] is valid


def test_the_loser_fixes_its_own_tlb_only_in_full_series():
    """What update_mmu_tlb does on the loser: TLBSRCH finds the stale V=0 entry and TLBWR
    rewrites it (anon load); in mm-only the loser's fast handler does that one fault later."""
    full = run_canonical("tiny", "anon", "load", "full-series")
    mm_only = run_canonical("tiny", "anon", "load", "mm-only")
    assert full["cpus"][1]["tlb_ops"] == {"tlbfill": 1, "tlbsrch": 1, "tlbwr": 1}
    assert mm_only["cpus"][1]["tlb_ops"] == {"tlbfill": 1, "tlbsrch": 1, "tlbwr": 1}
    # cow: the winner's flush reaches the loser's TLB by IPI (INVTLB op 5 on both CPUs)
    cow = run_canonical("tiny", "cow", "store", "full-series")
    assert cow["cpus"][0]["tlb_ops"]["invtlb"] == 1 and cow["cpus"][1]["tlb_ops"]["invtlb"] == 1


def test_canonical_race_on_verilator(capsys):
    need_verilator()
    assert main(["race", str(CONFIGS / "tiny.yaml"), "--scenario", "anon", "--access", "store",
                 "--sim", "verilator", "--json"]) == 0
    for r in json.loads(capsys.readouterr().out):
        winner, loser, valid = EXPECTED[("anon", "store")][r["kernel"]]
        assert (r["cpus"][0]["exceptions"], r["cpus"][1]["exceptions"]) == (winner, loser)
        assert r["loser_entry_valid_after_fault"] is valid and r["mismatches"] == 0


def test_la464_anon_load_all_kernels(capsys):
    assert main(["race", str(CONFIGS / "la464.yaml"), "--kernel", "all", "--json"]) == 0
    reports = json.loads(capsys.readouterr().out)
    assert [r["kernel"] for r in reports] == list(VARIANTS)
    for r in reports:
        winner, loser, valid = EXPECTED[("anon", "load")][r["kernel"]]
        assert (r["cpus"][0]["exceptions"], r["cpus"][1]["exceptions"]) == (winner, loser)
        assert r["loser_entry_valid_after_fault"] is valid and r["mismatches"] == 0


@pytest.mark.parametrize("access", ["load", "store"])
def test_exhaustive_schedules(access):
    """Every interleaving of the 2-CPU anon race, all invariants checked in each: over the
    set of schedules, full-series never takes more exceptions than mm-only, at most or in
    total."""
    race = Race(GEOMS["tiny"], "anon", access, 2, "model")
    reports = {v: summarize(race, v, "exhaustive", race.run(v, "exhaustive"))
               for v in VARIANTS}
    for r in reports.values():
        assert r["schedules"] > 100 and r["violations"] == [] and r["mismatches"] == 0
    full, mm_only = reports["full-series"], reports["mm-only"]
    assert full["exceptions_max"] <= mm_only["exceptions_max"]
    assert full["exceptions_total"] <= mm_only["exceptions_total"]
    assert full["exceptions_total"] < mm_only["exceptions_total"]     # it does save some


def test_random_schedules_keep_the_invariants():
    race = Race(GEOMS["tiny"], "cow", "store", 2, "cosim")
    for seed in range(3):
        for v in VARIANTS:
            r = summarize(race, v, "random", race.run(v, "random", seed))
            assert r["violations"] == [] and r["mismatches"] == 0


def test_three_cpus():
    race = Race(GEOMS["tiny"], "anon", "load", 3, "model")
    r = summarize(race, "full-series", "canonical", race.run("full-series"))
    assert [c["role"] for c in r["cpus"]] == ["winner", "loser", "loser"]
    assert r["cpus"][2]["exceptions"] == {"TLBR": 1, "PIL": 1}


def test_trace_replays_in_cosim(tmp_path, capsys):
    out = tmp_path / "race.jsonl"
    assert main(["race", str(CONFIGS / "tiny.yaml"), "--scenario", "cow", "--trace",
                 str(out)]) == 0
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [f"race.{v}.jsonl" for v in sorted(VARIANTS)]
    for name in names:
        assert main(["replay", str(CONFIGS / "tiny.yaml"), str(tmp_path / name)]) == 0
    text = (tmp_path / "race.full-series.jsonl").read_text()
    assert '"cpu": 1' in text and '"op": "invtlb"' in text


def test_json_report_keys(capsys):
    assert main(["race", str(CONFIGS / "tiny.yaml"), "--kernel", "full-series", "--json",
                 "--access", "store", "--backend", "model"]) == 0
    report = json.loads(capsys.readouterr().out)
    for key in ("scenario", "kernel", "backend", "access", "schedule", "schedules", "cpus",
                "loser_entry_valid_after_fault", "mismatches"):
        assert key in report
    assert report["schedules"] == 1 and report["access"] == "store"
    for cpu in report["cpus"]:
        assert set(cpu) >= {"cpu", "role", "exceptions", "tlb_ops"}


def test_table_and_cost_line(capsys):
    assert main(["race", str(CONFIGS / "tiny.yaml"), "--backend", "model",
                 "--cost", "TLBR=10,PIL=100"]) == 0
    out = capsys.readouterr().out
    assert "loser entry valid" in out
    # the loser's extra PIL in pre-series and mm-only costs 100 modelled cycles
    assert "full-series saves 100 over pre-series, 100 over mm-only" in out


@pytest.mark.parametrize("argv, words", [
    (["--scenario", "cow", "--access", "load"], ["cow", "load"]),
    (["--cpus", "1"], ["--cpus 1"]),
    (["--schedule", "exhaustive", "--cpus", "3"], ["2-CPU"]),
    (["--schedule", "exhaustive", "--trace", "x.jsonl"], ["exhaustive"]),
    (["--cost", "TLBR=fast"], ["--cost"]),
    (["--backend", "model", "--vcd", "w.vcd"], ["--vcd"]),
])
def test_bad_race_input(capsys, argv, words):
    assert main(["race", str(CONFIGS / "tiny.yaml"), *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and all(w in err[0] for w in words)


def test_geometry_must_suit_the_linux_model(capsys):
    assert main(["race", str(CONFIGS / "la32r.yaml")]) == 2
    assert "la32r.yaml" in capsys.readouterr().err


def test_a_wrong_page_is_caught(monkeypatch, capsys):
    """The invariant check is live: a loser that installs the wrong frame fails the run."""
    def broken(self, vma, address, ptep):
        mem = self.kernel.mem
        mem.write(ptep, mem.read(ptep) + (1 << 14))           # the next frame
        self.update_mmu_cache(vma, address, ptep)
        mem.write(ptep, mem.read(ptep) - (1 << 14))
    monkeypatch.setattr(Cpu, "update_mmu_tlb", broken)
    assert main(["race", str(CONFIGS / "tiny.yaml"), "--backend", "model"]) == 1
    assert "FAIL" in capsys.readouterr().out


def test_a_livelock_is_caught(monkeypatch, capsys):
    def never_fixes(self, access):
        self.port.csrrd("BADV")
        yield "access"
    monkeypatch.setattr(Cpu, "handle_tlb_load", never_fixes)
    assert main(["race", str(CONFIGS / "tiny.yaml"), "--backend", "model"]) == 1
    assert "livelock" in capsys.readouterr().out
