"""The study's cells: which artifacts exist under the current params, and where each one lives.

Every stage of the DAG writes one kind of cell; :data:`LAYOUT` gives, per stage, the path patterns of
its outputs and the *variants* that enumerate its cells (wildcards ranging over params lists). The
workflow (:mod:`diffsteps.workflow`: inputs, code dependencies, params slices, dvc.yaml) is built on
this layout, and the report reads exactly the cells listed here, never a glob of ``results/``, so
leftovers of earlier configurations cannot leak into it. No other stage imports this module.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping

from .config import lookup
from .sampler_registry import FIXED_T_SAMPLER, FIXED_T_SPACING

DATA = "results/data/{dataset}"
DOMAIN = "results/features/{dataset}/domain"
REFSTATS = "results/refstats/{dataset}"
INCEPTION = "results/resources/inception"  # the Inception weights: one file for every data set
#: ``{model}`` is the run (``ddpm``), or the run at one T for a fixed-T run (``ddgan/T4``): one pattern, one rule
MODEL = "results/models/{dataset}/{model}/train{ts}"
SAMPLES = "results/samples/{dataset}/{method}/{sampler}-{spacing}/K{budget}/train{ts}-seed{seed}"
EVAL = "results/eval/{dataset}/{method}/{sampler}-{spacing}/K{budget}/train{ts}-seed{seed}"
NLL = "results/nll/{dataset}/{method}/train{ts}"
SOLVER_ERROR = "results/solver_error/{dataset}/{method}/train{ts}"
FLOOR = "results/eval/{dataset}/floor"
REPORT = "reports"


@dataclass(frozen=True)
class Variant:
    """One family of cells of a stage, as a run's family declares its grid: wildcards ranging over params
    lists (``matrix``) or fixed to a params value (``fixed``), both mapping a wildcard to a dotted
    params.yaml key, or to a literal (``constants``: a fixed-T run's one sampler and spacing); ``derived``
    wildcards are formatted from the others (the ``{model}`` a cell's network is, ``ddgan/T{budget}``).

    A family whose step count is fixed at training (``fixed_T`` on its options type: DDGAN) has its runs
    under ``fixed_T.methods``: its variants range over them and over ``fixed_T.T`` (one model per T,
    sampled at NFE = T). DVC's matrices are products of params lists, so each grid is one matrix group
    (``suffix``) of the same stage; Snakemake runs one rule per stage."""

    suffix: str
    matrix: Mapping[str, str]
    fixed: Mapping[str, str] = field(default_factory=dict)
    constants: Mapping[str, str] = field(default_factory=dict)
    derived: Mapping[str, str] = field(default_factory=dict)

    @property
    def fixed_T(self) -> bool:
        """Whether this is the grid of the fixed-T runs (their params and inputs differ: no noise.*, a probe)."""
        return self.matrix.get("method") == FIXED_T_RUNS


@dataclass(frozen=True)
class Layout:
    """Where a stage's outputs live (patterns over the wildcards) and which cells it has."""

    outputs: Mapping[str, str]
    variants: tuple[Variant, ...]


FIXED_T_RUNS = "fixed_T.methods"
#: more training runs of some runs (``train.replicates``): each of their grids is repeated over these seeds
REPLICATE_RUNS, REPLICATE_SEEDS = "train.replicates.methods", "train.replicates.seeds"
_DATASET = {"dataset": "data.dataset"}
_ONE = (Variant("", {}, _DATASET),)
_RUN = {"model": "{method}"}  # a run trained once: its model is the run's
_AT_T = {"model": "{method}/T{budget}"}  # a fixed-T run's model at T = budget
_CELL = Variant("", {"method": "methods", "sampler": "sampling.samplers", "spacing": "sampling.spacings",
                     "budget": "sampling.budgets", "ts": "train.seeds", "seed": "sampling.seeds"}, _DATASET,
                derived=_RUN)
#: a fixed-T run (DDGAN) at each T, sampled with its one sampler at NFE = T
_FIXED_T_CELL = Variant("_fixed_T", {"method": FIXED_T_RUNS, "budget": "fixed_T.T", "ts": "train.seeds",
                                     "seed": "sampling.seeds"}, _DATASET,
                        {"sampler": FIXED_T_SAMPLER, "spacing": FIXED_T_SPACING}, _AT_T)
_REFERENCE = Variant("_reference", {"method": "sampling.reference.methods", "ts": "train.seeds",
                                    "seed": "sampling.reference.seeds"},
                     {**_DATASET, "sampler": "sampling.reference.sampler", "spacing": "sampling.reference.spacing",
                      "budget": "sampling.reference.budget"}, derived=_RUN)


def replicated(*variants: Variant) -> tuple[Variant, ...]:
    """Each variant of the runs trained once, followed by its replicate grid: the same cells for the runs of
    ``train.replicates.methods`` at ``train.replicates.seeds`` (a reference variant keeps its runs, which the
    params rules require to be replicated). One more matrix group per grid, empty when there are no replicates."""
    out = []
    for v in variants:
        out.append(v)
        if v.matrix.get("ts") == "train.seeds" and v.matrix.get("method") in ("methods", "sampling.reference.methods"):
            runs = REPLICATE_RUNS if v.matrix["method"] == "methods" else v.matrix["method"]
            out.append(Variant(f"{v.suffix}_replicates", {**v.matrix, "method": runs, "ts": REPLICATE_SEEDS}, v.fixed,
                               v.constants, v.derived))
    return tuple(out)


def _model(base: str) -> dict[str, str]:
    return {"model": f"{base}/model.pt", "meta": f"{base}/train.json", "loss": f"{base}/loss.csv"}


def _samples(base: str) -> dict[str, str]:
    return {"samples": f"{base}/samples.npz", "grid": f"{base}/grid.png", "meta": f"{base}/sample.json"}


LAYOUT: dict[str, Layout] = {
    "prepare_data": Layout({"train": f"{DATA}/train.npz", "heldout": f"{DATA}/heldout.npz", "meta": f"{DATA}/data.json"},
                           _ONE),
    "train_domain": Layout({"weights": f"{DOMAIN}/extractor.pt", "meta": f"{DOMAIN}/extractor.json"}, _ONE),
    "inception_weights": Layout({"weights": f"{INCEPTION}/inception.pth", "meta": f"{INCEPTION}/inception.json"},
                                (Variant("", {}),)),
    "reference_stats": Layout({"stats": f"{REFSTATS}/domain.npz", "meta": f"{REFSTATS}/domain.json"}, _ONE),
    "reference_stats_inception": Layout({"stats": f"{REFSTATS}/inception.npz", "meta": f"{REFSTATS}/inception.json"},
                                        _ONE),
    "train": Layout(_model(MODEL), replicated(
        Variant("", {"method": "methods", "ts": "train.seeds"}, _DATASET, derived=_RUN),
        Variant("_fixed_T", {"method": FIXED_T_RUNS, "budget": "fixed_T.T", "ts": "train.seeds"}, _DATASET,
                derived=_AT_T))),
    "sample": Layout(_samples(SAMPLES), replicated(_CELL, _REFERENCE, _FIXED_T_CELL)),
    "evaluate": Layout({"metrics": f"{EVAL}/metrics.json", "pairs": f"{EVAL}/pairs.npz"},
                       replicated(_CELL, _REFERENCE, _FIXED_T_CELL)),
    # every bound of one trained run (its K-step chains at each variance, spacing and budget, and its T = ∞ bound)
    # in one job, for the runs of evaluation.nll.methods only: a run whose family defines no bound (Gamma and
    # mixture noise, DDGAN) has no job at all, and the report takes the reason from the family's declaration;
    # a cell of a bounded run that is not defined (VDM at σ² = β, DDPM at T = ∞) is a row of its run's job
    "nll": Layout({"nll": f"{NLL}/nll.json"},
                  (Variant("", {"method": "evaluation.nll.methods", "ts": "train.seeds"}, _DATASET, derived=_RUN),
                   Variant("_replicates", {"method": "evaluation.nll.replicates", "ts": REPLICATE_SEEDS}, _DATASET,
                           derived=_RUN))),
    # every deterministic sampler × spacing × budget of one trained run against its reference ODE solve
    # (fixed-T runs have none: their one sampler is stochastic)
    "solver_error": Layout({"errors": f"{SOLVER_ERROR}/solver_error.json"},
                           replicated(Variant("", {"method": "methods", "ts": "train.seeds"}, _DATASET,
                                               derived=_RUN))),
    "floor": Layout({"metrics": f"{FLOOR}/metrics.json"}, _ONE),
    # reports/figures/ is rewritten with the report but not declared: a directory output makes Snakemake
    # miss new inputs of this rule, and report.html embeds every figure anyway (self-contained)
    "report": Layout({"csv": f"{REPORT}/results.csv", "md": f"{REPORT}/report.md", "html": f"{REPORT}/report.html",
                      "metrics": f"{REPORT}/metrics.json"}, _ONE),
}


def iter_wildcards(cfg: Mapping[str, Any], stage: str) -> Iterator[dict[str, Any]]:
    """Every cell of a stage under the current params (variants in order, matrix in product order), with
    its derived wildcards."""
    for variant in LAYOUT[stage].variants:
        fixed = {**variant.constants, **{k: lookup(cfg, v) for k, v in variant.fixed.items()}}
        keys = list(variant.matrix)
        for combo in itertools.product(*(lookup(cfg, variant.matrix[k]) for k in keys)):
            wc = {**fixed, **dict(zip(keys, combo))}
            yield {**wc, **{k: v.format(**wc) for k, v in variant.derived.items()}}


def variant_of(cfg: Mapping[str, Any], stage: str, method: str | None) -> Variant:
    """The variant a job of ``stage`` for the run ``method`` belongs to: its fixed-T grid for a run listed under
    fixed_T.methods, else the stage's first variant (its other variants read the same params and inputs)."""
    variants = LAYOUT[stage].variants
    fixed = method is not None and method in lookup(cfg, FIXED_T_RUNS)
    return next((v for v in variants if v.fixed_T), variants[0]) if fixed else variants[0]


def model_of(cfg: Mapping[str, Any], method: str, budget: Any = None) -> str:
    """The ``{model}`` wildcard of a run's network: the run, or ``<run>/T<budget>`` for a fixed-T run."""
    derived = variant_of(cfg, "train", method).derived["model"]
    return derived.format(method=method, budget=budget)


def run_of(model: str) -> str:
    """The run of a ``{model}`` wildcard (``ddgan/T4`` → ``ddgan``)."""
    return model.split("/", 1)[0]


def T_of(model: str) -> int | None:
    """The T of a fixed-T run's ``{model}`` (``ddgan/T4`` → 4), None for a run trained once."""
    _, _, T = model.partition("/T")
    return int(T) if T else None


def all_outputs(cfg: Mapping[str, Any], stage: str) -> list[str]:
    """Every output path of a stage's cells under the plain params ``cfg``."""
    patterns = LAYOUT[stage].outputs.values()
    return [p.format(**wc) for wc in iter_wildcards(cfg, stage) for p in patterns]


def every_output(cfg: Mapping[str, Any]) -> list[str]:
    return [p for stage in LAYOUT for p in all_outputs(cfg, stage)]


def report_inputs(cfg: Mapping[str, Any]) -> dict[str, list[str]]:
    """What the report reads: every cell's record, training logs and sample grids."""
    return {
        "eval": [p for p in all_outputs(cfg, "evaluate") if p.endswith("metrics.json")],
        "pairs": [p for p in all_outputs(cfg, "evaluate") if p.endswith("pairs.npz")],
        "nll": all_outputs(cfg, "nll"),
        "floor": all_outputs(cfg, "floor"),
        "solver_error": all_outputs(cfg, "solver_error"),
        "train": [p for p in all_outputs(cfg, "train") if p.endswith(("train.json", "loss.csv"))],
        "samples": [p for p in all_outputs(cfg, "sample") if p.endswith(("sample.json", "grid.png"))],
    }
