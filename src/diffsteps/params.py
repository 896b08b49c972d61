"""The whole ``params.yaml``, validated once where the DAG is built (``workflow/rules/common.smk``) and by the
``validate`` and ``preset`` commands, in two layers:

1. the JSON schema ``schemas/params.schema.yaml`` (types, ranges, no unknown keys), with the grammars of the
   registries filled in (:func:`load_schema`: sampler names, spacings) and each run checked against its family's
   schema (:mod:`diffsteps.families`);
2. cross-field rules that a schema cannot state (a step budget larger than ``noise.T``, a KID subset larger than
   the sample count, a run not defined under method_config, a bound asked of a family that has none, ...).

Both layers raise :class:`~.config.ConfigError`, whose message names the key, the value and what is allowed. A
stage's command reads only its own slice (:func:`diffsteps.config.read_config`), so it never imports the sampler
registry, the spacings or a family it does not run. The presets (``presets/*.yaml``) are read from the package,
so an installed wheel has them.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Mapping

from .config import SECTIONS, ConfigError, StudyConfig, build_config, check_sections, read_raw, read_schema
from .families import parse_runs
from .sampler_registry import SAMPLER_CONSTRAINT, SamplerSpec, spelled
from .spacing import SPACINGS

PRESET_DIR = Path(__file__).with_name("presets")


def load_schema() -> dict[str, Any]:
    """The params schema, with the sampler and spacing grammars generated from their registries."""
    schema = read_schema()
    schema["$defs"]["sampler"].update(pattern=f"^(?:{SAMPLER_CONSTRAINT})$", description=f"a sampler: {spelled()}")
    schema["$defs"]["spacing"].update(enum=list(SPACINGS))
    return schema


def validate_mapping(raw: Mapping[str, Any], source: str = "params.yaml") -> StudyConfig:
    """Validate a raw params mapping (schema, every defined run against its family, then cross-field rules) and
    return the typed config with every run of method_config."""
    if not isinstance(raw, Mapping):
        raise ConfigError("<top level>", raw, "params.yaml must be a mapping of sections", source)
    schema = load_schema()
    unknown = sorted(set(raw) - set(schema["properties"]))
    if unknown:
        raise ConfigError(unknown[0], raw[unknown[0]], f"unknown key; allowed keys here are "
                          f"{sorted(schema['properties'])}", source)
    check_sections(raw, schema, SECTIONS, source)
    cfg = dataclasses.replace(build_config(raw, SECTIONS), method_config=parse_runs(raw, raw["method_config"], source))
    check_cross_fields(cfg, source)
    return cfg


def load_config(path: str | Path = "params.yaml") -> StudyConfig:
    """Read and validate the whole ``params.yaml``; raise :class:`ConfigError` naming the key on bad input."""
    return validate_mapping(read_raw(path), source=str(path))


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
                        ("evaluation.nll.methods", cfg.evaluation.nll.methods)):
        if len(set(values)) != len(values):
            raise ConfigError(key, list(values), "entries must be unique", source)
    for i, run in enumerate(cfg.methods):
        if run not in cfg.method_config:
            raise ConfigError(f"methods[{i}]", run, f"every run must be defined under method_config; defined runs "
                              f"are {sorted(cfg.method_config)}", source)
    families = {run: type(cfg.method_config[run]) for run in cfg.methods}
    rep = cfg.train.replicates
    for i, run in enumerate(rep.methods):
        if run not in cfg.methods:
            raise ConfigError(f"train.replicates.methods[{i}]", run, f"must be one of methods = {list(cfg.methods)}",
                              source)
    for i, seed in enumerate(rep.seeds):
        if seed in cfg.train.seeds:
            raise ConfigError(f"train.replicates.seeds[{i}]", seed, f"must not be one of train.seeds = "
                              f"{list(cfg.train.seeds)}: a replicate is another training run", source)
    any_budget = [run for run in cfg.methods if families[run].eps_prediction]
    for i, run in enumerate(s.reference.methods):
        if run not in any_budget:
            raise ConfigError(f"sampling.reference.methods[{i}]", run, f"must be one of the runs sampled at every "
                              f"budget (their family's network predicts ε̂ on any chain): {any_budget}", source)
    if rep.seeds:
        for i, run in enumerate(s.reference.methods):
            if run not in rep.methods:
                raise ConfigError(f"sampling.reference.methods[{i}]", run, "must be one of train.replicates.methods = "
                                  f"{list(rep.methods)}: every training run of a reference run gets its reference "
                                  "cell", source)
    SamplerSpec.parse(s.reference.sampler, "sampling.reference.sampler")
    if s.reference.budget > T:
        raise ConfigError("sampling.reference.budget", s.reference.budget, f"must be ≤ noise.T = {T}", source)
    if s.reference.methods and s.reference.sampler in s.samplers and s.reference.spacing in s.spacings:
        # a sampling job holds every cell of one sampler and spacing: the reference chain is a job of its own
        raise ConfigError("sampling.reference.sampler", s.reference.sampler,
                          f"with spacing {s.reference.spacing!r} it is a sampler and spacing of the sampling grid "
                          f"(sampling.samplers × sampling.spacings), whose jobs it would share; pick a sampler outside "
                          "sampling.samplers (the 1000-step chain of DDPM is 'ancestral-betatilde')", source)
    for i, k in enumerate(cfg.evaluation.nll.budgets):
        if k > T:
            raise ConfigError(f"evaluation.nll.budgets[{i}]", k, f"a step budget must be ≤ noise.T = {T}", source)
    ev = cfg.evaluation
    bounded = [run for run in cfg.methods if families[run].nll_undefined_reason is None]
    for i, run in enumerate(ev.nll.methods):
        if run not in cfg.methods:
            raise ConfigError(f"evaluation.nll.methods[{i}]", run, f"must be one of methods = {list(cfg.methods)}", source)
        reason = families[run].nll_undefined_reason
        if reason is not None:
            raise ConfigError(f"evaluation.nll.methods[{i}]", run, f"its family {families[run].family_name()!r} "
                              f"defines no bound ({reason}); the runs with one are {bounded}", source)
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
    study_samplers = {*s.samplers, s.reference.sampler, *(f.own_sampler for f in families.values() if f.own_sampler)}
    for i, name in enumerate(inc.samplers or ()):
        if name not in study_samplers:
            raise ConfigError(f"evaluation.inception.samplers[{i}]", name, f"must be a sampler of the study: one of "
                              f"{sorted(study_samplers)}", source)
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
