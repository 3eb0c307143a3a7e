"""Coordinate networks (neural fields): a continuous image ``x(r)`` as an MLP on random Fourier features of ``r``.

``x(r) = W_L σ(… σ(W_1 γ(r)))`` with ``γ(r) = [sin 2πBr, cos 2πBr]``, ``B ~ N(0, f²)`` in cycles per pixel
(Tancik et al., Fourier features let networks learn high frequency functions in low dimensional domains,
NeurIPS 2020). Evaluated on any grid, so the same weights give the image on the data grid or on a finer one.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["FourierField", "GridField", "SineField", "grid_coordinates"]


def grid_coordinates(shape: tuple[int, ...], upsample: int = 1, device: torch.device | str = "cpu") -> torch.Tensor:
    """Centers of the pixels of a grid ``upsample`` times finer than ``shape`` (lateral axes only for 3D), in
    data-pixel units: ``(P, ndim)``."""
    factors = [1] * (len(shape) - 2) + [upsample, upsample] if len(shape) == 3 else [upsample] * len(shape)
    axes = [(torch.arange(n * f, dtype=torch.float32, device=device) + 0.5) / f for n, f in zip(shape, factors)]
    mesh = torch.meshgrid(*axes, indexing="ij")
    return torch.stack([m.reshape(-1) for m in mesh], dim=1)


def _relu_layers(dims: list[int], generator: torch.Generator) -> nn.ModuleList:
    """Linear layers ``dims[0] → … → dims[-1]`` drawn ``U(±1/√fan_in)`` from ``generator``."""
    # skip_init: no default initialization from torch's global generator (the weights are drawn below)
    layers = nn.ModuleList(nn.utils.skip_init(nn.Linear, a, b) for a, b in zip(dims[:-1], dims[1:]))
    for lin in layers:
        bound = 1 / math.sqrt(lin.in_features)
        with torch.no_grad():
            lin.weight.copy_((torch.rand(lin.weight.shape, generator=generator) * 2 - 1) * bound)
            lin.bias.copy_((torch.rand(lin.bias.shape, generator=generator) * 2 - 1) * bound)
    return layers


class FourierField(nn.Module):
    """MLP on Fourier features; ``forward(r)`` maps ``(P, ndim)`` coordinates (pixels) to ``(P, out_channels)``."""

    def __init__(self, ndim: int, out_channels: int, generator: torch.Generator, features: int = 128,
                 frequency: float = 0.05, width: int = 128, layers: int = 3):
        super().__init__()
        self.register_buffer("B", torch.randn(features, ndim, generator=generator) * frequency)
        self.layers = _relu_layers([2 * features + self.extra_features()] + [width] * layers + [out_channels], generator)

    def extra_features(self) -> int:
        """Inputs of the MLP besides the Fourier features (none here)."""
        return 0

    def encode(self, r: torch.Tensor) -> torch.Tensor:
        """``γ(r) = [sin 2πBr, cos 2πBr]``: ``(P, ndim)`` -> ``(P, 2 · features)``."""
        proj = 2 * math.pi * r @ self.B.T
        return torch.cat([proj.sin(), proj.cos()], dim=1)

    def _encoded(self, r: torch.Tensor, start: int, chunk: int) -> torch.Tensor:
        """:meth:`encode` of ``r[start:start + chunk]``, kept between calls on the same coordinates where the encoding
        has no trained parameters (``B`` is fixed): a fit evaluates the field on one grid hundreds of times, and the
        sines and cosines were ~30 % of a 128² step (RESULTS §13, nfield6). Autograd keeps the first layer's input for
        the weight gradient anyway, so the cache does not raise the peak memory of a step."""
        if self.extra_features():  # trained encodings (GridField's grids) are evaluated every time
            return self.encode(r[start:start + chunk])
        cache = self.__dict__.setdefault("_encoding_cache", {})
        # the same coordinates, unchanged (a view of the same memory, same version), and the same B; the cache holds
        # the tensor it was computed from, so that memory is not freed and reused by other coordinates
        key = (r.data_ptr(), r.shape, r.stride(), r.dtype, r.device, r._version, self.B.data_ptr(), self.B._version, chunk)
        if cache.get("key") != key:
            cache.clear()
            cache.update(key=key, held=(r, self.B))
        if start not in cache:
            with torch.no_grad():
                cache[start] = self.encode(r[start:start + chunk])
        return cache[start]

    def forward(self, r: torch.Tensor, chunk: int = 2**17) -> torch.Tensor:
        outs = []
        for start in range(0, r.shape[0], chunk):
            h = self._encoded(r, start, chunk)
            for i, lin in enumerate(self.layers):
                h = lin(h)
                if i < len(self.layers) - 1:
                    h = torch.relu(h)
            outs.append(h)
        return torch.cat(outs, dim=0)


class SineField(nn.Module):
    """SIREN: ``h₁ = sin(2π B r + b)``, ``h_{k+1} = sin(ω₀ (W_k h_k + b_k))``, linear output; ``forward(r)`` maps
    ``(P, ndim)`` coordinates (pixels) to ``(P, out_channels)``. The first layer's frequencies ``B`` are trained, drawn
    ``U(−√3 f, √3 f)`` (std ``f`` cycles per pixel, as :class:`FourierField`'s); the hidden layers use Sitzmann et
    al.'s initialization ``W ~ U(±√(6/n)/ω₀)`` (Implicit neural representations with periodic activation functions,
    NeurIPS 2020)."""

    def __init__(self, ndim: int, out_channels: int, generator: torch.Generator, features: int = 128,
                 frequency: float = 0.05, width: int = 128, layers: int = 3, omega: float = 30.0):
        super().__init__()
        self.omega = omega
        dims = [ndim, features] + [width] * (layers - 1) + [out_channels]
        self.layers = nn.ModuleList(nn.utils.skip_init(nn.Linear, a, b) for a, b in zip(dims[:-1], dims[1:]))

        def uniform(shape, bound):
            return (torch.rand(shape, generator=generator) * 2 - 1) * bound

        with torch.no_grad():
            first = self.layers[0]
            first.weight.copy_(uniform(first.weight.shape, 2 * math.pi * math.sqrt(3) * frequency))
            first.bias.copy_(uniform(first.bias.shape, math.pi))
            for lin in self.layers[1:]:
                bound = math.sqrt(6 / lin.in_features) / (omega if lin is not self.layers[-1] else 1.0)
                lin.weight.copy_(uniform(lin.weight.shape, bound))
                lin.bias.copy_(uniform(lin.bias.shape, 1 / math.sqrt(lin.in_features)))

    def forward(self, r: torch.Tensor, chunk: int = 2**17) -> torch.Tensor:
        outs = []
        last = len(self.layers) - 1
        for start in range(0, r.shape[0], chunk):
            h = torch.sin(self.layers[0](r[start:start + chunk]))
            for i, lin in enumerate(self.layers[1:], start=1):
                h = lin(h) if i == last else torch.sin(self.omega * lin(h))
            outs.append(h)
        return torch.cat(outs, dim=0)


class GridField(FourierField):
    """:class:`FourierField` whose MLP also reads trained feature grids: ``levels`` dense grids over the image
    (``extent`` pixels per axis), from 8 cells per axis up to ``extent / finest`` cells, geometric, ``level_features``
    channels each, interpolated (bilinear / trilinear) at ``r`` — a multi-resolution grid encoding (Müller et al.,
    Instant neural graphics primitives, SIGGRAPH 2022; dense, no hashing, as the images are small). The grid
    features are local: each cell's features move only the field near that cell, so the encoding is not stationary
    (it can be sharp at a spot and flat on the background) while the Fourier features keep the global scale."""

    def __init__(self, ndim: int, out_channels: int, generator: torch.Generator, extent: tuple[int, ...],
                 features: int = 128, frequency: float = 0.05, width: int = 128, layers: int = 3, levels: int = 3,
                 level_features: int = 4, finest: float = 4.0):
        self.levels, self.level_features = levels, level_features
        super().__init__(ndim, out_channels, generator, features, frequency, width, layers)
        self.register_buffer("extent", torch.tensor([float(n) for n in extent]))
        top = [max(2, int(n / finest)) for n in extent]
        grids = []
        for level in range(levels):
            t = level / max(levels - 1, 1)
            cells = [max(2, min(n, round(min(8, n) * (n / min(8, n)) ** t))) for n in top]
            grids.append(nn.Parameter((torch.rand((1, level_features, *cells), generator=generator) * 2 - 1) * 1e-4))
        self.grids = nn.ParameterList(grids)

    def extra_features(self) -> int:
        return self.levels * self.level_features

    def encode(self, r: torch.Tensor) -> torch.Tensor:
        u = (2 * r / self.extent - 1).flip(-1)  # grid_sample's coordinates: [-1, 1], last axis first
        where = u.reshape(1, -1, *([1] * (u.shape[-1] - 1)), u.shape[-1])
        local = [F.grid_sample(g, where, mode="bilinear", padding_mode="border", align_corners=False).reshape(
            g.shape[1], -1).T for g in self.grids]
        return torch.cat([super().encode(r), *local], dim=1)
