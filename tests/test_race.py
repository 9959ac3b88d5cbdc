"""The lost-race fault path: the kernel model on two CPUs, the RTL in lock step.

EXPECTED holds, for every combination the kernel allows, what docs/kernel-race.md derives
from the v6.0 source for the canonical schedule (CPU 0 wins): each CPU's exceptions, whether
the winner's and the loser's entries are valid when their faults return, and the call sites.
Each cell is checked on the model, on cosim with Amaranth's simulator and on cosim with
Verilator, under both readings of decisions.md D4 (tlbfill_ne).
"""

import json
import subprocess
import sys

import pytest

from conftest import CONFIGS, GEOMS, need_verilator
from loongtlb.sw_model.kernel.cpu import VARIANTS, Cpu
from loongtlb.testbench.cli import main
from loongtlb.testbench.race import (RACE_VA, Race, Summary, combinations, format_matrix,
                                     matrix_rows, summarize)

PRE, MM, FULL = VARIANTS
READINGS = ("manual", "ignore")


def _race_cell(scenario, access, prefault, reading):
    """{variant: (cpu 0's exceptions, cpu 1's, winner valid, loser valid)} (the page cache
    changes nothing the TLB sees: a cold page is read in, then the fault is retried)."""
    first = {"load": "PIL", "store": "PIS"}[access]
    if prefault == "none" and scenario != "cow":
        # a refill of the empty PTE (V = 0), then PIL/PIS; the winner's update_mmu_cache
        # finds that entry with TLBSRCH and rewrites it (TLBWR), NE = 0: valid
        winner = {"TLBR": 1, first: 1}
        lost = {"TLBR": 1, first: 2}               # its stale V = 0 entry faults again
        cell = {v: (winner, lost, True, False) for v in VARIANTS}
        cell[FULL] = (winner, winner, True, True)   # update_mmu_tlb rewrote it
        if scenario == "anon" and access == "store":
            cell[PRE] = (winner, winner, True, True)    # v6.0's accidental update_mmu_cache
        return cell
    # a copy-on-write or write-notify store: the winner's flush_tlb_page empties both TLBs
    # (IPI); __update_tlb's TLBSRCH then misses and TLBFILL runs with NE = 1
    refill = {"TLBR": 1} if prefault == "none" else {}       # cow, nothing read before
    if reading == "manual":        # the TLBFILL writes E = 0: both CPUs refill afterwards
        both = {"TLBR": refill.get("TLBR", 0) + 1, "PME": 1}
        return {v: (both, both, False, False) for v in VARIANTS}
    winner = dict(refill, PME=1)
    lost = {"TLBR": refill.get("TLBR", 0) + 1, "PME": 1}
    cell = {v: (winner, lost, True, False) for v in VARIANTS}
    cell[FULL] = (winner, winner, True, True)
    return cell


def _sites(scenario, access, prefault, variant, cache=None):
    """The update_mmu_* call sites of the counted part and how often each ran."""
    if prefault == "read" or scenario == "cow":
        winner = {"file-shared": "wp_page_reuse"}.get(scenario, "wp_page_copy")
        return {"handle_pte_fault:update_mmu_tlb": 1, f"{winner}:update_mmu_cache": 1}
    if scenario == "anon":
        if access == "store" and variant == PRE:
            return {"do_anonymous_page:update_mmu_cache": 2}
        return {"do_anonymous_page:update_mmu_cache": 1, "do_anonymous_page:update_mmu_tlb": 1}
    if access == "load":        # fault-around maps pages 4..7; the loser in finish_fault
        # a cold read-around (pages 1..8) marks page 7 PG_readahead: fault-around skips it
        mapped = 3 if cache == "cold" else 4
        return {"filemap_map_pages:update_mmu_cache": mapped, "finish_fault:update_mmu_tlb": 1}
    return {"finish_fault:update_mmu_cache": 1, "finish_fault:update_mmu_tlb": 1}


CELLS = [(c, r) for c in combinations() for r in READINGS]


