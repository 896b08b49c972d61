import math

import pandas as pd
import pytest
from scipy import stats

from diffsteps.reporting.claims import CLAIMS, AtMost, Claim, Where, evaluate_claims, verdict
from diffsteps.reporting.schema import to_frame
from diffsteps.rows import make_row

T975_DF4 = 2.7764451051977987  # t quantile 0.975 with 4 degrees of freedom (tables)
T975_DF2 = 4.302652729911275


def test_clear_difference_in_the_claimed_direction_is_supported():
    # means 2 and 5, variances 1 and 1: se = sqrt(2/3), Welch dof = 4
    v = verdict([1, 2, 3], [4, 5, 6], "less")
    half = T975_DF4 * math.sqrt(2 / 3)
    assert v.label == "supported" and v.diff_mean == pytest.approx(-3)
    assert (v.ci_low, v.ci_high) == pytest.approx((-3 - half, -3 + half))
    assert (v.n_a, v.n_b) == (3, 3)


def test_clear_difference_in_the_opposite_direction_is_contradicted():
    assert verdict([1, 2, 3], [4, 5, 6], "greater").label == "contradicted"
    assert verdict([4, 5, 6], [1, 2, 3], "greater").label == "supported"


def test_interval_containing_zero_is_inconclusive():
    v = verdict([1, 3, 5], [2, 4, 6], "less")  # diff −1, se = sqrt(8/3), dof 4
    half = T975_DF4 * math.sqrt(8 / 3)
    assert v.label == "inconclusive" and (v.ci_low, v.ci_high) == pytest.approx((-1 - half, -1 + half))


def test_welch_interval_with_unequal_variances_and_sizes():
    a, b = [10, 12], [1, 2, 3, 4]
    va, vb = 2 / 2, (5 / 3) / 4  # sample variance / n
    dof = (va + vb) ** 2 / (va ** 2 / 1 + vb ** 2 / 3)
    half = stats.t.ppf(0.975, dof) * math.sqrt(va + vb)
    v = verdict(a, b, "greater")
    assert (v.ci_low, v.ci_high) == pytest.approx((8.5 - half, 8.5 + half))
    ref = stats.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
    assert (v.ci_low, v.ci_high) == pytest.approx((ref.low, ref.high))
    assert v.label == "supported"


def test_fewer_than_two_seeds_on_either_side_is_inconclusive():
    v = verdict([1.0], [5, 6, 7], "less")
    assert v.label == "inconclusive" and v.note == "too few seeds" and (v.n_a, v.n_b) == (1, 3)
    assert math.isnan(v.ci_low) and v.diff_mean == pytest.approx(-5)


def test_matches_is_an_equivalence_test_with_the_margin():
    """Supported when the difference's 95% interval lies inside ±δ (δ = margin × b's mean), contradicted when it
    lies wholly outside, inconclusive otherwise — overlapping intervals are not enough."""
    v = verdict([10.0, 10.1, 9.9], [10.0, 10.05, 9.95], "matches", 0.1)
    assert v.label == "supported" and "±δ = ±1" in v.note
    assert verdict([1, 2, 3], [10, 11, 12], "matches", 0.1).label == "contradicted"
    # a: 2 ± 4.303/√3 = [−0.48, 4.48], b: 3 ± the same: the intervals overlap, the difference [−3.3, 1.3] is not
    # within ±0.3 nor outside it
    assert verdict([1, 2, 3], [2, 3, 4], "matches", 0.1).label == "inconclusive"
    assert verdict([1, 2, 3], [2, 3, 4], "matches", 5.0).label == "supported"  # δ = 15


def test_no_spread_gives_a_point_interval():
    v = verdict([1, 1], [2, 2], "less")
    assert (v.ci_low, v.ci_high) == (-1, -1) and v.label == "supported"


@pytest.mark.parametrize("a, b, claim, match", [([1, 2], [3, 4], "better", "claim = 'better'"),
                                                ([1, math.nan], [3, 4], "less", "must be finite")])
def test_verdict_rejects_bad_input(a, b, claim, match):
    with pytest.raises(ValueError, match=match):
        verdict(a, b, claim)


