"""Assemble ``reports/report.md`` and the self-contained ``reports/report.html``.

The report states what was run, what the numbers can and cannot be compared with, the results
with their uncertainty and cost, which published claims the run supports, contradicts or leaves
inconclusive, every failed cell with its error, and what produced each number.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import pandas as pd

from ..io import atomic_write_text
from .anchors import anchor_blocks
from .claims import DEFAULT_MATCH_MARGIN, Claim, evaluate_claims
from .render import Block, Bullets, Heading, Image, Paragraph, Table, to_html, to_markdown
from ..rows import COLUMNS, SchemaError
from .steps import RunAnswer, Settings, answer, excess_rows, steps_blocks
from .summary import NLL_TERMS, QUALITY_METRICS, missing, text
from .tables import SEEDS_NOTE, claims_tables, cost_tables, domain_table, failed_table, headline_tables, nll_blocks, \
    provenance_table, status_text

#: meta key → label in the configuration table. The first group is required.
REQUIRED_META: dict[str, str] = {
    "preset": "preset", "dataset": "dataset", "train_images": "training budget (images seen per model)",
    "n_samples": "N (generated images per cell)", "sampling_seeds": "sampling seeds", "train_seeds": "training seeds",
    "min_accuracy": "minimum domain-classifier accuracy",
}
OPTIONAL_META: dict[str, str] = {
    "methods": "methods", "network": "network", "train_batch_size": "training batch size",
    "budgets": "step budgets (NFE)", "samplers": "samplers", "spacings": "spacings",
    "reference": "reference cell", "nll_images": "NLL held-out images", "kid_subset_size": "KID subset size",
    "inception_weights": "Inception weights",
}

STUDY_INTRO = ("diffsteps asks how many denoising steps each kind of diffusion model needs. Every method is "
               "trained with one network, one training budget (counted in images seen) and one evaluation "
               "protocol, then sampled at each step budget; NFE counts network evaluations. Quality (FID, KID, "
               "precision, recall), the likelihood bound (bits/dim) and the cost are reported with their spread "
               "over seeds.")
NLL_NOTE = ("Bits/dim are upper bounds: the variational bound of the K-step ancestral chain with the stated "
            "reverse variance (β̃ or β), on held-out images. DDIM with η = 0 is deterministic and has no such "
            "bound; methods without a defined likelihood say 'not defined' with the reason. A continuous-time "
            "model (VDM) also has its T = ∞ bound (sampler 'continuous', no NFE). Each value is a Monte-Carlo "
            "estimate: 'draws' per image (of x_t per step of a K-step chain; of the time t and ε for VDM, "
            "stratified per image), ± its standard error over the images.")


class ReportError(ValueError):
    """The report's inputs are inconsistent (e.g. a required meta key is missing)."""


def meta_from_config(cfg: Any, network: str | None = None) -> dict[str, Any]:
    """The report's configuration summary from a :class:`diffsteps.config.StudyConfig`.

    ``network`` replaces the description built from ``cfg.model`` (e.g. to add the parameter count,
    which needs the image shape that only the data stage knows).
    """
    m, s, ev = cfg.model, cfg.sampling, cfg.evaluation
    ref = s.reference
    return {
        "preset": cfg.preset, "dataset": cfg.data.dataset, "methods": ", ".join(_run_text(cfg, run) for run in cfg.methods),
        "network": network or (f"UNet, width {m.channels}, levels {list(m.channel_mult)}, "
                               f"{m.num_res_blocks} res block(s) per level, attention at {list(m.attn_resolutions)}"),
        "train_images": cfg.train.images, "train_batch_size": cfg.train.batch_size,
        "train_seeds": ", ".join(map(str, cfg.train.seeds)) + (
            f"; also {', '.join(map(str, cfg.train.replicates.seeds))} for {', '.join(cfg.train.replicates.methods)}"
            if cfg.train.replicates.seeds else ""), "n_samples": s.n_samples, "sampling_seeds": list(s.seeds),
        "budgets": list(s.budgets), "samplers": ", ".join(s.samplers), "spacings": ", ".join(s.spacings),
        "reference": f"{ref.sampler}, {ref.spacing}, {ref.budget} NFE, for {', '.join(ref.methods)}",
        "nll_images": ev.nll.n_images, "kid_subset_size": ev.kid_subset_size,
        "inception_weights": _inception_setting(ev.inception),
        "min_accuracy": ev.domain.min_accuracy,
    }


def _run_text(cfg: Any, run: str) -> str:
    """A run as the configuration table names it: with the lists its family's grid trains one model per value of
    (``ddgan (a model per T ∈ [1, 4])``)."""
    options = cfg.method_config[run]
    axes = [key.rsplit(".", 1)[-1] for key in type(options).grid.models.values()]
    return run + "".join(f" (a model per {a} ∈ {list(getattr(options, a))})" for a in axes)


