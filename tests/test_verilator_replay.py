"""Replay inside the Verilator harness (issue #6): the harness parses the trace and checks
every expect itself. It must agree with Python's replay on every result, every failure
message and every count, and hand back (never accept) any trace Python refuses."""

import json
from pathlib import Path

import pytest

from conftest import CONFIGS, GEOMS, TRACES, need_verilator
from loongtlb.testbench.backends import make_backend
from loongtlb.testbench.cli import main
from loongtlb.testbench.replay import replay
from loongtlb.testbench.trace import load_trace

BAD = Path(__file__).resolve().parent / "badinput" / "traces"


@pytest.fixture(scope="module")
def exe():
    need_verilator()
    from loongtlb.testbench.verilator_backend import build
    return build(GEOMS["tiny"])


def python_replay(path):
    geom = GEOMS["tiny"]
    ops = load_trace(path, geom)
    backend = make_backend(geom, "rtl", 1 + max(op.cpu for op in ops), sim="verilator")
    try:
        return replay(ops, backend, str(path))
    finally:
        backend.close()


def harness_replay(path, exe):
    from loongtlb.testbench.verilator_backend import replay_file
    return replay_file(GEOMS["tiny"], path, exe)


def test_the_path_is_named_as_given(exe, monkeypatch):
    monkeypatch.chdir(TRACES)
    fast = harness_replay("./bad_expect.jsonl", exe)
    assert fast == python_replay("./bad_expect.jsonl")
    assert fast.failure.startswith("./bad_expect.jsonl:3: translate:")


@pytest.mark.parametrize("name", ["refill.jsonl", "two_cpus.jsonl", "bad_expect.jsonl"])
def test_same_as_python(name, exe):
    fast = harness_replay(TRACES / name, exe)
    assert fast is not None                      # the plain form: no fallback
    assert fast == python_replay(TRACES / name)  # ok, ops, expects, failure line, CPUs


def _forms(lines):
    """The same trace written in other valid ways."""
    objs = [(line if line.startswith("#") or not line.strip() else json.loads(line))
            for line in lines]

    def write(transform, end="\n"):
        return "".join((o if isinstance(o, str) else transform(o)) + end for o in objs)

    def ints(o):
        return {k: (int(v, 16) if isinstance(v, str) and v.startswith("0x") else
                    ints(v) if isinstance(v, dict) else v) for k, v in o.items()}
    return {
        "compact": (write(lambda o: json.dumps(o, separators=(",", ":"))), True),
        "reversed keys, spaces": (write(lambda o: "  " + json.dumps(dict(reversed(
            list(o.items())))) + " \t"), True),
        "integers": (write(lambda o: json.dumps(ints(o))), True),
        "upper-case hex": (write(lambda o: json.dumps(o).replace('"0x', '"0X')), True),
        "CRLF": (write(json.dumps, "\r\n"), True),
        "escaped CSR names": (write(lambda o: json.dumps(o).replace('"TLB', '"\\u0054LB')),
                              False),
        "hex with underscores": (write(lambda o: json.dumps(o).replace(
            '"0x1', '"0x_1')), False),
    }


@pytest.mark.parametrize("form", list(_forms([])))
def test_other_valid_forms(form, exe, tmp_path, capsys):
    lines = (TRACES / "refill.jsonl").read_text().splitlines()
    text, fast_path = _forms(lines)[form]
    path = tmp_path / "t.jsonl"
    path.write_text(text)
    want = python_replay(TRACES / "refill.jsonl")
    got = harness_replay(path, exe)
    assert (got is not None) == fast_path
    if got is not None:
        assert (got.ok, got.ops, got.expects) == (want.ok, want.ops, want.expects)
    # through the command line, either way: the same outcome
    code = main(["replay", str(CONFIGS / "tiny.yaml"), str(path), "--backend", "rtl",
                 "--sim", "verilator"])
    out = capsys.readouterr().out
    assert code == 0 and f"{want.ops} ops on 1 CPU, {want.expects} expected values met" in out


@pytest.mark.parametrize("path", sorted(BAD.glob("*.jsonl")), ids=lambda p: p.name)
def test_bad_traces_go_back_to_python(path, exe, capsys):
    assert harness_replay(path, exe) is None
    code = main(["replay", str(CONFIGS / "tiny.yaml"), str(path), "--backend", "rtl",
                 "--sim", "verilator"])
    assert code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and str(path.name) in err


