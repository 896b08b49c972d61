"""EMA with decay warm-up: the formula, fixed points and a hand-computed update."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from diffsteps.training.ema import EMA, ema_decay


def net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))


def test_decay_warmup_formula():
    assert ema_decay(0, 0.999, True) == pytest.approx(1 / 10)
    assert ema_decay(90, 0.999, True) == pytest.approx(91 / 100)
    assert ema_decay(10**6, 0.999, True) == 0.999  # the cap takes over
    assert ema_decay(0, 0.999, False) == 0.999
    # monotone up to the cap
    ds = [ema_decay(k, 0.99, True) for k in range(2000)]
    assert all(a <= b for a, b in zip(ds, ds[1:])) and max(ds) == 0.99


def test_constant_weights_are_a_fixed_point():
    model = net()
    ema = EMA(model, 0.9, warmup=True)
    for _ in range(5):
        ema.update(model)
    for p_ema, p in zip(ema.model.parameters(), model.parameters()):
        assert torch.equal(p_ema, p)


def test_update_matches_hand_computation():
    model = net()
    theta0 = [p.detach().clone() for p in model.parameters()]
    ema = EMA(model, 0.95, warmup=True)
    thetas = []
    with torch.no_grad():
        for step in range(3):
            for p in model.parameters():
                p.add_(torch.randn_like(p))
            model[1].running_mean.fill_(step)  # buffers are copied, not averaged
            thetas.append([p.detach().clone() for p in model.parameters()])
            ema.update(model)
    expected = theta0
    for k, theta in enumerate(thetas):
        d = min(0.95, (1 + k) / (10 + k))
        expected = [d * e + (1 - d) * t for e, t in zip(expected, theta)]
    for p_ema, e in zip(ema.model.parameters(), expected):
        torch.testing.assert_close(p_ema, e, rtol=1e-6, atol=1e-6)
    assert torch.equal(ema.model[1].running_mean, torch.full((4,), 2.0))
    assert ema.num_updates == 3


def test_no_warmup_uses_fixed_decay_and_state_round_trips():
    model = net()
    ema = EMA(model, 0.5, warmup=False)
    before = [p.detach().clone() for p in model.parameters()]
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    assert ema.update(model) == 0.5
    for p_ema, b in zip(ema.model.parameters(), before):
        torch.testing.assert_close(p_ema, b + 0.5)
    other = EMA(net(), 0.5, warmup=False)
    other.load_state_dict(ema.state_dict())
    assert other.num_updates == 1
    for a, b in zip(other.model.parameters(), ema.model.parameters()):
        assert torch.equal(a, b)
    assert not any(p.requires_grad for p in ema.model.parameters())
