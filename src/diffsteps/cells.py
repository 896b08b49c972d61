"""The study's cells: which artifacts exist under the current params, and where each one lives.

Every stage of the DAG writes one kind of cell; :data:`LAYOUT` gives, per stage, the path patterns of its outputs,
and :func:`grids` the *grids* that enumerate its cells under the params: wildcards ranging over params lists. A
stage of the study as a whole (the data, the feature extractors, the floor, the report) has one grid. A stage of a
run (train, sample, evaluate, nll, solver error, probe) has the grids that the run's family declares
(:class:`~diffsteps.families.base.Grid`: a run trained once and sampled at every budget with every sampler, or one
model per T sampled on its own chain), repeated for its replicate training seeds and, where the params ask for it,
for its reference chain; no run is special-cased here. The workflow (:mod:`diffsteps.workflow`: inputs, code
dependencies, params slices, dvc.yaml) is built on these grids, and the report reads exactly the cells listed here,
never a glob of ``results/``, so leftovers of earlier configurations cannot leak into it. No stage imports this
module.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping

from .config import lookup
from .families import names, options_type
from .families.base import MethodOptions

DATA = "results/data/{dataset}"
DOMAIN = "results/features/{dataset}/domain"
REFSTATS = "results/refstats/{dataset}"
INCEPTION = "results/resources/inception"  # the Inception weights: one file for every data set
#: ``{model}`` is a run's network: the run (``ddpm``), or the run at one T for a family with a model per T
#: (``ddgan/T4``), as the family's grid spells it: one pattern, one rule
MODEL = "results/models/{dataset}/{model}/train{ts}"
#: every model of a run (a ``{model}`` starts with its run: :func:`run_of`)
MODELS = "results/models/{dataset}/{method}"
#: one sampling (scoring) job: every budget, training seed and sampling seed of a run's sampler and spacing, in one
#: folder; each cell is a subfolder of it
SAMPLE_JOB = "results/samples/{dataset}/{method}/{sampler}-{spacing}"
EVAL_JOB = "results/eval/{dataset}/{method}/{sampler}-{spacing}"
CELL = "K{budget}/train{ts}-seed{seed}"
SAMPLES = f"{SAMPLE_JOB}/{CELL}"
EVAL = f"{EVAL_JOB}/{CELL}"
NLL = "results/nll/{dataset}/{method}/train{ts}"
SOLVER_ERROR = "results/solver_error/{dataset}/{method}/train{ts}"
PROBE = "results/probe/{dataset}/{model}/train{ts}"
FLOOR = "results/eval/{dataset}/floor"
REPORT = "reports"

#: more training runs of some runs (``train.replicates``): each of their grids is repeated over these seeds
REPLICATE_RUNS, REPLICATE_SEEDS = "train.replicates.methods", "train.replicates.seeds"


@dataclass(frozen=True)
class CellGrid:
    """One family of cells of a stage: wildcards ranging over params lists (``matrix``) or fixed to a params value
    (``fixed``), both mapping a wildcard to a dotted params.yaml key, or to a literal (``constants``: the run
    itself, a family's own sampler); ``derived`` wildcards are formatted from the others (the ``{model}`` a cell's
    network is). ``run`` is the run the cells belong to (None for a stage of the whole study), ``suffix`` names the
    grid among the run's (``-reference``, ``-replicates``): DVC's matrices are products of params lists, so each
    grid is one DVC stage group, ``<stage>[-<run>]<suffix>``; Snakemake runs one rule per stage."""

    suffix: str
    matrix: Mapping[str, str]
    fixed: Mapping[str, str] = field(default_factory=dict)
    constants: Mapping[str, str] = field(default_factory=dict)
    derived: Mapping[str, str] = field(default_factory=dict)
    run: str | None = None
    #: the params keys of the wildcards that each job ranges over inside itself (:func:`job_grids`)
    inner: tuple[str, ...] = ()

    def group(self, stage: str) -> str:
        """The DVC stage group of these cells."""
        return stage + (f"-{self.run}" if self.run is not None else "") + self.suffix


@dataclass(frozen=True)
class Layout:
    """Where a stage's outputs live (patterns over the wildcards), and whether its cells belong to a run.

    ``inner``: the wildcards that one job ranges over inside itself (its cells), none for a stage of one job a cell;
    such a job declares one folder, ``job`` (patterns over the other wildcards), that holds its cells' ``outputs``."""

    outputs: Mapping[str, str]
    per_run: bool = False
    inner: tuple[str, ...] = ()
    job: Mapping[str, str] = field(default_factory=dict)

    @property
    def declared(self) -> Mapping[str, str]:
        """What one job declares to Snakemake and DVC: its folder, or its cell's outputs."""
        return self.job or self.outputs


#: the wildcards a sampling or scoring job ranges over inside itself
JOB_INNER = ("budget", "ts", "seed")


