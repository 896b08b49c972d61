"""DDGAN learning-rate sweep on params.yaml's data and budget: the domain-FID probe curve per setting and T.

Each (setting, T) trains the ``ddgan`` run of params.yaml with the options overridden by the setting,
from nothing, for the full training budget, one thread per run (two runs side by side on 2 cores),
and records the probe (domain FID of ``probe_n`` samples of the EMA generator against the training
statistics) every ``probe_every`` steps. Needs the data, domain extractor and reference statistics:
``snakemake --cores all results/refstats/<dataset>/domain.json`` first.

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
    import torch

    from diffsteps.params import load_config
    from diffsteps.data.datasets import load_split
    from diffsteps.io import read_json
    from diffsteps.methods import DDGAN
    from diffsteps.stages.train import domain_fid_probe
    from diffsteps.training.loop import TrainingDiverged, train

    torch.set_num_threads(1)
    cfg = load_config(ROOT / "params.yaml")
    options = dataclasses.replace(cfg.method_config["ddgan"], **setting)
    cfg = dataclasses.replace(cfg, method_config={**cfg.method_config, "ddgan": options})
    data = ROOT / "results/data" / cfg.data.dataset
    images, _ = load_split(data / "train.npz")
    method = DDGAN(cfg, "ddgan", images.shape[1:], T)
    probe = domain_fid_probe(method, cfg, ROOT / f"results/refstats/{cfg.data.dataset}/domain.npz",
                             ROOT / f"results/features/{cfg.data.dataset}/domain/extractor.pt",
                             read_json(data / "data.json")["sha256"]["train"], torch.device("cpu"))
    with tempfile.TemporaryDirectory() as tmp:
        try:
            res = train(method, images, cfg.train, cfg.train.seeds[0], Path(tmp) / "out", Path(tmp) / "resume", "cpu",
                        progress=False, probe=probe, probe_every=options.probe_every)
            status, seconds = "ok", res.seconds
        except TrainingDiverged as exc:
            status, seconds = f"failed: {exc}", None
        log = (Path(tmp) / "out" / "loss.csv").read_text().splitlines()
    header = log[0].split(",")
    rows = [dict(zip(header, map(float, line.split(",")))) for line in log[1:]]
    probes = [(int(r["step"]), r["probe_fid"]) for r in rows if r["probe_fid"] == r["probe_fid"]]
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
