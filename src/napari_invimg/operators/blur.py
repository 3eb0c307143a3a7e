"""Identity and convolution operators (2D/3D, FFT-based, with a choice of boundary)."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
import torch

from .base import LinearOperator

__all__ = ["Identity", "Blur", "BOUNDARIES", "Circulant", "validate_psf", "transfer_function"]

BOUNDARIES = ("circular", "reflect", "zero")
#: a PSF whose sum is at most this fraction of its absolute sum is refused (it sums to about zero)
PSF_MIN_SUM_FRACTION = 1e-2


class Circulant(NamedTuple):
    """The circulant model of a convolution: ``A = crop ∘ F⁻¹ diag(transfer) F ∘ pad`` on the FFT grid ``grid``
    (``transfer`` in rfft layout; ``pad`` extends an image to the grid as the boundary says, ``crop`` takes the
    field of view back)."""

    grid: tuple[int, ...]
    transfer: torch.Tensor
    pad: Callable[[torch.Tensor], torch.Tensor]
    crop: Callable[[torch.Tensor], torch.Tensor]


class Identity(LinearOperator):
    """Denoising: ``A x = x``."""

    shift_invariant = True

    def __init__(self, shape: tuple[int, ...]):
        super().__init__(shape, shape)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def _adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return y

    def normal(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def norm(self, iterations: int = 30, seed: int = 0) -> float:
        return 1.0

    def gram_preconditioner(self, scale: float, shift: float) -> Callable[[torch.Tensor], torch.Tensor]:
        """Exact: ``(scale + shift)⁻¹``."""
        c = 1.0 / (scale + shift)
        return lambda r: c * r

    def circulant(self) -> Circulant:
        """``A = I``: the transfer function 1 on the image grid."""
        return Circulant(self.in_shape, torch.ones((), device=self.device), _same, _same)

    def _params(self) -> dict[str, Any]:
        return {"shape": list(self.in_shape)}


def _same(x: torch.Tensor) -> torch.Tensor:
    return x


def validate_psf(psf, shape: tuple[int, ...]) -> np.ndarray:
    """Check a PSF against an image shape and normalize it to sum 1 (float64 numpy)."""
    k = np.asarray(psf.detach().cpu().numpy() if isinstance(psf, torch.Tensor) else psf)
    if k.size == 0:
        raise ValueError("The PSF is empty.")
    if np.iscomplexobj(k):
        raise ValueError("The PSF must be real-valued; got complex data.")
    k = k.astype(np.float64)
    if not np.isfinite(k).all():
        raise ValueError("The PSF contains NaN or infinite values.")
    if k.ndim != len(shape):
        raise ValueError(f"The PSF has {k.ndim} dimensions but the image has {len(shape)} ({shape}); they must match.")
    if any(ks > s for ks, s in zip(k.shape, shape)):
        raise ValueError(f"The PSF {k.shape} is larger than the image {tuple(shape)}; crop the PSF or use a larger image.")
    total = k.sum()
    if not total > 0:
        raise ValueError("The PSF must sum to a positive value (is it background-subtracted to zero or negative?).")
    if total <= PSF_MIN_SUM_FRACTION * np.abs(k).sum():
        raise ValueError(f"The PSF sums to {total:.3g}, almost nothing beside its absolute sum {np.abs(k).sum():.3g} "
                         "(was a mean or background subtracted?): normalizing it would amplify it into huge values. "
                         "Subtract a smaller background or clip it at zero.")
    h = k / total
    _warn_off_centre(h)
    return h


def _warn_off_centre(h: np.ndarray) -> None:
    """Warn when the PSF's centroid lies half a pixel or more from the pixel ``k // 2`` that the convolution takes as
    its centre (an even-sized box around a symmetric PSF, or a badly cropped bead): the result then shifts by that
    much. :func:`napari_invimg.psf.check` measures the offset; :func:`napari_invimg.psf.from_bead` recentres."""
    w = np.clip(h, 0, None)
    grids = np.meshgrid(*[np.arange(n, dtype=np.float64) for n in h.shape], indexing="ij")
    offset = np.array([(g * w).sum() / w.sum() - n // 2 for g, n in zip(grids, h.shape)])
    if np.any(np.abs(offset) >= 0.5 - 1e-6):
        warnings.warn(f"The PSF {h.shape}'s centroid lies ({', '.join(f'{o:+.2f}' for o in offset)}) px from the pixel "
                      f"{tuple(n // 2 for n in h.shape)} taken as its centre (an even-sized box?); the result will be "
                      "shifted by that much. Use an odd-sized PSF centred on its middle pixel (ni.psf.from_bead "
                      "recentres a bead).", UserWarning, stacklevel=3)


def _fast_len(n: int) -> int:
    import scipy.fft  # local: scipy loads on the first padded Blur, not with the package

    return int(scipy.fft.next_fast_len(int(n), real=True))


def _pad_index(n: int, before: int, total: int, mode: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Gather index (and validity mask) that pads an axis of length ``n`` to ``total`` samples."""
    pos = np.arange(total) - before
    if mode == "reflect":
        period = 2 * n
        m = np.mod(pos, period)
        idx = np.where(m < n, m, period - 1 - m)  # symmetric (half-sample) reflection
        valid = np.ones(total, dtype=bool)
    else:  # zero
        valid = (pos >= 0) & (pos < n)
        idx = np.clip(pos, 0, n - 1)
    return torch.from_numpy(idx.astype(np.int64)), torch.from_numpy(valid)