def _model(base: str) -> dict[str, str]:
    return {"model": f"{base}/model.pt", "meta": f"{base}/train.json", "loss": f"{base}/loss.csv",
            "snapshots": f"{base}/snapshots.pt"}


def _samples(base: str) -> dict[str, str]:
    return {"samples": f"{base}/samples.npz", "grid": f"{base}/grid.png", "meta": f"{base}/sample.json"}


LAYOUT: dict[str, Layout] = {
    "prepare_data": Layout({"train": f"{DATA}/train.npz", "heldout": f"{DATA}/heldout.npz", "meta": f"{DATA}/data.json"}),
    "train_domain": Layout({"weights": f"{DOMAIN}/extractor.pt", "meta": f"{DOMAIN}/extractor.json"}),
    "inception_weights": Layout({"weights": f"{INCEPTION}/inception.pth", "meta": f"{INCEPTION}/inception.json"}),
    "reference_stats": Layout({"stats": f"{REFSTATS}/domain.npz", "meta": f"{REFSTATS}/domain.json"}),
    "reference_stats_inception": Layout({"stats": f"{REFSTATS}/inception.npz", "meta": f"{REFSTATS}/inception.json"}),
    "train": Layout(_model(MODEL), per_run=True),
    # a job per (run, sampler, spacing): a process start, a model load and (scoring) an Inception load serve every
    # budget, training seed and sampling seed; a new budget reruns the groups that sample it, a new sampler or
    # spacing adds its own
    "sample": Layout(_samples(SAMPLES), per_run=True, inner=JOB_INNER, job={"cells": SAMPLE_JOB}),
    "evaluate": Layout({"metrics": f"{EVAL}/metrics.json", "pairs": f"{EVAL}/pairs.npz"}, per_run=True,
                       inner=JOB_INNER, job={"cells": EVAL_JOB}),
    # every bound of one trained run (its K-step chains at each variance, spacing and budget, and its T = ∞ bound)
    # in one job, for the runs of evaluation.nll.methods only: a run whose family defines no bound (Gamma and
    # mixture noise, DDGAN) has no job at all, and the report takes the reason from the family's declaration;
    # a cell of a bounded run that is not defined (VDM at σ² = β, DDPM at T = ∞) is a row of its run's job
    "nll": Layout({"nll": f"{NLL}/nll.json"}, per_run=True),
    # every deterministic sampler × spacing × budget of one trained run against its reference ODE solve (a family
    # with a chain of its own has none: its one sampler is stochastic)
    "solver_error": Layout({"errors": f"{SOLVER_ERROR}/solver_error.json"}, per_run=True),
    # the domain-FID curve of a probed run's EMA snapshots, one job per model
    "probe": Layout({"probe": f"{PROBE}/probe.json"}, per_run=True),
    "floor": Layout({"metrics": f"{FLOOR}/metrics.json"}),
    # reports/figures/ is rewritten with the report but not declared: a directory output makes Snakemake
    # miss new inputs of this rule, and report.html embeds every figure anyway (self-contained)
    "report": Layout({"csv": f"{REPORT}/results.csv", "md": f"{REPORT}/report.md", "html": f"{REPORT}/report.html",
                      "metrics": f"{REPORT}/metrics.json"}),
}

_DATASET = {"dataset": "data.dataset"}


def family_of(cfg: Mapping[str, Any], run: str) -> type[MethodOptions]:
    """The options type of a run's family (plain params ``cfg``), importing that family's declaration."""
    return options_type(lookup(cfg, f"method_config.{run}.family"), f"method_config.{run}.family")


def _own(run: str, keys: Mapping[str, str]) -> dict[str, str]:
    return {k: v.format(run=run) for k, v in keys.items()}


def family_has_cells(stage: str, family: type[MethodOptions]) -> bool:
    """Whether a run of ``family`` can have cells of ``stage`` at all (by its traits; the params then say which
    runs do): a bound where the family defines one, a solver error where the study's samplers apply, a probe where
    it is probed."""
    return {"nll": family.nll_undefined_reason is None, "solver_error": family.eps_prediction,
            "probe": family.probed}.get(stage, True)


