"""Neural field reconstruction: an untrained coordinate network fitted to the data through the forward model.

``x = x_θ(r)`` on the pixel centers ``r`` (a Fourier-feature MLP, :class:`~napari_invimg.nets.field.FourierField`),
``θ`` by Adam on ``−log p(y | A x_θ)`` and stopped like the Deep Image Prior (running variance of the iterates or
the discrepancy principle, :func:`~napari_invimg.methods.dip.fit_network`), the discrepancy tested on the returned
running mean rather than on the current iterate: the field fits in tens of iterations, and its running mean lags
behind (tested on the iterate, the rule stopped cell/blur at iteration 62 with the mean 2.3 dB below its peak;
RESULTS §13). Being continuous, the field can be
evaluated ``upsample`` times finer than the data: the fit then uses the fine image averaged back onto the data
grid (pixel integration), and the returned image is the fine one (super-resolution by evaluation).
References: Tancik et al., NeurIPS 2020; Sun et al., CoIL: coordinate-based internal learning for tomographic
imaging, IEEE TCI 7 (2021) 1400.
"""

from __future__ import annotations


import torch
import torch.nn.functional as F
from torch import nn

from ..nets.field import FourierField, grid_coordinates
from .dip import POSITIVE, STOP_PARAMS, DIPProblem, fit_network
from .registry import ITERATIONS, Context, Estimate, Method, Param

__all__ = ["NeuralField"]


class _FieldImage(nn.Module):
    """The field evaluated on the fine grid and averaged onto the data grid: ``(1, C, *shape)``."""

    def __init__(self, field: FourierField, shape: tuple[int, ...], upsample: int):
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


class NeuralField(Method):
    name = "neural_field"
    label = "Neural field (Fourier features)"
    description = (
        "x = x_θ(r), a Fourier-feature MLP of the pixel coordinates, θ = Adam-argmin −log p(y | A x_θ); stops itself "
        "like DIP (discrepancy of the returned running mean); upsample > 1 evaluates the field on a finer grid (the data term sees it averaged back)."
    )
    reference = ("Tancik et al., Fourier features let networks learn high frequency functions in low dimensional "
                 "domains, NeurIPS 2020; Sun et al., CoIL, IEEE TCI 7 (2021) 1400.")
    params = (
        ITERATIONS(2000),
        POSITIVE,
        Param("lr", float, 0.002, 1e-5, 1.0, doc="Adam learning rate", log_scale=True),
        # the field fits in a few hundred iterations: a shorter window than DIP's keeps the running mean current
        *(p for p in STOP_PARAMS if p.name not in ("lr", "window", "patience")),
        Param("window", int, 20, 2, 10000, doc="length (iterations) of the exponential window of the running mean/variance"),
        Param("patience", int, 100, 1, 100000, doc="stop when the running variance has not reached a new minimum for this many iterations"),
        Param("upsample", int, 1, 1, 8, doc="return the image this many times finer than the data (lateral axes)"),
        Param("frequency", float, 0.03, 0.001, 1.0, doc="std of the Fourier feature frequencies, cycles per data pixel "
              "(0.03: the best of 0.02–0.08 on validation images, not the benchmark's; RESULTS §13)"),
        Param("features", int, 128, 4, 2048, doc="number of random Fourier frequencies"),
        Param("width", int, 128, 4, 2048, doc="hidden units per layer"),
        Param("layers", int, 3, 1, 12, doc="hidden layers"),
    )
    returns_std = False
    uncertainty = None
    needs_adjoint = False
    complex_images = True

    def run(self, y, A, noise, ctx: Context, iterations: int, positive: bool, lr: float, stop: str, tau: float,
            window: int, patience: int, upsample: int, frequency: float, features: int, width: int,
            layers: int) -> Estimate:
        problem = DIPProblem.for_operator(y, A, noise, positive)
        field = FourierField(A.ndim, problem.out_channels, ctx.generator(offset=11), features, frequency, width, layers)
        net = _FieldImage(field, tuple(A.in_shape), upsample)
        coords = grid_coordinates(tuple(A.in_shape), upsample, ctx.device)[None]
        x, info = fit_network(net, coords, y, A, noise, problem, ctx, iterations=iterations, lr=lr, stop=stop,
                              tau=tau, window=window, patience=patience, input_noise=0.0, restore=upsample > 1,
                              discrepancy_of_mean=True)
        if upsample > 1:
            with torch.no_grad():
                x = problem.image(net.fine(coords))[0]
        info.update(parameters=sum(p.numel() for p in field.parameters()), upsample=upsample,
                    grid_shape=list(x.shape))
        return Estimate(x, info=info)
