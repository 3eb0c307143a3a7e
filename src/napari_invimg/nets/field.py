"""Coordinate networks (neural fields): a continuous image ``x(r)`` as an MLP on random Fourier features of ``r``.

``x(r) = W_L σ(… σ(W_1 γ(r)))`` with ``γ(r) = [sin 2πBr, cos 2πBr]``, ``B ~ N(0, f²)`` in cycles per pixel
(Tancik et al., Fourier features let networks learn high frequency functions in low dimensional domains,
NeurIPS 2020). Evaluated on any grid, so the same weights give the image on the data grid or on a finer one.
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["FourierField", "grid_coordinates"]


def grid_coordinates(shape: tuple[int, ...], upsample: int = 1, device: torch.device | str = "cpu") -> torch.Tensor:
    """Centers of the pixels of a grid ``upsample`` times finer than ``shape`` (lateral axes only for 3D), in
    data-pixel units: ``(P, ndim)``."""
    factors = [1] * (len(shape) - 2) + [upsample, upsample] if len(shape) == 3 else [upsample] * len(shape)
    axes = [(torch.arange(n * f, dtype=torch.float32, device=device) + 0.5) / f for n, f in zip(shape, factors)]
    mesh = torch.meshgrid(*axes, indexing="ij")
    return torch.stack([m.reshape(-1) for m in mesh], dim=1)


class FourierField(nn.Module):
    """MLP on Fourier features; ``forward(r)`` maps ``(P, ndim)`` coordinates (pixels) to ``(P, out_channels)``."""

    def __init__(self, ndim: int, out_channels: int, generator: torch.Generator, features: int = 128,
                 frequency: float = 0.05, width: int = 128, layers: int = 3):
        super().__init__()
        self.register_buffer("B", torch.randn(features, ndim, generator=generator) * frequency)
        dims = [2 * features] + [width] * layers + [out_channels]
        # skip_init: no default initialization from torch's global generator (the weights are drawn below)
        self.layers = nn.ModuleList(nn.utils.skip_init(nn.Linear, a, b) for a, b in zip(dims[:-1], dims[1:]))
        for lin in self.layers:
            bound = 1 / math.sqrt(lin.in_features)
            with torch.no_grad():
                lin.weight.copy_((torch.rand(lin.weight.shape, generator=generator) * 2 - 1) * bound)
                lin.bias.copy_((torch.rand(lin.bias.shape, generator=generator) * 2 - 1) * bound)

    def forward(self, r: torch.Tensor, chunk: int = 2**17) -> torch.Tensor:
        outs = []
        for start in range(0, r.shape[0], chunk):
            proj = 2 * math.pi * r[start:start + chunk] @ self.B.T
            h = torch.cat([proj.sin(), proj.cos()], dim=1)
            for i, lin in enumerate(self.layers):
                h = lin(h)
                if i < len(self.layers) - 1:
                    h = torch.relu(h)
            outs.append(h)
        return torch.cat(outs, dim=0)
