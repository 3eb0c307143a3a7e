"""Sampling operators: inpainting, downsampling (super-resolution) and compressed sensing."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..validation import check_seed
from .base import LinearOperator
from .blur import Blur

__all__ = ["Inpainting", "Downsampling", "CompressedSensing", "random_mask"]


def random_mask(shape: tuple[int, ...], fraction: float = 0.5, seed: int = 0) -> np.ndarray:
    """Boolean mask with ``fraction`` of the pixels measured (True), drawn uniformly at random."""
    if not 0 < fraction <= 1:
        raise ValueError("The measured fraction must lie in (0, 1].")
    return np.random.default_rng(check_seed(seed)).random(tuple(shape)) < fraction


class Inpainting(LinearOperator):
    """Missing pixels: ``A x = m ⊙ x`` with a boolean mask ``m`` (True = measured); ``Aᴴ = A``."""

    def __init__(self, mask):
        m = np.asarray(mask)
        if m.dtype != bool:
            if not np.isin(m, (0, 1)).all():
                raise ValueError("An inpainting mask must be boolean (True = measured) or hold only 0 and 1.")
            m = m.astype(bool)
        if m.ndim not in (1, 2, 3) or m.size == 0:
            raise ValueError(f"An inpainting mask must be 2D or 3D and non-empty, got shape {m.shape}.")
        if not m.any():
            raise ValueError("The inpainting mask measures no pixel.")
        super().__init__(m.shape, m.shape)
        self.mask_array = m
        self.mask = torch.from_numpy(m.astype(np.float32))

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.mask.to(x.dtype)

    _adjoint = _forward

    def normal(self, x: torch.Tensor) -> torch.Tensor:
        return self._forward(x)

    def norm(self, iterations: int = 30, seed: int = 0) -> float:
        return 1.0

    def plug_and_play_defaults(self) -> dict[str, Any]:
        """The last denoiser level at the noise level: the missing pixels have no data, and ending at half of it (the
        default after the Richardson–Lucy start) cost PnP-HQS 0.74 dB on 50 % inpainting (benchmarks/RESULTS.md §3,
        helper ``bm3d4``)."""
        return {"sigma_end_noise": 1.0}

    def _params(self) -> dict[str, Any]:
        return {"mask": self.mask_array}


class Downsampling(LinearOperator):
    """Super-resolution: optional optical blur, then camera pixels that integrate ``factor`` fine pixels.

    ``A x = B(h * x)`` where ``B`` averages non-overlapping ``factor``×``factor`` (×``factor`` in 3D)
    blocks — the box anti-aliasing filter of pixel integration — and ``h`` is an optional PSF.
    """

    def __init__(self, shape: tuple[int, ...], factor: int = 2, psf=None, boundary: str = "reflect"):
        shape = tuple(int(s) for s in shape)
        if isinstance(factor, (bool, np.bool_)) or not isinstance(factor, (int, float, np.integer, np.floating)):
            raise TypeError(f"The downsampling factor must be a positive integer, got {type(factor).__name__}.")
        if not (np.isfinite(factor) and float(factor) == int(factor)):
            raise ValueError(f"The downsampling factor must be a positive integer, got {factor}.")
        factor = int(factor)
        if factor < 1:
            raise ValueError("The downsampling factor must be a positive integer.")
        if any(s % factor for s in shape):
            raise ValueError(
                f"The high-resolution shape {shape} must be divisible by the factor {factor}; crop the image first."
            )
        super().__init__(shape, tuple(s // factor for s in shape))
        self.factor = factor
        self.blur = None if psf is None else Blur(psf, shape, boundary=boundary)

    def _bin(self, x: torch.Tensor) -> torch.Tensor:
        d, f = self.ndim, self.factor
        lead = x.shape[: x.ndim - d]
        split = []
        for s in self.out_shape:
            split += [s, f]
        x = x.reshape(*lead, *split)
        return x.mean(dim=tuple(x.ndim - 2 * d + 2 * i + 1 for i in range(d)))

    def _bin_adjoint(self, y: torch.Tensor) -> torch.Tensor:
        d, f = self.ndim, self.factor
        for i in range(d):
            y = torch.repeat_interleave(y, f, dim=y.ndim - d + i)
        return y / f**d

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.blur is not None:
            x = self.blur._forward(x)
        return self._bin(x)

    def _adjoint(self, y: torch.Tensor) -> torch.Tensor:
        x = self._bin_adjoint(y)
        return x if self.blur is None else self.blur._adjoint(x)

    def to(self, device) -> Downsampling:
        super().to(device)
        if self.blur is not None:
            self.blur.to(device)
        return self

    def _params(self) -> dict[str, Any]:
        p: dict[str, Any] = {"shape": list(self.in_shape), "factor": self.factor, "psf": None}
        if self.blur is not None:
            p.update(psf=self.blur.psf_array, boundary=self.blur.boundary)
        return p


def _dct_matrix(n: int) -> np.ndarray:
    """Orthonormal DCT-II matrix ``C[k, j] = a_k cos(π (2j+1) k / 2n)``."""
    j = np.arange(n)
    c = np.cos(np.pi * (2 * j[None, :] + 1) * j[:, None] / (2 * n)) * np.sqrt(2.0 / n)
    c[0] /= np.sqrt(2.0)
    return c


class CompressedSensing(LinearOperator):
    """Random subsampled structured measurements: ``y = S C (d ⊙ x)``.

    ``d`` are random signs, ``C`` the separable orthonormal DCT and ``S`` keeps ``m`` randomly chosen
    coefficients, so ``A Aᵀ = I`` (a tight frame) and ``‖A‖ = 1``; it behaves like a Gaussian sensing
    matrix for sparse recovery but costs a few small matrix products instead of an ``m × N`` matrix.

    References
    ----------
    Do, Gan, Nguyen & Tran, "Fast and efficient compressive sensing using structurally random
    matrices", IEEE Trans. Signal Process. 60 (2012) 139–154.
    """

    def __init__(self, shape: tuple[int, ...], m: int | float, seed: int = 0):
        shape = tuple(int(s) for s in shape)
        n = int(np.prod(shape))
        if isinstance(m, (bool, np.bool_)) or not isinstance(m, (int, float, np.integer, np.floating)):
            raise TypeError(f"Compressed sensing needs a number of measurements or a fraction, got {type(m).__name__}.")
        if not np.isfinite(m):
            raise ValueError(f"Compressed sensing needs a finite number of measurements, got {m}.")
        if isinstance(m, (float, np.floating)) and 0 < m <= 1:
            m = int(round(float(m) * n))
        elif float(m) != int(m):
            raise ValueError(f"Compressed sensing needs a whole number of measurements or a fraction in (0, 1]; got {m}.")
        m = int(m)
        if not 1 <= m <= n:
            raise ValueError(f"Compressed sensing needs 1 <= m <= {n} measurements (or a fraction in (0, 1]); got {m}.")
        super().__init__(shape, (m,))
        self.m, self.seed = m, check_seed(seed)  # None: a fresh seed, kept in the spec to rebuild the same matrix
        rng = np.random.default_rng(self.seed)
        self.signs = torch.from_numpy(rng.choice([-1.0, 1.0], size=shape).astype(np.float32))
        self.index = torch.from_numpy(np.sort(rng.choice(n, size=m, replace=False)).astype(np.int64))
        self.dct = [torch.from_numpy(_dct_matrix(s).astype(np.float32)) for s in shape]

    def _apply(self, x: torch.Tensor, transpose: bool) -> torch.Tensor:
        d = self.ndim
        for i, c in enumerate(self.dct):
            c = c.to(x.dtype)
            x = torch.movedim(x, x.ndim - d + i, -1)
            x = x @ (c if transpose else c.T)
            x = torch.movedim(x, -1, x.ndim - d + i)
        return x

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self._apply(x * self.signs.to(x.dtype), transpose=False)
        return z.reshape(*z.shape[: z.ndim - self.ndim], -1)[..., self.index]

    def _adjoint(self, y: torch.Tensor) -> torch.Tensor:
        lead = y.shape[:-1]
        z = torch.zeros(*lead, int(np.prod(self.in_shape)), dtype=y.dtype, device=y.device)
        z[..., self.index] = y
        return self._apply(z.reshape(*lead, *self.in_shape), transpose=True) * self.signs.to(y.dtype)

    def norm(self, iterations: int = 30, seed: int = 0) -> float:
        return 1.0

    def to(self, device) -> CompressedSensing:
        super().to(device)
        self.dct = [c.to(self.device) for c in self.dct]
        return self

    def _params(self) -> dict[str, Any]:
        return {"shape": list(self.in_shape), "m": self.m, "seed": self.seed}
