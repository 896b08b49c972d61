"""Cross-field rules of the study configuration: what the JSON schema cannot state (a step budget larger
than ``noise.T``, a KID subset larger than the sample count, a run not defined under method_config, ...)."""

from __future__ import annotations

from .config import FIXED_T_SAMPLER, ConfigError, SamplerSpec, StudyConfig


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
                        ("sampling.reference.methods", s.reference.methods),
                        ("evaluation.nll.budgets", cfg.evaluation.nll.budgets), ("methods", cfg.methods),
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
    for i, run in enumerate(s.reference.methods):
        if run not in cfg.methods:
            raise ConfigError(f"sampling.reference.methods[{i}]", run, f"must be one of methods = {list(cfg.methods)}",
                              source)
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