def test_failure_in_a_long_trace(exe, tmp_path):
    """A miss after many ops: the index, the count of values met and the message agree."""
    lines = (TRACES / "refill.jsonl").read_text().splitlines()
    body = [line for line in lines if line.startswith("{")]
    wrong = {"op": "translate", "va": "0x120004010", "access": "load", "cpu": 1,
             "expect": {"exc": "NONE", "pa": "0x8c010"}}         # CPU 1's TLB is empty
    path = tmp_path / "long.jsonl"
    # 50 copies of the trace, each starting from INVTLB 0, then one wrong expect
    reset = json.dumps({"op": "invtlb", "inv_op": 0, "asid": 0, "va": 0})
    path.write_text("\n".join([reset, *body] * 50 + [json.dumps(wrong)]) + "\n")
    fast = harness_replay(path, exe)
    slow = python_replay(path)
    assert not fast.ok and fast == slow
    assert fast.ops == 50 * (len(body) + 1)


@pytest.mark.parametrize("first", [0, 1])
def test_the_first_failure_of_several_cpus(first, exe, tmp_path):
    """The harness runs the CPUs side by side: with a wrong expect on three of four CPUs,
    the one reported is the earliest in the trace, whichever CPU it is on and however far
    the other CPUs have run, with the values met before it counted across all CPUs."""
    lines = (TRACES / "refill.jsonl").read_text().splitlines()
    body = [json.loads(line) for line in lines if line.startswith("{")]
    reset = {"op": "invtlb", "inv_op": 0, "asid": 0, "va": 0}

    def on(cpu, ops):
        return [dict(op, cpu=cpu) for op in ops]

    def wrong(cpu):                      # this CPU's TLB is empty at that address
        return {"op": "translate", "va": "0x7f0004010", "access": "load", "cpu": cpu,
                "expect": {"exc": "NONE", "pa": "0x8c010"}}
    ops = []
    for round_ in range(40):
        for cpu in range(4):
            ops += on(cpu, [reset, *body])
        if round_ == 10:
            ops.append(wrong(first))
        if round_ == 30:
            ops.append(wrong(1 - first))
        if round_ == 35:
            ops.append(wrong(3))
    path = tmp_path / "cpus.jsonl"
    path.write_text("".join(json.dumps(op) + "\n" for op in ops))
    fast = harness_replay(path, exe)
    assert not fast.ok and fast == python_replay(path)
    assert fast.ops == 11 * 4 * (len(body) + 1)          # the index of the first wrong op
    assert ("(cpu 1)" in fast.failure) == (first == 1)


def test_old_builds_are_pruned(tmp_path):
    """Each source version builds anew; only the newest three per geometry stay cached."""
    import os

    from loongtlb.testbench.verilator_backend import prune
    for i in range(5):
        d = tmp_path / f"tiny-{i:016x}"
        d.mkdir()
        os.utime(d, (1000 + i, 1000 + i))
    (tmp_path / "tiny2-0000000000000000").mkdir()       # another geometry's
    (tmp_path / "tiny-00000000000000aa.tmp123").mkdir()  # a build in progress
    prune(tmp_path, "tiny")
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "tiny-0000000000000002", "tiny-0000000000000003", "tiny-0000000000000004",
        "tiny-00000000000000aa.tmp123", "tiny2-0000000000000000"]


def test_the_cache_key_is_the_code_this_process_runs(exe, monkeypatch):
    """RTL files edited on disk after this process imported them do not change the key: the
    model is built from the imported code, so a key read from the files again would file a
    build of the old code under the new code's name."""
    from loongtlb.testbench.verilator_backend import build
    read = Path.read_text

    def edited(self, *args, **kwargs):
        text = read(self, *args, **kwargs)
        return text + "\n# edited\n" if self.suffix == ".py" else text

    monkeypatch.setattr(Path, "read_text", edited)
    assert build(GEOMS["tiny"]) == exe


def test_a_cached_model_runs_without_amaranth(exe, tmp_path):
    """A replay whose model is already built imports neither Amaranth nor the RTL (their
    import is a quarter of a second of every run) and runs no Verilator."""
    import subprocess
    import sys
    trace = tmp_path / "t.jsonl"
    trace.write_text('{"op": "csrwr", "csr": "ASID", "value": "0x5"}\n'
                     '{"op": "csrrd", "csr": "ASID", "expect": "0xa0005"}\n')
    probe = ("import os, subprocess, sys\n"
             "from loongtlb.testbench.cli import main\n"
             "run = subprocess.run\n"
             "def refuse(cmd, *a, **k):\n"
             "    assert not os.path.basename(cmd[0]).startswith('verilator'), cmd\n"
             "    return run(cmd, *a, **k)\n"
             "subprocess.run = refuse\n"
             f"code = main(['replay', {str(CONFIGS / 'tiny.yaml')!r}, {str(trace)!r},\n"
             "             '--backend', 'rtl', '--sim', 'verilator'])\n"
             "bad = sorted(m for m in sys.modules if m.startswith(('amaranth', 'loongtlb.rtl')))\n"
             "print(code, bad)\n")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parent.parent)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[-2] == "0 []"
