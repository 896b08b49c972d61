"""The report's tables, built from the tidy results as display strings.

A cell never shows a blank or a zero for a number that does not exist: it shows the status and
its reason ("not defined: …", "failed: …", "not computed: …"). Means are over seeds, with the
spread beside them and the count of excluded (non-ok) rows in brackets.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from .claims import LABELS, VERDICT_COLUMNS, format_interval, overall_verdict
from .render import Block, Bullets, Table
from ..rows import CONTEXT_COLUMNS, FLOOR_SAMPLER, SEED_COLUMNS
from .summary import NLL_TERMS, QUALITY_METRICS, excluded_counts, extractor_label, format_estimate, metric_label, \
    missing, ok_rows, sort_key, text

#: (column, header) of the columns that name one sampling cell in a table row.
CELL_INDEX: tuple[tuple[str, str], ...] = (("method", "method"), ("sampler", "sampler"), ("spacing", "spacing"),
                                           ("noise", "noise"), ("nfe", "NFE"))
SAMPLING_COST_METRICS = ("sampling_seconds_per_image", "sampling_peak_memory_mb")
TRAINING_COST_METRICS = ("training_seconds", "training_peak_memory_mb", "train_loss_final")


def status_text(rows: pd.DataFrame, reasons: bool = True) -> str:
    """``not defined: <reason>`` (etc.) for rows without an ok value, one entry per distinct reason.

    With ``reasons=False`` only the statuses (``not defined``), for cells beside one that gives the reason.
    """
    pairs = sorted({(str(s).replace("_", " "), text(r, "") if reasons else "")
                    for s, r in zip(rows["status"], rows["reason"])})
    # A reason that already starts with its status ("not computed: no Inception weights") is not prefixed twice.
    return "; ".join(r if r.startswith(s) else f"{s}: {r}" if r else s for s, r in pairs)


def estimate_cell(rows: pd.DataFrame) -> str:
    """Mean ± sd over the ok rows of one metric, plus ``[k failed]``-style counts of the rest."""
    if rows.empty:
        return "—"
    ok = ok_rows(rows)
    if ok.empty:
        return status_text(rows)
    values = ok["value"].astype(float)
    models = ok.assign(value=values).groupby("train_seed", dropna=False)["value"]
    if models.ngroups > 1:
        # two sources of spread, kept apart: sampling seeds (pooled sd within each model) and training seeds
        # (sd of the per-model means)
        within = float(np.sqrt(models.var(ddof=1).dropna().mean()))
        cell = format_estimate(values.mean(), within, len(values) if not np.isnan(within) else 1, ok["std"].mean())
        cell += f" (training seeds: sd {models.mean().std(ddof=1):.2g} over {models.ngroups})"
    else:
        cell = format_estimate(values.mean(), values.std(ddof=1), len(values), ok["std"].mean())
    counts = excluded_counts(rows)
    if counts:
        cell += " [" + ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in counts.items()) + "]"
    return cell


def pivot_table(rows: pd.DataFrame, index: Sequence[tuple[str, str]], metrics: Sequence[str], caption: str,
                extras: Mapping[str, Callable[[pd.DataFrame], str]] | None = None, n: Any = None) -> Table:
    """One table row per value of the ``index`` columns, one column per metric (plus ``extras``).

    The floor row (sampler ``real-data``) comes first. A metric with no row in a table row shows the
    row's status (the reason is in the cell that has rows) when nothing in that row is ok, e.g. a
    method whose NLL is not defined.
    """
    cols = [c for c, _ in index]
    records = []
    groups = list(rows.groupby(cols, dropna=False, sort=False)) if not rows.empty else []
    groups.sort(key=lambda kg: (kg[1]["sampler"].iloc[0] != FLOOR_SAMPLER, tuple(sort_key(v) for v in kg[0])))
    for key, group in groups:
        record = {header: text(v) for (_, header), v in zip(index, key)}
        whole = status_text(group, reasons=False) if ok_rows(group).empty else "—"
        shown: set[str] = set()
        for metric in metrics:
            sub = group[group["metric"] == metric]
            cell = estimate_cell(sub) if not sub.empty else whole
            if cell in shown and not sub.empty and ok_rows(sub).empty:
                cell = status_text(sub, reasons=False)  # one reason per table row; later cells name the status
            shown.add(cell)
            record[metric_label(metric, n)] = cell
        record["seeds"] = str(len(ok_rows(group).drop_duplicates(list(SEED_COLUMNS))))
        for header, fn in (extras or {}).items():
            record[header] = fn(group)
        records.append(record)
    columns = [h for _, h in index] + [metric_label(m, n) for m in metrics] + ["seeds"] + list(extras or {})
    return Table.from_records(records, columns, caption)


def _context_caption(key: tuple, n_ref: pd.Series, what: str) -> str:
    """The context a quality table belongs to, with the size of the training statistics behind its distances
    (FID depends on it as well as on N; nearest neighbours are searched among those images)."""
    dataset, extractor, weights, n = key
    refs = sorted({int(v) for v in n_ref if not missing(v)})
    against = f" against {', '.join(map(str, refs))} training images" if refs else ""
    return f"{text(dataset)} — {extractor_label(extractor, n)}{against} (weights sha256 {text(weights)[:12]}): {what}"


SEEDS_NOTE = ("One table per feature extractor, weights and N; the standard Inception table, where computed, is the "
              "headline. Each cell is the mean ± sd over sampling seeds (a single seed shows its value ± the row's "
              "own std: KID's over subsets, the memorised share's binomial standard error); several training seeds "
              "add the sd of the per-model means, labelled. 'Memorised share': the share of samples nearer their "
              "nearest training image (in the same features) than the held-out split's typical nearest-training "
              "distance; the real-data row shows the level of fresh data, copying pushes it towards 1. FID and KID "
              "carry their N (FID@N): they are compared only at equal N, against the real-data row at that N.")


def headline_tables(df: pd.DataFrame) -> list[Table]:
    """One quality table per (dataset, feature extractor, weights, N), the floor row first in each.

    Standard Inception tables come first: they are the headline wherever they were computed.
    """
    rows = df[df["metric"].isin(QUALITY_METRICS)]
    groups = [(key, g) for key, g in rows.groupby(list(CONTEXT_COLUMNS), dropna=False, sort=True)
              if set(g["status"]) != {"not_computed"}]  # e.g. no Inception weights: said once in the report's notes
    groups.sort(key=lambda kg: not kg[1]["metric"].str.startswith("inception_").any())
    accuracy = df[(df["metric"] == "domain_accuracy") & df["reason"].fillna("").str.startswith("unreliable")]
    unreliable = set(zip(accuracy["feature_extractor"], accuracy["weights_sha256"]))
    tables = []
    for i, (key, group) in enumerate(groups):
        metrics = [m for m in QUALITY_METRICS if m in set(group["metric"])]
        what = ("HEADLINE — " if i == 0 else "") + "mean ± sd over sampling seeds; real data first"
        if (key[1], key[2]) in unreliable:
            what = "UNRELIABLE features (the classifier's held-out accuracy is below the minimum) — " + what
        tables.append(pivot_table(group, CELL_INDEX, metrics, _context_caption(key, group["n_ref"], what),
                                  n=key[-1]))
    return tables


def nll_blocks(df: pd.DataFrame, unbounded: Mapping[str, str] = MappingProxyType({})) -> list[Block]:
    """Terms of the variational bound in bits/dim, for the cells where it is defined. A run with no bound job
    (``unbounded``: run → what to say, from its family's declaration) gets one line, and so do the cells of a
    bounded run that its family does not define, with the reason, instead of one row per cell."""
    rows = df[df["metric"].isin(NLL_TERMS)]
    undefined = rows[rows["status"] == "not_defined"]
    lines = [f"{text(run)}: {what}" for run, what in unbounded.items()]
    for (method, reason), part in undefined.groupby(["method", "reason"], dropna=False, sort=False):
        cells = part.drop_duplicates(["sampler", "spacing", "nfe", "train_seed"])
        lines.append(f"{text(method)}: not defined ({len(cells)} bound cells) — {text(reason)}")
    table = pivot_table(rows[rows["status"] != "not_defined"], (("dataset", "dataset"),) + CELL_INDEX, NLL_TERMS,
                        "Upper bound on the NLL (bits/dim) of the held-out split: prior + recon + diffusion = total; "
                        "± is the standard error over images for one seed, else the sd over seeds",
                        {"images": lambda g: ", ".join(sorted({text(n) for n in g["n"] if not missing(n)})) or "—",
                         "draws": lambda g: ", ".join(sorted({text(n) for n in g["draws"] if not missing(n)})) or "—"})
    return [table, *([Bullets(tuple(lines))] if lines else [])]


def _devices(group: pd.DataFrame) -> str:
    return ", ".join(sorted({text(d) for d in group["device"] if not missing(d)})) or "—"


def cost_tables(df: pd.DataFrame) -> list[Table]:
    """Sampling cost per cell and training cost per model, each with the device that produced it."""
    sampling = df[df["metric"].isin(SAMPLING_COST_METRICS)]
    training = df[df["metric"].isin(TRAINING_COST_METRICS)]
    return [
        pivot_table(sampling, (("dataset", "dataset"),) + CELL_INDEX, SAMPLING_COST_METRICS,
                    "Sampling cost: mean ± sd over seeds", {"device": _devices}),
        pivot_table(training, (("dataset", "dataset"), ("method", "method"), ("noise", "noise"),
                               ("nfe", "T (a model per T, DDGAN)"), ("train_seed", "train seed")), TRAINING_COST_METRICS,
                    "Training cost per model", {"device": _devices}),
    ]


def domain_table(df: pd.DataFrame, min_accuracy: float) -> tuple[Table, list[str]]:
    """Held-out accuracy of each domain classifier, and the names of the unreliable ones."""
    records, unreliable = [], []
    for _, r in df[df["metric"] == "domain_accuracy"].iterrows():
        if r["status"] != "ok":
            flag = status_text(r.to_frame().T)
        elif r["value"] < min_accuracy:
            flag = f"UNRELIABLE: below the minimum accuracy {min_accuracy:g}"
            unreliable.append(f"{text(r['dataset'])} / {text(r['feature_extractor'])}")
        else:
            flag = f"ok (≥ {min_accuracy:g})"
        records.append({"dataset": r["dataset"], "feature extractor": r["feature_extractor"],
                        "weights sha256": text(r["weights_sha256"])[:12],
                        "held-out accuracy": "—" if missing(r["value"]) else f"{r['value']:.4f}",
                        "images": r["n"], "assessment": flag})
    columns = ("dataset", "feature extractor", "weights sha256", "held-out accuracy", "images", "assessment")
    return Table.from_records(records, columns, "Domain feature extractor (classifier) on the held-out split"), \
        unreliable


def claims_tables(verdicts: pd.DataFrame) -> list[Table]:
    """The evaluated claims: a summary with one overall verdict per claim (and per run, for claims
    judged per run, e.g. one per θ0), then one table per claim with a row per comparison."""
    if verdicts.empty:
        return [Table.from_records([], ("claim", "verdicts"), "No claims were evaluated.")]
    summary = []
    for (claim, run), group in verdicts.groupby(["claim", "run"], sort=False):
        labels = [v if v in LABELS else "not evaluated" for v in group["verdict"]]
        counts = pd.Series(labels).value_counts()
        summary.append({"claim": claim, "run": run or "—", "overall": overall_verdict(labels),
                        "comparisons": ", ".join(f"{k} {counts[k]}" for k in (*LABELS, "not evaluated") if k in counts)})
    tables = [Table.from_records(summary, ("claim", "run", "overall", "comparisons"),
                                 "Claims at a glance. Each comparison (one per sampler, chain and NFE, and per feature "
                                 "context) is judged by STUDY.md's rule; 'overall' says supported (or contradicted) "
                                 "only when every judged comparison is, 'in k of n' when only some are, mixed when "
                                 "both occur. Details below")]
    columns = [c for c in VERDICT_COLUMNS if c not in ("claim", "source")]
    for claim, group in verdicts.groupby("claim", sort=False):
        records = []
        for r in group.to_dict("records"):
            diff = r["difference (a − b)"]
            records.append({**r, "run": r["run"] or "—", "difference (a − b)": "—" if missing(diff) else f"{diff:.4g}",
                            "95% interval": format_interval(r["95% interval"]),
                            "n_a": text(r["n_a"]), "n_b": text(r["n_b"]), "note": text(r["note"], "")})
        tables.append(Table.from_records(records, columns, f"{claim} — source: {group['source'].iloc[0]}. Judged by "
                                         "STUDY.md's rule: the 95% Welch interval of the difference over the claim's "
                                         "unit of replication (training runs for a method claim) excludes zero with "
                                         "the claimed sign; 'matches' is an equivalence test: the interval lies inside "
                                         "±δ, δ = evaluation.claims.match_margin × the reference side's mean"))
    return tables


def describe_cell(row: Mapping[str, Any]) -> str:
    """``dataset / method / sampler / spacing / NFE 10 / train 0 / seed 1 / fid`` for the fields present."""
    parts = [text(row.get(c), "") for c in ("dataset", "method", "sampler", "spacing", "variance", "noise")]
    for col, label in (("eta", "η="), ("nfe", "NFE "), ("train_seed", "train "), ("seed", "seed ")):
        if not missing(row.get(col)):
            parts.append(f"{label}{text(row[col])}")
    parts.append(text(row.get("metric"), ""))
    return " / ".join(p for p in parts if p) or "(no cell identity recorded)"


def failed_table(df: pd.DataFrame) -> Table:
    failed = df[df["status"] == "failed"]
    records = [{"cell": describe_cell(r), "error": text(r["reason"], "(no error message)"), "record": r["source"]}
               for r in failed.to_dict("records")]
    return Table.from_records(records, ("cell", "error", "record"), f"{len(records)} failed row(s)")


def provenance_table(df: pd.DataFrame) -> Table:
    records = []
    cols = ["git_commit", "versions", "device"]
    for key, group in df.groupby(cols, dropna=False, sort=True):
        records.append({**{c: text(v) for c, v in zip(cols, key)}, "rows": str(len(group))})
    return Table.from_records(records, ("git_commit", "versions", "device", "rows"),
                              "What produced the rows (git commit, package versions, device)")
