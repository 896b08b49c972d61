from diffsteps.reporting.schema import to_frame
from diffsteps.rows import make_row


def test_to_frame_keeps_none_in_text_columns_and_nullable_ints():
    df = to_frame([make_row(metric="fid", value=1.0, nfe=10), make_row(status="failed", reason="x")])
    assert df["sampler"].tolist() == [None, None]
    assert str(df["nfe"].dtype) == "Int64" and df["nfe"].isna().tolist() == [False, True]