def test_claims_table_judges_the_synthetic_study(results):
    table = evaluate_claims(results)
    assert len(table) >= len(CLAIMS)  # nothing dropped
    ddim = table[table["claim"].str.startswith("DDIM (η=0) has lower FID than ancestral sampling with σ²=β̃")]
    assert ddim["verdict"].tolist() == ["supported", "supported"]  # at NFE 10 and 20
    assert ddim["context"].str.contains("domain classifier, N=360").all()
    missing = table[table["claim"].str.startswith("1000-step DDPM")]
    expected = "not evaluated: no fid rows match side a (family = ddpm, sampler = ancestral-beta, nfe = 1000)"
    assert missing["verdict"].iloc[0] == expected


def _fid(sampler, seed, value, status="ok", nfe=10, spacing="uniform", method="ddpm", family="ddpm", noise="gaussian",
         train_seed=None):
    return make_row(dataset="d", method=method, family=family, noise=noise, sampler=sampler, spacing=spacing, nfe=nfe,
                    seed=seed, train_seed=train_seed, metric="fid",
                    value=value if status == "ok" else None, status=status,
                    reason=None if status == "ok" else "diverged", feature_extractor="x", n=10)


CLAIM = Claim("a < b", "test", "fid", "less", Where(sampler="a"), Where(sampler="b"), ("nfe",), unit="sampler")


def test_side_with_only_failed_rows_is_not_evaluated_with_the_counts():
    df = to_frame([_fid("a", 0, 1.0), _fid("a", 1, 2.0), _fid("b", 0, None, "failed"), _fid("b", 1, None, "failed")])
    (row,) = evaluate_claims(df, [CLAIM]).to_dict("records")
    assert row["verdict"] == "not evaluated: no ok fid rows for side b (excluded (status not ok): 2 (failed 2))"


def test_side_pooling_two_variants_per_seed_is_not_evaluated():
    rows = [_fid("a", s, 1.0 + s) for s in (0, 1)] + [_fid("b", s, 5.0 + s, spacing=sp) for s in (0, 1)
                                                     for sp in ("uniform", "quad")]
    (row,) = evaluate_claims(to_frame(rows), [CLAIM]).to_dict("records")
    assert row["verdict"].startswith("not evaluated: side b holds several rows per seed")


def test_comparisons_are_per_match_value_and_report_a_missing_side():
    rows = [_fid("a", s, 1.0 + s, nfe=k) for s in (0, 1) for k in (100, 20)]
    rows += [_fid("b", s, 5.0 + s, nfe=20) for s in (0, 1)]
    table = evaluate_claims(to_frame(rows), [CLAIM])
    assert table["verdict"].tolist() == ["supported", "not evaluated: no ok fid rows for side b"]  # NFE 20, then 100
    assert [c.split("nfe=")[1].split(",")[0] for c in table["context"]] == ["20", "100"]
    assert table["note"].str.contains("over the sampling seeds of one trained network").iloc[0]


def test_where_selectors_describe_themselves():
    assert str(Where(sampler="ddim-eta0", nfe=AtMost(20))) == "sampler = ddim-eta0, nfe ≤ 20"
    df = pd.DataFrame({"nfe": pd.array([10, None, 30], dtype="Int64")})
    assert Where(nfe=AtMost(20))(df).tolist() == [True, False, False]


def test_claim_rejects_an_unknown_relation():
    with pytest.raises(ValueError, match="relation = 'smaller' is invalid"):
        Claim("x", "y", "fid", "smaller", Where(), Where())


def test_noise_claim_is_judged_per_run_against_the_gaussian_twin():
    """"Gamma beats Gaussian": each Gamma run (one per θ0) against DDPM on the same sampler, chain and NFE."""
    (gamma_claim,) = [c for c in CLAIMS if c.text.startswith("Gamma noise beats Gaussian")]
    rows = []
    for ts in range(3):  # training seeds: a method claim is judged over training runs
        for nfe in (10, 20, 50):
            rows.append(_fid("ddim-eta0", 0, 10.0 + ts, nfe=nfe, train_seed=ts))
            rows.append(_fid("ddim-eta0", 0, 5.0 + ts, nfe=nfe, method="ddgm", family="ddgm",
                             noise="gamma(theta0=0.001, loss=l1)", train_seed=ts))  # clearly better
            rows.append(_fid("ddim-eta0", 0, 20.0 + ts, nfe=nfe, method="ddgm_skewed", family="ddgm",
                             noise="gamma(theta0=0.5, loss=l1)", train_seed=ts))  # clearly worse
    rows.append(_fid("ddim-eta0", 0, 1.0, nfe=10, method="mixture", family="mixture", noise="mixture(p=0.3)"))
    table = evaluate_claims(to_frame(rows), [gamma_claim])
    assert len(table) == 4  # two runs × NFE {10, 20}; NFE 50 and the mixture run are not selected
    by_run = {run: table[table["run"].str.startswith(f"method={run},")] for run in ("ddgm", "ddgm_skewed")}
    assert by_run["ddgm"]["verdict"].tolist() == ["supported", "supported"]
    assert by_run["ddgm_skewed"]["verdict"].tolist() == ["contradicted", "contradicted"]
    assert by_run["ddgm_skewed"]["run"].str.contains("theta0=0.5").all()
    assert (table["n_a"] == 3).all() and (table["n_b"] == 3).all()


