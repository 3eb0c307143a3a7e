import math

import pytest
import torch

import torch.nn.functional as F

from napari_invimg.nets.dip import BayesConv, DeepDecoder, HalfResolution, SkipNet, binomial_smooth, kl_divergence


@pytest.mark.parametrize("ndim,shape", [(2, (37, 50)), (3, (6, 20, 24))])
def test_skipnet_any_size_2d_3d(ndim, shape):
    net = SkipNet(4, 2, ndim, widths=(4, 4, 8), skip=2)
    out = net(torch.rand(1, 4, *shape))
    assert out.shape == (1, 2, *shape)


@pytest.mark.parametrize("layer", ["bayes", "dropout"])
def test_stochastic_layers_give_different_images(layer):
    torch.manual_seed(0)
    net = SkipNet(4, 1, 2, widths=(4, 8), skip=2, layer=layer)
    if layer == "bayes":  # widen the posterior so that draws differ visibly
        for m in net.modules():
            if isinstance(m, BayesConv):
                m.weight_rho.data.fill_(-3.0)
    z = torch.rand(1, 4, 16, 16)
    with torch.no_grad():
        a, b = net(z), net(z)
    assert (a - b).abs().max() > 1e-4


class _Maps(torch.nn.Module):
    """The identity generator with a ``head``: the half-resolution maps are the input itself."""

    def __init__(self, channels: int, ndim: int):
        super().__init__()
        self.head = (torch.nn.Conv2d if ndim == 2 else torch.nn.Conv3d)(channels, channels, 1)

    def forward(self, z):
        return z


def test_binomial_smooth_removes_the_checkerboard_and_keeps_constants():
    i = torch.arange(6)[:, None] + torch.arange(7)[None, :]
    checkerboard = ((-1.0) ** i)[None, None]
    assert float(binomial_smooth(checkerboard).abs().max()) == 0.0
    torch.testing.assert_close(binomial_smooth(torch.full((1, 2, 4, 5, 6), 3.0)), torch.full((1, 2, 4, 5, 6), 3.0))
    impulse = torch.zeros(1, 1, 5, 5)
    impulse[0, 0, 2, 2] = 1.0
    out = binomial_smooth(impulse)[0, 0]
    assert float(out[2, 2]) == 0.25 and float(out[1, 2]) == 0.125 and float(out[1, 1]) == 0.0625
    assert float(out.sum()) == 1.0


def test_binomial_smooth_leaves_one_pixel_axes_alone():
    """A one-pixel axis (a 1×N image's half-resolution residual, a one-slice stack) has no neighbours to reflect:
    the filter acts along the other axes only, as [1, 2, 1]/4 on a constant (a one-pixel signal) would."""
    gen = torch.Generator().manual_seed(0)
    row = torch.rand(1, 2, 1, 9, generator=gen)
    expected = binomial_smooth(row.expand(1, 2, 3, 9).contiguous())[:, :, 1:2]  # three equal rows: the middle one
    torch.testing.assert_close(binomial_smooth(row), expected)
    stack = torch.rand(1, 1, 1, 6, 7, generator=gen)
    torch.testing.assert_close(binomial_smooth(stack)[:, :, 0], binomial_smooth(stack[:, :, 0]))
    pixel = torch.rand(1, 3, 1, 1, generator=gen)
    torch.testing.assert_close(binomial_smooth(pixel), pixel)


def test_skipnet_refuses_an_input_too_small_for_its_levels():
    """Each level halves the size (rounded up); a coarsest level of one pixel cannot be instance-normalized: ours is
    a ValueError that names the size and the levels, not torch's message about spatial elements."""
    net = SkipNet(4, 1, 2, widths=(4, 4, 4, 4), skip=2)
    assert net(torch.rand(1, 4, 17, 8)).shape == (1, 1, 17, 8)  # coarsest level 2 × 1
    for size in ((16, 16), (8, 8), (1, 1)):
        with pytest.raises(ValueError, match=r"too small for 4 levels.*depth"):
            net(torch.rand(1, 4, *size))


