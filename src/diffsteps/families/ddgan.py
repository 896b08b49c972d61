"""Denoising Diffusion GAN (arXiv 2112.07804): a conditional GAN per denoising step, its step count T fixed at
training, so a run has one model per T of its options, each sampled at its own T with its own chain."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Mapping

from .base import Grid, MethodOptions

_POSITIVE = {"type": "number", "exclusiveMinimum": 0}


@dataclass(frozen=True)
class DDGANOptions(MethodOptions):
    """Denoising Diffusion GAN: the step counts it is trained and sampled at (``T``: one model each, NFE = T), the
    VP-SDE's β(s) range, the latent size, each player's Adam learning rate (shared β = (β1, β2)), the R1 weight γ
    and its lazy interval (steps), the collapse rule (stop after this many consecutive steps with discriminator
    accuracy 1) and the EMA snapshots behind the domain-FID probe (every ``probe_every`` steps; 0: none). Defaults
    are the paper's CIFAR-10 values where it has one."""

    schema: ClassVar[Mapping[str, Any]] = {
        "additionalProperties": False, "required": ["T"],
        "properties": {
            "family": True,
            "T": {"type": "array", "minItems": 1, "uniqueItems": True, "items": {"type": "integer", "minimum": 1,
                                                                                 "maximum": 1000},
                  "description": "the step counts this run is trained and sampled at: one model per T, NFE = T"},
            "beta_min": {**_POSITIVE, "description": "VP-SDE β(0) (DDGAN: 0.1)"},
            "beta_max": {**_POSITIVE, "description": "VP-SDE β(1) (DDGAN: 20); must exceed beta_min"},
            "latent_dim": {"type": "integer", "minimum": 1, "description": "size of the generator's latent z (DDGAN: 100)"},
            "lr_g": {**_POSITIVE, "description": "generator Adam learning rate"},
            "lr_d": {**_POSITIVE, "description": "discriminator Adam learning rate"},
            "adam_betas": {"type": "array", "minItems": 2, "maxItems": 2,
                           "items": {"type": "number", "minimum": 0, "exclusiveMaximum": 1},
                           "description": "Adam (β1, β2) of both players (DDGAN: [0.5, 0.9])"},
            "r1_gamma": {"type": "number", "minimum": 0, "description": "R1 weight γ (penalty γ/2·‖∇D‖² on real pairs)"},
            "lazy_reg": {"type": "integer", "minimum": 1, "description": "R1 every this many steps (scaled by it)"},
            "collapse_steps": {"type": "integer", "minimum": 1, "description": "stop the cell after this many "
                               "consecutive steps with discriminator accuracy 1"},
            "probe_every": {"type": "integer", "minimum": 0, "description": "steps between the EMA snapshots whose "
                            "domain FID the probe stage measures (0: no probe)"}}}
    # one model per T (the {budget} of its cells), sampled only on its own chain: its sampler and spacing are its own
    grid: ClassVar[Grid] = Grid(models={"budget": "method_config.{run}.T"}, cells={"budget": "method_config.{run}.T"},
                                constants={"sampler": "ancestral-betatilde", "spacing": "uniform"},
                                model="{method}/T{budget}")
    eps_prediction: ClassVar[bool] = False
    networks: ClassVar[int] = 2  # the generator and the time-dependent discriminator
    uses_noise_schedule: ClassVar[bool] = False  # its chain is the VP-SDE of beta_min, beta_max at each T
    # x_{t−1} ~ q(x_{t−1} | x_t, x̂_0 = G(x_t, t, z)): ancestral sampling with σ² = β̃ on the run's own T-step chain,
    # whose times are uniform in the SDE's time
    own_sampler: ClassVar[str | None] = "ancestral-betatilde"
    own_spacing: ClassVar[str | None] = "uniform"
    nll_undefined_reason: ClassVar[str | None] = (
        "DDGAN is an implicit model: x̂_0 = G(x_t, t, z) with z ~ N(0, I) defines how to sample p(x_{t−1} | x_t) "
        "but not its density, so no likelihood bound exists")
    probed: ClassVar[bool] = True

    T: tuple[int, ...] = (1, 2, 4)
    beta_min: float = 0.1
    beta_max: float = 20.0
    latent_dim: int = 100
    lr_g: float = 1.6e-4
    lr_d: float = 1.25e-4
    adam_betas: tuple[float, float] = (0.5, 0.9)
    r1_gamma: float = 0.02
    lazy_reg: int = 15
    collapse_steps: int = 500
    probe_every: int = 0

    def snapshot_every(self) -> int:
        return self.probe_every

    def problems(self):
        out = []
        if self.beta_max <= self.beta_min:
            out.append(("beta_max", self.beta_max, f"must exceed beta_min = {self.beta_min}"))
        return out

    def describe(self) -> str:
        return (f"beta={self.beta_min:g}..{self.beta_max:g}, nz={self.latent_dim}, lr_g={self.lr_g:g}, "
                f"lr_d={self.lr_d:g}, r1={self.r1_gamma:g}/{self.lazy_reg}")


OPTIONS = DDGANOptions
