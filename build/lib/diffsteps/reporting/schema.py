"""Result rows (:mod:`diffsteps.rows`) as a pandas frame with the schema's columns and dtypes."""

from __future__ import annotations

from typing import Any, Mapping

import pandas as pd

from ..rows import COLUMN_SPEC, COLUMNS, is_missing


def empty_frame() -> pd.DataFrame:
    """A frame with every schema column and no rows."""
    return to_frame([])


def to_frame(rows: list[Mapping[str, Any]]) -> pd.DataFrame:
    """Rows (already built by :func:`make_row`) to a DataFrame with the schema's columns and dtypes.

    Strings are kept as ``object`` with ``None`` for missing values, so that the frame behaves the
    same under pandas 2 and pandas 3 (whose default string dtype would turn None into NaN).
    """
    df = pd.DataFrame(list(rows), columns=list(COLUMNS))
    for col, (dtype, _) in COLUMN_SPEC.items():
        if dtype == "object":
            df[col] = pd.Series([None if is_missing(v) else v for v in df[col]], index=df.index, dtype=object)
        else:
            df[col] = df[col].astype(dtype)
    return df
