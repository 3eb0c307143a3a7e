"""Neural field reconstruction: an untrained coordinate network fitted to the data through the forward model.

``x = x_θ(r)`` on the pixel centers ``r`` (a Fourier-feature MLP, :class:`~napari_invimg.nets.field.FourierField`),
``θ`` by Adam on ``−log p(y | A x_θ)`` and stopped by the discrepancy principle
(:func:`~napari_invimg.methods.dip.fit_network`; the Deep Image Prior's running-variance rule is an option,
``stop="auto"``, but the ensemble's running variance dips and rises again while the fields still fit the image, and it
stopped both validation images early; RESULTS §13, nfield6), the discrepancy tested on the returned running mean
rather than on the current iterate: the field fits in tens of iterations, and its running mean lags behind (tested on
the iterate, the rule stopped cell/blur at iteration 62 with the mean 2.3 dB below its peak; RESULTS §13). Being
continuous, the field can be evaluated ``upsample`` times finer than the data: the fit then uses the fine image
averaged back onto the data grid (pixel integration), and the returned image is the fine one (super-resolution by
evaluation).

The Fourier-feature scale (std of the frequencies ``B``) is chosen per image from the data unless given: the
signal bandwidth ``f_s`` of the data (the lowest frequency at which their ring-averaged power spectrum falls to
twice the noise floor, :func:`signal_bandwidth`) times a fixed fraction, ``f = BANDWIDTH_FRACTION · f_s``. A smooth
image then gets a smooth field (the network fits its low band before the noise), a detailed one a sharper field.
The MLP is narrow (``WIDTH`` = 32 units): fitted by gradient descent, a wide coordinate network behaves nearly as a fixed,
shift-invariant kernel smoother of the data (its neural tangent kernel), which cannot be sharp at a spot and flat on
the background at once; a narrower one learns its features and denoises sparse images better (RESULTS §13).
By default ``MEMBERS`` independent fields (their own random frequencies and weights) are fitted side by side, each
to the data alone, and the result is their mean, stopped when every member's running mean has reached the
discrepancy target; the std is their spread, labeled an ensemble (not a posterior). One field's iterates follow one smooth path, so its
running mean barely averages anything (+0.1 dB over its best iterate; DIP's, made different by its input noise,
+2.1 dB); independently started fields fit the noise differently and their mean cancels much of it (RESULTS §13,
2026-12-07, helper nfield5). ``members=1`` is the single field.
Options: ``network="siren"`` (sine activations) or ``"grid"`` (Fourier features plus trained multi-resolution feature
grids, a local, non-stationary encoding), ``output="exp"`` (multiplicative positivity); none beat the default on the
validation images (RESULTS §13, 2026-12-07, helper nfield3).
References: Tancik et al., NeurIPS 2020; Sun et al., CoIL: coordinate-based internal learning for tomographic
imaging, IEEE TCI 7 (2021) 1400.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..nets.field import FourierField, GridField, SineField, grid_coordinates
from .dip import POSITIVE, STOP_PARAMS, STOP_RULES, DIPProblem, fit_network
from .ensemble import sample_std
from .registry import ITERATIONS, Context, Estimate, Method, Param

__all__ = ["NeuralField", "MEMBERS", "WIDTH", "signal_bandwidth", "automatic_frequency", "BANDWIDTH_FRACTION", "FALLBACK_FREQUENCY"]

#: Fourier-feature std as a fraction of the data's signal bandwidth (chosen on validation images that are not the
#: benchmark's: the moon, coins and a fluorescence image of another seed; RESULTS §13, 2026-12-07 nfield)
BANDWIDTH_FRACTION = 0.13
#: the scale where the data are not an image on a grid proportional to the field's (cycles per pixel)
FALLBACK_FREQUENCY = 0.03
#: independent fields averaged by default (the ensemble's mean and spread)
MEMBERS = 4
#: hidden units per layer of each member's MLP (narrow: the fields learn their features; RESULTS §13, nfield3, nfield7)
WIDTH = 32
#: the automatic scale is kept within these bounds (cycles per pixel)
FREQUENCY_BOUNDS = (0.004, 0.1)


def signal_bandwidth(y: torch.Tensor, floor: float, ratio: float = 2.0) -> float:
    """The lowest frequency (cycles per pixel of ``y``'s last two axes) at which the ring-averaged power spectrum of
    ``y`` (Hann window, mean over leading axes, rings one frequency step wide, smoothed over 3 rings) falls below
    ``ratio × floor``; ``floor`` the white noise's power, i.e. its variance per pixel. ``0.5`` if it never does."""
    a = y.detach().abs() if y.is_complex() else y.detach()
    a = a.to("cpu", torch.float64).reshape(-1, *a.shape[-2:])
    n0, n1 = a.shape[-2:]
    if min(n0, n1) < 8:
        raise ValueError("signal_bandwidth needs at least 8 × 8 pixels.")
    w = torch.outer(torch.hann_window(n0, periodic=False, dtype=torch.float64),
                    torch.hann_window(n1, periodic=False, dtype=torch.float64))
    a = a - a.mean(dim=(-2, -1), keepdim=True)
    power = (torch.fft.fft2(a * w).abs() ** 2).mean(0) / float((w * w).sum())
    r = torch.sqrt(torch.fft.fftfreq(n0, dtype=torch.float64)[:, None] ** 2
                   + torch.fft.fftfreq(n1, dtype=torch.float64)[None, :] ** 2)
    step = 1.0 / min(n0, n1)
    rings = int(0.5 / step) + 1
    index = torch.round(r / step).long().clamp(max=rings).flatten()
    sums = torch.zeros(rings + 1, dtype=torch.float64).index_add_(0, index, power.flatten())
    counts = torch.zeros(rings + 1, dtype=torch.float64).index_add_(0, index, torch.ones_like(power.flatten()))
    profile = (sums / counts.clamp(min=1))[1:rings]  # rings 1 … (the zero frequency left out)
    smooth = F.avg_pool1d(profile[None, None], 3, 1, 1, count_include_pad=False)[0, 0]
    below = (smooth < ratio * floor).nonzero()
    return float((int(below[0]) + 1) * step) if below.numel() else 0.5


def automatic_frequency(y: torch.Tensor, A, noise) -> tuple[float, str]:
    """The Fourier-feature std for data ``y`` (cycles per pixel of the field's grid, ``A.in_shape``) and how it was
    chosen: ``BANDWIDTH_FRACTION ×`` :func:`signal_bandwidth` of ``y`` against ``noise``'s mean variance, converted
    to the field's pixels where ``y`` lies on a grid proportional to it (a binning operator), else the fallback."""
    lateral_in, lateral_y = tuple(A.in_shape)[-2:], tuple(y.shape)[-2:]
    ratios = [ny / nx for ny, nx in zip(lateral_y, lateral_in)]
    if (y.ndim != len(A.in_shape) or len(lateral_y) < 2
            or not math.isclose(ratios[0], ratios[1], rel_tol=1e-6) or ratios[0] > 1):
        return FALLBACK_FREQUENCY, "fallback (the data are not an image on the field's grid)"
    if min(lateral_y) < 8:
        return FALLBACK_FREQUENCY, "fallback (fewer than 8 data pixels along an axis: no spectrum to read)"
    with torch.no_grad():
        floor = float(noise.variance(y.real if y.is_complex() else y).mean())
    bandwidth = signal_bandwidth(y, floor) * ratios[0]
    low, high = FREQUENCY_BOUNDS
    return min(max(BANDWIDTH_FRACTION * bandwidth, low), high), f"{BANDWIDTH_FRACTION} × signal bandwidth {bandwidth:.3g}"


#: how the field's output becomes a non-negative image (``positive``): ``softplus`` or ``exp``
OUTPUTS = ("softplus", "exp")
#: the coordinate networks: random Fourier features + ReLU MLP, or a sine network (SIREN)
NETWORKS = {"fourier": FourierField, "siren": SineField, "grid": GridField}


class _FieldProblem(DIPProblem):
    """:class:`DIPProblem` with a choice of positive output: ``scale · softplus(out)`` or ``scale · exp(out)``. The
    exponential moves a pixel by ``dx = x · d(out)``: dark pixels change slowly (multiplicative, as Richardson–Lucy's
    updates), so a dark background fits its noise later than bright structure does."""

    output: str = "softplus"

    def image(self, out: torch.Tensor) -> torch.Tensor:
        if self.positive and not self.complex_image and self.output == "exp":
            return self.scale * torch.exp(out[:, 0].clamp(max=30.0))
        return super().image(out)


class _FieldImage(nn.Module):
    """The field evaluated on the fine grid and averaged onto the data grid: ``(1, C, *shape)``."""

    def __init__(self, field: nn.Module, shape: tuple[int, ...], upsample: int):
        super().__init__()
        self.field, self.shape, self.upsample = field, shape, upsample

    def fine_shape(self) -> tuple[int, ...]:
        u = self.upsample
        return (*self.shape[:-2], self.shape[-2] * u, self.shape[-1] * u)

    def fine(self, coords: torch.Tensor) -> torch.Tensor:
        out = self.field(coords[0])
        return out.T.reshape(1, -1, *self.fine_shape())

    def forward(self, coords: torch.Tensor) -> torch.Tensor:
        out = self.fine(coords)
        if self.upsample == 1:
            return out
        k = self.upsample
        return F.avg_pool2d(out, k) if len(self.shape) == 2 else F.avg_pool3d(out, (1, k, k))


class _FieldEnsemble(nn.Module):
    """Independent fields evaluated together: :meth:`forward` and :meth:`fine` give ``(members, C, *shape)``."""

    def __init__(self, images: list[_FieldImage]):
        super().__init__()
        self.images = nn.ModuleList(images)

    def forward(self, coords: torch.Tensor) -> torch.Tensor:
        return torch.cat([m(coords) for m in self.images], dim=0)

    def fine(self, coords: torch.Tensor) -> torch.Tensor:
        return torch.cat([m.fine(coords) for m in self.images], dim=0)


class NeuralField(Method):
    name = "neural_field"
    label = "Neural field (Fourier features)"
    description = (
        "x = x_θ(r), a Fourier-feature MLP of the pixel coordinates, θ = Adam-argmin −log p(y | A x_θ); stops itself "
        "(discrepancy of the returned running means); returns the mean of independently started fields "
        "(spread: ensemble); upsample > 1 evaluates the field on a finer grid (the data term sees it averaged back)."
    )
    reference = ("Tancik et al., Fourier features let networks learn high frequency functions in low dimensional "
                 "domains, NeurIPS 2020; Sun et al., CoIL, IEEE TCI 7 (2021) 1400.")
    params = (
        ITERATIONS(2000),
        POSITIVE,
        # 5e-4, not 1e-3 (nor 2e-3 before): the fields fit the spots before the noise better (validation images
        # fluorescence seeds 4 and 7, 128² denoising, 4 fields: 32.75 → 33.01 and 33.52 → 34.20 dB, 1.24–1.37× the
        # iterations; RESULTS §13, nfield6; one field, seed 7: 2e-3 → 1e-3 31.96 → 32.59 dB, nfield4)
        Param("lr", float, 0.0005, 1e-5, 1.0, doc="Adam learning rate", log_scale=True),
        # the discrepancy alone: the ensemble's running variance is no stopping signal for fields (it dips and rises
        # again while the members still fit the image); with "auto" it stopped both validation images early (fluorescence
        # seeds 4 and 7, 128² denoising: iterations 279 and 219, 29.1 and 27.6 dB, where the discrepancy gives 32.8 and
        # 33.5 dB; RESULTS §13, nfield6)
        Param("stop", str, "discrepancy", choices=STOP_RULES,
              doc="discrepancy: stop when every member's running mean explains the data to the noise level (if that is "
                  "never reached: the running mean after all iterations); auto: also the running variance "
                  "(DIP's rule; early for fields); variance; none: run all iterations"),
        # the field fits in a few hundred iterations: a shorter window than DIP's keeps the running mean current
        *(p for p in STOP_PARAMS if p.name not in ("lr", "stop", "window", "patience")),
        Param("window", int, 20, 2, 10000, doc="length (iterations) of the exponential window of the running mean/variance"),
        Param("patience", int, 100, 1, 100000, doc="stop when the running variance has not reached a new minimum for this many iterations"),
        Param("output", str, "softplus", choices=OUTPUTS, doc="the positive output (with positive): scale · softplus(out), "
              "or scale · exp(out), whose dark pixels change slowly (multiplicative updates)"),
        Param("upsample", int, 1, 1, 8, doc="return the image this many times finer than the data (lateral axes)"),
        Param("frequency", float, None, 0.001, 1.0, doc="std of the Fourier feature frequencies, cycles per data pixel "
              "(empty: 0.13 × the data's signal bandwidth, where their power spectrum falls to twice the noise floor)"),
        Param("network", str, "fourier", choices=tuple(NETWORKS), doc="fourier: random Fourier features and a ReLU MLP "
              "(Tancik et al.); siren: sine activations, trained first-layer frequencies (Sitzmann et al.); grid: Fourier "
              "features plus trained multi-resolution feature grids (8 cells per axis to one cell per 4 pixels: local, "
              "not stationary; Müller et al.)"),
        Param("features", int, 128, 4, 2048, doc="number of random Fourier frequencies"),
        # 32, not 64 (nor 128 before): a narrower MLP is less of a fixed (stationary) kernel smoother and denoises
        # spotty images better (one field, validation fluorescence seed 7, 128²: 128 → 64 denoise 31.15 → 31.96 dB;
        # nfield3). For the 4-field ensemble at lr 5e-4 (validation fluorescence seeds 4 and 7, 128², at the
        # discrepancy stop) 64 → 32: denoise 33.01 → 33.27 and 34.20 → 34.33 dB, blur 31.93 → 32.05 and 31.41 → 32.31
        # dB (later stops: 1.3–1.5× the iterations at about half the CPU per iteration; RESULTS §13, nfield7)
        Param("width", int, WIDTH, 4, 2048, doc="hidden units per layer"),
        Param("layers", int, 3, 1, 12, doc="hidden layers"),
        Param("members", int, MEMBERS, 1, 64, doc="independent fields (own random frequencies and weights), each fitted "
              "to the data; the result is their mean, the std their spread (an ensemble, not a posterior; 1: no std)"),
    )
    returns_std = True
    uncertainty = "ensemble"
    needs_adjoint = False
    complex_images = True

    def run(self, y, A, noise, ctx: Context, iterations: int, positive: bool, lr: float, stop: str, tau: float,
            window: int, patience: int, output: str, upsample: int, frequency: float | None, network: str, features: int, width: int,
            layers: int, members: int) -> Estimate:
        if output not in OUTPUTS:
            raise ValueError(f"output must be one of {OUTPUTS}, got {output!r}.")
        base = DIPProblem.for_operator(y, A, noise, positive)
        problem = _FieldProblem(base.shape, base.complex_image, base.positive, base.scale)
        problem.output = output
        chosen = "given"
        if frequency is None:
            frequency, chosen = automatic_frequency(y, A, noise)
        if network not in NETWORKS:
            raise ValueError(f"network must be one of {tuple(NETWORKS)}, got {network!r}.")
        extent = {"extent": tuple(A.in_shape)} if network == "grid" else {}
        # member k from its own stream (member 0 as a single field's); the data's frequency scale is shared
        net = _FieldEnsemble([_FieldImage(NETWORKS[network](
            A.ndim, problem.out_channels, ctx.generator(offset=11 + 101 * k), features=features, frequency=frequency,
            width=width, layers=layers, **extent), tuple(A.in_shape), upsample) for k in range(members)])
        coords = grid_coordinates(tuple(A.in_shape), upsample, ctx.device)[None]
        stack, info = fit_network(net, coords, y, A, noise, problem, ctx, iterations=iterations, lr=lr, stop=stop,
                                  tau=tau, window=window, patience=patience, input_noise=0.0, restore=upsample > 1,
                                  discrepancy_of_mean=True, members=True)
        if upsample > 1:
            with torch.no_grad():
                stack = problem.image(net.fine(coords))
        x = stack.mean(0)
        info.update(parameters=sum(p.numel() for p in net.parameters()), upsample=upsample, members=members,
                    grid_shape=list(x.shape), frequency=float(frequency), frequency_from=chosen)
        return Estimate(x, std=sample_std(stack), samples=stack if members > 1 else None, info=info)