def unbounded_runs(cfg: Any) -> dict[str, str]:
    """The runs of the study with no bound job (:mod:`diffsteps.stages.nll` runs for ``evaluation.nll.methods``
    only), each with what the report says instead of a number: its family's declared reason, or that its bound
    was not asked for."""
    out = {}
    for run in cfg.methods:
        if run in cfg.evaluation.nll.methods:
            continue
        reason = cfg.method_config[run].nll_undefined_reason
        out[run] = (f"not defined — {reason}" if reason is not None
                    else "not computed — not one of evaluation.nll.methods")
    return out


def _inception_setting(inc: Any) -> str:
    if inc.weights is None:
        return "none (Inception metrics not computed)"
    cells = ", ".join(f"{k} {list(v)}" for k, v in (("samplers", inc.samplers), ("NFE", inc.nfe)) if v is not None)
    return (f"{inc.weights} (torch-fidelity inception-v3-compat, float32, offline); N = {inc.n or 'all'} per set, "
            f"{inc.n_ref or 'all'} training images; cells scored: {cells or 'all'}")


def _check_meta(meta: Mapping[str, Any]) -> None:
    absent = [k for k in REQUIRED_META if k not in meta]
    if absent:
        raise ReportError(f"report meta: missing key(s) {absent}; required keys are {list(REQUIRED_META)}")
    unknown = sorted(set(meta) - set(REQUIRED_META) - set(OPTIONAL_META))
    if unknown:
        raise ReportError(f"report meta: key {unknown[0]!r} is unknown; allowed keys are "
                          f"{list(REQUIRED_META) + list(OPTIONAL_META)}")
    try:
        float(meta["min_accuracy"])
    except (TypeError, ValueError) as exc:
        raise ReportError(f"report meta: min_accuracy = {meta['min_accuracy']!r} is invalid: expected a number") \
            from exc


def _config_table(meta: Mapping[str, Any]) -> Table:
    labels = {**REQUIRED_META, **OPTIONAL_META}
    rows = tuple((labels[k], ", ".join(map(str, v)) if isinstance(v, (list, tuple)) else text(v))
                 for k, v in sorted(meta.items(), key=lambda kv: list(labels).index(kv[0])))
    return Table(("setting", "value"), rows, "Configuration of this run")


def honesty_notes(df: pd.DataFrame, unreliable: Sequence[str], min_accuracy: float) -> list[str]:
    """What the numbers cannot be compared with, and what is missing, stated up front."""
    notes = []
    quality = df[df["metric"].isin(QUALITY_METRICS)]
    domain = quality[~quality["metric"].str.startswith("inception_") & quality["feature_extractor"].notna()]
    for extractor, n in sorted({(text(e), text(n)) for e, n in zip(domain["feature_extractor"], domain["n"])}):
        notes.append(f"FID/KID on '{extractor}' features at N={n} is a study-internal measure: it is NOT comparable "
                     "to published CIFAR-10 Inception FID (50k samples); compare only within one extractor and N.")
    inception = quality[quality["metric"].str.startswith("inception_") & (quality["metric"] != "inception_is")]
    if inception.empty:
        notes.append("Inception FID: not computed (no Inception rows in this run).")
    else:
        if inception["status"].eq("ok").any():
            notes.append("Inception FID is the standard one (torch-fidelity's inception-v3-compat in float32, with the "
                         "weights whose sha256 the tables name); at small N it is biased upwards and still not "
                         "comparable to 50k-sample published numbers. Compare cells only at equal N.")
        if not inception["status"].eq("ok").all():
            notes.append(f"Inception FID: {status_text(inception[inception['status'] != 'ok'])}.")
    score = quality[quality["metric"] == "inception_is"]
    if not score.empty and not score["status"].eq("ok").any():
        notes.append(f"Inception Score: {status_text(score)} (the converted FID weights end at pool3: there is no "
                     "ImageNet classifier to score with, so it is refused rather than computed).")
    if df["metric"].isin(NLL_TERMS).any():
        notes.append(NLL_NOTE)
    for name in unreliable:
        notes.append(f"Domain classifier {name} is UNRELIABLE (held-out accuracy below {min_accuracy:g}): its FID "
                     "may not reflect sample quality.")
    counts = df["status"].value_counts()
    if counts.empty:
        notes.append("The results table is empty: no stage produced a row.")
    else:
        notes.append("Rows by status: " + ", ".join(f"{k} {int(v)}" for k, v in sorted(counts.items()))
                     + ". Rows that are not ok are excluded from means and curves and listed below.")
    return notes


