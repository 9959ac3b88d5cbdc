"""The package as a user installs it: a wheel built from this checkout, installed into a
fresh virtual environment, imports as loongtlb.* only and runs there."""

import shutil
import subprocess
import sys
import venv

from conftest import CONFIGS, ROOT, TRACES


def run(*cmd, **kwargs):
    done = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=600,
                          **kwargs)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_a_wheel_in_a_fresh_environment(tmp_path):
    # built from a copy, so that setuptools' build/ stays out of the checkout
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "rtl", "sw_model", "testbench"):
        copy = shutil.copytree if (ROOT / name).is_dir() else shutil.copy
        copy(ROOT / name, src / name, **({"ignore": shutil.ignore_patterns("__pycache__")}
                                       if (ROOT / name).is_dir() else {}))
    dist = tmp_path / "dist"
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", dist, src)
    wheel = next(dist.glob("loongtlb-*.whl"))
    env = tmp_path / "env"
    venv.create(env, with_pip=True)
    bin_ = env / "bin"
    run(bin_ / "python", "-m", "pip", "install", "-q", wheel)
    work = tmp_path / "work"                   # not the checkout: nothing to import from cwd
    work.mkdir()
    probe = ("import importlib.util, loongtlb.rtl.unit, loongtlb.testbench.cli\n"
             "print([importlib.util.find_spec(n) is None for n in ('rtl', 'sw_model', "
             "'testbench')])\n")
    assert run(bin_ / "python", "-c", probe, cwd=work).strip() == "[True, True, True]"
    assert "PRCFG3 0x00201032" in run(bin_ / "loongtlb", "info", CONFIGS / "tiny.yaml",
                                      cwd=work)
    out = run(bin_ / "loongtlb", "replay", CONFIGS / "tiny.yaml", TRACES / "refill.jsonl",
              "--backend", "cosim", cwd=work)
    assert out.startswith("ok ")
