"""DDGAN learning-rate sweep on params.yaml's data and budget: the domain-FID probe curve per setting and T.

Each (setting, T) trains the ``ddgan`` run of params.yaml with the options overridden by the setting,
from nothing, for the full training budget, one thread per run (two runs side by side on 2 cores),
keeping the EMA snapshots every ``probe_every`` steps, and scores them as the probe stage does (domain FID of
``evaluation.probe.n`` samples of each against the training statistics). Needs the data, domain extractor and
reference statistics: ``snakemake --cores all results/refstats/<dataset>/domain.json`` first.

    python benchmarks/ddgan_rates.py --T 1 4 --setting '{"lr_g": 2e-4, "lr_d": 2e-4}' ...

Writes ``benchmarks/results/ddgan_rates.json`` and prints a table (probe FID at each probe step).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results"


def one(setting: dict, T: int) -> dict:
    import numpy as np
    import torch

    from diffsteps.data.datasets import load_split
    from diffsteps.methods.ddgan import DDGAN
    from diffsteps.params import load_config
    from diffsteps.stages.probe import generator_fid
    from diffsteps.training.loop import SNAPSHOTS_NAME, TrainingDiverged, train

    torch.set_num_threads(1)
    cfg = load_config(ROOT / "params.yaml")
    options = dataclasses.replace(cfg.method_config["ddgan"], **setting)
    cfg = dataclasses.replace(cfg, method_config={**cfg.method_config, "ddgan": options})
    images, _ = load_split(ROOT / "results/data" / cfg.data.dataset / "train.npz")
    method = DDGAN(cfg, "ddgan", images.shape[1:], T)
    ref = np.load(ROOT / f"results/refstats/{cfg.data.dataset}/domain.npz")
    weights = ROOT / f"results/features/{cfg.data.dataset}/domain/extractor.pt"
    with tempfile.TemporaryDirectory() as tmp:
        try:
            res = train(method, images, cfg.train, cfg.train.seeds[0], Path(tmp) / "out", Path(tmp) / "resume", "cpu",
                        progress=False, snapshot_every=options.snapshot_every())
            status, seconds = "ok", res.seconds
        except TrainingDiverged as exc:
            return {"setting": setting, "T": T, "status": f"failed: {exc}", "training_seconds": None, "probe_fid": []}
        model = method.build_model()
        states = torch.load(Path(tmp) / "out" / SNAPSHOTS_NAME, weights_only=True)
        states[res.steps] = torch.load(Path(tmp) / "out" / "model.pt", weights_only=True)["ema"]
        probes = []
        for step, state in sorted(states.items()):
            model.load_state_dict(state)
            fid = generator_fid(method, model, {"mu": ref["mu"], "sigma": ref["sigma"]}, weights,
                                cfg.evaluation.probe.n, cfg, torch.device("cpu"))
            probes.append((int(step), fid))
    return {"setting": setting, "T": T, "status": status, "training_seconds": seconds, "probe_fid": probes}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--T", type=int, nargs="+", required=True)
    ap.add_argument("--setting", action="append", required=True, help="JSON of DDGAN options to override")
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args()
    settings = [json.loads(s) for s in args.setting]
    with ProcessPoolExecutor(args.jobs) as pool:
        results = list(pool.map(one, *zip(*[(s, T) for s in settings for T in args.T])))
    import torch

    out = {"date": datetime.date.today().isoformat(), "device": f"cpu, torch {torch.__version__}", "runs": results}
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "ddgan_rates.json").write_text(json.dumps(out, indent=2) + "\n")
    for r in results:
        curve = " ".join(f"{v:.1f}" for _, v in r["probe_fid"])
        print(f"| {json.dumps(r['setting'])} | {r['T']} | {curve} | {r['status']} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
