"""The wheel works outside a checkout: built from the sources, installed into a fresh virtual environment
(which borrows this environment's dependencies instead of downloading torch again), and `deepsade demo`
run from a folder that is not the repository."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import time
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _run(command: list[str], cwd: Path, env: dict[str, str], timeout: float = 600) -> subprocess.CompletedProcess:
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{' '.join(command)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> dict[str, Path]:
    """Build the wheel from a copy of the sources and install it, without dependencies, into a new venv."""
    root = tmp_path_factory.mktemp("wheel")
    source = root / "source"  # a copy: building in place would leave build/ and *.egg-info in the checkout
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, source / name)
    shutil.copytree(REPO / "deepsade", source / "deepsade", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    _run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
          "--wheel-dir", str(root / "dist"), str(source)], cwd=root, env=env)
    [wheel] = list((root / "dist").glob("deepsade-*.whl"))

    venv = root / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=root, env=env)
    python = venv / "bin" / "python"
    site = Path(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                     cwd=root, env=env).stdout.strip())
    # this environment's packages (torch, z3, ...) after the venv's own: a path line, so their .pth files
    # (the editable install of the checkout among them) are not run
    shared = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (site / "zz_shared_dependencies.pth").write_text("\n".join(sorted(shared)) + "\n")
    _run([sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", "--no-deps", "--no-index",
          str(wheel)], cwd=root, env=env)
    workdir = root / "elsewhere"
    workdir.mkdir()
    return {"wheel": wheel, "venv": venv, "python": python, "workdir": workdir, "env": env}


def test_wheel_holds_the_package_and_its_rule_files_only(installed):
    names = zipfile.ZipFile(installed["wheel"]).namelist()
    assert "deepsade/constraints/uc2_loan.smt2" in names
    assert "deepsade/constraints/example_bounds.smt2" in names
    assert "deepsade/usecases/uc2_loan.py" in names
    top_level = {name.split("/")[0] for name in names}
    assert top_level == {"deepsade", installed["wheel"].name.split("-py")[0] + ".dist-info"}, top_level


def test_installed_wheel_runs_help_and_demo_outside_the_checkout(installed):
    env, workdir, venv = installed["env"], installed["workdir"], installed["venv"]
    where = _run([str(installed["python"]), "-c", "import deepsade, deepsade.usecases.uc2_loan as uc; "
                  "print(deepsade.__file__); print(uc.CASE.constraint_path)"], cwd=workdir, env=env).stdout.split()
    assert all(Path(p).resolve().is_relative_to(venv.resolve()) for p in where), where  # the wheel, not the checkout

    started = time.perf_counter()
    shown = _run([str(venv / "bin" / "deepsade"), "--help"], cwd=workdir, env=env)
    help_seconds = time.perf_counter() - started
    assert "demo" in shown.stdout and "train" in shown.stdout

    started = time.perf_counter()
    demo = _run([str(venv / "bin" / "deepsade"), "demo", "--out", "demo", "--rows", "120", "--epochs", "1",
                 "--quiet"], cwd=workdir, env=env)
    demo_seconds = time.perf_counter() - started
    assert "certified" in demo.stdout.lower(), demo.stdout
    assert (workdir / "demo" / "certificate.json").is_file() and (workdir / "demo_data.csv").is_file()
    print(f"installed wheel: deepsade --help {help_seconds:.2f}s, demo (120 rows, 1 epoch) {demo_seconds:.1f}s")
