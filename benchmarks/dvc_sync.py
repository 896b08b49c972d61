"""`dvc commit` against the number of stages (DVC's cost grows faster than linearly with them, dvc#10629), and what
the Snakefile's ``onsuccess`` sync (``diffsteps.dvclock.dvc_sync``) costs beside the run it follows.

A synthetic DVC project of N stages (one ``foreach`` group, as dvc.yaml's groups are, each stage one small output
folder) is committed whole and one stage at a time, for each N; DVC's own start-up (``dvc --version``) is timed
beside it. With ``--study DIR`` (a study built by ``default_study.py --keep DIR``) it also times one ``dvc_sync``
of that study's stages of one job and of every job.

    python benchmarks/dvc_sync.py                       # writes benchmarks/results/dvc_sync.json
    python benchmarks/dvc_sync.py --tiny --out X        # one toy size (the suite runs it so that it cannot rot)
"""

from __future__ import annotations

import argparse
import datetime
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

OUT = Path(__file__).resolve().parent / "results" / "dvc_sync.json"
SIZES = (10, 30, 60, 120, 300)


def timed_run(cmd: list[str], cwd: Path) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, check=True, capture_output=True, text=True)
    return time.perf_counter() - t


#: what each stage of the study's dvc.yaml depends on besides its inputs: about this many package files
CODE_DEPS = 40


def synthetic_project(root: Path, n: int) -> None:
    """A git + DVC project whose dvc.yaml has one foreach group of n stages, each reading :data:`CODE_DEPS` shared
    code files and a params key and writing out/<i>/ (two files), as the study's stages do."""
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], cwd=root, check=True)
    (root / "src").mkdir()
    for j in range(CODE_DEPS):
        (root / "src" / f"m{j}.py").write_text(f"X = {j}\n" * 50)
    (root / "params.yaml").write_text("seed: 0\n")
    items = "\n".join(f"      - {i}" for i in range(n))
    deps = "".join(f"        - src/m{j}.py\n" for j in range(CODE_DEPS))
    (root / "dvc.yaml").write_text(f"stages:\n  cell:\n    foreach:\n{items}\n    do:\n"
                                   "      cmd: mkdir -p out/${item} && echo ${item} > out/${item}/a\n"
                                   f"      deps:\n{deps}      params:\n        - seed\n"
                                   "      outs:\n        - out/${item}\n")
    for i in range(n):
        (root / "out" / str(i)).mkdir(parents=True)
        (root / "out" / str(i) / "a").write_text(f"{i}\n")
        (root / "out" / str(i) / "b").write_text("x" * 1000)


def commit_times(n: int) -> dict[str, float]:
    dvc = [sys.executable, "-m", "dvc"]
    with tempfile.TemporaryDirectory(prefix="diffsteps-dvc-") as tmp:
        root = Path(tmp) / "project"  # the writers' copies go beside it
        root.mkdir()
        synthetic_project(root, n)
        first = timed_run([*dvc, "commit", "--force", "--quiet"], root)  # hashes every output
        again = timed_run([*dvc, "commit", "--force", "--quiet"], root)  # outputs unchanged: DVC's state db
        one = timed_run([*dvc, "commit", "--force", "--quiet", f"cell@{n - 1}"], root)
        status = timed_run([*dvc, "status", "--quiet"], root)
        writers = lock_writers(root, f"cell@{n - 1}")
    return {"stages": n, "commit_all_first_s": first, "commit_all_again_s": again, "commit_one_s": one,
            "status_s": status, **writers}


def lock_writers(root: Path, name: str) -> dict[str, float]:
    """One changed stage's lock entry written by DVC's own writer (``dump_stages``: a round trip of the whole
    dvc.lock through ruamel.yaml) and by the sync's (``diffsteps.dvclock.write_lock``), each on its own copy of the
    committed project, side by side; the two files must come out the same bytes."""
    import contextlib
    import shutil

    from dvc.repo import Repo
    from dvc.stage.serialize import to_lockfile

    from diffsteps.dvclock import write_lock

    seconds, written = {}, {}
    for writer in ("dvc", "write_lock"):
        copy = root.parent / f"{root.name}-{writer}"
        shutil.copytree(root, copy, symlinks=True)
        (copy / "out" / name.split("@")[1] / "a").write_text("changed\n")
        with contextlib.chdir(copy), Repo(".") as repo, repo.lock:
            stage = next(s for s in repo.index.stages if s.name == name)
            stage.save()
            stage.commit()
            t = time.perf_counter()
            if writer == "dvc":
                stage.dvcfile.dump_stages([stage], update_pipeline=False)
            else:
                write_lock(copy / "dvc.lock", to_lockfile(stage))
            seconds[writer] = time.perf_counter() - t
        written[writer] = (copy / "dvc.lock").read_bytes()
    if written["dvc"] != written["write_lock"]:
        raise AssertionError(f"{root}: write_lock's dvc.lock differs from DVC's own")
    return {"lock_write_dvc_s": seconds["dvc"], "lock_write_ours_s": seconds["write_lock"]}


def study_sync(study: Path) -> dict[str, float | int]:
    """``dvc_sync`` of a built study: the outputs of one job, then of every job (what a one-job run and a full run
    ask it to record)."""
    sys.path.insert(0, str(study / "src"))
    from diffsteps.dvclock import dvc_sync
    from dvc.repo import Repo

    with Repo(str(study)) as repo:
        outs = [[os.path.relpath(o.fs_path, repo.root_dir) for o in s.outs] for s in repo.index.stages if s.outs]
    cwd = Path.cwd()
    os.chdir(study)
    try:
        one_s, one = _timed(dvc_sync, set(outs[-1]))
        all_s, every = _timed(dvc_sync, {o for group in outs for o in group})
    finally:
        os.chdir(cwd)
    return {"stages": len(outs), "sync_one_stage_s": one_s, "recorded_one": len(one), "sync_all_s": all_s,
            "recorded_all": len(every)}


def _timed(fn, *args):
    t = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - t, out


def main(argv: list[str] | None = None) -> int:
    from diffsteps.io import atomic_write_json, device_name

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--study", type=Path, help="a built study (default_study.py --keep DIR) to time dvc_sync on")
    parser.add_argument("--tiny", action="store_true", help="two tiny projects: checks the script, measures nothing")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    sizes = [2] if args.tiny else args.sizes
    startup = timed_run([sys.executable, "-m", "dvc", "--version"], Path.cwd())
    rows = [commit_times(n) for n in sizes]
    result = {"date": datetime.date.today().isoformat(), "device": device_name("cpu"), "dvc_startup_s": startup,
              "rows": rows}
    if args.study is not None:
        result["study"] = study_sync(args.study.resolve())
    atomic_write_json(args.out, result)
    for r in rows:
        print(f"{r['stages']:>4} stages: commit all {r['commit_all_first_s']:.1f} s first, {r['commit_all_again_s']:.1f} s"
              f" again, one stage {r['commit_one_s']:.1f} s, status {r['status_s']:.1f} s; one entry written by DVC"
              f" {r['lock_write_dvc_s']:.2f} s, by write_lock {r['lock_write_ours_s']:.2f} s")
    if "study" in result:
        print(f"study: {result['study']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