def _cell_id(cell):
    (scenario, access, prefault, cache), reading = cell
    return "-".join(x for x in (scenario, access, prefault, cache, reading) if x)


def _check_cell(report, combination, reading):
    scenario, access, prefault, cache = combination
    w, lost, w_valid, l_valid = _race_cell(scenario, access, prefault, reading)[report["kernel"]]
    assert report["mismatches"] == 0 and report["violations"] == []
    assert [c["role"] for c in report["cpus"]] == ["winner", "loser"]
    assert (report["cpus"][0]["exceptions"], report["cpus"][1]["exceptions"]) == (w, lost)
    assert report["winner_entry_valid_after_fault"] is w_valid
    assert report["loser_entry_valid_after_fault"] is l_valid
    assert report["sites"] == _sites(scenario, access, prefault, report["kernel"], cache)
    assert report["tlbfill_ne"] == reading


def _run_cell(combination, reading, backend, sim="pysim"):
    geom = GEOMS["tiny" if reading == "manual" else "tiny_ignore"]
    scenario, access, prefault, cache = combination
    race = Race(geom, scenario, access, 2, backend, sim, prefault, cache)
    for variant in VARIANTS:
        _check_cell(summarize(race, variant, "canonical", race.run(variant)), combination,
                    reading)


def test_the_table_covers_every_legal_combination():
    assert len(combinations()) == 17
    assert ("anon", "load", "read", None) not in combinations()
    assert ("cow", "load", "none", None) not in combinations()


@pytest.mark.parametrize("cell", CELLS, ids=_cell_id)
def test_canonical_cell_on_the_model(cell):
    _run_cell(*cell, "model")


@pytest.mark.parametrize("cell", CELLS, ids=_cell_id)
def test_canonical_cell_in_cosim(cell):
    _run_cell(*cell, "cosim")


@pytest.mark.parametrize("cell", CELLS, ids=_cell_id)
def test_canonical_cell_in_cosim_on_verilator(cell):
    need_verilator()
    _run_cell(*cell, "cosim", "verilator")


def test_the_loser_fixes_its_own_tlb_only_in_full_series():
    """What update_mmu_tlb does on the loser: TLBSRCH finds the stale V=0 entry and TLBWR
    rewrites it (anon load); in mm-only the loser's fast handler does that one fault later.
    v6.0's fast handler runs TLBSRCH before it tests the PTE (K6), so the loser's fault
    that falls through to do_page_fault has run one already."""
    race = Race(GEOMS["tiny"], "anon", "load", 2, "cosim")
    full = summarize(race, FULL, "canonical", race.run(FULL))
    mm_only = summarize(race, MM, "canonical", race.run(MM))
    assert full["cpus"][1]["tlb_ops"] == {"tlbfill": 1, "tlbsrch": 2, "tlbwr": 1}
    assert mm_only["cpus"][1]["tlb_ops"] == {"tlbfill": 1, "tlbsrch": 2, "tlbwr": 1}
    # cow: the winner's flush reaches the loser's TLB by IPI (INVTLB op 5 on both CPUs)
    race = Race(GEOMS["tiny"], "cow", "store", 2, "cosim")
    cow = summarize(race, FULL, "canonical", race.run(FULL))
    assert cow["cpus"][0]["tlb_ops"]["invtlb"] == 1 and cow["cpus"][1]["tlb_ops"]["invtlb"] == 1


def test_la464_matrix_in_cosim():
    """Every combination on la464 (8 x 256 + 64) in cosim: the same table as tiny's."""
    for r in matrix_rows(GEOMS["la464"], backend="cosim"):
        combination = (r["scenario"], r["access"], r["prefault"], r["page_cache"])
        _check_cell(r, combination, "manual")


