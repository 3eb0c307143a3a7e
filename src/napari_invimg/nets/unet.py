"""A plain U-Net (2D, or 3D with pooling in the lateral plane only) and the unrolled data-consistency network.

U-Net (Ronneberger, Fischer & Brox, MICCAI 2015) as CARE uses it (Weigert et al., Nat. Methods 15 (2018) 1090):
two 3×3 convolutions per level, average-pool down, nearest-neighbor up, skip concatenation, a residual output
``x̂ = u + F(u)`` when input and output have the same channels. Networks are initialized from a local
``torch.Generator`` (never torch's global one), so a seeded training reproduces its weights bit for bit.

The unrolled network (MoDL: Aggarwal, Mani & Jacob, IEEE TMI 38 (2019) 394) alternates ``K`` times a shared CNN
``z = x + F(x)`` with the data-consistency step ``x = argmin ‖A x − y‖² + λ‖x − z‖²`` solved by a few conjugate-
gradient steps through the operator, ``λ`` learned.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["UNet", "UnrolledNet", "from_channels", "init_weights", "to_channels"]


def init_weights(module: nn.Module, generator: torch.Generator) -> nn.Module:
    """Re-initialize every convolution (Kaiming-uniform weights, zero biases) from ``generator``."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Conv3d)):
            fan_in = m.weight[0].numel()
            bound = math.sqrt(6.0 / fan_in) / math.sqrt(2.0)
            with torch.no_grad():
                m.weight.copy_((torch.rand(m.weight.shape, generator=generator) * 2 - 1) * bound)
                if m.bias is not None:
                    m.bias.zero_()
    return module


def to_channels(x: torch.Tensor) -> torch.Tensor:
    """Images ``(B, *shape)`` -> network input ``(B, C, *shape)``: complex as 2 channels (real, imaginary)."""
    return torch.stack([x.real, x.imag], dim=1) if x.is_complex() else x.unsqueeze(1)


def from_channels(t: torch.Tensor, complex_: bool) -> torch.Tensor:
    """Inverse of :func:`to_channels`."""
    return torch.complex(t[:, 0], t[:, 1]) if complex_ else t[:, 0]


class UNet(nn.Module):
    """U-Net for ``(N, C, *spatial)`` with ``ndim`` = 2 or 3 spatial axes (3D pools Y and X only)."""

    def __init__(self, ndim: int = 2, in_channels: int = 1, out_channels: int = 1, width: int = 32, depth: int = 3,
                 residual: bool = True):
        super().__init__()
        if ndim not in (2, 3):
            raise ValueError(f"The U-Net works on 2D or 3D images, not {ndim}D.")
        if width < 1 or depth < 1:
            raise ValueError("The U-Net needs a positive width and depth.")
        self.config: dict[str, Any] = {"ndim": int(ndim), "in_channels": int(in_channels),
                                       "out_channels": int(out_channels), "width": int(width), "depth": int(depth),
                                       "residual": bool(residual)}
        conv = nn.Conv2d if ndim == 2 else nn.Conv3d
        self.ndim, self.depth = ndim, depth
        self.residual = residual and in_channels == out_channels
        self.pool = (2, 2) if ndim == 2 else (1, 2, 2)
        widths = [width * 2**i for i in range(depth + 1)]

        def block(c_in: int, c_out: int) -> nn.Sequential:
            return nn.Sequential(conv(c_in, c_out, 3, padding=1), nn.ReLU(inplace=True),
                                 conv(c_out, c_out, 3, padding=1), nn.ReLU(inplace=True))

        self.encoder = nn.ModuleList([block(in_channels if i == 0 else widths[i - 1], widths[i]) for i in range(depth)])
        self.bottom = block(widths[depth - 1], widths[depth])
        self.decoder = nn.ModuleList([block(widths[i + 1] + widths[i], widths[i]) for i in reversed(range(depth))])
        self.head = conv(widths[0], out_channels, 1)

    @property
    def factor(self) -> int:
        """Lateral sizes are padded to a multiple of this (the network is shift-equivariant on this grid)."""
        return 2**self.depth

    @property
    def receptive_field(self) -> int:
        """Pixels on each side that can change an output pixel (lateral): ``Σ_l 4·2^l + 2·2^L + 2^L``."""
        return sum(4 * 2**level for level in range(self.depth)) + 3 * 2**self.depth

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        f = self.factor
        ph, pw = (-size[0]) % f, (-size[1]) % f
        h = F.pad(x, (0, pw, 0, ph) + ((0, 0) if self.ndim == 3 else ()), mode="replicate") if (ph or pw) else x
        skips = []
        for enc in self.encoder:
            h = enc(h)
            skips.append(h)
            h = F.avg_pool2d(h, 2) if self.ndim == 2 else F.avg_pool3d(h, self.pool)
        h = self.bottom(h)
        for dec, skip in zip(self.decoder, reversed(skips)):
            h = F.interpolate(h, size=skip.shape[2:], mode="nearest")
            h = dec(torch.cat([h, skip], dim=1))
        out = self.head(h)[..., : size[0], : size[1]]
        return x + out if self.residual else out


