"""The command line: info, replay, and bad input (exit 2, one line naming what is wrong)."""

import subprocess
import sys

import pytest
import yaml

from conftest import CONFIGS, TRACES
from testbench.cli import main

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


def test_replay_reports_the_first_failing_line(capsys):
    code, _, err = run(capsys, "replay", TINY, TRACES / "bad_expect.jsonl", "--backend", "model")
    assert code == 1
    assert "bad_expect.jsonl:3: translate: exc expected PIL, got TLBR" in err


# ---- bad geometry files -------------------------------------------------------------------------

def _tiny():
    return yaml.safe_load((CONFIGS / "tiny.yaml").read_text())


def _set(path, value):
    def change(data):
        keys = path.split(".")
        target = data
        for key in keys[:-1]:
            target = target[key]
        if value is KeyError:
            del target[keys[-1]]
        else:
            target[keys[-1]] = value
        return data
    return change


BAD_GEOMETRIES = [
    ("sets not a power of two", _set("stlb.sets", 6), ["stlb.sets", "power of two"]),
    ("zero ways", _set("stlb.ways", 0), ["stlb.ways", "0"]),
    ("asid_bits 11", _set("asid_bits", 11), ["asid_bits", "11"]),
    ("grlen 32 with valen 48", _set("grlen", 32), ["valen", "grlen 32"]),
    ("page shift too small", _set("page_shifts", [11, 14]), ["page_shifts[0]", "11"]),
    ("page shift too large", _set("page_shifts", [14, 48]), ["page_shifts[1]", "48"]),
    ("lfsr seed 0", _set("replacement.seed", 0), ["replacement.seed", "0"]),
    ("lfsr without seed", _set("replacement.seed", KeyError), ["replacement.seed", "missing"]),
    ("unknown key", _set("colour", "red"), ["colour", "unknown key"]),
    ("unknown nested key", _set("mtlb.size", 3), ["mtlb.size", "unknown key"]),
    ("missing key", _set("palen", KeyError), ["palen", "missing"]),
    ("wrong type", _set("valen", "48"), ["valen", "integer"]),
    ("bool is not a number", _set("lookup_ports", True), ["lookup_ports", "integer"]),
    ("stlb not a mapping", _set("stlb", 8), ["stlb", "mapping"]),
    ("stlbps not listed", _set("stlb_page_shift", 13), ["stlb_page_shift", "not in"]),
    ("unknown policy", _set("replacement.policy", "lru"), ["replacement.policy", "lru"]),
    ("too many entries", _set("stlb", {"ways": 256, "sets": 512}), ["stlb", "65536"]),
    ("zero ports", _set("lookup_ports", 0), ["lookup_ports"]),
]


@pytest.mark.parametrize("what, change, words", BAD_GEOMETRIES, ids=[b[0] for b in BAD_GEOMETRIES])
def test_bad_geometry(capsys, tmp_path, what, change, words):
    path = tmp_path / "geom.yaml"
    path.write_text(yaml.safe_dump(change(_tiny())))
    assert_bad_input(*run(capsys, "info", path), "geom.yaml", *words)


@pytest.mark.parametrize("text, words", [
    ("name: [unclosed\n", ["malformed YAML"]),
    ("- just\n- a list\n", ["mapping"]),
    ("", ["mapping"]),
])
def test_malformed_yaml(capsys, tmp_path, text, words):
    path = tmp_path / "geom.yaml"
    path.write_text(text)
    assert_bad_input(*run(capsys, "info", path), "geom.yaml", *words)


def test_missing_config(capsys, tmp_path):
    assert_bad_input(*run(capsys, "info", tmp_path / "nope.yaml"), "nope.yaml", "no such file")


# ---- bad traces ---------------------------------------------------------------------------------

BAD_TRACES = [
    ('{"op": "csrwr", "csr": "ASID", value: 1}', ["bad JSON"]),
    ('{"op": "tlbzap"}', ["unknown op", "tlbzap"]),
    ('{"op": "csrrd", "csr": "FOO"}', ["unknown CSR", "FOO"]),
    ('{"op": "csrwr", "csr": "ASID"}', ["missing field", "value"]),
    ('{"csr": "ASID"}', ["missing field", "op"]),
    ('{"op": "translate", "va": -4, "access": "load"}', ["va", "negative"]),
    ('{"op": "translate", "va": "0x10000000000000000", "access": "load"}', ["va", "64 bits"]),
    ('{"op": "invtlb", "inv_op": 32, "asid": 0, "va": 0}', ["inv_op", "5 bits"]),
    ('{"op": "invtlb", "inv_op": 1, "asid": 1024, "va": 0}', ["asid", "10 bits"]),
    ('{"op": "translate", "va": 0, "access": "write"}', ["access", "write"]),
    ('{"op": "translate", "va": 0, "access": "load", "port": 2}', ["port 2"]),
    ('{"op": "translate", "va": "12", "access": "load"}', ["va", "not a number"]),
    ('{"op": "tlbsrch", "bogus": 1}', ["unknown field", "bogus"]),
    ('{"op": "tlbsrch", "expect": {"slot": 1}}', ["expect", "slot"]),
    ('{"op": "translate", "va": 0, "access": "load", "expect": {"exc": "OOPS"}}', ["OOPS"]),
    ('{"op": "csrrd", "csr": "ASID", "expect": true}', ["expect", "number"]),
    ('[1, 2]', ["JSON object"]),
]


@pytest.mark.parametrize("line, words", BAD_TRACES)
def test_bad_trace(capsys, tmp_path, line, words):
    path = tmp_path / "t.jsonl"
    path.write_text('# comment\n\n{"op": "ertn"}\n' + line + "\n")
    assert_bad_input(*run(capsys, "replay", TINY, path, "--backend", "model"), "t.jsonl:4",
                     *words)


def test_missing_trace_and_directory(capsys, tmp_path):
    assert_bad_input(*run(capsys, "replay", TINY, tmp_path / "no.jsonl", "--backend", "model"),
                     "no.jsonl", "no such file")
    assert_bad_input(*run(capsys, "replay", TINY, tmp_path, "--backend", "model"),
                     "directory")


def test_bad_flags(capsys):
    assert_bad_input(*run(capsys, "replay", TINY, TRACES / "refill.jsonl", "--backend", "qemu"),
                     "backend", "qemu")
    assert_bad_input(*run(capsys, "frobnicate"), "frobnicate")
    assert_bad_input(*run(capsys, "info"), "config")


def test_console_script_never_prints_a_traceback(tmp_path):
    bad = tmp_path / "g.yaml"
    bad.write_text("name: x\nvalen: [\n")
    proc = subprocess.run([sys.executable, "-m", "testbench.cli", "info", str(bad)],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert proc.stdout == ""
