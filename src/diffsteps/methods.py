"""Methods: what the study compares. A method ties together a network, an objective, a sampler
family and (where one is defined) a likelihood bound. The training loop, the CLI and the workflow
only see this interface, so a new method plugs in by subclassing :class:`Method` and registering it
in :mod:`diffsteps.registry`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from .config import StudyConfig, TrainConfig
from .sampler_registry import FIXED_T_SAMPLER
from .method_options import FAMILY_OPTIONS, MethodOptions
from .likelihood import NLLTerms, ancestral_vlb, vdm_bound
from .models.ddgan import DDGANGenerator, Discriminator, DiscriminatorSpec
from .models.unet import UNet, UNetSpec
from .models.vdm import VDMNetwork
from .noise.base import NoiseProcess
from .noise.gamma import GammaNoise
from .noise.gaussian import GaussianNoise
from .noise.logsnr import ContinuousGaussian, build_schedule
from .noise.mixture import MixtureNoise
from .noise.schedule import Chain, Schedule, vp_sde_betas
from .objectives import AdversarialObjective, EpsilonObjective, Objective, VDMObjective
from .noise.reverse import NoiseSource, Sampler
from .rng import RNG, StackedRNG
from .learners import AdversarialLearner, Learner, ObjectiveLearner


@dataclass(frozen=True)
class GeneratedSet:
    """Samples of one cell: the sampler's endpoints ``x`` (N, C, H, W) float32 on the CPU in model space
    (x̂ ≈ x_0 in [−1, 1], before rounding: the solver error is measured on these), network evaluations per
    sample, and wall time. ``images`` rounds them to the 256 levels (the decoder's mode)."""

    x: torch.Tensor
    nfe: int
    seconds: float

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
    out, seconds, nfe = [], 0.0, 0
    for start in range(0, n, batch_size):
        idx = range(start, min(n, start + batch_size))
        rng = StackedRNG(seed, idx)
        denoiser = LatentDenoiser(model, latent_dim, rng) if latent_dim else model
        res = sampler(denoiser, process, chain, (len(idx), *image_shape), rng, clip_x0=cfg.sampling.clip_x0,
                      device=device, prediction="x0" if latent_dim else "eps")
        out.append((res.x0 / scale).float().cpu())
        seconds += res.seconds
        nfe = res.nfe
    return GeneratedSet(x=torch.cat(out), nfe=nfe, seconds=seconds)


def per_image_terms(batches: list[NLLTerms]) -> NLLTerms:
    """Per-image terms of consecutive batches, concatenated on the CPU."""
    return NLLTerms(*(torch.cat([getattr(t, f) for t in batches]).cpu() for f in ("prior", "recon", "diffusion")),
                    draws=batches[0].draws)


class Method(ABC):
    """A method family of the study, instantiated for one run: ``run`` names the entry of
    ``cfg.method_config`` that holds its options; ``image_shape`` is (C, H, W) of the prepared data."""

    name: ClassVar[str]  # the family, as written in method_config.<run>.family
    #: the family's declarations, from its options type (method_options: read there without torch): None when
    #: the method defines a likelihood bound, else the reason printed instead of a number; whether it has a
    #: continuous-time bound (T = ∞) besides its K-step ones
    nll_undefined_reason: ClassVar[str | None]
    continuous_time: ClassVar[bool]

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "name" in cls.__dict__:
            declared = FAMILY_OPTIONS[cls.name]
            cls.nll_undefined_reason, cls.continuous_time = declared.nll_undefined_reason, declared.continuous_time

    def __init__(self, cfg: StudyConfig, run: str, image_shape: tuple[int, int, int], T: int | None = None):
        if run not in cfg.method_config or cfg.method_config[run].family != self.name:
            raise ValueError(f"{type(self).__name__}: run {run!r} is invalid: expected a run of family {self.name!r} "
                             f"under method_config (runs: {sorted(cfg.method_config)})")
        self.cfg, self.run = cfg, run
        self.options: MethodOptions = cfg.method_config[run]
        self.image_shape = tuple(image_shape)
        if self.options.fixed_T != (T is not None):
            raise ValueError(f"{type(self).__name__}: T = {T} is invalid for run {run!r}: " + (
                "its step count is fixed at training, so a model exists per T (one of fixed_T.T)" if self.options.fixed_T
                else "it is trained once and sampled at any budget, so it takes no T"))
        if T is not None and T < 1:
            raise ValueError(f"{type(self).__name__}: T = {T} is invalid: must be ≥ 1")
        #: the step count fixed at training (fixed-T methods such as DDGAN), else None
        self.T = T

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

    @abstractmethod
    def build_model(self) -> nn.Module:
        """A freshly initialised network (the shared UNet) sized from ``cfg.model``."""

    @abstractmethod
    def learner(self, model: nn.Module, cfg: TrainConfig) -> Learner:
        """How a batch updates ``model`` (a network of :meth:`build_model`): its optimisers and losses."""

    @abstractmethod
    def generate(self, model: nn.Module, budget: int, sampler: Sampler, spacing: str, n: int, seed: int, *,
                 batch_size: int, device: torch.device) -> GeneratedSet:
        """n samples of ``sampler`` (a function of :mod:`diffsteps.samplers`, passed in: a method runs any
        sampler without importing them) at a step budget (NFE); sample j uses the stream (seed, j), so every
        budget starts from the same noise and the result does not depend on ``batch_size``. A fixed-T method
        samples only at its own T, with its own sampler (``config.FIXED_T_SAMPLER``) and chain."""

    @classmethod
    def nll_reason(cls, variance: str | None) -> str | None:
        """Why a bound cell is not defined (None when it is): ``variance`` is the reverse variance of a
        K-step chain, or None for the continuous-time (T = ∞) bound (the family's declaration,
        :meth:`~.method_options.MethodOptions.bound_reason`)."""
        return FAMILY_OPTIONS[cls.name].bound_reason(variance)

    def require_bound(self, variance: str | None) -> None:
        """Raise when the bound cell of ``variance`` is not defined (see :meth:`nll_reason`)."""
        reason = self.nll_reason(variance)
        if reason is not None:
            raise ValueError(f"NLL is not defined for {self.name}: {reason}")

    @abstractmethod
    def nll(self, model: nn.Module, images: np.ndarray, budget: int | None, variance: str | None,
            spacing: str | None, seed: int, *, batch_size: int, device: torch.device) -> NLLTerms:
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


class DiffusionMethod(ObjectiveMethod):
    """A discrete ε-prediction diffusion over a noise process, trained once at T and sampled at every
    budget on respaced chains with the stateless samplers."""

    noise_cls: ClassVar[type[NoiseProcess]]

    def __init__(self, cfg: StudyConfig, run: str, image_shape: tuple[int, int, int], T: int | None = None):
        super().__init__(cfg, run, image_shape, T)
        # the run's options are the process's keyword arguments: training and sampling share one process
        self.process = self.noise_cls(Schedule.from_config(cfg.noise), **self.options.noise_kwargs())

    @classmethod
    def noise_label(cls, options: MethodOptions) -> str:
        described = options.describe()
        return f"{cls.noise_cls.name}({described})" if described else cls.noise_cls.name

    def noise_skewness(self, t):
        return self.process.skewness(t)

    def log_snr_curve(self, model):
        return discrete_log_snr(self.process.alpha_bar)

    def build_model(self) -> nn.Module:
        C, H, _ = self.image_shape
        return UNet(UNetSpec.from_config(self.cfg.model, image_size=H, in_channels=C))

    def objective(self) -> Objective:
        return EpsilonObjective(self.process)

    @torch.no_grad()
    def generate(self, model, budget, sampler, spacing, n, seed, *, batch_size, device):
        return generate_on_chain(self.cfg, model, self.process, self.process.schedule.chain(budget, spacing), sampler,
                                 self.image_shape, n, seed, batch_size=batch_size, device=device)

    @torch.no_grad()
    def nll(self, model, images, budget, variance, spacing, seed, *, batch_size, device):
        self.require_bound(variance)
        model.eval()
        chain = self.process.schedule.chain(budget, spacing)
        terms = []
        for start in range(0, len(images), batch_size):
            idx = range(start, min(len(images), start + batch_size))
            x0 = to_model_space(images[start:idx.stop]).to(device)
            terms.append(ancestral_vlb(model, chain, x0, variance, StackedRNG(seed, idx),
                                       clip_x0=self.cfg.sampling.clip_x0))
        return per_image_terms(terms)


class DDPM(DiffusionMethod):
    """DDPM (arXiv 2006.11239) with ancestral and DDIM (arXiv 2010.02502) sampling."""

    name = "ddpm"
    noise_cls = GaussianNoise


class DDGM(DiffusionMethod):
    """Denoising Diffusion Gamma Models (arXiv 2110.05948): Gamma noise, the same samplers and chains."""

    name = "ddgm"
    noise_cls = GammaNoise


class MixtureDDM(DiffusionMethod):
    """Non-Gaussian DDM (arXiv 2106.07582) with two-Gaussian mixture noise, the same samplers and chains."""

    name = "mixture"
    noise_cls = MixtureNoise


class VDM(ObjectiveMethod):
    """Variational Diffusion Models (arXiv 2107.00630): continuous time, a learned log-SNR schedule,
    the exact bound in discrete and continuous time, ancestral sampling at any step count K from one
    trained model (the K-step chain of the trained schedule, :meth:`ContinuousGaussian.chain`).

    Its K-step model is p(z_s | z_t) = q(z_s | z_t, x = x̂), whose variance is the posterior β̃'; the
    bound of another reverse variance is not VDM's and is not reported.
    """

    name = "vdm"

    @classmethod
    def noise_label(cls, options):
        return f"gaussian-vdm({options.describe()})"

    def build_model(self) -> nn.Module:
        C, H, _ = self.image_shape
        o = self.options
        return VDMNetwork(UNetSpec.from_config(self.cfg.model, image_size=H, in_channels=C),
                          build_schedule(o.schedule, o.gamma_min, o.gamma_max), o.fourier_min, o.fourier_max)

    def objective(self) -> Objective:
        return VDMObjective(self.options.T_train)

    @torch.no_grad()
    def log_snr_curve(self, model):
        t = torch.linspace(0, 1, 201, device=model.gamma.gamma_0.device)
        init = build_schedule(self.options.schedule, self.options.gamma_min, self.options.gamma_max).to(t.device)
        return {"t": t.cpu().tolist(), "gamma": model.gamma(t).cpu().tolist(), "init": init(t).cpu().tolist()}

    @torch.no_grad()
    def generate(self, model, budget, sampler, spacing, n, seed, *, batch_size, device):
        process = ContinuousGaussian(model.gamma)
        chain = process.chain(budget, spacing)
        return generate_on_chain(self.cfg, model, process, chain, sampler, self.image_shape, n, seed,
                                 batch_size=batch_size, device=device, scale=float(chain.alpha_bar[0]) ** 0.5)

    @torch.no_grad()
    def nll(self, model, images, budget, variance, spacing, seed, *, batch_size, device):
        """Each image's bound is the mean of ``evaluation.nll.draws`` draws of (t, ε), the times
        stratified per image, t_d = (u + d/draws) mod 1, so that every draw covers another part of [0, 1)."""
        self.require_bound(variance)
        model.eval()
        draws = self.cfg.evaluation.nll.draws
        batches = []
        for start in range(0, len(images), batch_size):
            idx = range(start, min(len(images), start + batch_size))
            rng = StackedRNG(seed, idx)
            x = to_model_space(images[start:idx.stop]).to(device).double()
            u = rng.rand((len(idx),), dtype=torch.float64, device=device)
            acc = []
            for d in range(draws):
                eps = rng.randn(x.shape, dtype=torch.float64, device=device)
                acc.append(vdm_bound(model, x, (u + d / draws) % 1.0, eps, T=budget, spacing=spacing or "uniform",
                                     clip_x0=self.cfg.sampling.clip_x0))
            batches.append(NLLTerms(*(sum(getattr(t, f) for t in acc) / draws for f in ("prior", "recon", "diffusion")),
                                    draws=draws))
        return per_image_terms(batches)


class DDGAN(Method):
    """Denoising Diffusion GAN (arXiv 2112.07804): T ∈ fixed_T.T steps fixed at training, one model per T.

    The chain is the VP-SDE discretised at T steps (:func:`~.noise.schedule.vp_sde_betas`). The
    generator predicts x̂_0 = G(x_t, t, z) and a reverse step draws x_{t−1} ~ q(x_{t−1} | x_t, x̂_0),
    the Gaussian posterior (ancestral β̃ on the T-step chain: ``FIXED_T_SAMPLER``); a time-dependent
    discriminator D(x_{t−1}, x_t, t) trains it (:class:`~.objectives.AdversarialObjective`). NFE = T.
    """

    name = "ddgan"

    def __init__(self, cfg: StudyConfig, run: str, image_shape: tuple[int, int, int], T: int | None = None):
        super().__init__(cfg, run, image_shape, T)
        o = self.options
        self.process = GaussianNoise(Schedule(vp_sde_betas(self.T, o.beta_min, o.beta_max)))

    @classmethod
    def noise_label(cls, options):
        return f"gaussian-vpsde({options.describe()})"

    def log_snr_curve(self, model):
        return discrete_log_snr(self.process.alpha_bar)

    def build_model(self) -> nn.Module:
        C, H, _ = self.image_shape
        return DDGANGenerator(UNetSpec.from_config(self.cfg.model, image_size=H, in_channels=C,
                                                   latent_dim=self.options.latent_dim))

    def learner(self, model, cfg):
        o = self.options
        objective = AdversarialObjective(self.process, o.latent_dim, o.r1_gamma, o.lazy_reg)
        return AdversarialLearner(model, Discriminator(DiscriminatorSpec.from_unet(model.spec)), objective, cfg,
                                  lr_g=o.lr_g, lr_d=o.lr_d, betas=o.adam_betas, collapse_steps=o.collapse_steps)

    @torch.no_grad()
    def generate(self, model, budget, sampler, spacing, n, seed, *, batch_size, device):
        if budget != self.T or sampler.name != FIXED_T_SAMPLER or spacing != "uniform":
            raise ValueError(f"{self.run} (DDGAN, trained at T = {self.T}) samples only its own chain: budget {self.T}, "
                             f"sampler {FIXED_T_SAMPLER}, spacing uniform; got budget {budget}, sampler "
                             f"{sampler.name}, spacing {spacing}")
        return generate_on_chain(self.cfg, model, self.process, self.process.schedule.chain(), sampler,
                                 self.image_shape, n, seed, batch_size=batch_size, device=device,
                                 latent_dim=self.options.latent_dim)

    def nll(self, model, images, budget, variance, spacing, seed, *, batch_size, device):
        """Never defined: raises ValueError with :attr:`nll_undefined_reason`."""
        raise ValueError(f"NLL is not defined for {self.name}: {self.nll_undefined_reason}")