def test_matrix_cli_both_readings(capsys):
    assert main(["race", str(CONFIGS / "tiny.yaml"), "--matrix", "--backend", "model",
                 "--tlbfill-ne", "both"]) == 0
    out = capsys.readouterr().out
    assert "`tlbfill_ne: manual`" in out and "`tlbfill_ne: ignore`" in out
    assert "| anon | load | none | - | R L / R L×2 · w✓ l✗ |" in out
    assert out.count("| file-shared | store | read | warm |") == 2
    assert "FAIL" not in out
    assert main(["race", str(CONFIGS / "tiny.yaml"), "--matrix", "--backend", "model",
                 "--json"]) == 0
    reports = json.loads(capsys.readouterr().out)
    assert len(reports) == 17 * 3
    assert {r["tlbfill_ne"] for r in reports} == {"manual"}


def test_every_reachable_site_is_reached():
    """Five of v6.0's seven update_mmu_tlb sites on the canonical schedules; the other two
    (in __wp_page_copy_user) need a page without struct page, which the model has not.
    wp_page_copy's and finish_mkwrite_fault's loser sites need a loser that passed
    handle_pte_fault's check before the winner changed the PTE: exhaustive schedules."""
    canonical = set()
    for r in matrix_rows(GEOMS["tiny"]):
        canonical |= set(r["sites"])
    assert {s for s in canonical if s.endswith("update_mmu_tlb")} == {
        "do_anonymous_page:update_mmu_tlb", "finish_fault:update_mmu_tlb",
        "handle_pte_fault:update_mmu_tlb"}
    deep = set()
    for scenario in ("cow", "file-shared"):
        race = Race(GEOMS["tiny"], scenario, "store", 2, "model", prefault="read",
                    page_cache="warm" if scenario == "file-shared" else None)
        deep |= set(race.run(FULL, "exhaustive").sites)
    assert {"wp_page_copy:update_mmu_tlb", "finish_mkwrite_fault:update_mmu_tlb"} <= deep


@pytest.mark.parametrize("access", ["load", "store"])
def test_exhaustive_anon(access):
    """Every interleaving of the 2-CPU anon race at the K5 points, the invariants checked in
    each: full-series takes no more exceptions than mm-only, by mean and at most, and
    fewer by mean."""
    race = Race(GEOMS["tiny"], "anon", access, 2, "model")
    reports = {v: summarize(race, v, "exhaustive", race.run(v, "exhaustive")) for v in VARIANTS}
    for r in reports.values():
        assert r["schedules"] > 1000 and r["violations"] == [] and r["mismatches"] == 0
    full, mm_only = reports[FULL], reports[MM]
    assert full["exceptions_max"] <= mm_only["exceptions_max"]
    assert full["exceptions_mean"] < mm_only["exceptions_mean"]
    for cpu in full["cpus"]:
        assert set(cpu) >= {"mean", "max"} and cpu["role"] == "mixed"


def test_the_cached_search_counts_every_schedule():
    """The exhaustive search shares the subtrees of equal states: its totals equal a plain
    enumeration that replays every schedule to its end."""
    race = Race(GEOMS["tiny"], "anon", "load", 2, "model")
    cached = race.run(FULL, "exhaustive")
    plain = Summary(2)
    stack = [[]]
    while stack:
        prefix = stack.pop()
        system = race._build(FULL)
        for cpu in prefix:
            system.step(cpu)
        runnable = system.runnable()
        if not runnable:
            plain.add(Summary.of(2, race._result(system)))
        stack += [prefix + [cpu] for cpu in runnable]
    assert (cached.schedules, cached.exceptions, cached.most, cached.tlb_ops, cached.sites) \
        == (plain.schedules, plain.exceptions, plain.most, plain.tlb_ops, plain.sites)
    assert cached.runs < plain.schedules / 4                  # and it is much cheaper


def test_new_interleavings_happen():
    """The K5 points the model had not: the loser's fast handler can run while the winner
    holds the lock (after its set_pte), finding the PTE present: a loser with no fault to
    lose, and SC retries when the PTE changed between ll.d and sc.d."""
    race = Race(GEOMS["tiny"], "anon", "load", 2, "model")
    s = race.run(PRE, "exhaustive")
    assert "none" in s.roles[1]                  # fixed by its own fast handler
    assert s.most[1]["PIL"] == 2 and s.most[0]["PIL"] == 2
    # an IPI waits for a CPU inside an exception handler; a cold page: the fault is
    # retried after the read
    race = Race(GEOMS["tiny"], "file-shared", "store", 2, "model", prefault="read",
                page_cache="warm")
    s = race.run(FULL, "exhaustive")
    assert s.events["IPI waited"] > 0
    race = Race(GEOMS["tiny"], "file-private", "load", 2, "model", page_cache="cold")
    assert race.run(FULL).events["VM_FAULT_RETRY"] == 1


