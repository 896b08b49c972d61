"""``probe``: the domain-FID curve of a probed run's training (DDGAN), scored after training from the EMA snapshots it
kept (``snapshots.pt``, every ``probe_every`` steps) and its final EMA weights (``model.pt``):

    FID = ‖μ_g − μ_r‖² + tr Σ_g + tr Σ_r − 2 tr (Σ_g Σ_r)^{1/2}     (features float32 (n, D)),

of ``evaluation.probe.n`` samples of each on the run's own chain at its T (the same sampling seed every time, so the
curve shows training alone), in the study's domain features, against the training split's statistics. GAN failure
shows up there as a curve that stops falling. A stage of its own, so that training never imports a feature
extractor: an edit of the feature code reruns this curve, never a model.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..features.extract import DOMAIN_EXTRACTOR, extract_features
from ..metrics.refstats import load_reference_stats
from ..io import atomic_write_json, read_json, sha256_file
from ..metrics.distances import frechet_distance
from ..methods import run_identity
from ..sampler_registry import SamplerSpec
from ..samplers import sampler_for
from ..spacing import SPACINGS
from ..training.checkpoint import load_trained
from ..training.loop import SNAPSHOTS_NAME
from ..families import with_runs
from .common import add_common, record, resolve_device, run_cell, setup

SECTIONS = ("data", "model", "noise", "train", "sampling", "evaluation")  # train: its device
#: the probe's sampling seed: the same latents and noise for every snapshot
PROBE_SEED = 0


def register(sub) -> None:
    p = sub.add_parser("probe", help="domain FID of a probed run's EMA snapshots (its training curve)")
    add_common(p)
    p.add_argument("--method", required=True, help="the run, a key of method_config in params.yaml")
    p.add_argument("--model-dir", required=True, type=Path, help="model.pt, train.json and snapshots.pt of the model")
    p.add_argument("--train-seed", required=True, type=int)
    p.add_argument("--stats", required=True, type=Path, help="domain-feature statistics of the training split")
    p.add_argument("--weights", required=True, type=Path, help="the domain extractor checkpoint")
    p.add_argument("--domain-meta", required=True, type=Path, help="extractor.json of the domain classifier")
    p.add_argument("--data-meta", required=True, type=Path, help="data.json of the split")
    p.add_argument("--out", required=True, type=Path)
    p.set_defaults(func=run)


def generator_fid(method, model: torch.nn.Module, ref_stats: dict, weights: Path, n: int, cfg, device) -> float:
    """FID of ``n`` samples of ``model`` on the family's own chain at its T (seed :data:`PROBE_SEED`), in domain
    features (extractor ``weights``), against ``ref_stats`` ({"mu", "sigma"} of the training split)."""
    family = type(method.options)
    sampler, spacing = sampler_for(SamplerSpec.parse(family.own_sampler)), SPACINGS[family.own_spacing]
    gen = method.generate(model, method.T, sampler, spacing, n, PROBE_SEED, batch_size=cfg.sampling.batch_size,
                          device=device)
    features = extract_features(gen.images, DOMAIN_EXTRACTOR, weights, cfg.evaluation.batch_size, device)
    return frechet_distance(features, ref_stats["mu"], ref_stats["sigma"], device=device)


def run(args) -> int:
    cfg = with_runs(setup(args, SECTIONS), args.params, (args.method,))
    options = cfg.method_config[args.method]
    family = type(options)
    if not family.probed:
        raise ValueError(f"--method = {args.method!r} is invalid: its family {family.family_name()!r} is not probed "
                         "(it keeps no EMA snapshots)")
    device = resolve_device(cfg.train.device)
    T = read_json(args.model_dir / "train.json")["cell"].get("T")  # the model's T: its cells' NFE
    cell = {"dataset": cfg.data.dataset, "method": args.method, **run_identity(cfg, args.method),
            "train_seed": args.train_seed, "seed": PROBE_SEED, "T": T}

    def work() -> None:
        why = None if options.snapshot_every() else "no probe: probe_every is 0"
        domain = read_json(args.domain_meta)
        if why is None and domain["status"] != "ok":
            why = f"no probe: the domain extractor failed ({domain['error']})"
        if why is not None:
            atomic_write_json(args.out, record(cfg, args, device=device, cell=cell, curve=None, reason=why))
            return
        method, model = load_trained(cfg, args.method, args.model_dir, device)
        split = read_json(args.data_meta)["sha256"]["train"]
        ref = load_reference_stats(args.stats, split, sha256_file(args.weights), DOMAIN_EXTRACTOR)
        train_meta = read_json(args.model_dir / "train.json")["result"]
        snapshots = torch.load(args.model_dir / SNAPSHOTS_NAME, map_location="cpu", weights_only=True)
        final = {k: v.clone() for k, v in model.state_dict().items()}
        batch = train_meta["images_seen"] // train_meta["steps"]
        curve = {"step": [], "images_seen": [], "probe_fid": []}
        for step, state in [*sorted(snapshots.items()), (train_meta["steps"], final)]:
            model.load_state_dict(state)
            curve["step"].append(int(step))
            curve["images_seen"].append(int(step) * batch)
            curve["probe_fid"].append(generator_fid(method, model, ref.stats, args.weights, cfg.evaluation.probe.n, cfg,
                                                    device))
        atomic_write_json(args.out, record(cfg, args, device=device, cell=cell, curve=curve,
                                           reason=None, n=cfg.evaluation.probe.n))

    def failed(message: str) -> None:
        atomic_write_json(args.out, record(cfg, args, status="failed", error=message, device=device, cell=cell,
                                           curve=None, reason=message))

    return run_cell(work, failed)  # a failed training (UpstreamFailed) is this job's recorded failure
