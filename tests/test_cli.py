"""The command line: info, replay, and bad input (exit 2, one line naming what is wrong)."""

import subprocess
import sys

import pytest

from conftest import CONFIGS, TRACES
from loongtlb.testbench.cli import main

TINY = str(CONFIGS / "tiny.yaml")


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_bad_input(code, out, err, *words):
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for word in words:
        assert word in lines[0], (word, lines[0])


@pytest.mark.parametrize("name, prcfg3", [("la464", "0x008073f2"), ("tiny", "0x00201032"),
                                          ("la32r", "0x000001f1")])
def test_info(capsys, name, prcfg3):
    code, out, _ = run(capsys, "info", CONFIGS / f"{name}.yaml")
    assert code == 0
    assert f"PRCFG3 {prcfg3}" in out.splitlines()


def test_info_la464_layout(capsys):
    _, out, _ = run(capsys, "info", CONFIGS / "la464.yaml")
    assert "STLB 8 ways x 256 sets = 2048 entries" in out
    assert "MTLB 64 entries, Index 2048..2111" in out
    assert "TLBIDX.Index 12 bits" in out


@pytest.mark.parametrize("trace", ["refill.jsonl", "two_cpus.jsonl"])
def test_replay_model_passes(capsys, trace):
    code, out, _ = run(capsys, "replay", TINY, TRACES / trace, "--backend", "model")
    assert code == 0
    assert out.startswith("ok ") and "backend model" in out


def test_replay_progress(capsys, monkeypatch):
    """After each batch that passed: the ops done so far; on a terminal, a bar on stderr."""
    from loongtlb.sw_model.geometry import load_geometry
    from loongtlb.testbench.backends import ModelBackend
    from loongtlb.testbench.replay import replay
    from loongtlb.testbench.trace import load_trace

    geom = load_geometry(TINY)
    ops = load_trace(TRACES / "refill.jsonl", geom)
    calls = []
    result = replay(ops, ModelBackend(geom, 2), batch=4,
                    progress=lambda done, total: calls.append((done, total)))
    assert result.ok
    n = len(ops)
    assert calls == [(min(i + 4, n), n) for i in range(0, n, 4)]
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    code, _, err = run(capsys, "replay", TINY, TRACES / "refill.jsonl", "--backend", "model")
    assert code == 0 and f"] {n}/{n} ops\n" in err


def test_replay_reports_the_first_failing_line(capsys):
    code, _, err = run(capsys, "replay", TINY, TRACES / "bad_expect.jsonl", "--backend", "model")
    assert code == 1
    assert "bad_expect.jsonl:3: translate: exc expected PIL, got TLBR" in err


# The bad-input corpus (tests/badinput) runs in test_badinput.py, each case as a process.


def test_console_script_never_prints_a_traceback(tmp_path):
    bad = tmp_path / "g.yaml"
    bad.write_text("name: x\nvalen: [\n")
    proc = subprocess.run([sys.executable, "-m", "loongtlb.testbench.cli", "info", str(bad)],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert proc.stdout == ""