def test_claims_tables_summarise_each_run_then_detail_each_claim():
    from diffsteps.reporting.tables import claims_tables

    (gamma_claim,) = [c for c in CLAIMS if c.text.startswith("Gamma noise beats Gaussian")]
    rows = [_fid("ddim-eta0", 0, 10.0 + s, train_seed=s) for s in range(3)]
    rows += [_fid("ddim-eta0", 0, 5.0 + s, method="ddgm", family="ddgm", noise="gamma(theta0=0.001)", train_seed=s)
             for s in range(3)]
    rows += [_fid("ddim-eta0", 0, 9.0 + 3 * s, method="ddgm_skewed", family="ddgm", noise="gamma(theta0=0.5)",
                  train_seed=s) for s in range(3)]
    summary, detail = claims_tables(evaluate_claims(to_frame(rows), [gamma_claim]))
    assert [r[1:] for r in summary.rows] == [
        ("method=ddgm, noise=gamma(theta0=0.001)", "supported", "supported 1"),
        ("method=ddgm_skewed, noise=gamma(theta0=0.5)", "inconclusive", "inconclusive 1")]
    assert detail.caption.startswith(gamma_claim.text) and "DDGM (arXiv 2110.05948)" in detail.caption
    assert len(detail.rows) == 2
    # the caption states the rule that judged it: an equivalence test for "matches", never overlapping intervals
    assert "equivalence test" in detail.caption and "match_margin" in detail.caption
    assert "overlap" not in detail.caption


@pytest.mark.parametrize("labels, overall", [
    (["supported", "supported", "not evaluated"], "supported"), (["contradicted"], "contradicted"),
    (["supported", "inconclusive", "inconclusive"], "supported in 1 of 3 (rest inconclusive)"),
    (["contradicted", "inconclusive"], "contradicted in 1 of 2 (rest inconclusive)"),
    (["supported", "contradicted"], "mixed"), (["inconclusive", "not evaluated"], "inconclusive"),
    (["not evaluated"], "not evaluated")])
def test_overall_verdict_rule(labels, overall):
    from diffsteps.reporting.claims import overall_verdict

    assert overall_verdict(labels) == overall


def _nll(method, family, value, se, n=200, nfe=10, seed=0, variance="betatilde"):
    return make_row(dataset="digits", method=method, family=family, sampler=f"ancestral-{variance}", spacing="uniform",
                    variance=variance, noise="gaussian", nfe=nfe, train_seed=seed, seed=0, metric="nll_total",
                    value=value, std=se, n=n, draws=1)


