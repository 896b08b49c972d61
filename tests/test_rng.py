"""The random streams' Gamma draws: law, dtype, reproducibility, per-sample independence and shape checks."""

import numpy as np
import pytest
import torch
from scipy import special, stats

from diffsteps.rng import BatchRNG, StackedRNG

CONC = np.array([0.05, 0.7, 3.0, 1e4, 2.5e10])


@pytest.mark.parametrize("make", [lambda: BatchRNG(0), lambda: StackedRNG(0, range(len(CONC)))],
                         ids=["batch", "stacked"])
def test_standard_gamma_law_per_row(make):
    """Row b of standard_gamma(concentration, shape) is Γ(concentration_b, 1) in float64 (KS per row), from
    shape 0.05 to 2.5e10, broadcast over the non-batch dimensions."""
    shape = (len(CONC), 4, 2500)
    g = make().standard_gamma(CONC, shape)
    assert isinstance(g, torch.Tensor) and g.dtype == torch.float64 and tuple(g.shape) == shape
    for b, k in enumerate(CONC):
        row = g[b].flatten().numpy()
        assert stats.kstest(row, lambda x: special.gammainc(k, np.maximum(x, 0.0))).pvalue > 1e-3, f"k = {k}"
        assert len(np.unique(row)) >= row.size - 2  # float64 resolves (almost) every draw, even at k = 2.5e10
    # the test has power: the rows are not exchangeable with their neighbours' law
    assert stats.kstest(g[2].flatten().numpy(), lambda x: special.gammainc(3.3, np.maximum(x, 0.0))).pvalue < 1e-6


def test_batch_rng_is_reproducible_and_aligned():
    """The same seed gives the same Gamma draws; a different seed different ones; and a call consumes one draw
    of the torch stream whatever its shape, so later draws stay aligned."""
    conc = np.array([0.01, 1.0, 1e10])
    a = BatchRNG(7).standard_gamma(conc, (3, 10))
    b = BatchRNG(7).standard_gamma(conc, (3, 10))
    assert torch.equal(a, b)
    assert not torch.equal(a, BatchRNG(8).standard_gamma(conc, (3, 10)))
    r1, r2 = BatchRNG(7), BatchRNG(7)
    r1.standard_gamma(conc, (3, 1))
    r2.standard_gamma(conc, (3, 50, 4))
    assert torch.equal(r1.randn((3, 5)), r2.randn((3, 5)))


def test_stacked_rows_do_not_depend_on_batch_composition():
    """Row j of StackedRNG(seed, range(n)) equals the single row of StackedRNG(seed, [j]) and row j − 2 of
    StackedRNG(seed, range(2, n)), for Gamma draws as for Gaussian ones; the stream stays aligned afterwards."""
    n, seed = 6, 3
    conc = np.array([0.01, 0.3, 1.0, 7.0, 1e6, 2.5e10])
    full = StackedRNG(seed, range(n))
    g = full.standard_gamma(conc, (n, 2, 3))
    after = full.randn((n, 4))
    part = StackedRNG(seed, range(2, n))
    assert torch.equal(part.standard_gamma(conc[2:], (n - 2, 2, 3)), g[2:])
    for j in range(n):
        one = StackedRNG(seed, [j])
        assert torch.equal(one.standard_gamma(conc[j : j + 1], (1, 2, 3))[0], g[j])
        assert torch.equal(one.randn((1, 4))[0], after[j])
    assert not torch.equal(g[0], StackedRNG(seed + 1, [0]).standard_gamma(conc[:1], (1, 2, 3))[0])


def test_small_concentration_keeps_float64_tail():
    """At concentration 0.01 the draws are float64 with a genuine tail below float32's smallest normal, none
    clamped to it (a float32 sampler would clamp ~40% of them)."""
    n = 50_000
    g = StackedRNG(0, [0]).standard_gamma(np.array([0.01]), (1, n)).flatten().numpy()
    tiny32 = float(np.finfo(np.float32).tiny)
    assert g.dtype == np.float64
    assert (g == tiny32).sum() == 0 and (g == 0).mean() < 3e-3
    p_below = special.gammainc(0.01, tiny32)
    assert (g < tiny32).mean() == pytest.approx(p_below, abs=5 * (p_below * (1 - p_below) / n) ** 0.5)


def test_concentration_shape_is_checked():
    """A concentration that is not one value per sample is rejected with the expected shape in the message;
    StackedRNG also names its number of streams when the batch size disagrees."""
    with pytest.raises(ValueError, match=r"expected one per sample, \(4,\)"):
        BatchRNG(0).standard_gamma(np.ones(3), (4, 2))
    with pytest.raises(ValueError, match=r"expected one per sample, \(4,\)"):
        BatchRNG(0).standard_gamma(np.float64(1.0), (4, 2))
    with pytest.raises(ValueError, match=r"expected one per sample, \(3,\)"):
        StackedRNG(0, range(3)).standard_gamma(np.ones((3, 1)), (3, 2))
    with pytest.raises(ValueError, match=r"holds 3 streams.*\(4, 2\)"):
        StackedRNG(0, range(3)).standard_gamma(np.ones(4), (4, 2))
