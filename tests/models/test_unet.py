import pytest
import torch

from diffsteps.models.unet import AttnBlock, UNet, UNetSpec, count_parameters, timestep_embedding


def spec(**kw):
    base = dict(image_size=8, in_channels=1, out_channels=1, channels=16, channel_mult=(1, 2), num_res_blocks=1,
                attn_resolutions=(4,), dropout=0.1, num_heads=2)
    return UNetSpec(**{**base, **kw})


@pytest.mark.parametrize("channels", [16, 24, 32])
def test_shapes_and_time_dependence(channels):
    """The time embedding must survive the GroupNorm after it (it would not with one channel per group)."""
    torch.manual_seed(0)
    net = UNet(spec(channels=channels))
    for p in net.parameters():  # zero-initialised output convs would hide the time dependence
        torch.nn.init.normal_(p, std=0.1)
    x = torch.randn(3, 1, 8, 8)
    net.eval()
    a, b = net(x, torch.full((3,), 10.0)), net(x, torch.full((3,), 900.0))
    assert a.shape == x.shape and (a - b).abs().max() > 1e-2 * a.abs().max()


def test_group_norm_keeps_several_channels_per_group():
    from diffsteps.models.unet import _groups

    assert [_groups(c) for c in (16, 24, 32, 64, 128, 256)] == [4, 6, 8, 16, 32, 32]


def test_attention_only_at_configured_resolutions():
    n_attn = lambda s: sum(isinstance(m, AttnBlock) for m in UNet(s).modules())  # noqa: E731
    # the middle block always attends; each level at a listed resolution adds down + up blocks
    assert n_attn(spec(attn_resolutions=())) == 1
    assert n_attn(spec(attn_resolutions=(4,))) == 1 + 1 + 2
    assert n_attn(spec(attn_resolutions=(8, 4))) == 1 + 2 + 4


def test_size_grows_with_width_and_32px_works():
    small, big = count_parameters(UNet(spec(channels=16))), count_parameters(UNet(spec(channels=32)))
    assert big > 3 * small
    net = UNet(spec(image_size=32, in_channels=3, out_channels=3, channel_mult=(1, 2, 2), attn_resolutions=(16,)))
    assert net(torch.randn(2, 3, 32, 32), torch.tensor([1.0, 500.0])).shape == (2, 3, 32, 32)


def test_bad_sizes_are_clear_errors():
    with pytest.raises(ValueError, match="not divisible"):
        UNet(spec(image_size=6, channel_mult=(1, 2, 2)))
    with pytest.raises(ValueError, match="num_heads"):
        UNet(spec(num_heads=3))


def test_timestep_embedding_closed_form():
    e = timestep_embedding(torch.tensor([0.0, 1.0]), 4)
    assert torch.allclose(e[0], torch.tensor([1.0, 1.0, 0.0, 0.0]))
    assert torch.allclose(e[1], torch.tensor([torch.cos(torch.tensor(1.0)), torch.cos(torch.tensor(0.01)),
                                              torch.sin(torch.tensor(1.0)), torch.sin(torch.tensor(0.01))]))