def test_random_schedules_keep_the_invariants():
    for scenario, access, prefault, cache in combinations()[::3]:
        race = Race(GEOMS["tiny"], scenario, access, 2, "cosim", prefault=prefault,
                    page_cache=cache)
        for seed in range(2):
            for v in VARIANTS:
                r = summarize(race, v, "random", race.run(v, "random", seed))
                assert r["violations"] == [] and r["mismatches"] == 0


def test_three_cpus():
    race = Race(GEOMS["tiny"], "anon", "load", 3, "model")
    r = summarize(race, FULL, "canonical", race.run(FULL))
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
                "loser_entry_valid_after_fault", "winner_entry_valid_after_fault", "sites",
                "tlbfill_ne", "mismatches", "prefault", "page_cache"):
        assert key in report
    assert report["schedules"] == 1 and report["access"] == "store"
    assert report["prefault"] == "none" and report["page_cache"] is None
    for cpu in report["cpus"]:
        assert set(cpu) >= {"cpu", "role", "exceptions", "tlb_ops"}


def test_exhaustive_json_has_means_and_maxima(capsys):
    assert main(["race", str(CONFIGS / "tiny.yaml"), "--schedule", "exhaustive", "--json",
                 "--backend", "model"]) == 0
    reports = json.loads(capsys.readouterr().out)
    counts = [r["schedules"] for r in reports]
    assert counts[0] == counts[1] != counts[2]           # the variants run different sets
    for r in reports:
        total = sum(sum(c["exceptions"].values()) for c in r["cpus"])
        mean = sum(sum(c["mean"].values()) for c in r["cpus"])
        assert abs(mean - total / r["schedules"]) < 0.01
        assert r["exceptions_max"] == max(2, r["exceptions_max"])


def test_table_and_cost_line(capsys):
    assert main(["race", str(CONFIGS / "tiny.yaml"), "--backend", "model",
                 "--cost", "TLBR=10,PIL=100"]) == 0
    out = capsys.readouterr().out
    assert "loser entry valid" in out and "tlbfill_ne manual" in out
    # the loser's extra PIL in pre-series and mm-only costs 100 modelled cycles
    assert "full-series saves 100 over pre-series, 100 over mm-only" in out
    assert main(["race", str(CONFIGS / "tiny.yaml"), "--backend", "model",
                 "--schedule", "exhaustive"]) == 0
    out = capsys.readouterr().out
    assert "schedules)" in out and "per schedule" in out and "exc/run" in out


