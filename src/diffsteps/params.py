"""Reading ``params.yaml`` into the typed :class:`~.config.StudyConfig`, validated once, in two layers:

1. the JSON schema ``schemas/params.schema.yaml`` (types, ranges, enumerations, no unknown keys);
2. cross-field rules that a schema cannot state (a step budget larger than ``noise.T``, a KID
   subset larger than the sample count, a run not defined under method_config, ...).

Both layers raise :class:`~.config.ConfigError`, whose message names the key, the value and what is
allowed. The presets (``presets/*.yaml``) are read from the package, so an installed wheel has them.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping

import yaml

from .config import (ClaimsConfig, ConfigError, DataConfig, DomainConfig, EvaluationConfig, FixedTConfig,
                     InceptionConfig, MemorisationConfig, ModelConfig, NLLConfig, NoiseConfig, ReferenceConfig, ReplicatesConfig,
                     SamplingConfig, SolverErrorConfig, StepsNeededConfig, StudyConfig, TrainConfig)
from .method_options import parse_method_options
from .sampler_registry import FIXED_T_SAMPLER, SAMPLER_CONSTRAINT, SamplerSpec, spelled
from .spacing import SPACINGS

SCHEMA_PATH = Path(__file__).with_name("schemas") / "params.schema.yaml"
PRESET_DIR = Path(__file__).with_name("presets")


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
}


def load_schema() -> dict[str, Any]:
    """The params schema, with the sampler and spacing grammars generated from their registries."""
    with open(SCHEMA_PATH) as fh:
        schema = yaml.safe_load(fh)
    schema["$defs"]["sampler"].update(pattern=f"^(?:{SAMPLER_CONSTRAINT})$", description=f"a sampler: {spelled()}")
    schema["$defs"]["spacing"].update(enum=list(SPACINGS))
    return schema


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


def check_cross_fields(cfg: StudyConfig, source: str) -> None:
    """Raise :class:`ConfigError` on the first rule the schema cannot state that ``cfg`` breaks."""
    T = cfg.noise.T
    s = cfg.sampling
    for i, k in enumerate(s.budgets):
        if k > T:
            raise ConfigError(f"sampling.budgets[{i}]", k, f"a step budget must be ≤ noise.T = {T}", source)
    for i, name in enumerate(s.samplers):
        SamplerSpec.parse(name, f"sampling.samplers[{i}]")
    for key, values in (("sampling.budgets", s.budgets), ("sampling.seeds", s.seeds), ("sampling.samplers", s.samplers),
                        ("sampling.spacings", s.spacings), ("train.seeds", cfg.train.seeds),
                        ("train.replicates.methods", cfg.train.replicates.methods),
                        ("train.replicates.seeds", cfg.train.replicates.seeds),
                        ("sampling.reference.methods", s.reference.methods),
                        ("evaluation.nll.budgets", cfg.evaluation.nll.budgets), ("methods", cfg.methods),
                        ("evaluation.nll.methods", cfg.evaluation.nll.methods),
                        ("fixed_T.methods", cfg.fixed_T.methods), ("fixed_T.T", cfg.fixed_T.T)):
        if len(set(values)) != len(values):
            raise ConfigError(key, list(values), "entries must be unique", source)
    for key, runs, fixed in (("methods", cfg.methods, False), ("fixed_T.methods", cfg.fixed_T.methods, True)):
        for i, run in enumerate(runs):
            if run not in cfg.method_config:
                raise ConfigError(f"{key}[{i}]", run, f"every run must be defined under method_config; defined runs "
                                  f"are {sorted(cfg.method_config)}", source)
            family = cfg.method_config[run].family
            if cfg.method_config[run].fixed_T != fixed:
                raise ConfigError(f"{key}[{i}]", run, f"its family {family!r} " + (
                    "is trained at a fixed step count: list it under fixed_T.methods" if not fixed else
                    "is trained once and sampled at every budget: list it under methods"), source)
    for run, options in cfg.method_config.items():
        for field_name, value, expected in options.problems():
            raise ConfigError(f"method_config.{run}.{field_name}", value, expected, source)
    rep = cfg.train.replicates
    for i, run in enumerate(rep.methods):
        if run not in cfg.methods:
            raise ConfigError(f"train.replicates.methods[{i}]", run, f"must be one of methods = {list(cfg.methods)} "
                              "(a fixed-T run's replicates are its train.seeds)", source)
    for i, seed in enumerate(rep.seeds):
        if seed in cfg.train.seeds:
            raise ConfigError(f"train.replicates.seeds[{i}]", seed, f"must not be one of train.seeds = "
                              f"{list(cfg.train.seeds)}: a replicate is another training run", source)
    for i, run in enumerate(s.reference.methods):
        if run not in cfg.methods:
            raise ConfigError(f"sampling.reference.methods[{i}]", run, f"must be one of methods = {list(cfg.methods)}",
                              source)
    if rep.seeds:
        for i, run in enumerate(s.reference.methods):
            if run not in rep.methods:
                raise ConfigError(f"sampling.reference.methods[{i}]", run, "must be one of train.replicates.methods = "
                                  f"{list(rep.methods)}: every training run of a reference run gets its reference "
                                  "cell", source)
    SamplerSpec.parse(s.reference.sampler, "sampling.reference.sampler")
    if s.reference.budget > T:
        raise ConfigError("sampling.reference.budget", s.reference.budget, f"must be ≤ noise.T = {T}", source)
    if s.reference.budget in s.budgets and s.reference.sampler in s.samplers and s.reference.spacing in s.spacings:
        raise ConfigError("sampling.reference.budget", s.reference.budget,
                          "the reference cell duplicates a cell of the sampling grid; pick another budget", source)
    for i, k in enumerate(cfg.evaluation.nll.budgets):
        if k > T:
            raise ConfigError(f"evaluation.nll.budgets[{i}]", k, f"a step budget must be ≤ noise.T = {T}", source)
    ev = cfg.evaluation
    bounded = [run for run in cfg.methods if cfg.method_config[run].nll_undefined_reason is None]
    for i, run in enumerate(ev.nll.methods):
        if run not in cfg.methods:
            raise ConfigError(f"evaluation.nll.methods[{i}]", run, f"must be one of methods = {list(cfg.methods)}", source)
        reason = cfg.method_config[run].nll_undefined_reason
        if reason is not None:
            raise ConfigError(f"evaluation.nll.methods[{i}]", run, f"its family {cfg.method_config[run].family!r} "
                              f"defines no bound ({reason}); the runs with one are {bounded}", source)
    replicated = [run for run in rep.methods if run in ev.nll.methods]
    if list(ev.nll.replicates) != replicated:
        raise ConfigError("evaluation.nll.replicates", list(ev.nll.replicates), f"must be {replicated}: the runs of "
                          "evaluation.nll.methods that train.replicates.methods replicates, in that order (their "
                          "replicate training runs get their bounds too)", source)
    if ev.nll.n_images > cfg.data.n_heldout:
        raise ConfigError("evaluation.nll.n_images", ev.nll.n_images,
                          f"must be ≤ data.n_heldout = {cfg.data.n_heldout} (the bound is taken on held-out images)",
                          source)
    smallest = min(s.n_samples, cfg.data.n_heldout)
    if ev.prc_neighborhood >= smallest:
        raise ConfigError("evaluation.prc_neighborhood", ev.prc_neighborhood,
                          f"must be < {smallest}, the smaller of sampling.n_samples and data.n_heldout", source)
    inc = ev.inception
    for key, n, limit in (("evaluation.inception.n", inc.n, smallest), ("evaluation.inception.n_ref", inc.n_ref, None)):
        if n is not None and (n <= ev.prc_neighborhood or (limit is not None and n > limit)):
            raise ConfigError(key, n, f"must be > evaluation.prc_neighborhood = {ev.prc_neighborhood}"
                              + ("" if limit is None else f" and ≤ {limit}, the smaller of sampling.n_samples and "
                                 "data.n_heldout (the floor and every cell are scored at this N)"), source)
    for i, name in enumerate(inc.samplers or ()):
        if name != FIXED_T_SAMPLER and name not in s.samplers and name != s.reference.sampler:
            raise ConfigError(f"evaluation.inception.samplers[{i}]", name, f"must be a sampler of the study: one of "
                              f"{sorted({*s.samplers, s.reference.sampler, FIXED_T_SAMPLER})}", source)
    if ev.kid_subset_size > s.n_samples:
        raise ConfigError("evaluation.kid_subset_size", ev.kid_subset_size,
                          f"must be ≤ sampling.n_samples = {s.n_samples} (KID subsets are drawn from the samples)",
                          source)
    if cfg.data.dataset == "folder" and not cfg.data.folder:
        raise ConfigError("data.folder", cfg.data.folder, "a folder of images is required when data.dataset is 'folder'",
                          source)
    if cfg.noise.beta_start >= cfg.noise.beta_end and cfg.noise.schedule == "linear":
        raise ConfigError("noise.beta_start", cfg.noise.beta_start, f"must be < noise.beta_end = {cfg.noise.beta_end}",
                          source)
