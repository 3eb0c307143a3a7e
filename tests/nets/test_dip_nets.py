import math

import pytest
import torch

from napari_invimg.nets.dip import BayesConv, DeepDecoder, SkipNet, kl_divergence


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


def test_deep_decoder_is_under_parameterized():
    net = DeepDecoder((64, 64), out_channels=1, channels=24, levels=4)
    out = net(torch.rand(1, *net.input_shape()))
    assert out.shape == (1, 1, 64, 64)
    assert sum(p.numel() for p in net.parameters()) < 64 * 64


def test_bayes_conv_kl_matches_formula_and_monte_carlo():
    torch.manual_seed(0)
    layer = BayesConv(3, 2, 3, ndim=2, prior_sigma=0.5)
    layer.weight_mu.data.normal_(0, 0.3)
    layer.weight_rho.data.uniform_(-3, 0)
    layer.bias_mu.data.normal_(0, 0.3)
    kl = float(layer.kl())
    # closed form, written per element from the two Gaussians' log densities
    mu = torch.cat([layer.weight_mu.flatten(), layer.bias_mu.flatten()]).double()
    sd = torch.cat([layer.weight_sigma.flatten(), layer.bias_sigma.flatten()]).double()
    formula = float((torch.log(0.5 / sd) + (sd**2 + mu**2) / (2 * 0.25) - 0.5).sum())
    assert kl == pytest.approx(formula, rel=1e-5)
    # Monte-Carlo: E_q[log q(w) − log p(w)]
    q = torch.distributions.Normal(mu, sd)
    p = torch.distributions.Normal(torch.zeros_like(mu), 0.5 * torch.ones_like(sd))
    w = q.sample((20000,))
    mc = float((q.log_prob(w) - p.log_prob(w)).sum(1).mean())
    assert mc == pytest.approx(kl, rel=0.03)
    assert float(kl_divergence(torch.nn.Sequential(layer, torch.nn.ReLU()))) == pytest.approx(kl, rel=1e-6)


def test_local_reparametrisation_matches_weight_sampling():
    """The pre-activation's mean and variance equal those of convolutions with sampled weights."""
    torch.manual_seed(1)
    layer = BayesConv(2, 3, 3, ndim=2)
    layer.weight_rho.data.uniform_(-2, -1)
    x = torch.rand(1, 2, 5, 5)
    mean, var = layer.moments(x)
    with torch.no_grad():
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
    assert math.isfinite(float(layer.kl()))


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
    assert float(per_pixel[0].std(dim=(1, 2)).min()) > 1e-3  # per-pixel noise
    assert float(shared.std(dim=(2, 3)).max()) < 1e-6  # one weight draw per image
    assert float((shared[0] - shared[1]).abs().max()) > 1e-3  # a new draw per image
    mean, var = layer.moments(x[:1])
    assert torch.allclose(shared.mean(0), mean[0], atol=4 * float(var.max().sqrt()) / 20)
    assert float((shared.var(0) / var[0] - 1).abs().mean()) < 0.25


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="ndim"):
        SkipNet(ndim=4)
    with pytest.raises(ValueError, match="layer"):
        SkipNet(layer="magic")
    with pytest.raises(ValueError, match="dropout"):
        SkipNet(layer="dropout", dropout=1.5)