def test_bound_claim_with_one_seed_is_judged_by_the_standard_error_over_images():
    """One training seed per side: the row's own standard error over its n images gives the interval
    (Welch with n − 1 degrees of freedom per side), and the note says the interval is not over seeds."""
    (vdm_claim,) = [c for c in CLAIMS if c.text.startswith("VDM has lower bits/dim") and c.text.endswith("σ² = β̃)")]
    rows = [_nll("vdm", "vdm", 3.0, 0.05), _nll("ddpm", "ddpm", 4.0, 0.05),  # clearly lower
            _nll("vdm", "vdm", 3.95, 0.05, nfe=20), _nll("ddpm", "ddpm", 4.0, 0.05, nfe=20),  # within the error
            _nll("vdm", "vdm", 9.0, None, nfe=50, variance="beta"), _nll("ddpm", "ddpm", 4.0, 0.05, nfe=50, variance="beta")]
    table = evaluate_claims(to_frame(rows), [vdm_claim])
    # a method claim with one training seed is not testable; the description beside it is judged by the standard
    # error over images. σ² = β is not VDM's bound: not selected
    assert table["verdict"].tolist() == ["not testable: one training seed"] * 2
    assert "descriptive only" in table["note"].iloc[0] and ": supported" in table["note"].iloc[0]
    assert ": inconclusive" in table["note"].iloc[1]
    se = math.sqrt(2 * 0.05**2)
    dof = (2 * 0.05**4) ** 2 / (2 * 0.05**8 / 199)
    half = stats.t.ppf(0.975, dof) * se
    assert table["95% interval"].iloc[0] == pytest.approx((-1 - half, -1 + half))
    assert "standard error over held-out images (a: 200, b: 200 images)" in table["note"].iloc[0]


def test_bound_claim_uses_seeds_when_there_are_several_and_needs_an_error_otherwise():
    """With ≥ 2 training seeds a side is judged over seeds as usual; a single row without a standard
    error cannot be judged (too few seeds)."""
    (vdm_claim,) = [c for c in CLAIMS if c.text.startswith("VDM has lower bits/dim") and c.text.endswith("σ² = β̃)")]
    rows = [_nll("vdm", "vdm", 3.0 + 0.1 * s, 0.5, seed=s) for s in range(3)]
    rows += [_nll("ddpm", "ddpm", 4.0 + 0.1 * s, 0.5, seed=s) for s in range(3)]
    (row,) = evaluate_claims(to_frame(rows), [vdm_claim]).to_dict("records")
    assert row["verdict"] == "supported" and (row["n_a"], row["n_b"]) == (3, 3) and "over training runs" in row["note"]
    (row,) = evaluate_claims(to_frame([_nll("vdm", "vdm", 3.0, None), _nll("ddpm", "ddpm", 4.0, 0.05)]),
                             [vdm_claim]).to_dict("records")
    assert row["verdict"] == "not testable: one training seed" and "too few seeds" in row["note"]


def test_vdm_bound_is_also_judged_against_ddpms_tighter_beta_bound():
    """DDPM's σ² = β bound is its tighter one at few steps: VDM's (β̃) bound is compared with it too."""
    (beta_claim,) = [c for c in CLAIMS if c.text.startswith("VDM has lower bits/dim") and c.text.endswith("σ² = β)")]
    rows = [_nll("vdm", "vdm", 9.9, 0.1), _nll("ddpm", "ddpm", 230.0, 5.0), _nll("ddpm", "ddpm", 7.0, 0.02, variance="beta"),
            _nll("vdm", "vdm", 4.4, 0.05, nfe=50), _nll("ddpm", "ddpm", 5.9, 0.02, nfe=50, variance="beta")]
    table = evaluate_claims(to_frame(rows), [beta_claim])
    assert table["verdict"].tolist() == ["not testable: one training seed"] * 2
    assert [n.split("method): ")[1].split(";")[0] for n in table["note"]] == ["contradicted", "supported"]
    assert table["note"].str.contains("b = ddpm / ancestral-beta / uniform").all()


GAN = dict(method="ddgan", family="ddgan", noise="gaussian-vpsde()")


def _gan(ts, value, nfe=4, seed=0):
    return _fid("ancestral-betatilde", seed, value, nfe=nfe, train_seed=ts, **GAN)


def _ref(ts, value, seed=0):
    return _fid("ancestral-betatilde", seed, value, nfe=1000, train_seed=ts)


def test_ddgan_at_T4_is_matched_against_the_1000_step_ddpm_reference():
    """DDGAN's T = 4 cell against DDPM's 1000-step reference (ancestral, σ² = β̃), over training runs, by the
    equivalence rule with δ = 0.1 × DDPM's mean; DDGAN's other T and DDPM's few-step cells play no part."""
    (claim,) = [c for c in CLAIMS if c.text.startswith("DDGAN at T = 4 matches")]
    ref = [_ref(s, v) for s, v in ((0, 5.0), (1, 5.04), (2, 5.01))]
    noise = [_fid("ddim-eta0", 0, 50.0, nfe=10, train_seed=s) for s in (0, 1, 2)] + [_gan(s, 40.0, nfe=1)
                                                                                     for s in (0, 1, 2)]
    close = [_gan(s, v) for s, v in ((0, 5.02), (1, 5.05), (2, 5.0))]
    far = [_gan(s, v) for s, v in ((0, 9.0), (1, 9.1), (2, 9.2))]
    for rows, expected in ((close, "supported"), (far, "contradicted")):
        (row,) = evaluate_claims(to_frame(ref + noise + rows), [claim]).to_dict("records")
        assert row["verdict"] == expected and row["n_a"] == 3 and row["n_b"] == 3, row
        assert "@ 4 NFE" in row["note"] and "@ 1000 NFE" in row["note"] and "over training runs" in row["note"]