def _images(items: Mapping[str, Path] | Sequence[Path], kind: str) -> list[Image]:
    """Image blocks from ``{caption: path}`` or a list of paths (captioned by their cell folder)."""
    if isinstance(items, Mapping):
        pairs = list(items.items())
    else:
        pairs = [(_grid_caption(Path(p)), Path(p)) for p in items]
    for caption, path in pairs:
        if not Path(path).exists():
            raise ReportError(f"report {kind}: {path} ({caption!r}) does not exist")
    return [Image(Path(p), c, "640px" if kind == "figure" else "320px") for c, p in pairs]


def _grid_caption(path: Path) -> str:
    """``digits/ddpm/ddim-eta0-uniform/K10/train0-seed0`` from a grid under ``results/samples/``."""
    parts = path.parent.parts
    start = parts.index("samples") + 1 if "samples" in parts else max(0, len(parts) - 5)
    return "/".join(parts[start:]) or path.stem


def report_blocks(df: pd.DataFrame, figures: Mapping[str, Path] | Sequence[Path],
                  grids: Mapping[str, Path] | Sequence[Path], meta: Mapping[str, Any],
                  claims: Sequence[Claim] | None = None, steps: Settings | None = None,
                  match_margin: float = DEFAULT_MATCH_MARGIN, unbounded: Mapping[str, str] | None = None,
                  answers: Sequence[RunAnswer] | None = None) -> list[Block]:
    """The whole report as blocks, top-down: the answer (steps needed), the claims, the figures, then the
    detail tables, the setup and the caveats behind them. ``answers``: :func:`~.steps.answer` of ``df`` and
    ``steps``, when the caller has it."""
    min_accuracy = float(meta["min_accuracy"])
    domain, unreliable = domain_table(df, min_accuracy)
    if answers is None:
        answers = answer(df, steps) if steps is not None else []
    # the claims also judge each run's distance to its own converged limit (the flow-matching claim)
    judged = pd.concat([df, excess_rows(df, answers, steps)], ignore_index=True) if answers else df
    opening = steps_blocks(df, steps, answers) if steps is not None else [
        Paragraph("Steps-needed settings not given.")]
    blocks: list[Block] = [
        Heading(f"diffsteps report — preset '{meta['preset']}' on {meta['dataset']}", 1),
        Paragraph(STUDY_INTRO),
        Heading("How many steps does each method need?"), *opening,
        Heading("Published claims"), *claims_tables(evaluate_claims(judged, claims, match_margin)),
        Heading("Figures"), *(_images(figures, "figure") or [Paragraph("No figures.")]),
        Heading("Read this first"), Bullets(tuple(honesty_notes(df, unreliable, min_accuracy))), _config_table(meta),
        Heading("Sample quality"), Paragraph(SEEDS_NOTE),
        *(headline_tables(df) or [Paragraph("No quality rows in this run.")]),
        Heading("Likelihood bound (bits/dim)"), Paragraph(NLL_NOTE), *nll_blocks(df, unbounded or {}),
        Heading("Cost"), *cost_tables(df),
        Heading("Domain feature extractor"), domain,
        Heading("Failed cells"), failed_table(df),
        Heading("Sample grids"), *(_images(grids, "grid") or [Paragraph("No sample grids.")]),
        Heading("Published anchors (CIFAR-10 / published — not comparable)"), *anchor_blocks(),
        Heading("Provenance"), provenance_table(df),
    ]
    commits = {text(c) for c in df["git_commit"] if not missing(c)}
    if len(commits) > 1:
        blocks.append(Paragraph(f"Warning: the rows come from {len(commits)} different git commits: "
                                f"{', '.join(sorted(commits))}."))
    return blocks


def build_report(df: pd.DataFrame, figures: Mapping[str, Path] | Sequence[Path],
                 grids: Mapping[str, Path] | Sequence[Path], out_dir: str | Path,
                 meta: Mapping[str, Any], claims: Sequence[Claim] | None = None, steps: Settings | None = None,
                 match_margin: float = DEFAULT_MATCH_MARGIN, unbounded: Mapping[str, str] | None = None,
                 answers: Sequence[RunAnswer] | None = None) -> tuple[Path, Path]:
    """Write ``report.md`` and ``report.html`` into ``out_dir`` (atomically) and return their paths; ``unbounded``:
    the runs with no bound job and what to say of each (:func:`unbounded_runs`)."""
    _check_meta(meta)
    missing_cols = [c for c in COLUMNS if c not in df.columns]
    if missing_cols:
        raise SchemaError(f"build_report: the results table lacks the schema columns {missing_cols}")
    out_dir = Path(out_dir)
    blocks = report_blocks(df, figures, grids, meta, claims, steps, match_margin, unbounded, answers)
    md_path, html_path = out_dir / "report.md", out_dir / "report.html"
    atomic_write_text(md_path, to_markdown(blocks, out_dir))
    atomic_write_text(html_path, to_html(blocks, f"diffsteps report — {meta['preset']} on {meta['dataset']}"))
    return md_path, html_path
