import json

import pandas as pd
import pytest

from diffsteps.reporting.aggregate import ReportInputError, collect, read_csv, write_csv
from diffsteps.rows import COLUMNS

from conftest import record, write


def test_failed_record_without_rows_becomes_one_failed_row_with_its_error_and_cell(results):
    failed = results[results["status"] == "failed"]
    assert len(failed) == 2
    row = failed[failed["sampler"].notna()].iloc[0]
    assert row["reason"] == "RuntimeError: sampler diverged (NaN at step 3)"
    assert (row["sampler"], row["spacing"], row["nfe"], row["seed"]) == ("ancestral-beta", "quad", 10, 0)
    assert pd.isna(row["value"]) and row["source"].endswith("failed/metrics.json")


def test_failed_record_cell_keeps_only_schema_keys(results):
    row = results[results["source"].str.endswith("train1/train.json")].iloc[0]
    assert (row["status"], row["method"], row["train_seed"]) == ("failed", "ddpm", 1)
    assert row["reason"] == "FloatingPointError: loss is NaN"


def test_provenance_columns_are_filled_from_the_record(results):
    assert set(results["git_commit"]) == {"abc123"}
    assert set(results["versions"]) == {"diffsteps=0.1.0 python=3.12.0 torch=2.11.0"}
    assert set(results["device"]) == {"cpu (test)"}


def test_collect_is_deterministic_whatever_the_path_order(records):
    pd.testing.assert_frame_equal(collect(records), collect(list(reversed(records))))
    assert list(collect(records).columns) == list(COLUMNS)


def test_csv_round_trip_keeps_values_and_dtypes(results, tmp_path):
    path = tmp_path / "reports" / "results.csv"
    write_csv(results, path)
    pd.testing.assert_frame_equal(read_csv(path), results)
    assert not list(path.parent.glob(".*.tmp"))  # the atomic write left no temporary file


def test_failed_record_with_partial_rows_keeps_them_and_adds_the_failure(tmp_path):
    rows = [dict(dataset="d", method="m", metric="fid", value=1.0)]
    path = write(tmp_path / "r.json", record(rows, status="failed", error="OOM", cell={"dataset": "d", "method": "m"}))
    df = collect([path])
    assert df["status"].tolist() == ["ok", "failed"] and df["reason"].tolist() == [None, "OOM"]


def test_row_fields_override_record_provenance(tmp_path):
    rows = [dict(metric="fid", value=1.0, device="cuda:0 (H100)")]
    df = collect([write(tmp_path / "r.json", record(rows))])
    assert df["device"].iloc[0] == "cuda:0 (H100)" and df["git_commit"].iloc[0] == "abc123"


@pytest.mark.parametrize("content, match", [
    ("{not json", "not valid JSON"),
    (json.dumps([1, 2]), "expected a JSON object"),
    (json.dumps({"rows": [], "status": "done"}), "'status' = 'done' is invalid"),
    (json.dumps({"rows": [{"metric": "fid", "value": 1, "K": 10}], "status": "ok"}), "'K' = 10 is unknown"),
])
def test_malformed_records_raise_naming_the_file(tmp_path, content, match):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(ReportInputError, match=match) as err:
        collect([path])
    assert str(path) in str(err.value)


def test_missing_record_is_reported(tmp_path):
    with pytest.raises(ReportInputError, match="does not exist"):
        collect([tmp_path / "absent.json"])