def test_the_ddgan_case_of_the_old_overlap_rule_is_never_supported():
    """The case that the overlapping-intervals rule judged *supported*: a difference of 9.3 whose 95% interval,
    [5.3, 13.2], excludes zero. By the equivalence rule (δ = 0.1 × DDPM's ~40) it is contradicted over training
    runs, and with one training seed the method claim is not testable at all."""
    (claim,) = [c for c in CLAIMS if c.text.startswith("DDGAN at T = 4 matches")]
    ref = [_ref(s, v) for s, v in ((0, 39.0), (1, 40.0), (2, 41.0))]
    gan = [_gan(s, v) for s, v in ((0, 48.5), (1, 49.3), (2, 50.1))]
    (row,) = evaluate_claims(to_frame(ref + gan), [claim]).to_dict("records")
    low, high = row["95% interval"]
    assert row["difference (a − b)"] == pytest.approx(9.3) and 5 < low < high < 14
    assert row["verdict"] == "contradicted"
    # overlapping intervals of the means, not equivalent: inconclusive, where the old rule said supported
    wide_ref = [_ref(s, v) for s, v in ((0, 30.0), (1, 40.0), (2, 50.0))]
    wide_gan = [_gan(s, v) for s, v in ((0, 38.0), (1, 48.0), (2, 58.0))]
    (row,) = evaluate_claims(to_frame(wide_ref + wide_gan), [claim]).to_dict("records")
    assert row["verdict"] == "inconclusive"
    # one training seed, two sampling seeds each: not testable, with the description beside it
    one = [_ref(0, 40.0, seed=0), _ref(0, 40.2, seed=1), _gan(0, 49.3, seed=0), _gan(0, 49.5, seed=1)]
    (row,) = evaluate_claims(to_frame(one), [claim]).to_dict("records")
    assert row["verdict"] == "not testable: one training seed"
    assert "descriptive only" in row["note"] and "supported" not in row["verdict"]


def _inception(row: dict, value: float) -> dict:
    return {**row, "metric": "inception_fid", "value": value, "feature_extractor": "Inception-v3", "n": 5}


def test_a_fid_claim_is_also_judged_on_inception_fid_where_both_sides_were_scored():
    """Each feature space is its own comparison; Inception rows on one side only (a scored subset of cells, or
    the not-computed rows of a run without weights) add nothing to judge."""
    domain = [_fid("a", s, 1.0 + s, nfe=k) for s in (0, 1) for k in (10, 20)]
    domain += [_fid("b", s, 5.0 + s, nfe=k) for s in (0, 1) for k in (10, 20)]
    # Inception scored both sides at NFE 10 (a worse there: the spaces disagree) and side a only at NFE 20
    inception = [_inception(r, 9.0 + r["seed"]) for r in domain if r["sampler"] == "a"]
    inception += [_inception(r, 2.0 + r["seed"]) for r in domain if r["sampler"] == "b" and r["nfe"] == 10]
    inception += [{**_inception(r, None), "status": "not_computed", "reason": "not computed: no weights",
                   "n": 9} for r in domain]  # another N with no values on either side
    table = evaluate_claims(to_frame(domain + inception), [CLAIM])
    assert [(c.split(";")[1].strip(), v) for c, v in zip(table["context"], table["verdict"])] == [
        ("Inception-v3, N=5", "contradicted"), ("x, N=10", "supported"), ("x, N=10", "supported")]
    assert table["context"].iloc[0].endswith("nfe=10, train_seed=—")
    only_domain = evaluate_claims(to_frame(domain), [CLAIM])
    assert only_domain["verdict"].tolist() == ["supported", "supported"]