def test_half_resolution_is_an_upsample_plus_a_pixel_shuffled_residual():
    gen = torch.Generator().manual_seed(0)
    net = HalfResolution(_Maps(5, 2), (6, 8), 1)
    assert net.input_size() == (3, 4)
    z = torch.randn(2, 5, 3, 4, generator=gen)
    up = F.interpolate(z[:, :1], size=(6, 8), mode="bilinear", align_corners=False)
    torch.testing.assert_close(net(z), up + binomial_smooth(F.pixel_shuffle(z[:, 1:], 2)))
    # odd sizes: the input is rounded up, the output cropped; sub-pixel (0, 1) of half-pixel (i, j) is pixel (2i, 2j+1)
    odd = HalfResolution(_Maps(5, 2), (5, 7), 1)
    assert odd.input_size() == (3, 4)
    r = torch.zeros(1, 5, 3, 4)
    r[0, 2, 1, 2] = 1.0
    out = odd(r)
    assert out.shape == (1, 1, 5, 7) and float(out[0, 0, 2, 5]) == 0.25
    assert float(out[0, 0, 2, 4]) == 0.125 and float(out[0, 0, :, :4].abs().sum()) == 0.0  # smoothed around (2, 5)
    # 3D: 8 sub-pixel maps per output channel, sub-pixel (a, b, c) = channel 1 + 4a + 2b + c
    net3 = HalfResolution(_Maps(9, 3), (4, 5, 6), 1)
    r3 = torch.zeros(1, 9, 2, 3, 3)
    r3[0, 1 + 4 * 0 + 2 * 1 + 1, 0, 1, 1] = 1.0
    out3 = net3(r3)
    # voxel (0, 3, 3): on the first slice (reflected edge: 0.5 along z) and inside in y and x (0.5 · 0.5)
    assert out3.shape == (1, 1, 4, 5, 6) and float(out3[0, 0, 0, 3, 3]) == 0.125 and float(out3.max()) == 0.125


def test_half_resolution_mixes_smooth_maps_at_full_resolution():
    gen = torch.Generator().manual_seed(1)
    net = HalfResolution(_Maps(3 + 4, 2), (6, 8), 1, smooth_channels=3)
    assert HalfResolution.maps(2, 1, 3) == 7 and HalfResolution.maps(3, 2, 0) == 2 + 16
    z = torch.randn(1, 7, 3, 4, generator=gen)
    up = F.interpolate(z[:, :3], size=(6, 8), mode="bilinear", align_corners=False)
    expected = F.conv2d(F.leaky_relu(up, 0.2), net.mix.weight, net.mix.bias) + binomial_smooth(F.pixel_shuffle(z[:, 3:], 2))
    torch.testing.assert_close(net(z), expected)
    net.zero_residual()
    head = net.net.head.weight.detach()
    assert float(head[3:].abs().sum()) == 0 and float(head[:3].abs().sum()) > 0


def test_half_resolution_starts_smooth_and_learns_a_residual():
    torch.manual_seed(0)
    inner = SkipNet(4, 1 + 4, 2, widths=(4, 8), skip=2)
    net = HalfResolution(inner, (16, 16), 1)
    net.zero_residual()
    z = torch.rand(1, 4, 8, 8)
    out = net(z)
    smooth = F.interpolate(inner(z)[:, :1], size=(16, 16), mode="bilinear", align_corners=False)
    torch.testing.assert_close(out, smooth)  # the residual is zero at the start ...
    (out - torch.rand(1, 1, 16, 16)).pow(2).sum().backward()
    assert float(inner.head.weight.grad[1:].abs().sum()) > 0  # ... and learns from the first step


def test_deep_decoder_is_under_parameterized():
    net = DeepDecoder((64, 64), out_channels=1, channels=24, levels=4)
    out = net(torch.rand(1, *net.input_shape()))
    assert out.shape == (1, 1, 64, 64)
    assert sum(p.numel() for p in net.parameters()) < 64 * 64


def test_deep_decoder_refuses_an_image_too_small_for_its_levels():
    """Its first normalized maps are the image divided by 2^(levels − 1); one pixel there is our ValueError."""
    assert DeepDecoder((9, 1), levels=4)(torch.rand(1, 64, 1, 1)).shape == (1, 1, 9, 1)  # 2 × 1 at the first norm
    with pytest.raises(ValueError, match=r"too small for 5 levels.*levels"):
        DeepDecoder((16, 16), levels=5)