def transfer_function(psf: np.ndarray, grid: tuple[int, ...]) -> torch.Tensor:
    """The PSF's transfer function on an FFT ``grid`` (rfft layout, complex64), the kernel centered on the grid's
    origin: ``Ĥ = F(roll(pad(h), −k // 2))``."""
    ks = psf.shape
    big = np.zeros(grid, dtype=np.float64)
    big[tuple(slice(0, k) for k in ks)] = psf
    big = np.roll(big, shift=tuple(-(k // 2) for k in ks), axis=tuple(range(len(ks))))
    return torch.from_numpy(np.fft.rfftn(big).astype(np.complex64))


class Blur(LinearOperator):
    """Convolution with a point-spread function: ``A x = h * x`` (2D or 3D).

    ``boundary``: ``"circular"`` (periodic, fastest), ``"reflect"`` (the image is mirrored outside its
    borders, then blurred — natural for microscopy, no wrap-around) or ``"zero"`` (dark outside). The
    padded problem is solved on an FFT-friendly grid; for padded boundaries ``A = C F⁻¹ Ĥ F P`` with a
    padding ``P`` and a crop ``C``, and the adjoint is built from the same pieces. The boundary is the
    forward model (simulation, and every method that calls ``A``); Richardson–Lucy keeps it for a 3D ``reflect`` blur
    with a PSF symmetric about its centre (diagonal in the cosine transform, Ng, Chan & Tang 1999; in 2D on request,
    ``object_domain="boundary"``) and otherwise estimates the object on the padded grid itself for ``reflect`` and ``zero`` (``C F⁻¹ Ĥ F`` without ``P``, Bertero &
    Boccacci 2005), a model that contains both boundaries, and returns the field of view.

    References
    ----------
    Bertero & Boccacci, *Introduction to Inverse Problems in Imaging*, IOP (1998), ch. 3.
    """

    shift_invariant = True

    def __init__(self, psf, shape: tuple[int, ...], boundary: str = "reflect"):
        shape = tuple(int(s) for s in shape)
        super().__init__(shape, shape)
        if boundary not in BOUNDARIES:
            raise ValueError(f"boundary must be one of {BOUNDARIES}, got {boundary!r}.")
        self.boundary = boundary
        self.psf_array = validate_psf(psf, shape).astype(np.float32)
        ks = self.psf_array.shape
        d = len(shape)
        if boundary == "circular":
            self.before = (0,) * d
            self.grid = shape
        else:
            self.before = tuple(k // 2 for k in ks)
            self.grid = tuple(_fast_len(s + k - 1) for s, k in zip(shape, ks))
        self.otf = transfer_function(self.psf_array, self.grid)
        self._dims = tuple(range(-d, 0))
        self._index = []
        self._valid = []
        if boundary != "circular":
            for n, b, g in zip(shape, self.before, self.grid):
                idx, valid = _pad_index(n, b, g, boundary)
                self._index.append(idx)
                self._valid.append(valid)

    # -- padding P and its adjoint ---------------------------------------------------------------
    def _pad(self, x: torch.Tensor) -> torch.Tensor:
        if self.boundary == "circular":
            return x
        d = len(self.in_shape)
        for ax, (idx, valid) in enumerate(zip(self._index, self._valid)):
            dim = x.ndim - d + ax
            x = torch.index_select(x, dim, idx)
            if self.boundary == "zero":
                shape = [1] * x.ndim
                shape[dim] = -1
                x = x * valid.view(shape).to(x.dtype)
        return x

    def _pad_adjoint(self, x: torch.Tensor) -> torch.Tensor:
        if self.boundary == "circular":
            return x
        d = len(self.in_shape)
        for ax in reversed(range(d)):
            idx, valid = self._index[ax], self._valid[ax]
            dim = x.ndim - d + ax
            if self.boundary == "zero":
                shape = [1] * x.ndim
                shape[dim] = -1
                x = x * valid.view(shape).to(x.dtype)
            out_shape = list(x.shape)
            out_shape[dim] = self.in_shape[ax]
            x = torch.zeros(out_shape, dtype=x.dtype, device=x.device).index_add_(dim, idx, x)
        return x

    def _crop(self, x: torch.Tensor) -> torch.Tensor:
        if self.boundary == "circular":
            return x
        sl = (Ellipsis,) + tuple(slice(b, b + n) for b, n in zip(self.before, self.in_shape))
        return x[sl]

    def _crop_adjoint(self, y: torch.Tensor) -> torch.Tensor:
        if self.boundary == "circular":
            return y
        out = torch.zeros(y.shape[: y.ndim - self.ndim] + self.grid, dtype=y.dtype, device=y.device)
        sl = (Ellipsis,) + tuple(slice(b, b + n) for b, n in zip(self.before, self.in_shape))
        out[sl] = y
        return out

    # -- convolution on the grid -------------------------------------------------------------------
    def _conv(self, x: torch.Tensor, conj: bool = False) -> torch.Tensor:
        if x.is_complex():
            return torch.complex(self._conv(x.real, conj), self._conv(x.imag, conj))
        otf = self.otf.conj() if conj else self.otf
        X = torch.fft.rfftn(x, s=self.grid, dim=self._dims)
        return torch.fft.irfftn(X * otf, s=self.grid, dim=self._dims)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._crop(self._conv(self._pad(x)))

    def _adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return self._pad_adjoint(self._conv(self._crop_adjoint(y), conj=True))

    def transfer_function(self) -> torch.Tensor:
        """``Ĥ`` on the padded FFT grid (rfft layout)."""
        return self.otf

    def circulant(self) -> Circulant:
        """``A = C F⁻¹ Ĥ F P``: the padding ``P``, the transfer function ``Ĥ`` on the padded grid and the crop ``C``."""
        return Circulant(self.grid, self.otf, self._pad, self._crop)

    def gram_preconditioner(self, scale: float, shift: float) -> Callable[[torch.Tensor], torch.Tensor]:
        """``C F⁻¹ (scale·|Ĥ|² + shift)⁻¹ F Cᴴ``: the inverse of the circulant ``scale·HᴴH + shift`` on the padded
        grid, restricted to the image (exact for the circular boundary, a principal submatrix of a positive
        definite matrix otherwise, hence positive definite)."""
        inv = 1.0 / (scale * self.otf.abs() ** 2 + shift)

        def apply(r: torch.Tensor) -> torch.Tensor:
            if r.is_complex():
                return torch.complex(apply(r.real), apply(r.imag))
            R = torch.fft.rfftn(self._crop_adjoint(r), s=self.grid, dim=self._dims)
            return self._crop(torch.fft.irfftn(R * inv, s=self.grid, dim=self._dims))

        return apply

    def halo(self) -> tuple[int, ...]:
        """Overlap a tile needs on each side so that tiled and untiled results agree in its interior."""
        return tuple(int(k) for k in self.psf_array.shape)

    def to(self, device) -> Blur:
        super().to(device)
        self._index = [i.to(self.device) for i in self._index]
        self._valid = [v.to(self.device) for v in self._valid]
        return self

    def _params(self) -> dict[str, Any]:
        return {"psf": self.psf_array, "shape": list(self.in_shape), "boundary": self.boundary}

    @classmethod
    def from_params(cls, **params) -> Blur:
        params["psf"] = np.asarray(params["psf"], dtype=np.float32)
        return cls(**params)

    def __repr__(self) -> str:
        return f"Blur(psf={self.psf_array.shape}, shape={self.in_shape}, boundary={self.boundary!r})"

