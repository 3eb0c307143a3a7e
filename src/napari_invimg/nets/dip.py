"""Untrained generator networks for the Deep Image Prior family, 2D or 3D (``ndim`` switch).

* :class:`SkipNet` — encoder–decoder with skip connections (Ulyanov et al., CVPR 2018), narrow enough
  that one Adam step on 256×256 takes a fraction of a second on two CPU cores.
* :class:`HalfResolution` — a generator run at half the resolution per axis: its smooth output upsampled plus a
  pixel-shuffled sub-pixel residual (Shi et al., CVPR 2016), zero at the start (``dip(resolution="half")``).
* :class:`DeepDecoder` — under-parameterized decoder: upsampling and 1×1 convolutions only
  (Heckel & Hand, ICLR 2019).
* :class:`BayesConv` — a convolution whose weights are independent Gaussians ``N(μ, softplus(ρ)²)``,
  sampled with the local reparametrization trick (Kingma et al., NeurIPS 2015), with the closed-form
  KL divergence to a Gaussian prior ``N(0, σ_p²)`` (Blundell et al., ICML 2015).
* ``layer="dropout"`` — Monte-Carlo dropout before every 3×3 convolution (Gal & Ghahramani, ICML 2016).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["BayesConv", "SkipNet", "DeepDecoder", "HalfResolution", "binomial_smooth", "kl_divergence", "LAYERS"]

#: the kinds of convolution layer a :class:`SkipNet` can be built from
LAYERS = ("plain", "bayes", "dropout")


def _check_ndim(ndim: int) -> int:
    if ndim not in (2, 3):
        raise ValueError(f"Networks are built for 2D or 3D images; ndim must be 2 or 3, got {ndim}.")
    return ndim


def _conv_fn(ndim: int):
    return F.conv2d if ndim == 2 else F.conv3d


class BayesConv(nn.Module):
    """Convolution with Gaussian weights ``w ~ N(μ, σ²)``, ``σ = softplus(ρ)``, sampled per forward pass.

    Local reparametrization: the pre-activation is Gaussian given the input, with mean ``conv(x, μ)`` and
    variance ``conv(x², σ²)``; it is sampled as ``mean + ε·sqrt(var)``, ``ε ~ N(0, 1)`` per output
    element (Kingma, Salimans & Welling, NeurIPS 2015). :meth:`kl` is ``KL(q(w) ‖ N(0, σ_p²))`` in closed form.
    With ``local_reparametrization = False`` each batch element instead draws one weight tensor ``w ~ q`` shared by
    all its pixels: the output is then ``G_θ(z)`` for one network ``θ ~ q`` (what a posterior draw is), at the cost
    of one convolution per batch element.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, ndim: int = 2, stride: int = 1,
                 prior_sigma: float = 1.0, init_sigma: float = 1e-3):
        super().__init__()
        self.ndim = _check_ndim(ndim)
        if prior_sigma <= 0 or init_sigma <= 0:
            raise ValueError("The prior and initial weight standard deviations must be positive.")
        self.stride, self.padding = stride, kernel_size // 2
        self.prior_sigma = float(prior_sigma)
        shape = (out_channels, in_channels) + (kernel_size,) * ndim
        fan_in = in_channels * kernel_size**ndim
        self.fan_in, self.init_sigma = fan_in, float(init_sigma)
        self.weight_mu = nn.Parameter(torch.empty(shape))
        self.bias_mu = nn.Parameter(torch.empty(out_channels))
        self.weight_rho = nn.Parameter(torch.empty(shape))
        self.bias_rho = nn.Parameter(torch.empty(out_channels))
        #: the generator of the weight noise (``None``: torch's global one); see :func:`..init.use_generator`
        self.generator: torch.Generator | None = None
        #: True: independent pre-activation noise per output element (training); False: one weight draw per image
        self.local_reparametrization = True
        if self.weight_mu.device.type != "meta":
            self.reset_parameters_from(None)

    def reset_parameters_from(self, generator: torch.Generator | None) -> None:
        """``μ ~ U(±√(3/fan_in))``, bias 0, ``σ = init_sigma`` (drawn from ``generator``)."""
        with torch.no_grad():
            self.weight_mu.uniform_(-1, 1, generator=generator).mul_(math.sqrt(3.0 / self.fan_in))
            self.bias_mu.zero_()
            rho0 = math.log(math.expm1(self.init_sigma))  # softplus⁻¹
            self.weight_rho.fill_(rho0)
            self.bias_rho.fill_(rho0)

    @property
    def weight_sigma(self) -> torch.Tensor:
        return F.softplus(self.weight_rho)

    @property
    def bias_sigma(self) -> torch.Tensor:
        return F.softplus(self.bias_rho)

    def moments(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and variance of the pre-activation given ``x``."""
        conv = _conv_fn(self.ndim)
        mean = conv(x, self.weight_mu, self.bias_mu, self.stride, self.padding)
        var = conv(x * x, self.weight_sigma**2, self.bias_sigma**2, self.stride, self.padding)
        return mean, var

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.local_reparametrization:
            conv, out = _conv_fn(self.ndim), []
            for xi in x.split(1):
                w = self.weight_mu + self.weight_sigma * torch.randn(
                    self.weight_mu.shape, generator=self.generator, dtype=xi.dtype, device=xi.device)
                b = self.bias_mu + self.bias_sigma * torch.randn(
                    self.bias_mu.shape, generator=self.generator, dtype=xi.dtype, device=xi.device)
                out.append(conv(xi, w, b, self.stride, self.padding))
            return torch.cat(out)
        mean, var = self.moments(x)
        eps = torch.randn(mean.shape, generator=self.generator, dtype=mean.dtype, device=mean.device)
        return mean + eps * var.clamp(min=1e-16).sqrt()

    def kl(self) -> torch.Tensor:
        """``Σ log(σ_p/σ) + (σ² + μ²)/(2σ_p²) − ½`` over weights and biases."""
        total = torch.zeros((), device=self.weight_mu.device)
        for mu, sigma in ((self.weight_mu, self.weight_sigma), (self.bias_mu, self.bias_sigma)):
            total = total + (math.log(self.prior_sigma) - torch.log(sigma)
                             + (sigma**2 + mu**2) / (2 * self.prior_sigma**2) - 0.5).sum()
        return total


def kl_divergence(net: nn.Module) -> torch.Tensor:
    """Sum of :meth:`BayesConv.kl` over a network's Bayesian layers (0 when it has none)."""
    terms = [m.kl() for m in net.modules() if isinstance(m, BayesConv)]
    if not terms:
        return torch.zeros(())
    return torch.stack(terms).sum()


class _ConvFactory:
    """Builds the convolutions of a :class:`SkipNet` for one layer kind."""

    def __init__(self, ndim: int, layer: str, dropout: float, prior_sigma: float):
        if layer not in LAYERS:
            raise ValueError(f"layer must be one of {LAYERS}, got {layer!r}.")
        if layer == "dropout" and not 0 < dropout < 1:
            raise ValueError("The dropout probability must lie in (0, 1).")
        self.ndim, self.layer, self.dropout, self.prior_sigma = ndim, layer, dropout, prior_sigma

    def __call__(self, cin: int, cout: int, k: int, stride: int = 1) -> nn.Module:
        if self.layer == "bayes":
            return BayesConv(cin, cout, k, self.ndim, stride, prior_sigma=self.prior_sigma)
        conv = (nn.Conv2d if self.ndim == 2 else nn.Conv3d)(cin, cout, k, stride, padding=k // 2)
        if self.layer == "dropout" and k > 1:
            return nn.Sequential(_AlwaysDropout(self.dropout), conv)
        return conv

    def norm(self, c: int) -> nn.Module:
        # instance statistics with a learnt affine map: BatchNorm with a batch of one image, but the same in
        # train and eval mode, and per sample when several stochastic passes are batched
        return (nn.InstanceNorm2d if self.ndim == 2 else nn.InstanceNorm3d)(c, affine=True)

    def block(self, cin: int, cout: int, k: int, stride: int = 1) -> nn.Sequential:
        return nn.Sequential(self(cin, cout, k, stride), self.norm(cout), nn.LeakyReLU(0.2))


class _AlwaysDropout(nn.Module):
    """Element-wise dropout that stays on at inference (Monte-Carlo dropout)."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p
        #: the generator of the masks (``None``: torch's global one); see :func:`..init.use_generator`
        self.generator: torch.Generator | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        keep = torch.rand(x.shape, generator=self.generator, device=x.device) >= self.p
        return x * keep.to(x.dtype) / (1.0 - self.p)


class SkipNet(nn.Module):
    """Encoder–decoder with skip connections for the Deep Image Prior, 2D or 3D.

    Level ``i``: down = [3×3 stride-2 conv, norm, LeakyReLU, 3×3 conv, norm, LeakyReLU]; skip = 1×1 conv of the
    level's input; up = interpolate to the skip's size, concatenate, [3×3 conv, 1×1 conv] with norms. Any image
    size works (the decoder upsamples to the encoder's sizes). Output: ``out_channels`` maps, linear.
    """

    def __init__(self, in_channels: int = 16, out_channels: int = 1, ndim: int = 2,
                 widths: tuple[int, ...] = (16, 32, 64, 64), skip: int = 4, layer: str = "plain",
                 dropout: float = 0.1, prior_sigma: float = 1.0):
        super().__init__()
        self.ndim = _check_ndim(ndim)
        if not widths or min(widths) < 1 or skip < 0:
            raise ValueError("SkipNet needs at least one level of positive width and a non-negative skip width.")
        make = _ConvFactory(ndim, layer, dropout, prior_sigma)
        self.mode = "bilinear" if ndim == 2 else "trilinear"
        self.down, self.skips, self.up = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        cin = in_channels
        for w in widths:
            self.down.append(nn.Sequential(make.block(cin, w, 3, stride=2), make.block(w, w, 3)))
            self.skips.append(make.block(cin, skip, 1) if skip else nn.Identity())
            cin = w
        for i, w in enumerate(widths):
            deeper = widths[i + 1] if i + 1 < len(widths) else w
            self.up.append(nn.Sequential(make.block(deeper + skip, w, 3), make.block(w, w, 1)))
        self.head = make(widths[0], out_channels, 1)
        self.skip_width = skip

    def check_size(self, size: tuple[int, ...], what: str | None = None) -> None:
        """``ValueError`` when an input of spatial ``size`` is too small for the levels: each halves it (rounded up),
        and instance normalization needs at least two pixels at the coarsest one. ``what``: the input, in words."""
        coarsest = tuple(size)
        for _ in self.down:
            coarsest = tuple((s + 1) // 2 for s in coarsest)
        if math.prod(coarsest) < 2:
            what = what or f"An image of {' × '.join(map(str, size))} pixels"
            raise ValueError(f"{what} is too small for {len(self.down)} levels of the network: the coarsest would be "
                             "one pixel; lower depth (each level halves the size) or give a larger image.")

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        self.check_size(tuple(z.shape[2:]))
        inputs, h = [], z
        for down in self.down:
            inputs.append(h)
            h = down(h)
        for level in reversed(range(len(self.down))):
            h = F.interpolate(h, size=inputs[level].shape[2:], mode=self.mode, align_corners=False)
            if self.skip_width:
                h = torch.cat([h, self.skips[level](inputs[level])], dim=1)
            h = self.up[level](h)
        return self.head(h)


class DeepDecoder(nn.Module):
    """Deep Decoder: ``levels`` × [1×1 conv, upsample ×2, ReLU, channel norm], then a 1×1 conv to the output.

    Fewer weights than pixels, so it cannot fit noise well (Heckel & Hand, ICLR 2019). The input is a fixed
    random tensor of :meth:`input_shape` (the image size divided by ``2**levels``, rounded up).
    """

    def __init__(self, shape: tuple[int, ...], out_channels: int = 1, channels: int = 64, levels: int = 5):
        super().__init__()
        self.ndim = _check_ndim(len(shape))
        if channels < 1 or levels < 1:
            raise ValueError("The Deep Decoder needs at least one channel and one level.")
        self.shape = tuple(int(s) for s in shape)
        self.channels = channels
        # sizes from coarse to fine: each level doubles (capped at the image size)
        self.sizes = [tuple(max(1, math.ceil(s / 2**k)) for s in self.shape) for k in range(levels, -1, -1)]
        if math.prod(self.sizes[1]) < 2:  # the first normalized maps: instance normalization needs two pixels
            raise ValueError(f"An image of {' × '.join(map(str, self.shape))} pixels is too small for {levels} levels "
                             "of the Deep Decoder: its first level would be one pixel; lower levels.")
        conv = nn.Conv2d if self.ndim == 2 else nn.Conv3d
        norm = nn.InstanceNorm2d if self.ndim == 2 else nn.InstanceNorm3d
        self.convs = nn.ModuleList(conv(channels, channels, 1) for _ in range(levels))
        self.norms = nn.ModuleList(norm(channels, affine=True) for _ in range(levels))
        self.head = conv(channels, out_channels, 1)
        self.mode = "bilinear" if self.ndim == 2 else "trilinear"

    def input_shape(self) -> tuple[int, ...]:
        return (self.channels,) + self.sizes[0]

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = z
        for conv, norm, size in zip(self.convs, self.norms, self.sizes[1:]):
            h = F.interpolate(conv(h), size=size, mode=self.mode, align_corners=False)
            h = norm(F.relu(h))
        return self.head(h)


class HalfResolution(nn.Module):
    """A generator run at half the image's resolution: ``out = W * σ(up(g₁, …, g_K)) + shuffle(r₁, …, r_{2^d C})``.

    ``net`` (a fully convolutional generator whose last layer is ``net.head``, fed an input of :meth:`input_size`)
    returns ``K + 2^d C`` maps at half the size per axis. The first ``K`` (``smooth_channels``) are upsampled
    (bilinear/trilinear) to ``shape``, passed through a LeakyReLU and mixed into ``C`` = ``out_channels`` maps by a 1×1
    convolution ``W`` at full resolution (the only full-resolution layer; with ``smooth_channels=0`` the first ``C`` maps
    are upsampled as they are). The other ``2^d C`` maps are the sub-pixel values of a full-resolution residual (the
    pixel shuffle of Shi et al., CVPR 2016, in ``d`` = 2 or 3 dimensions), cropped to ``shape`` and smoothed by
    :func:`binomial_smooth` (without it, the residual's near-Nyquist artifacts, which a blur hides from the data, took one
    seed of the §4 cell/blur case to 28.9 dB: 85 % of its error power lay above the half grid's Nyquist frequency,
    RESULTS §4, dip7). :meth:`zero_residual`
    zeroes the residual's rows of the last layer, so that the fit starts smooth and adds sub-pixel detail where the
    data's gradient asks for it. Any image is reachable (the residual has one value per pixel); the prior on the finest
    scale differs from a full-resolution network's. In 2D one step costs ≈ 0.36–0.5× the full network's (RESULTS §4, dip7).
    """

    def __init__(self, net: nn.Module, shape: tuple[int, ...], out_channels: int, smooth_channels: int = 0):
        super().__init__()
        self.net = net
        self.shape = tuple(int(s) for s in shape)
        self.ndim = _check_ndim(len(self.shape))
        self.out_channels = out_channels
        self.smooth_channels = smooth_channels
        self.mode = "bilinear" if self.ndim == 2 else "trilinear"
        if smooth_channels:
            self.mix = (nn.Conv2d if self.ndim == 2 else nn.Conv3d)(smooth_channels, out_channels, 1)

    def input_size(self) -> tuple[int, ...]:
        """Spatial size of the input: half the image's, rounded up."""
        return tuple((s + 1) // 2 for s in self.shape)

    @staticmethod
    def maps(ndim: int, out_channels: int, smooth_channels: int = 0) -> int:
        """How many maps ``net`` must return: ``K + 2^d C`` (``K`` = ``C`` without smooth channels)."""
        return (smooth_channels or out_channels) + out_channels * 2**ndim

    def zero_residual(self) -> None:
        """Zero the residual's rows of ``net.head``: the output starts as the upsampled smooth part."""
        head, k = self.net.head, self.smooth_channels or self.out_channels
        with torch.no_grad():
            head.weight[k:].zero_()
            if head.bias is not None:
                head.bias[k:].zero_()

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if isinstance(self.net, SkipNet):
            half = tuple(z.shape[2:])
            self.net.check_size(half, f"An image of {' × '.join(map(str, self.shape))} pixels (run at half "
                                      f"resolution, {' × '.join(map(str, half))})")
        out = self.net(z)
        c, d = self.out_channels, self.ndim
        k = self.smooth_channels or c
        smooth = F.interpolate(out[:, :k], size=self.shape, mode=self.mode, align_corners=False)
        if self.smooth_channels:
            smooth = self.mix(F.leaky_relu(smooth, 0.2))
        r = out[:, k:]
        b, half = r.shape[0], r.shape[2:]
        # (B, C·2^d, *half) → (B, C, 2, …, 2, *half) → (B, C, half₀, 2, half₁, 2, …) → (B, C, *2·half), cropped
        r = r.reshape(b, c, *(2,) * d, *half)
        order = [0, 1] + [j for i in range(d) for j in (2 + d + i, 2 + i)]
        r = r.permute(order).reshape(b, c, *(2 * h for h in half))
        return smooth + binomial_smooth(r[(..., *(slice(0, s) for s in self.shape))])


def binomial_smooth(r: torch.Tensor) -> torch.Tensor:
    """The separable binomial filter ``[1, 2, 1]/4`` along every spatial axis of ``(B, C, *spatial)`` (reflected edges).

    Its response ``∏ cos²(π f_i)`` is 1 at ``f = 0`` and 0 at the Nyquist frequency: applied to the sub-pixel residual of
    :class:`HalfResolution` it removes the checkerboard that a blur cannot see (and the data therefore cannot correct).
    Along an axis of one pixel (a 1×N image, a one-slice stack) it is the identity.
    """
    d = r.ndim - 2
    k = torch.tensor([0.25, 0.5, 0.25], dtype=r.dtype, device=r.device)
    one = torch.ones(1, dtype=r.dtype, device=r.device)
    # a one-pixel axis has nothing to reflect: there the filter is [1] (what [1, 2, 1]/4 does to a constant)
    sizes = r.shape[2:]
    ks = [k if s > 1 else one for s in sizes]
    kernel = ks[0]
    for ki in ks[1:]:
        kernel = kernel[..., None] * ki
    kernel = kernel.expand(r.shape[1], 1, *kernel.shape)
    conv = F.conv2d if d == 2 else F.conv3d
    pad = tuple(p for s in reversed(sizes) for p in ((1, 1) if s > 1 else (0, 0)))
    return conv(F.pad(r, pad, mode="reflect"), kernel, groups=r.shape[1])
