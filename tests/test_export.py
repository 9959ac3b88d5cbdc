"""Verilog / RTLIL export of every preset, checked by Verilator's linter and Icarus."""

import subprocess

import pytest

from conftest import CONFIGS, GEOMS, need_tool
from loongtlb.rtl.export import TOP_NAME, convert
from loongtlb.testbench.cli import main

PRESETS = ["tiny", "la32r", "la464"]
#: the only warnings Verilator raises on Yosys-written Verilog by construction: constants
#: narrower than the other operand, and casez without a default
YOSYS_STYLE_WARNINGS = {"WIDTH", "CASEINCOMPLETE"}


@pytest.fixture(scope="module")
def verilog(tmp_path_factory):
    cache = {}

    def get(name):
        if name not in cache:
            path = tmp_path_factory.mktemp("export") / f"{name}.v"
            assert main(["export", str(CONFIGS / f"{name}.yaml"), "-o", str(path)]) == 0
            cache[name] = path
        return cache[name]
    return get


@pytest.mark.parametrize("name", PRESETS)
def test_verilator_lint(verilog, name):
    proc = subprocess.run([need_tool("verilator"), "--lint-only", "-Wno-fatal",
                           str(verilog(name))], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "%Error" not in proc.stderr
    kinds = {line.split(":")[0].split("-", 1)[1] for line in proc.stderr.splitlines()
             if line.startswith("%Warning-")}
    assert kinds <= YOSYS_STYLE_WARNINGS, kinds


@pytest.mark.parametrize("name", PRESETS)
def test_icarus_compiles(verilog, name, tmp_path):
    proc = subprocess.run([need_tool("iverilog"), "-o", str(tmp_path / "a.vvp"),
                           str(verilog(name))], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_stable_top_and_readable_ports(verilog):
    text = verilog("tiny").read_text()
    header = text[text.index(f"module {TOP_NAME}("):].split(";")[0]
    for port in ("clk", "rst", "csr_addr", "csr_rdata", "insn_valid", "insn_ready", "insn_done",
                 "insn_slot", "multi_hit", "lookup__0__va", "lookup__1__exc", "lookup__1__pa"):
        assert port in header


def test_rtlil_export(tmp_path, capsys):
    out = tmp_path / "t.il"
    assert main(["export", str(CONFIGS / "la32r.yaml"), "-o", str(out)]) == 0
    assert f"module \\{TOP_NAME}" in out.read_text()


def test_export_bad_output(tmp_path, capsys):
    tiny = str(CONFIGS / "tiny.yaml")
    assert main(["export", tiny, "-o", str(tmp_path / "x.vhd")]) == 2
    assert main(["export", tiny, "-o", str(tmp_path / "no" / "x.v")]) == 2
    assert main(["export", tiny, "-o", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and "x.vhd" in err[0] and "no such directory" in err[1]
    assert list(tmp_path.iterdir()) == []


def test_mtlb_only_and_narrow_geometries_convert():
    for name in ("mtlb6", "narrow", "asid4"):
        assert f"module {TOP_NAME}" in convert(GEOMS[name])
