"""The package installs as a package: a wheel built from the repository, installed (not editable) into a fresh
virtual environment, carries its schema and presets, so every preset validates there."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

from .conftest import ROOT


def run(*cmd, cwd=None) -> str:
    res = subprocess.run([str(c) for c in cmd], cwd=cwd, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, f"{' '.join(map(str, cmd))} failed ({res.returncode}):\n{res.stdout[-2000:]}\n{res.stderr[-2000:]}"
    return res.stdout


def test_wheel_validates_every_preset_in_a_fresh_venv(tmp_path):
    # built from a copy (setuptools writes build/ and *.egg-info beside the sources); --no-build-isolation: the
    # build backend comes from this environment, so the build needs no network
    source = tmp_path / "source"
    shutil.copytree(ROOT / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    run(sys.executable, "-m", "pip", "wheel", source, "--no-deps", "--no-build-isolation", "-q", "-w", tmp_path / "dist")
    (wheel,) = (tmp_path / "dist").glob("diffsteps-*.whl")
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", "--without-pip", venv)
    python = venv / "bin" / "python"
    # the dependencies (torch, ...) come from this environment's site-packages, added as plain paths: its .pth
    # files (among them the editable install of this checkout) are not processed, so only the wheel provides diffsteps
    site = run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").strip()
    deps = [p for p in sys.path if p.endswith("site-packages")]
    (tmp_path / "venv" / site.split(str(venv) + "/", 1)[1] / "deps.pth").write_text("\n".join(deps) + "\n")
    run(sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-deps", "--no-index", wheel)
    work = tmp_path / "work"  # not the checkout: nothing of src/ is importable from here
    work.mkdir()
    probe = "import json, diffsteps, diffsteps.params as p; print(json.dumps([diffsteps.__file__, p.available_presets()]))"
    where, presets = json.loads(run(python, "-c", probe, cwd=work))
    assert where.startswith(str(venv)) and set(presets) >= {"cpu", "gpu", "paper", "smoke"}, (where, presets)
    for name in presets:
        run(python, "-m", "diffsteps", "preset", name, "--params", work / "params.yaml", cwd=work)
        assert f"preset {name!r}" in run(python, "-m", "diffsteps", "validate", cwd=work)