def _batched_dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Real part of ``Σ conj(a)·b`` per batch item, shaped ``(B, 1, ..., 1)``."""
    dims = tuple(range(1, a.ndim))
    return (a.conj() * b).real.sum(dim=dims, keepdim=True)


class UnrolledNet(nn.Module):
    """``K`` alternations of a shared residual U-Net and a CG data-consistency step through an operator ``A``
    (``start="cg"``, MoDL), or ``K`` learned gradient steps ``x ← x + R_θ(x, Aᴴ(Ax − y))`` from a classical
    reconstruction ``x₀`` (``start`` = its method's name, e.g. ``"wavelet"``; Adler & Öktem, Solving ill-posed
    inverse problems using iterative deep neural networks, Inverse Problems 33 (2017) 124007). With ``R_θ``'s last
    layer zero (:meth:`zero_refinement`) the untrained network returns ``x₀`` itself: training only refines it."""

    def __init__(self, ndim: int = 2, complex_image: bool = False, iterations: int = 6, width: int = 24,
                 depth: int = 2, cg_steps: int = 6, lam: float = 0.05, start: str = "cg",
                 start_params: dict[str, Any] | None = None):
        super().__init__()
        channels = 2 if complex_image else 1
        self.config: dict[str, Any] = {"ndim": int(ndim), "complex_image": bool(complex_image),
                                       "iterations": int(iterations), "width": int(width), "depth": int(depth),
                                       "cg_steps": int(cg_steps), "lam": float(lam), "start": str(start),
                                       "start_params": dict(start_params or {})}
        self.complex_image = complex_image
        self.start = str(start)
        self.iterations, self.cg_steps = int(iterations), int(cg_steps)
        if self.start == "cg":
            self.cnn = UNet(ndim, channels, channels, width, depth, residual=True)
        else:  # input: the iterate and the data-misfit gradient; output: the update
            self.cnn = UNet(ndim, 2 * channels, channels, width, depth, residual=False)
        self.log_lam = nn.Parameter(torch.tensor(math.log(lam)))

    def zero_refinement(self) -> None:
        """Zero the last layer of the refinement network: the network then returns its classical start unchanged."""
        if self.start == "cg":
            return
        with torch.no_grad():
            self.cnn.head.weight.zero_()
            if self.cnn.head.bias is not None:
                self.cnn.head.bias.zero_()

    def data_consistency(self, z: torch.Tensor, rhs: torch.Tensor, A, lam: torch.Tensor) -> torch.Tensor:
        """CG on ``(AᴴA + λ) x = Aᴴy + λ z`` from ``x = z`` (``cg_steps`` steps, per batch item)."""
        x = z
        r = rhs + lam * z - (A.normal(x) + lam * x)
        p = r
        rr = _batched_dot(r, r)
        for _ in range(self.cg_steps):
            q = A.normal(p) + lam * p
            alpha = rr / _batched_dot(p, q).clamp(min=1e-20)
            x = x + alpha * p
            r = r - alpha * q
            rr_new = _batched_dot(r, r)
            p = r + (rr_new / rr.clamp(min=1e-20)) * p
            rr = rr_new
        return x

    def forward(self, y: torch.Tensor, A, start: torch.Tensor | None = None) -> torch.Tensor:
        """Reconstruct a batch ``y`` (``(B, *A.out_shape)``) -> images ``(B, *A.in_shape)``; ``start``: the
        classical reconstructions ``x₀`` (``(B, *A.in_shape)``, needed unless ``start="cg"``)."""
        rhs = A.apply_adjoint(y)
        if self.start != "cg":
            if start is None:
                raise ValueError(f"This unrolled network refines a {self.start!r} reconstruction: pass start=x₀.")
            x = start.to(rhs.dtype)
            for _ in range(self.iterations):
                grad = A.normal(x) - rhs
                inp = torch.cat([to_channels(x), to_channels(grad)], dim=1)
                x = x + from_channels(self.cnn(inp), self.complex_image)
            return x
        lam = self.log_lam.exp()
        x = self.data_consistency(rhs * 0, rhs, A, lam)  # a few CG steps on the normal equations (λ-damped)
        for _ in range(self.iterations):
            z = from_channels(self.cnn(to_channels(x)), self.complex_image)
            x = self.data_consistency(z, rhs, A, lam)
        return x
