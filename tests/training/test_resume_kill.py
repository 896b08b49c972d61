"""A real crash: SIGKILL a training process after a checkpoint, restart it, and get bit-identical weights."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
SMOKE = ROOT / "src/diffsteps/presets/smoke.yaml"

STEPS = 60
#: trains the smoke DDPM on fixed random 8×8 data; argv: out_dir resume_dir
SCRIPT = f"""
import dataclasses, json, sys
import numpy as np, torch
torch.set_num_threads(1)  # thread count changes reduction order; one thread is deterministic
from diffsteps.params import load_config
from diffsteps.methods.ddpm import DDPM
from diffsteps.training.loop import train
cfg = load_config({str(SMOKE)!r})
tcfg = dataclasses.replace(cfg.train, images=16 * {STEPS}, batch_size=16, warmup_images=160, checkpoint_every=10,
                           log_every=10)
images = np.random.default_rng(0).integers(0, 256, (200, 1, 8, 8), dtype=np.uint8)
res = train(DDPM(cfg, "ddpm", (1, 8, 8)), images, tcfg, 0, sys.argv[1], sys.argv[2], torch.device("cpu"), progress=False)
print(json.dumps(dataclasses.asdict(res)))
"""


def start(root):
    return subprocess.Popen([sys.executable, "-c", SCRIPT, str(root / "out"), str(root / "resume")], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc) -> dict:
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1])


def checkpoint_step(path) -> int | None:
    try:
        return int(torch.load(path, weights_only=True)["step"])
    except FileNotFoundError:
        return None


def test_sigkill_then_resume_is_bit_identical(tmp_path):
    straight = start(tmp_path / "straight")  # runs beside the killed one: one thread each on two cores
    victim = start(tmp_path / "killed")
    ckpt = tmp_path / "killed" / "resume" / "checkpoint.pt"
    first = None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert victim.poll() is None, "the run finished before it could be killed; raise STEPS"
        step = checkpoint_step(ckpt)
        if first is None:
            first = step
        elif step is not None and step > first:
            assert step < STEPS, "the run reached its last step before it could be killed; raise STEPS"
            break
        time.sleep(0.2)
    else:
        raise AssertionError("no second checkpoint within 120 s")
    os.kill(victim.pid, signal.SIGKILL)
    victim.communicate()
    assert victim.returncode == -signal.SIGKILL
    assert not (tmp_path / "killed" / "out" / "model.pt").exists()

    resumed = finish(start(tmp_path / "killed"))
    baseline = finish(straight)
    assert 0 < resumed["resumed_from_step"] < STEPS and resumed["steps"] == baseline["steps"] == STEPS
    a = torch.load(tmp_path / "straight" / "out" / "model.pt", weights_only=True)["ema"]
    b = torch.load(tmp_path / "killed" / "out" / "model.pt", weights_only=True)["ema"]
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    loss = [line.split(",")[:3] for line in (tmp_path / "straight" / "out" / "loss.csv").read_text().splitlines()]
    loss_resumed = [line.split(",")[:3] for line in (tmp_path / "killed" / "out" / "loss.csv").read_text().splitlines()]
    assert loss == loss_resumed
