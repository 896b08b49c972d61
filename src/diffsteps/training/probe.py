"""The domain-FID probe of a fixed-T run (``probe_every`` > 0 in its options): the FID of ``probe_n`` samples of
the EMA generator at its own T, in the study's domain features, against the training split's statistics,

    FID = ‖μ_g − μ_r‖² + tr Σ_g + tr Σ_r − 2 tr (Σ_g Σ_r)^{1/2}     (features float32 (probe_n, D)),

logged during training, so that GAN failure shows up before the run ends. Its own module because it is the only
part of training that runs torch-fidelity: the train stage imports it only for a run that probes."""

from __future__ import annotations

from pathlib import Path

import torch

from ..features.extract import DOMAIN_EXTRACTOR, extract_features, feature_statistics, frechet_distance
from ..features.refstats import load_reference_stats
from ..io import sha256_file
from ..noise.reverse import Ancestral
from ..sampler_registry import FIXED_T_SAMPLER, FIXED_T_SPACING, SamplerSpec
from .loop import Probe

#: the probe's sampling seed: the same latents and noise at every probe, so its curve shows training alone
PROBE_SEED = 0


def domain_fid_probe(method, cfg, stats: Path, weights: Path, split_sha256: str, device: torch.device) -> Probe:
    """FID of ``probe_n`` samples of a fixed-T model at its own T, in domain features, against the
    training split's statistics (checked to belong to this split and extractor)."""
    ref = load_reference_stats(stats, split_sha256, sha256_file(weights), DOMAIN_EXTRACTOR)
    # the fixed-T run's own sampler, its posterior chain: the noise process's, so training needs no solver
    sampler, n = Ancestral(SamplerSpec.parse(FIXED_T_SAMPLER).variance), method.options.probe_n

    def probe(model: torch.nn.Module) -> float:
        gen = method.generate(model, method.T, sampler, FIXED_T_SPACING, n, PROBE_SEED,
                              batch_size=cfg.sampling.batch_size, device=device)
        features = extract_features(gen.images, DOMAIN_EXTRACTOR, weights, cfg.evaluation.batch_size, device)
        return frechet_distance(feature_statistics(features), ref.stats)

    return probe