def test_bayes_conv_kl_matches_formula_and_monte_carlo():
    torch.manual_seed(0)
    layer = BayesConv(3, 2, 3, ndim=2, prior_sigma=0.5)
    layer.weight_mu.data.normal_(0, 0.3)
    layer.weight_rho.data.uniform_(-3, 0)
    layer.bias_mu.data.normal_(0, 0.3)
    kl = float(layer.kl().detach())
    # closed form, written per element from the two Gaussians' log densities
    mu = torch.cat([layer.weight_mu.flatten(), layer.bias_mu.flatten()]).double().detach()
    sd = torch.cat([layer.weight_sigma.flatten(), layer.bias_sigma.flatten()]).double().detach()
    formula = float((torch.log(0.5 / sd) + (sd**2 + mu**2) / (2 * 0.25) - 0.5).sum())
    assert kl == pytest.approx(formula, rel=1e-5)
    # Monte-Carlo: E_q[log q(w) − log p(w)]
    q = torch.distributions.Normal(mu, sd)
    p = torch.distributions.Normal(torch.zeros_like(mu), 0.5 * torch.ones_like(sd))
    w = q.sample((20000,))
    mc = float((q.log_prob(w) - p.log_prob(w)).sum(1).mean())
    assert mc == pytest.approx(kl, rel=0.03)
    assert float(kl_divergence(torch.nn.Sequential(layer, torch.nn.ReLU())).detach()) == pytest.approx(kl, rel=1e-6)


def test_local_reparametrisation_matches_weight_sampling():
    """The pre-activation's mean and variance equal those of convolutions with sampled weights."""
    torch.manual_seed(1)
    layer = BayesConv(2, 3, 3, ndim=2)
    layer.weight_rho.data.uniform_(-2, -1)
    x = torch.rand(1, 2, 5, 5)
    with torch.no_grad():
        mean, var = layer.moments(x)
        draws = torch.stack([
            torch.nn.functional.conv2d(
                x, layer.weight_mu + layer.weight_sigma * torch.randn_like(layer.weight_mu),
                layer.bias_mu + layer.bias_sigma * torch.randn_like(layer.bias_mu), padding=1)
            for _ in range(1000)])
        samples = layer(x.expand(1000, -1, -1, -1))
    for stack in (draws, samples[:, None]):
        zscore = (stack.mean(0) - mean) / (var / stack.shape[0]).sqrt()  # ≈ N(0, 1) per element
        assert float(zscore.abs().mean()) < 1.0 and float(zscore.abs().max()) < 5
        assert float((stack.var(0) / var - 1).abs().mean()) < 0.06
    assert math.isfinite(float(layer.kl().detach()))


def test_bayes_conv_draws_one_weight_tensor_per_image_without_local_reparametrization():
    """Off the local reparametrization, every pixel of one image sees the same weights (a constant image stays
    constant under a 1×1 convolution), each image of a batch its own draw, with the pre-activation's moments."""
    gen = torch.Generator().manual_seed(3)
    layer = BayesConv(2, 3, 1, ndim=2)
    layer.generator = gen
    with torch.no_grad():
        layer.weight_rho.uniform_(-2, -1, generator=gen)
        layer.bias_rho.uniform_(-2, -1, generator=gen)
        x = torch.ones(400, 2, 4, 4)
        per_pixel = layer(x[:2])
        layer.local_reparametrization = False
        shared = layer(x)
        mean, var = layer.moments(x[:1])
    assert float(per_pixel[0].std(dim=(1, 2)).min()) > 1e-3  # per-pixel noise
    assert float(shared.std(dim=(2, 3)).max()) < 1e-6  # one weight draw per image
    assert float((shared[0] - shared[1]).abs().max()) > 1e-3  # a new draw per image
    assert torch.allclose(shared.mean(0), mean[0], atol=4 * float(var.max().sqrt()) / 20)
    assert float((shared.var(0) / var[0] - 1).abs().mean()) < 0.25


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="ndim"):
        SkipNet(ndim=4)
    with pytest.raises(ValueError, match="layer"):
        SkipNet(layer="magic")
    with pytest.raises(ValueError, match="dropout"):
        SkipNet(layer="dropout", dropout=1.5)
