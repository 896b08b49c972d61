import math

import pytest

from diffsteps.rows import COLUMNS, SchemaError, is_missing, make_row, versions_string


def test_make_row_fills_every_column_with_none_and_defaults_status_ok():
    row = make_row(dataset="digits", metric="fid", value=3, nfe=10.0)
    assert list(row) == list(COLUMNS)
    assert row["status"] == "ok" and row["value"] == 3.0 and row["nfe"] == 10
    assert all(row[c] is None for c in COLUMNS if c not in ("dataset", "metric", "value", "nfe", "status"))


def test_make_row_rejects_unknown_key_naming_it_and_the_allowed_keys():
    with pytest.raises(SchemaError, match=r"'steps' = 10 is unknown: allowed keys are \[.*'nfe'"):
        make_row(metric="fid", value=1.0, steps=10)


@pytest.mark.parametrize("kw, match", [
    ({"status": "broken"}, "'status' = 'broken' is invalid: expected one of"),
    ({"metric": "fid"}, "'value' = None is invalid for status 'ok'"),
    ({"metric": "fid", "value": math.nan}, "expected a finite number"),
    ({"metric": "fid", "value": 1.0, "status": "failed"}, "only ok rows carry a value"),
    ({"metric": "fid", "value": 1.0, "nfe": 2.5}, "'nfe' = 2.5 is invalid: expected an integer"),
    ({"metric": "fid", "value": "12"}, "'value' = '12' is invalid: expected a number"),
    ({"metric": 3, "value": 1.0}, "'metric' = 3 is invalid: expected a string"),
])
def test_make_row_rejects_invalid_values(kw, match):
    with pytest.raises(SchemaError, match=match):
        make_row(**kw)


def test_schema_error_is_a_value_error():
    assert issubclass(SchemaError, ValueError)


def test_versions_mapping_becomes_a_sorted_compact_string():
    assert versions_string({"torch": "2.11.0", "diffsteps": "0.1.0"}) == "diffsteps=0.1.0 torch=2.11.0"
    assert make_row(metric="fid", value=1, versions={"b": "2", "a": "1"})["versions"] == "a=1 b=2"


def test_missing_values_are_none_nan_and_pandas_na():
    import pandas as pd

    assert is_missing(None) and is_missing(float("nan")) and is_missing(pd.NA)
    assert not is_missing(0.0) and not is_missing("") and not is_missing(0)
