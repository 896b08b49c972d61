"""VDM's noise-prediction network (arXiv 2107.00630, §3.4): Fourier-feature inputs and conditioning on γ_t."""

import math

import pytest
import torch
from torch import nn

from diffsteps.models.unet import UNetSpec
from diffsteps.models.vdm import VDMNetwork, fourier_features
from diffsteps.noise.logsnr import GAMMA_MAX, GAMMA_MIN, build_schedule


def spec(in_channels: int = 1, **kw) -> UNetSpec:
    base = dict(image_size=8, in_channels=in_channels, out_channels=in_channels, channels=8, channel_mult=(1,),
                num_res_blocks=1, attn_resolutions=(), dropout=0.0, num_heads=1)
    return UNetSpec(**{**base, **kw})


def perturbed_net(in_channels=1, schedule="monotone_net", n_min=6, n_max=8, seed=0) -> VDMNetwork:
    """A VDMNetwork whose zero-initialised convolutions (output head, each ResBlock's second conv, the attention
    projection) get small random weights. Perturbing the head alone is not enough for γ to reach the output: the
    time embedding enters each ResBlock only through its (zero) second conv."""
    torch.manual_seed(seed)
    net = VDMNetwork(spec(in_channels), build_schedule(schedule), n_min, n_max)
    with torch.no_grad():
        for p in net.unet.parameters():
            if not p.any():
                nn.init.normal_(p, std=0.1)
    return net.eval()


@pytest.mark.parametrize("n_min,n_max", [(6, 8), (0, 3), (5, 5)])
def test_fourier_features_shape_and_values(n_min, n_max):
    """fourier_features(z) has 2·C·(n_max − n_min) channels: for input channel c, channels c·2F + j hold
    sin(2^(n_min+j)·2π·z_c) for j < F and cos(2^(n_min+j−F)·2π·z_c) for j ≥ F (F = n_max − n_min), computed
    here elementwise in float64."""
    g = torch.Generator().manual_seed(0)
    B, C, H, W = 2, 3, 4, 5
    z = torch.randn(B, C, H, W, generator=g, dtype=torch.float64)
    out = fourier_features(z, n_min, n_max)
    F = n_max - n_min
    assert out.shape == (B, 2 * C * F, H, W) and out.dtype == z.dtype
    for c in range(C):
        for j, n in enumerate(range(n_min, n_max)):
            arg = (2.0**n) * 2 * math.pi * z[:, c]
            assert torch.allclose(out[:, c * 2 * F + j], torch.sin(arg), atol=1e-12)
            assert torch.allclose(out[:, c * 2 * F + F + j], torch.cos(arg), atol=1e-12)


def test_fourier_features_resolve_neighbouring_pixel_levels():
    """At n = 6 neighbouring 8-bit levels (2/255 apart) are ≈ half a turn apart in phase (2^6·2π·2/255 =
    π·256/255), so their cos features nearly flip sign (difference ≈ 2) although z itself moves by only 0.008."""
    x = torch.tensor([[[[0.0]]]], dtype=torch.float64)
    a, b = fourier_features(x, 6, 8), fourier_features(x + 2 / 255, 6, 8)
    cos6 = 2  # channel order: sin n=6, sin n=7, cos n=6, cos n=7
    assert float(a[0, cos6]) == pytest.approx(1.0) and float(b[0, cos6]) == pytest.approx(-1.0, abs=1e-3)


@pytest.mark.parametrize("C,n_min,n_max", [(1, 6, 8), (3, 6, 7), (3, 4, 4)])
def test_unet_input_width_includes_fourier_channels(C, n_min, n_max):
    """The UNet inside VDMNetwork takes C·(1 + 2·(n_max − n_min)) input channels and returns C channels; the spec
    records the schedule and the Fourier range; a fresh network predicts ε̂ ≡ 0 of the input's shape."""
    net = VDMNetwork(spec(C), build_schedule("fixed_linear"), n_min, n_max)
    width = C * (1 + 2 * (n_max - n_min))
    assert net.unet.stem.in_channels == width and net.spec.unet.in_channels == width
    assert net.unet.head[-1].out_channels == C and net.spec.unet.out_channels == C
    assert (net.spec.schedule, net.spec.fourier_min, net.spec.fourier_max) == ("fixed_linear", n_min, n_max)
    z = torch.randn(2, C, 8, 8)
    out = net.predict(z, torch.tensor([-13.3, 5.0]))
    assert out.shape == z.shape and torch.equal(out, torch.zeros_like(z))
    with pytest.raises(ValueError):
        VDMNetwork(spec(C), build_schedule("fixed_linear"), 8, 6)


def test_network_conditions_on_gamma():
    """With perturbed weights, ε̂ changes materially when only γ_t changes (the time input is
    1000·(γ_t − γ_min)/(γ_max − γ_min)); identical γ gives identical outputs, per sample."""
    net = perturbed_net()
    z = torch.randn(3, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        lo = net.predict(z, torch.full((3,), -12.0))
        hi = net.predict(z, torch.full((3,), 3.0))
        again = net.predict(z, torch.full((3,), -12.0))
        mixed = net.predict(z, torch.tensor([-12.0, 3.0, -12.0]))
        ends = net.predict(z, torch.tensor([GAMMA_MIN, GAMMA_MAX, 0.0]))
        direct = net.unet(torch.cat([z, fourier_features(z, 6, 8)], 1), torch.tensor([0.0, 1000.0, 13.3 / 18.3 * 1000]))
    assert float(lo.abs().max()) > 0
    assert float((lo - hi).abs().max()) > 0.05 * float(lo.abs().max())
    assert torch.equal(lo, again)
    assert torch.allclose(mixed[0], lo[0], atol=1e-6) and torch.allclose(mixed[1], hi[1], atol=1e-6)
    assert torch.allclose(ends, direct, atol=1e-5)


@pytest.mark.parametrize("schedule", ["fixed_linear", "learned_linear", "monotone_net"])
def test_forward_is_predict_at_gamma_of_t(schedule):
    """forward(z, t) (the samplers' denoiser) equals predict(z, γ(t)) with the network's own schedule."""
    net = perturbed_net(schedule=schedule, seed=2)
    g = torch.Generator().manual_seed(3)
    z = torch.randn(4, 1, 8, 8, generator=g)
    t = torch.tensor([0.0, 0.25, 0.6, 1.0])
    with torch.no_grad():
        assert torch.equal(net(z, t), net.predict(z, net.gamma(t)))
        g0, g1 = net.gamma.endpoints()
        gamma_lin = g0 + (g1 - g0) * t
    if schedule != "monotone_net":
        with torch.no_grad():
            assert torch.allclose(net(z, t), net.predict(z, gamma_lin), atol=1e-6)
    assert isinstance(net.gamma, nn.Module) and any(m is net.gamma for m in net.modules())
