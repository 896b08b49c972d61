"""Gather the JSON records of every stage into one tidy table (``reports/results.csv``).

A record is a JSON object ``{"rows": [...], "status": "ok"|"failed", "error": str|None,
"provenance": {...}, "cell": {...}, ...stage-specific keys}``. Its rows follow
:mod:`diffsteps.rows`. A failed stage that could not produce its rows still appears in
the table: as one ``failed`` row carrying the record's error and the cell identity it names (the
cell's keys that are schema columns), so that the report lists it instead of silently missing it.
"""

from __future__ import annotations

import io as _stdio
import json
from pathlib import Path
from typing import Any, Iterable, Mapping

import pandas as pd

from ..io import atomic_write_text
from ..rows import COLUMN_SPEC, COLUMNS, CONTEXT_COLUMNS, IDENTITY_COLUMNS, PROVENANCE_COLUMNS, SchemaError, \
    make_row, versions_string
from .schema import to_frame

#: Deterministic row order: what was measured first, then in which context, then where it came from.
SORT_COLUMNS: tuple[str, ...] = IDENTITY_COLUMNS + tuple(c for c in CONTEXT_COLUMNS if c not in IDENTITY_COLUMNS) \
    + ("status", "source")


class ReportInputError(ValueError):
    """An input of the report (a JSON record, the results CSV) is malformed; the message names the file."""


def _provenance_columns(record: Mapping[str, Any], path: Path) -> dict[str, Any]:
    """The record's provenance as row columns (git commit, compact versions including Python, device)."""
    prov = record.get("provenance") or {}
    if not isinstance(prov, Mapping):
        raise ReportInputError(f"{path}: key 'provenance' = {prov!r} is invalid: expected an object with "
                               "git_commit, versions, device, python")
    versions = dict(prov.get("versions") or {})
    if prov.get("python"):
        versions["python"] = prov["python"]
    return {"device": prov.get("device"), "git_commit": prov.get("git_commit"),
            "versions": versions_string(versions) if versions else None}


def record_rows(record: Any, path: Path) -> list[dict[str, Any]]:
    """The schema rows of one parsed record, with provenance filled in and the source path set."""
    if not isinstance(record, Mapping):
        raise ReportInputError(f"{path}: expected a JSON object with 'rows' and 'status', got {type(record).__name__}")
    status = record.get("status")
    if status not in ("ok", "failed"):
        raise ReportInputError(f"{path}: key 'status' = {status!r} is invalid: expected 'ok' or 'failed'")
    rows, cell = record.get("rows", []), record.get("cell") or {}
    if not isinstance(rows, list):
        raise ReportInputError(f"{path}: key 'rows' = {rows!r} is invalid: expected a list of row objects")
    if not isinstance(cell, Mapping):
        raise ReportInputError(f"{path}: key 'cell' = {cell!r} is invalid: expected an object of row keys")
    prov = _provenance_columns(record, path)
    out = []
    try:
        for i, raw in enumerate(rows):
            if not isinstance(raw, Mapping):
                raise SchemaError(f"rows[{i}] = {raw!r} is invalid: expected an object")
            out.append(make_row(**{**raw, "source": str(path)}))
        # A failure must be visible even when the stage salvaged some rows: add the failed cell
        # unless one of the rows already reports it.
        if status == "failed" and not any(r["status"] == "failed" for r in out):
            error = record.get("error") or "the stage failed without an error message"
            # A stage's cell may also hold its own bookkeeping (image_shape, budget): keep the row keys.
            identity = {k: v for k, v in cell.items() if k in COLUMNS and k not in ("value", "status", "reason")}
            out.append(make_row(**identity, status="failed", reason=str(error), source=str(path)))
    except SchemaError as exc:
        raise ReportInputError(f"{path}: {exc}") from exc
    for row in out:
        for col in PROVENANCE_COLUMNS:
            if row[col] is None:
                row[col] = prov[col]
    return out


def sort_results(df: pd.DataFrame) -> pd.DataFrame:
    """Sort rows by :data:`SORT_COLUMNS` (missing values last, stable) and renumber the index."""
    return df.sort_values(list(SORT_COLUMNS), na_position="last", kind="mergesort").reset_index(drop=True)


def collect(paths: Iterable[str | Path]) -> pd.DataFrame:
    """Read every JSON record in ``paths`` into one tidy, deterministically sorted DataFrame.

    Raises :class:`ReportInputError` naming the file when a record is missing, not JSON, or holds
    rows that do not follow the schema.
    """
    rows: list[dict[str, Any]] = []
    for path in map(Path, paths):
        try:
            record = json.loads(path.read_text())
        except FileNotFoundError as exc:
            raise ReportInputError(f"{path}: the result record does not exist") from exc
        except json.JSONDecodeError as exc:
            raise ReportInputError(f"{path}: not valid JSON ({exc})") from exc
        rows.extend(record_rows(record, path))
    return sort_results(to_frame(rows))


def write_csv(df: pd.DataFrame, path: str | Path) -> None:
    """Write the results table atomically, columns in schema order."""
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise ReportInputError(f"{path}: cannot write results without the schema columns {missing}")
    atomic_write_text(path, df.loc[:, list(COLUMNS)].to_csv(index=False, lineterminator="\n"))


def read_csv(path: str | Path) -> pd.DataFrame:
    """Read a results CSV written by :func:`write_csv`, re-validating every row against the schema."""
    path = Path(path)
    if not path.exists():
        raise ReportInputError(f"{path}: the results table does not exist")
    text_columns = {c: str for c, (dtype, _) in COLUMN_SPEC.items() if dtype == "object"}
    # Only an empty cell is missing: a reason such as "NA" or "None" must survive the round trip.
    df = pd.read_csv(_stdio.StringIO(path.read_text()), dtype=text_columns, keep_default_na=False, na_values=[""])
    if list(df.columns) != list(COLUMNS):
        raise ReportInputError(f"{path}: columns {list(df.columns)} do not match the schema columns {list(COLUMNS)}")
    try:
        rows = [make_row(**r) for r in df.to_dict("records")]
    except SchemaError as exc:
        raise ReportInputError(f"{path}: {exc}") from exc
    return to_frame(rows)
