"""Orthonormal periodic 2D discrete wavelet transform in torch (batched, real or complex, autograd-safe).

``W`` is an orthogonal matrix on images whose sides are multiples of ``2^levels`` (Mallat, A Wavelet
Tour of Signal Processing, 3rd ed., ch. 7: periodic filter banks), so ``Wᵀ soft(W x)`` is the exact
proximal map of ``λ‖W x‖₁``. Filters come from PyWavelets' tables.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["Wavelet2D"]


@lru_cache(maxsize=8)
def _filters(name: str) -> np.ndarray:
    import pywt

    w = pywt.Wavelet(name)
    if not w.orthogonal:
        raise ValueError(f"The wavelet {name!r} is not orthogonal; choose e.g. 'haar', 'db4', 'sym8'.")
    lo = np.asarray(w.rec_lo[::-1])  # a[n] = Σ_k lo[k] x[2n + k]
    hi = np.asarray(w.rec_hi[::-1])
    return np.stack([lo, hi])


class Wavelet2D:
    """``levels``-level orthonormal periodic DWT on the last two axes of (..., Y, X) tensors.

    :meth:`forward` returns a list ``[approximation, (H, V, D) level 1 (finest), ...]`` flattened into
    one tensor of the (padded) image's size by :meth:`pack`; images whose sides are not multiples of
    ``2^levels`` are zero-padded (then ``W`` is an isometry, not a rotation).
    """

    def __init__(self, shape: tuple[int, int], name: str = "db4", levels: int = 4):
        self.shape = tuple(int(s) for s in shape)
        self.filters = torch.from_numpy(_filters(name).astype(np.float64))
        k = self.filters.shape[1]
        levels = max(1, int(levels))
        while levels > 1 and min(self.shape) / 2 ** levels < k:
            levels -= 1
        self.levels = levels
        m = 2 ** levels
        self.padded = tuple(-(-s // m) * m for s in self.shape)

    def _analysis(self, x: torch.Tensor, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Low/high halves along ``dim`` (-1 or -2) of a real tensor, circular boundary."""
        x = x.transpose(dim, -1) if dim != -1 else x
        lead, n = x.shape[:-1], x.shape[-1]
        w = self.filters.to(x.device, x.dtype)
        k = w.shape[1]
        flat = x.reshape(-1, 1, n)
        flat = torch.cat([flat, flat[..., : k - 1]], dim=-1) if k > 1 else flat
        out = F.conv1d(flat, w[:, None, :], stride=2)  # (B, 2, n/2)
        lo, hi = out[:, 0].reshape(*lead, n // 2), out[:, 1].reshape(*lead, n // 2)
        if dim != -1:
            lo, hi = lo.transpose(dim, -1), hi.transpose(dim, -1)
        return lo, hi

    def _synthesis(self, lo: torch.Tensor, hi: torch.Tensor, dim: int) -> torch.Tensor:
        """Adjoint (= inverse) of :meth:`_analysis`."""
        if dim != -1:
            lo, hi = lo.transpose(dim, -1), hi.transpose(dim, -1)
        lead, h = lo.shape[:-1], lo.shape[-1]
        n = 2 * h
        w = self.filters.to(lo.device, lo.dtype)
        k = w.shape[1]
        both = torch.stack([lo.reshape(-1, h), hi.reshape(-1, h)], dim=1)  # (B, 2, h)
        out = F.conv_transpose1d(both, w[:, None, :], stride=2)[:, 0]  # (B, n + k - 2)
        x = out[:, :n].clone()
        wrap = out[:, n:]
        x[:, : wrap.shape[1]] += wrap
        x = x.reshape(*lead, n)
        return x.transpose(dim, -1) if dim != -1 else x

    def _pad(self, x: torch.Tensor) -> torch.Tensor:
        py, px = self.padded[0] - self.shape[0], self.padded[1] - self.shape[1]
        return F.pad(x, (0, px, 0, py)) if (py or px) else x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Coefficients packed in an array of the padded shape (approximation in the top-left corner)."""
        if x.is_complex():
            return torch.complex(self.forward(x.real), self.forward(x.imag))
        out = self._pad(x).clone()
        ny, nx = self.padded
        for _ in range(self.levels):
            band = out[..., :ny, :nx]
            lo, hi = self._analysis(band, -1)
            ll, lh = self._analysis(lo, -2)
            hl, hh = self._analysis(hi, -2)
            top = torch.cat([ll, hl], dim=-1)
            bottom = torch.cat([lh, hh], dim=-1)
            out = out.clone()
            out[..., :ny, :nx] = torch.cat([top, bottom], dim=-2)
            ny, nx = ny // 2, nx // 2
        return out

    def inverse(self, c: torch.Tensor) -> torch.Tensor:
        """``Wᵀ c`` cropped to the image shape."""
        if c.is_complex():
            return torch.complex(self.inverse(c.real), self.inverse(c.imag))
        out = c.clone()
        sizes = [(self.padded[0] >> i, self.padded[1] >> i) for i in range(self.levels)]
        for ny, nx in reversed(sizes):
            hy, hx = ny // 2, nx // 2
            band = out[..., :ny, :nx]
            ll, hl = band[..., :hy, :hx], band[..., :hy, hx:]
            lh, hh = band[..., hy:, :hx], band[..., hy:, hx:]
            lo = self._synthesis(ll, lh, -2)
            hi = self._synthesis(hl, hh, -2)
            out = out.clone()
            out[..., :ny, :nx] = self._synthesis(lo, hi, -1)
        return out[..., : self.shape[0], : self.shape[1]]

    def detail_mask(self, device=None) -> torch.Tensor:
        """1 on detail coefficients, 0 on the coarsest approximation (which is not penalised)."""
        m = torch.ones(self.padded, device=device)
        m[: self.padded[0] >> self.levels, : self.padded[1] >> self.levels] = 0
        return m