@pytest.mark.parametrize("argv, words", [
    (["--scenario", "cow", "--access", "load"], ["cow", "load"]),
    (["--access", "load", "--prefault", "read"], ["--prefault read", "no CPU faults"]),
    (["--scenario", "anon", "--page-cache", "warm"], ["--page-cache", "file"]),
    (["--cpus", "1"], ["--cpus 1"]),
    (["--schedule", "exhaustive", "--cpus", "3"], ["2-CPU"]),
    (["--schedule", "exhaustive", "--trace", "x.jsonl"], ["exhaustive"]),
    (["--schedule", "exhaustive", "--backend", "rtl"], ["exhaustive", "model or cosim"]),
    (["--cost", "TLBR=fast"], ["--cost", "whole number"]),
    (["--cost", "TLBR=-5"], ["--cost", "whole number"]),
    (["--cost", "FOO=5"], ["--cost", "FOO"]),
    (["--backend", "model", "--vcd", "w.vcd"], ["--vcd"]),
    (["--matrix", "--scenario", "cow"], ["--matrix", "--scenario"]),
    (["--tlbfill-ne", "both"], ["--matrix"]),
    (["--scenario", "file"], ["--scenario"]),
])
def test_bad_race_input(capsys, argv, words):
    assert main(["race", str(CONFIGS / "tiny.yaml"), *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and all(w in err[0] for w in words), err


def test_geometry_must_suit_the_linux_model(capsys):
    assert main(["race", str(CONFIGS / "la32r.yaml")]) == 2
    assert "la32r.yaml" in capsys.readouterr().err


def test_a_wrong_page_is_caught(monkeypatch, capsys):
    """The invariant check is live: a loser that installs the wrong frame fails the run."""
    def broken(self, function, vma, address, ptep):
        mem = self.kernel.mem
        mem.write(ptep, mem.read(ptep) + (1 << 14))           # the next frame
        yield from self.update_mmu_cache(function, vma, address, ptep)
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


def test_a_deadlock_is_caught(monkeypatch, capsys):
    """A lock never released: the other CPU waits for ever, which the scheduler reports."""
    monkeypatch.setattr(Cpu, "unlock", lambda self, key: None)
    assert main(["race", str(CONFIGS / "tiny.yaml"), "--backend", "model"]) == 1
    assert "deadlock" in capsys.readouterr().out


def test_an_internal_error_exits_3(tmp_path):
    """A bug of the tool: one line on stderr and exit status 3 (interfaces.md section 4)."""
    code = ("import sys; from testbench import cli, race\n"
            "race.Race.run = lambda *a, **k: 1 / 0\n"
            f"sys.exit(cli.main(['race', {str(CONFIGS / 'tiny.yaml')!r}, '--backend', "
            "'model']))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 3
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "internal error" in lines[0] and "ZeroDivisionError" in lines[0]


def test_matrix_markdown_shape():
    rows = matrix_rows(GEOMS["tiny"], backend="model")
    table = format_matrix(rows, GEOMS["tiny"]).splitlines()
    assert len([line for line in table if line.startswith("| anon") or
                line.startswith("| cow") or line.startswith("| file")]) == 17


def test_a_store_between_ll_and_sc_retries_the_fast_handler():
    """K5: a store to the PTE's cache line between the fast handler's ll.d and its sc.d
    makes the sc.d fail; the handler goes back to the ll.d and, in v6.0's layout (K6), runs
    TLBSRCH again. (In the matrix, fault-around's store to the buddy PTE does this: the
    exhaustive file load races count "sc.d failed" events.)"""
    race = Race(GEOMS["tiny"], "anon", "load", 2, "model")
    system = race._build(PRE)
    cpu1 = system.kernel.cpus[1]
    system.step(1)
    system.step(1)                  # TLBR: the refill loads the empty PTE (V = 0)
    Race._finish(system, 0)         # CPU 0 maps the page
    while system.at[1] != "llsc":   # PIL; the fast handler finds the PTE present
        system.step(1)
    buddy = system.kernel.pt.pte_address(system.kernel.cpus[0].mm.pgd, RACE_VA) ^ 8
    system.kernel.mem.write(buddy, 0)           # a store to the same line
    system.step(1)
    assert system.at[1] == "llsc" and system.kernel.events["sc.d failed"] == 1
    Race._finish(system, 1)
    assert cpu1.tlb_ops == {"tlbfill": 1, "tlbsrch": 2, "tlbwr": 1}
    assert cpu1.exceptions == {"TLBR": 1, "PIL": 1}


def test_readme_race_table_is_the_commands_output(capsys, monkeypatch):
    """README's race table is what the command beside it prints, not a copy by hand."""
    from conftest import ROOT

    monkeypatch.chdir(ROOT)
    readme = (ROOT / "README.md").read_text()
    command = "loongtlb race configs/tiny.yaml --matrix --tlbfill-ne manual --backend model"
    assert f"```sh\n{command}\n```" in readme
    assert main(command.split()[1:]) == 0
    out = capsys.readouterr().out.rstrip("\n")
    assert out in readme