def _run_grids(cfg: Mapping[str, Any], stage: str, run: str) -> list[CellGrid]:
    """The grids of one run's cells of ``stage``, as its family declares them (before replicate seeds)."""
    family = family_of(cfg, run)
    if not family_has_cells(stage, family):
        return []
    grid = family.grid
    const = {"method": run}
    model = {"model": grid.model}
    models = _own(run, grid.models)
    seeds = {"ts": "train.seeds"}
    if stage in ("train", "probe"):
        return [CellGrid("", {**models, **seeds}, _DATASET, const, model, run)]
    if stage in ("sample", "evaluate"):
        own = CellGrid("", {**_own(run, grid.cells), **seeds, "seed": "sampling.seeds"}, _DATASET,
                       {**const, **grid.constants}, model, run)
        if run not in lookup(cfg, "sampling.reference.methods"):
            return [own]
        ref = {k: f"sampling.reference.{k}" for k in ("sampler", "spacing", "budget")}
        return [own, CellGrid("-reference", {**seeds, "seed": "sampling.reference.seeds"}, {**_DATASET, **ref}, const,
                              model, run)]
    if stage == "nll":
        return [CellGrid("", seeds, _DATASET, const, model, run)] if run in lookup(cfg, "evaluation.nll.methods") else []
    if stage == "solver_error":
        return [CellGrid("", seeds, _DATASET, const, model, run)]
    raise KeyError(f"stage {stage!r} has no cells of a run")


def grids(cfg: Mapping[str, Any], stage: str) -> list[CellGrid]:
    """Every grid of a stage's cells under the plain params ``cfg``: one for a stage of the whole study; per run of
    ``methods``, its family's grids, each followed by the same cells at the replicate seeds of a replicated run."""
    if not LAYOUT[stage].per_run:
        return [CellGrid("", {}, _DATASET)]
    out = []
    for run in lookup(cfg, "methods"):
        for g in _run_grids(cfg, stage, run):
            out.append(g)
            if run in lookup(cfg, REPLICATE_RUNS):
                out.append(CellGrid(f"{g.suffix}-replicates", {**g.matrix, "ts": REPLICATE_SEEDS}, g.fixed, g.constants,
                                    g.derived, run))
    return out


def job_grids(cfg: Mapping[str, Any], stage: str) -> list[CellGrid]:
    """The grids of a stage's *jobs*: its cell grids, for a stage whose jobs hold many cells (:attr:`Layout.inner`)
    with those wildcards taken out (their params keys go to ``inner``: they are what the job reads) and the grids
    that then coincide merged (a replicated run's training seeds join its own grid's jobs)."""
    inner = LAYOUT[stage].inner
    if not inner:
        return grids(cfg, stage)
    out: dict[tuple[str, str | None], CellGrid] = {}
    for g in grids(cfg, stage):
        keys = tuple(v for k, v in {**g.matrix, **g.fixed}.items() if k in inner)
        suffix = g.suffix.removesuffix("-replicates")
        if (suffix, g.run) in out:
            seen = out[(suffix, g.run)]
            out[(suffix, g.run)] = CellGrid(suffix, seen.matrix, seen.fixed, seen.constants, {}, g.run,
                                            tuple(dict.fromkeys((*seen.inner, *keys))))
            continue
        out[(suffix, g.run)] = CellGrid(suffix, {k: v for k, v in g.matrix.items() if k not in inner},
                                        {k: v for k, v in g.fixed.items() if k not in inner}, g.constants, {}, g.run,
                                        keys)
    return list(out.values())


def job_wildcards(stage: str) -> tuple[str, ...]:
    """The wildcards that name one job of ``stage`` (those of its declared outputs)."""
    return tuple(dict.fromkeys(m for p in LAYOUT[stage].declared.values() for m in re.findall(r"\{(\w+)\}", p)))


def iter_jobs(cfg: Mapping[str, Any], stage: str) -> Iterator[tuple[dict[str, Any], list[dict[str, Any]]]]:
    """Every job of a stage under the plain params ``cfg``: its wildcards and its cells (:func:`iter_wildcards`, each
    once: a cell of two grids, such as a reference chain that is also on the grid, is one cell)."""
    if not LAYOUT[stage].inner:
        for wc in iter_wildcards(cfg, stage):
            yield wc, [wc]
        return
    names = job_wildcards(stage)
    jobs: dict[tuple, dict[tuple, dict[str, Any]]] = {}
    for wc in iter_wildcards(cfg, stage):
        jobs.setdefault(tuple(wc[n] for n in names), {}).setdefault(tuple(sorted(wc.items())), wc)
    for key, found in jobs.items():
        yield dict(zip(names, key)), list(found.values())


