"""What every method family implements (:class:`Method`): a network, a learner, a sampler family and (where one is
defined) a likelihood bound, for one run of ``method_config``. The training loop, the stages and the workflow see
only this interface. Each family's implementation is its own module of this package, named by the family
(:func:`diffsteps.methods.method_class` imports it), so the code of a job holds its run's family and no other.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from ..config import StudyConfig, TrainConfig
from ..families.base import MethodOptions
from ..learners import Learner, ObjectiveLearner
from ..likelihood import NLLTerms
from ..models.unet import UNet, UNetSpec
from ..noise.reverse import NoiseSource, Sampler
from ..noise.schedule import Chain, TimeGrid
from ..objectives import Objective
from ..rng import RNG, StackedRNG


@dataclass(frozen=True)
class GeneratedSet:
    """Samples of one cell: the sampler's endpoints ``x`` (N, C, H, W) float32 on the CPU in model space
    (x̂ ≈ x_0 in [−1, 1], before rounding: the solver error is measured on these), network evaluations per
    sample, and wall time. ``images`` rounds them to the 256 levels (the decoder's mode). A tracing sampler's
    ``path_length`` and ``displacement`` (N,) come with it (:class:`~..noise.reverse.SampleResult`)."""

    x: torch.Tensor
    nfe: int
    seconds: float
    path_length: torch.Tensor | None = None
    displacement: torch.Tensor | None = None

    @property
    def images(self) -> np.ndarray:
        """uint8 (N, C, H, W)."""
        return to_uint8(self.x)


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """[−1, 1] floats → uint8 (the inverse of ``images / 127.5 − 1``, rounded)."""
    return ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).cpu().numpy()


def to_model_space(images: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 (N, C, H, W) → float32 in [−1, 1]."""
    return torch.as_tensor(images).float() / 127.5 - 1.0


class LatentDenoiser:
    """A generator G(x_t, t, z) read as a denoiser of (x_t, t): every call draws z ~ N(0, I) of shape
    (B, latent_dim) from the samples' own streams, so a sample's latents do not depend on the batch."""

    def __init__(self, net: nn.Module, latent_dim: int, rng: RNG):
        self.net, self.latent_dim, self.rng = net, latent_dim, rng

    def __call__(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.net(x, t, self.rng.randn((x.shape[0], self.latent_dim), device=x.device))


def generate_on_chain(cfg: StudyConfig, model: nn.Module, process: NoiseSource, chain: Chain, sampler: Sampler,
                      image_shape: tuple[int, ...], n: int, seed: int, *, batch_size: int, device: torch.device,
                      scale: float = 1.0, latent_dim: int = 0) -> GeneratedSet:
    """n samples of ``sampler`` over ``chain`` in batches; sample j uses the stream (seed, j). The final
    state is divided by ``scale`` (α_0 of a continuous chain, whose last step lands on z_0 = α_0 x̂). With ``latent_dim`` > 0 the model is a
    generator G(x_t, t, z) predicting x̂_0 (:class:`LatentDenoiser`), else an ε-predictor."""
    model.eval()
    out, seconds, nfe, traced = [], 0.0, 0, []
    for start in range(0, n, batch_size):
        idx = range(start, min(n, start + batch_size))
        rng = StackedRNG(seed, idx)
        denoiser = LatentDenoiser(model, latent_dim, rng) if latent_dim else model
        res = sampler(denoiser, process, chain, (len(idx), *image_shape), rng, clip_x0=cfg.sampling.clip_x0,
                      device=device, prediction="x0" if latent_dim else "eps")
        out.append((res.x0 / scale).float().cpu())
        seconds += res.seconds
        nfe = res.nfe
        if res.path_length is not None:
            traced.append((res.path_length, res.displacement))
    path, displacement = (torch.cat(v) for v in zip(*traced)) if traced else (None, None)
    return GeneratedSet(x=torch.cat(out), nfe=nfe, seconds=seconds, path_length=path, displacement=displacement)


def per_image_terms(batches: list[NLLTerms]) -> NLLTerms:
    """Per-image terms of consecutive batches, concatenated on the CPU."""
    return NLLTerms(*(torch.cat([getattr(t, f) for t in batches]).cpu() for f in ("prior", "recon", "diffusion")),
                    draws=batches[0].draws)


class Method(ABC):
    """A method family of the study, instantiated for one run: ``run`` names the entry of
    ``cfg.method_config`` that holds its options; ``image_shape`` is (C, H, W) of the prepared data; ``T`` is the
    step count of one model of a family whose grid has one model per T (DDGAN), else None.

    The family's traits (which bound it defines, whether it is continuous in time, ...) are declared on its options
    type (:mod:`diffsteps.families`, without torch); the method reads them there."""

    #: the options type of the family (its module in diffsteps.families): the family's name and traits
    options_type: ClassVar[type[MethodOptions]]

    def __init__(self, cfg: StudyConfig, run: str, image_shape: tuple[int, int, int], T: int | None = None):
        if run not in cfg.method_config or type(cfg.method_config[run]) is not self.options_type:
            raise ValueError(f"{type(self).__name__}: run {run!r} is invalid: expected a run of family {self.name!r} "
                             f"under method_config (runs: {sorted(cfg.method_config)})")
        self.cfg, self.run = cfg, run
        self.options: MethodOptions = cfg.method_config[run]
        self.image_shape = tuple(image_shape)
        per_T = "budget" in self.options_type.grid.models
        if per_T != (T is not None):
            raise ValueError(f"{type(self).__name__}: T = {T} is invalid for run {run!r}: " + (
                "its step count is fixed at training, so a model exists per T of its options" if per_T
                else "it is trained once and sampled at any budget, so it takes no T"))
        if T is not None and T < 1:
            raise ValueError(f"{type(self).__name__}: T = {T} is invalid: must be ≥ 1")
        #: the step count fixed at training (DDGAN's model at one T of its options), else None
        self.T = T

    @property
    def name(self) -> str:
        """The family, as written in method_config.<run>.family."""
        return self.options_type.family_name()

    @property
    def continuous_time(self) -> bool:
        return self.options_type.continuous_time

    @classmethod
    @abstractmethod
    def noise_label(cls, options: MethodOptions) -> str:
        """The noise family and its parameters as written in every result row (e.g. ``gaussian``,
        ``gamma(theta0=0.001, loss=l1)``)."""

    def noise_skewness(self, t: np.ndarray) -> np.ndarray | None:
        """Closed-form skewness of the training noise at times t (for the report); None when the
        method has no discrete noise process of its own."""
        return None

    @abstractmethod
    def log_snr_curve(self, model: nn.Module) -> dict[str, list[float]]:
        """The trained model's log-SNR γ = log(σ²/α²) over time mapped to t ∈ [0, 1], for the report:
        ``{"t": [...], "gamma": [...]}``, plus ``"init"`` (the initial curve) where γ is learned."""

    def build_model(self) -> nn.Module:
        """A freshly initialised network sized from ``cfg.model``: the shared UNet on the data's shape, unless the
        family adds to it (VDM's Fourier inputs, DDGAN's latent)."""
        C, H, _ = self.image_shape
        return UNet(UNetSpec.from_config(self.cfg.model, image_size=H, in_channels=C))

    @abstractmethod
    def learner(self, model: nn.Module, cfg: TrainConfig) -> Learner:
        """How a batch updates ``model`` (a network of :meth:`build_model`): its optimisers and losses."""

    @abstractmethod
    def generate(self, model: nn.Module, budget: int, sampler: Sampler, spacing: TimeGrid, n: int, seed: int, *,
                 batch_size: int, device: torch.device) -> GeneratedSet:
        """n samples of ``sampler`` (a function of :mod:`diffsteps.samplers`) at a step budget (NFE) on the
        ``spacing`` grid (one of :mod:`diffsteps.spacing`): both are handed in, so a method runs any of them without
        importing them. Sample j uses the stream (seed, j), so every budget starts from the same noise and the
        result does not depend on ``batch_size``. A family with a sampler of its own (DDGAN) samples only its own
        chain at its own T."""

    def nll_reason(self, variance: str | None) -> str | None:
        """Why a bound cell is not defined (None when it is): ``variance`` is the reverse variance of a
        K-step chain, or None for the continuous-time (T = ∞) bound (the family's declaration,
        :meth:`~diffsteps.families.base.MethodOptions.bound_reason`)."""
        return self.options_type.bound_reason(variance)

    def require_bound(self, variance: str | None) -> None:
        """Raise when the bound cell of ``variance`` is not defined (see :meth:`nll_reason`)."""
        reason = self.nll_reason(variance)
        if reason is not None:
            raise ValueError(f"NLL is not defined for {self.name}: {reason}")

    @abstractmethod
    def nll(self, model: nn.Module, images: np.ndarray, budget: int | None, variance: str | None,
            spacing: TimeGrid | None, seed: int, *, batch_size: int, device: torch.device) -> NLLTerms:
        """Per-image bound terms (nats) on uint8 images: the K = ``budget``-step bound with the given
        reverse variance and spacing, or (all three None) the continuous-time bound. Only called
        where :meth:`nll_reason` is None."""


def discrete_log_snr(alpha_bar: torch.Tensor, points: int = 201) -> dict[str, list[float]]:
    """γ_i = log((1 − ᾱ_i)/ᾱ_i) of a discrete T-step chain at t = i/T, on at most ``points`` of i = 1..T
    (ᾱ_0 = 1 has γ = −∞); ``alpha_bar`` is (T+1,)."""
    T = len(alpha_bar) - 1
    i = np.unique(np.linspace(1, T, min(points, T)).round().astype(int))
    ab = alpha_bar.numpy()[i]
    return {"t": (i / T).tolist(), "gamma": (np.log1p(-ab) - np.log(ab)).tolist()}


class ObjectiveMethod(Method):
    """A method trained by one objective on one network (:class:`ObjectiveLearner`)."""

    @abstractmethod
    def objective(self) -> Objective:
        """The training objective (unreduced per-sample loss)."""

    def learner(self, model, cfg):
        return ObjectiveLearner(model, self.objective(), cfg)