def job_cells(cfg: Mapping[str, Any], stage: str, wildcards: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The cells of the job of ``stage`` named by ``wildcards`` (its :func:`job_wildcards`, as strings or values)."""
    names = job_wildcards(stage)
    want = tuple(str(wildcards[n]) for n in names)
    for job, found in iter_jobs(cfg, stage):
        if tuple(str(job[n]) for n in names) == want:
            return found
    raise KeyError(f"no job of stage {stage!r} is named {dict(zip(names, want))} under these params")


def iter_wildcards(cfg: Mapping[str, Any], stage: str) -> Iterator[dict[str, Any]]:
    """Every cell of a stage under the current params (grids in order, matrix in product order), with its derived
    wildcards."""
    for grid in grids(cfg, stage):
        yield from grid_wildcards(cfg, grid)


def grid_wildcards(cfg: Mapping[str, Any], grid: CellGrid) -> Iterator[dict[str, Any]]:
    """The wildcards of every cell (job, for a grid of :func:`job_grids`) of one grid, in product order."""
    fixed = {**grid.constants, **{k: lookup(cfg, v) for k, v in grid.fixed.items()}}
    keys = list(grid.matrix)
    for combo in itertools.product(*(lookup(cfg, grid.matrix[k]) for k in keys)):
        wc = {**fixed, **dict(zip(keys, combo))}
        yield {**wc, **{k: v.format(**wc) for k, v in grid.derived.items()}}


def model_of(cfg: Mapping[str, Any], run: str, budget: Any = None) -> str:
    """The ``{model}`` wildcard of a run's network (of the cell at ``budget``, for a family with a model per T)."""
    return family_of(cfg, run).grid.model.format(method=run, budget=budget)


def run_of(model: str) -> str:
    """The run of a ``{model}`` wildcard: every family's model pattern starts with it (``ddgan/T4`` → ``ddgan``)."""
    return model.split("/", 1)[0]


def _pattern(fmt: str) -> str:
    """A family's model format as a regular expression (``{method}`` a run name, other wildcards integers)."""
    out, pos = [], 0
    for m in re.finditer(r"\{(\w+)\}", fmt):
        out.append(re.escape(fmt[pos:m.start()]))
        out.append(f"(?P<{m.group(1)}>[a-z0-9_]+)" if m.group(1) == "method" else f"(?P<{m.group(1)}>\\d+)")
        pos = m.end()
    return "".join(out) + re.escape(fmt[pos:])


def model_axes(cfg: Mapping[str, Any], model: str) -> dict[str, int]:
    """The wildcards of a ``{model}`` besides its run (``ddgan/T4`` → ``{"budget": 4}``; ``ddpm`` → ``{}``)."""
    fmt = family_of(cfg, run_of(model)).grid.model
    m = re.fullmatch(_pattern(fmt), model)
    if m is None:
        raise ValueError(f"model {model!r} does not follow its family's pattern {fmt!r}")
    return {k: int(v) for k, v in m.groupdict().items() if k != "method"}


def model_constraint() -> str:
    """The Snakemake constraint of ``{model}``: any family's model pattern (without named groups)."""
    formats = sorted({options_type(f).grid.model for f in names()})
    return "|".join(re.sub(r"\(\?P<\w+>", "(?:", _pattern(f)) for f in formats)


def all_outputs(cfg: Mapping[str, Any], stage: str) -> list[str]:
    """Every output path of a stage's cells under the plain params ``cfg``."""
    patterns = LAYOUT[stage].outputs.values()
    return [p.format(**wc) for wc in iter_wildcards(cfg, stage) for p in patterns]


def declared_outputs(cfg: Mapping[str, Any], stage: str) -> list[str]:
    """What the jobs of a stage declare to Snakemake and DVC under the plain params ``cfg``: a folder per job of a
    stage whose jobs hold many cells, else every cell's outputs."""
    patterns = LAYOUT[stage].declared.values()
    return [p.format(**job) for job, _ in iter_jobs(cfg, stage) for p in patterns]


def every_output(cfg: Mapping[str, Any]) -> list[str]:
    """Every declared output of the study (:func:`declared_outputs` of every stage)."""
    return [p for stage in LAYOUT for p in declared_outputs(cfg, stage)]


def report_inputs(cfg: Mapping[str, Any]) -> dict[str, list[str]]:
    """What the report reads: every cell's record, training logs and sample grids."""
    return {
        "eval": [p for p in all_outputs(cfg, "evaluate") if p.endswith("metrics.json")],
        "pairs": [p for p in all_outputs(cfg, "evaluate") if p.endswith("pairs.npz")],
        "nll": all_outputs(cfg, "nll"),
        "floor": all_outputs(cfg, "floor"),
        "solver_error": all_outputs(cfg, "solver_error"),
        "probe": all_outputs(cfg, "probe"),
        "train": [p for p in all_outputs(cfg, "train") if p.endswith(("train.json", "loss.csv"))],
        "samples": [p for p in all_outputs(cfg, "sample") if p.endswith(("sample.json", "grid.png"))],
    }


def report_dependencies(cfg: Mapping[str, Any]) -> dict[str, list[str]]:
    """What the report rule waits for: the declared outputs holding :func:`report_inputs` (a sampling or scoring
    job's folder, not the cells in it, which Snakemake cannot trace to their job)."""
    inputs = report_inputs(cfg)
    return {**{k: v for k, v in inputs.items() if k not in ("eval", "pairs", "samples")},
            "eval": declared_outputs(cfg, "evaluate"), "samples": declared_outputs(cfg, "sample")}
