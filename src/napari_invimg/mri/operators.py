"""MRI forward models: Cartesian (2D/3D) and non-Cartesian k-space, single- or multi-coil.

Both map a complex image ``x`` (``in_shape`` = (Y, X) or (Z, Y, X)) to k-space
``y_c = P F (S_c x)`` — coil sensitivities ``S_c``, the orthonormal centered Fourier transform ``F``
(``fftshift ∘ fft ∘ ifftshift``, ``norm="ortho"``, the convention of sigpy and fastMRI) and the
sampling ``P`` (a mask on the Cartesian grid, or the points of a trajectory). Leading dimensions of
``x`` are a batch; everything is differentiable in torch.
"""

from __future__ import annotations

import math
import threading
import warnings
from abc import abstractmethod
from typing import Any

import numpy as np
import torch

from ..operators.base import LinearOperator
from ..operators.nufft import NUFFT
from ..priors.tv import TotalVariation
from ..priors.wavelet import WaveletSparsity

__all__ = ["CartesianMRI", "GatheredCartesianMRI", "NonCartesianMRI", "fft_centered", "ifft_centered", "density_compensation",
           "MRIOperator", "coil_compression", "COIL_ENERGY"]


def fft_centered(x: torch.Tensor, ndim: int) -> torch.Tensor:
    """Orthonormal centered DFT on the last ``ndim`` axes: ``fftshift(fftn(ifftshift(x), norm="ortho"))``."""
    dims = tuple(range(-ndim, 0))
    return torch.fft.fftshift(torch.fft.fftn(torch.fft.ifftshift(x, dim=dims), dim=dims, norm="ortho"), dim=dims)


def ifft_centered(k: torch.Tensor, ndim: int) -> torch.Tensor:
    """Inverse of :func:`fft_centered`: ``fftshift(ifftn(ifftshift(k), norm="ortho"))``."""
    dims = tuple(range(-ndim, 0))
    return torch.fft.fftshift(torch.fft.ifftn(torch.fft.ifftshift(k, dim=dims), dim=dims, norm="ortho"), dim=dims)


#: The primal–dual settings on masks of whole lines per prior (:meth:`CartesianMRI.primal_dual_steps`): primal step τ
#: (σ = 0.49/τ), over-relaxation ρ (Condat, JOTA 158 (2013) 460) and the data block's share of the dual steps; with
#: wavelets τ may grow ×2 to ``max_step`` once the misfit is within 10 % of its target (Shepp–Logan equispaced 8×:
#: 200 → 144 iterations, 36.1 → 42.0 dB with ×1.5 within 3 %; → 103 iterations, 42.2 dB with ×2 within 10 %; TV
#: measured slower with it; RESULTS §6)
LINE_MASK_STEPS = ((TotalVariation, {"step": 0.15, "relaxation": 1.9, "data_share": 0.6}),
                   (WaveletSparsity, {"step": 0.15, "relaxation": 1.9, "data_share": 0.75, "max_step": 0.6,
                                      "growth_slack": 0.1, "growth": 2.0}))


#: the share of the k-space's signal energy that coil compression keeps by default on Cartesian data
#: (:meth:`MRIOperator.compressed`, used by ``tv``/``wavelet``/``hessian`` through their ``coil_energy``): 1, off.
#: Measured on ``brain(seed=1)`` / ``random_ellipses(seed=1)``, 8 birdcage coils, 30 dB (RESULTS §6, helper ``mricc``):
#: 0.9999 keeps 7 coils on the brain (TV equispaced 8× −0.09 dB) and all 8 on the ellipses; 0.999 keeps 5–6 and
#: costs up to 0.4 dB on the ellipses (up to 1.6 dB on Shepp–Logan): the weak virtual coils still unfold aliasing
COIL_ENERGY = 1.0


def coil_compression(y: torch.Tensor, sigma: float, energy: float, coil_axis: int, samples: int,
                     min_coils: int = 1) -> tuple[torch.Tensor, float]:
    """Coil compression by the SVD of the coil axis (Buehrer et al., MRM 57 (2007) 1131; Huang et al., MRI 26 (2008)
    133): ``U`` (C × C') whose columns are the leading eigenvectors of the coils' Gram matrix ``G = Σ_k y(k) y(k)ᴴ``
    over the measured samples, and the share of the signal energy the C' virtual coils ``Uᴴ y`` keep.

    White noise of σ per real and imaginary part adds ``n · 2σ²`` to every eigenvalue of ``G`` (``n`` = ``samples``,
    the measured samples per coil), so the signal energy of virtual coil j is ``s_j = max(λ_j − 2nσ², 0)``; C' is the
    fewest (at least ``min_coils``) with ``Σ_{j ≤ C'} s_j ≥ energy · Σ_j s_j``. ``U`` has orthonormal columns: the
    compressed noise ``Uᴴ n`` is white with the same σ. All coils are kept when ``energy ≥ 1`` or the data hold no
    signal above the noise."""
    C = y.shape[coil_axis]
    Y = torch.movedim(y, coil_axis, 0).reshape(C, -1)
    lam, V = torch.linalg.eigh((Y @ Y.conj().T).to(torch.complex128))  # ascending
    lam, V = lam.flip(0), V.flip(1)
    s = (lam - 2.0 * samples * sigma * sigma).clamp(min=0)
    total = float(s.sum())
    if energy >= 1 or not total > 0:
        return torch.eye(C, dtype=y.dtype, device=y.device), 1.0
    share = torch.cumsum(s, 0) / total
    kept = max(int(min_coils), int(torch.count_nonzero(share < energy * (1 - 1e-12))) + 1)
    kept = min(kept, C)
    return V[:, :kept].to(y.dtype), float(share[kept - 1])


def _check_maps(coil_maps, shape: tuple[int, ...]) -> np.ndarray | None:
    if coil_maps is None:
        return None
    maps = np.asarray(coil_maps)
    if maps.dtype.kind not in "biufc":
        raise ValueError(f"The coil maps must be numbers (complex sensitivities), got an array of {maps.dtype}.")
    if maps.ndim == len(shape):  # one coil given without its coil axis
        maps = maps[None]
    if maps.ndim != len(shape) + 1 or tuple(maps.shape[1:]) != tuple(shape):
        raise ValueError(
            f"Coil maps must have shape (coils, {', '.join(map(str, shape))}) to match the image, got {maps.shape}."
        )
    if not np.isfinite(maps).all():
        raise ValueError("The coil maps contain NaN or infinite values.")
    if not np.any(maps):
        raise ValueError("The coil maps are all zero.")
    silent = [c for c in range(maps.shape[0]) if not np.any(maps[c])]
    for c in silent:  # S_c = 0: the forward model predicts zero for that coil, its data never enter a solution
        warnings.warn(f"The map of coil {c} is all zero: that coil sees nothing in the forward model and its k-space "
                      "data are ignored (check the coil maps or leave that coil out).", UserWarning, stacklevel=4)
    return maps.astype(np.complex64)


#: the annealed plug-and-play settings on MR images (:meth:`MRIOperator.plug_and_play_defaults`), tuned on
#: ``brain(seed=1)`` and a random ellipse phantom, 8 coils, Poisson 8× (benchmarks/RESULTS.md §6, issue #14): the
#: L1-wavelet result as the first estimate (the network only corrects it), a first level of a few times the noise
#: level (higher levels blur what the wavelet start already resolved), and λ = 1; the mean of the last 8 iterates (the
#: denoiser under all 8 flips/rotations) is returned: single iterates oscillate by ~0.5 dB with the flip on
#: piecewise-constant images (RESULTS §6, helper ``mrisl``: Shepp–Logan 46.84 → 47.49 dB, brain 33.91 → 33.89 dB with
#: the same weights). Ending the levels below the noise level (``sigma_end_noise`` 0.75) gains another 0.6 dB on
#: Shepp–Logan but costs 0.3–0.5 dB on the brain (equispaced 4×: 32.21 → 31.74): not taken
PLUG_AND_PLAY: dict[str, Any] = {"start": "wavelet", "sigma_start_noise": 1.5, "average": 8, "lam": 1.0}


class MRIOperator(LinearOperator):
    """Shared part of the MRI operators: complex images and data, coil sensitivities, measured samples."""

    in_complex = True
    out_complex = True
    #: plug-and-play on MR images uses the denoiser fine-tuned on MR magnitudes (benchmarks/RESULTS.md §6, issue #14)
    preferred_denoiser = "drunet_mri"

    def plug_and_play_defaults(self) -> dict[str, Any]:
        """PnP-ADMM/HQS with a learned denoiser on MR images: start from the L1-wavelet reconstruction and anneal from
        a low first level (:data:`PLUG_AND_PLAY`; RESULTS §6, issue #14)."""
        return dict(PLUG_AND_PLAY)

    #: the share of the signal energy that :meth:`compressed` keeps by default (1: no compression)
    coil_energy: float = 1.0

    def compressed(self, y: torch.Tensor, sigma: float, energy: float | None = None,
                   min_share: float = 0.0) -> tuple[MRIOperator, torch.Tensor, dict[str, Any]]:
        """Coil compression (:func:`coil_compression`): the same operator on the C' virtual coils ``Uᴴ S`` and the data
        ``Uᴴ y`` (``U`` constant over k-space, so it commutes with the sampling and the Fourier transform: the
        compressed model is exact for the compressed data), keeping ``energy`` of the data's signal energy (``None``:
        :attr:`coil_energy`) and at least ``min_share`` of the coils. Each iteration's FFTs and k-space work then
        shrink by C'/C. ``info``: ``{"coils": C', "of": C, "energy": the share kept}`` (all coils kept: this operator
        and ``y`` themselves); ``{}`` for single-coil data."""
        if self.coil_maps is None:
            return self, y, {}
        energy = self.coil_energy if energy is None else float(energy)
        if not 0 < energy <= 1:
            raise ValueError(f"The coil energy to keep must be in (0, 1], got {energy}.")
        C = self.n_coils
        if energy >= 1:
            return self, y, {"coils": C, "of": C, "energy": 1.0}
        axis = y.ndim - len(self.out_shape)
        samples = self.n_measured() // C * (y.numel() // max(math.prod(self.out_shape), 1))
        U, share = coil_compression(y, sigma, energy, axis, samples, math.ceil(min_share * C - 1e-9))
        kept = int(U.shape[1])
        info = {"coils": kept, "of": C, "energy": share}
        if kept == C:
            return self, y, info
        maps = torch.tensordot(U.conj().T.to(self.coil_maps.dtype).cpu(), self.coil_maps, dims=1)
        A = type(self).from_params(**{**self._params(), "coil_maps": maps.numpy()}).to(self.device)
        yc = torch.movedim(torch.movedim(y, axis, -1) @ U.conj(), -1, axis).contiguous()
        return A, yc, info

    def _init_maps(self, coil_maps, shape: tuple[int, ...]) -> None:
        maps = _check_maps(coil_maps, shape)
        self.coil_maps_array = maps
        self.coil_maps = None if maps is None else torch.from_numpy(maps)
        self.n_coils = 1 if maps is None else maps.shape[0]

    def _spread(self, x: torch.Tensor) -> torch.Tensor:
        """``S_c x`` (adds the coil axis when there are maps)."""
        if self.coil_maps is None:
            return x
        return x.unsqueeze(-self.ndim - 1) * self.coil_maps.to(x.dtype)

    def _combine(self, xc: torch.Tensor) -> torch.Tensor:
        """``Σ_c S_cᴴ x_c``."""
        if self.coil_maps is None:
            return xc
        return (xc * self.coil_maps.to(xc.dtype).conj()).sum(dim=-self.ndim - 1)

    @property
    def coil_shape(self) -> tuple[int, ...]:
        return () if self.coil_maps is None else (self.n_coils,)

    def measured_weights(self) -> torch.Tensor:
        """1 where ``y`` holds a measured sample, 0 where it is zero by construction (broadcasts against ``y``)."""
        return torch.ones((), device=self.device)

    def n_measured(self) -> int:
        """Number of complex samples actually measured."""
        return int(np.prod(self.out_shape))

    def residual_misfit(self, y: torch.Tensor, z: torch.Tensor, sigma: float) -> float:
        """``Σ |y − z|² / (2σ² M)`` over the measured samples (≈ 1 at the noise level for complex Gaussian noise)."""
        r = ((y - z).abs() ** 2 * self.measured_weights()).sum()
        return float(r) / (2 * sigma * sigma * self.n_measured())

    def estimate_noise(self, y) -> float:
        """σ (per real and imaginary part) from the outer 5 % of the measured k-space, by the median absolute deviation.

        The periphery of k-space holds almost only noise (the MAD estimator of Donoho & Johnstone,
        Biometrika 81 (1994) 425, applied there).
        """
        t = (y if isinstance(y, torch.Tensor) else torch.from_numpy(np.asarray(y))).detach().cpu()
        shape = torch.broadcast_shapes(t.shape, self._radius().shape)
        keep = (self.measured_weights().cpu() > 0).expand(shape) & (t != 0).expand(shape)
        vals, rad = t.expand(shape)[keep], self._radius().expand(shape)[keep].double()
        if vals.numel() < 16:
            raise ValueError("Too few measured k-space samples to estimate the noise; give the noise level.")
        order = torch.argsort(rad)
        outer = vals[order[int(0.95 * order.numel()):]]
        parts = torch.cat([outer.real.reshape(-1), outer.imag.reshape(-1)]).double()
        return float(1.4826 * (parts - parts.median()).abs().median())

    @abstractmethod
    def _radius(self) -> torch.Tensor:
        """|k| of every sample in cycles per pixel, broadcastable against ``y`` (on the CPU)."""

    @abstractmethod
    def combine_rss(self, y: torch.Tensor) -> torch.Tensor:
        """Coil-by-coil (density-compensated) adjoint without maps, combined by root-sum-of-squares."""


class CartesianMRI(MRIOperator):
    """Cartesian k-space: ``y_c = M ⊙ F(S_c x)`` with a sampling mask ``M`` and the orthonormal centered DFT.

    ``mask`` has the image's shape (Y, X) or (Z, Y, X) (True / 1 = sampled; real weights allowed);
    ``coil_maps`` (C, *shape) or ``None`` for single-coil data (then ``y`` has the image's shape).
    Unmeasured samples of ``y`` are zero. Reference: Pruessmann et al., MRM 42 (1999) 952 (SENSE).
    """

    coil_energy = COIL_ENERGY

    def __init__(self, mask, coil_maps=None):
        m = np.asarray(mask)
        if m.dtype.kind not in "biufc":
            raise ValueError(f"The sampling mask must hold numbers (True / 1 = sampled), got an array of {m.dtype}.")
        if m.ndim not in (2, 3) or m.size == 0:
            raise ValueError(f"The sampling mask must be 2D (Y, X) or 3D (Z, Y, X), got shape {m.shape}.")
        if np.iscomplexobj(m) or not np.isfinite(m).all() or (m.dtype != bool and np.any(m < 0)):
            raise ValueError("The sampling mask must hold real, non-negative weights (True / 1 = sampled).")
        if not np.any(m):
            raise ValueError("The sampling mask samples nothing.")
        shape = m.shape
        self.mask_array = m.astype(bool) if m.dtype == bool or np.isin(m, (0, 1)).all() else m.astype(np.float32)
        self.mask = torch.from_numpy(self.mask_array.astype(np.float32))
        self._init_maps(coil_maps, shape)
        super().__init__(shape, self.coil_shape + shape)
        # even sizes: the centering shifts are ±1 modulations, h ⊙ fftn(g ⊙ x) = fft_centered(x), folded into the
        # coil maps (g) and the mask (h) so that every application saves four shifts
        self._maps_g = self._mask_h = None
        if all(n % 2 == 0 for n in shape):
            g, h = torch.ones(()), torch.ones(())
            for i, n in enumerate(shape):
                view = [1] * len(shape)
                view[i] = n
                c = 1.0 - 2.0 * (torch.arange(n) % 2)
                g, h = g * c.reshape(view), h * ((-1.0) ** (n // 2) * c).reshape(view)
            self._maps_g = (g if self.coil_maps is None else self.coil_maps * g).to(torch.complex64)
            self._mask_h = self.mask * h

    def _spread_g(self, x: torch.Tensor) -> torch.Tensor:
        maps = self._maps_g.to(x.dtype)
        return x * maps if self.coil_maps is None else x.unsqueeze(-self.ndim - 1) * maps

    def _combine_g(self, xc: torch.Tensor) -> torch.Tensor:
        """``Σ_c conj(g S_c) x_c``; ``xc`` is the caller's fresh buffer (an inverse FFT's output), multiplied in place
        unless autograd records it."""
        maps = self._conj_maps_g(xc)
        prod = xc * maps if torch.is_grad_enabled() and xc.requires_grad else xc.mul_(maps)
        return prod if self.coil_maps is None else prod.sum(dim=-self.ndim - 1)

    def _conj_maps_g(self, like: torch.Tensor) -> torch.Tensor:
        """``conj(g ⊙ S)`` materialized once per dtype and device (a lazy ``conj()`` view doubles the product's cost)."""
        key = (self._maps_g.data_ptr(), like.dtype, like.device)
        cached = getattr(self, "_maps_g_conj", None)
        if cached is None or cached[0] != key:
            cached = (key, self._maps_g.to(device=like.device, dtype=like.dtype).conj().resolve_conj())
            self._maps_g_conj = cached
        return cached[1]

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._mask_h is None:
            return fft_centered(self._spread(x), self.ndim) * self.mask.to(x.dtype)
        dims = tuple(range(-self.ndim, 0))
        return torch.fft.fftn(self._spread_g(x), dim=dims, norm="ortho") * self._mask_h.to(x.dtype)

    def _adjoint(self, y: torch.Tensor) -> torch.Tensor:
        if self._mask_h is None:
            return self._combine(ifft_centered(y * self.mask.to(y.dtype), self.ndim))
        dims = tuple(range(-self.ndim, 0))
        return self._combine_g(torch.fft.ifftn(y * self._mask_h.to(y.dtype), dim=dims, norm="ortho"))

    def normal(self, x: torch.Tensor) -> torch.Tensor:
        if self._mask_h is None:
            return self._combine(ifft_centered(fft_centered(self._spread(x), self.ndim) * (self.mask ** 2).to(x.dtype),
                                               self.ndim))
        dims = tuple(range(-self.ndim, 0))
        k = torch.fft.fftn(self._spread_g(x), dim=dims, norm="ortho") * (self.mask ** 2).to(x.dtype)
        return self._combine_g(torch.fft.ifftn(k, dim=dims, norm="ortho"))

    def norm(self, iterations: int = 30, seed: int = 0) -> float:
        """``‖A‖ ≤ max|M| · max_r (Σ_c |S_c(r)|²)^{1/2}`` (F is unitary): a bound, tight when the k-space center
        is sampled, at no cost (no power iteration)."""
        s2 = 1.0 if self.coil_maps is None else float((self.coil_maps.abs() ** 2).sum(0).max())
        return math.sqrt(s2) * float(self.mask.max())

    def measured_weights(self) -> torch.Tensor:
        return (self.mask > 0).to(self.mask.dtype)

    def n_measured(self) -> int:
        return int((self.mask_array > 0).sum()) * self.n_coils

    def _radius(self) -> torch.Tensor:
        grids = torch.meshgrid(*[torch.arange(n, dtype=torch.float32) - n // 2 for n in self.in_shape], indexing="ij")
        return torch.sqrt(sum((g / n) ** 2 for g, n in zip(grids, self.in_shape)))

    def combine_rss(self, y: torch.Tensor) -> torch.Tensor:
        img = ifft_centered(y * self.mask.to(y.dtype), self.ndim)
        return img.abs() if self.coil_maps is None else torch.sqrt((img.abs() ** 2).sum(dim=-self.ndim - 1))

    @property
    def acceleration(self) -> float:
        """Fully sampled grid size over the number of samples taken."""
        return float(self.mask_array.size / max((self.mask_array > 0).sum(), 1))

    def _params(self) -> dict[str, Any]:
        return {"mask": self.mask_array, "coil_maps": self.coil_maps_array}

    def primal_dual_steps(self, regularizer: Any) -> dict[str, float]:
        """Masks of whole lines (equispaced or random phase encodes) alias coherently and the plain primal–dual
        iteration crawls there (135–300 iterations on the 8-coil benchmark): with several coils and TV or wavelets,
        :data:`LINE_MASK_STEPS` (over-relaxed, a larger primal step, and 0.6 (TV) or 0.75 (wavelets) of the dual
        step budget to the data block, measured); other masks, single-coil data (not measured) and other priors keep
        the plain iteration (RESULTS §6)."""
        steps = next((dict(s) for kind, s in LINE_MASK_STEPS if isinstance(regularizer, kind)), {})
        lines = self.n_coils > 1 and GatheredCartesianMRI._line_structure(self.mask_array > 0) is not None
        return steps if lines else {}

    def compact(self) -> tuple[GatheredCartesianMRI, Any]:
        """The same operator with only the sampled k-space points as output (:class:`GatheredCartesianMRI`)
        and the map ``y ↦ y[..., sampled]``."""
        A = GatheredCartesianMRI(self)
        return A, A.gather


class GatheredCartesianMRI(MRIOperator):
    """:class:`CartesianMRI` restricted to its sampled points: ``y_c = (M ⊙ F(S_c x))[Ω]``, Ω = {M > 0}.

    The output is ``(coils, |Ω|)`` (``(|Ω|,)`` single-coil), so a solver's elementwise k-space work (dual
    updates, projections, residuals) touches the R-times fewer measured values only, while the FFTs stay
    on the full grid; forward and adjoint gather and scatter the sampled points. The problem solved is the
    same: the unsampled values of ``y`` and ``A x`` are zero in :class:`CartesianMRI`.

    On a 2D mask of whole lines whose weight is constant along each line (equispaced phase encodes) the output is
    in hybrid space instead: the sampled lines Fourier-transformed back along their length, ``T y`` with ``T`` the
    (centred, orthonormal) inverse DFT along the lines — unitary, so norms, white noise and the solvers' iterates
    are those of k-space, while the forward and adjoint need no FFT along the lines (:meth:`gather` applies ``T``,
    :meth:`to_kspace` undoes it).
    """

    coil_energy = COIL_ENERGY

    def __init__(self, full: CartesianMRI):
        self.full = full
        self.coil_maps_array, self.coil_maps, self.n_coils = full.coil_maps_array, full.coil_maps, full.n_coils
        flat_mask = torch.from_numpy(np.asarray(full.mask_array, dtype=np.float32).reshape(-1))
        self.index = torch.nonzero(flat_mask > 0).reshape(-1)
        # the mask's weights at Ω, with the ±1 centring modulation folded in where the full operator folds it
        weights = (full.mask if full._mask_h is None else full._mask_h).reshape(-1)
        self.weights = weights[self.index].contiguous()
        super().__init__(full.in_shape, full.coil_shape + (int(self.index.numel()),))
        self.device = full.device
        self.lines = self._line_structure(np.asarray(full.mask_array) > 0) if full._mask_h is not None else None
        # hybrid space on lines of constant weight: T = ifft(h_along ⊙ ·) along the lines removes the FFT along them
        # and the ±1 modulation h_along; what is left per line is m h_across (a (1, L) or (L, 1) weight)
        self.hybrid = False
        if self.lines is not None:
            axis, lines = self.lines
            other = -1 if axis == -2 else -2
            m_lines = full.mask.index_select(axis, lines)
            if bool((m_lines == m_lines.narrow(other, 0, 1)).all()):
                n = full.in_shape[other]
                h_along = (-1.0) ** (n // 2) * (1.0 - 2.0 * (torch.arange(n) % 2))
                shape = [1, 1]
                shape[other] = n
                self.h_along = h_along.reshape(shape).contiguous()
                self.line_weights = (full._mask_h.index_select(axis, lines).narrow(other, 0, 1) * h_along[0]).contiguous()
                self.hybrid = True

    @staticmethod
    def _line_structure(sampled: np.ndarray) -> tuple[int, torch.Tensor] | None:
        """``(axis, indices)`` when a 2D mask samples whole lines (e.g. equispaced phase encodes): every line
        across ``axis`` at ``indices`` fully, nothing else. The FFT along the other axis then runs on those lines only."""
        if sampled.ndim != 2:
            return None
        for axis in (-1, -2):
            hit = sampled.any(axis=axis - 1 if axis == -1 else -1)  # lines at each index of ``axis``
            lines = np.nonzero(hit)[0]
            taken = sampled[:, lines] if axis == -1 else sampled[lines, :]
            if lines.size < sampled.shape[axis] and taken.all():
                return axis, torch.from_numpy(lines)
        return None

    def _take(self, y: torch.Tensor) -> torch.Tensor:
        """``y[..., Ω]`` of full k-space data (leading batch axes kept)."""
        return y.reshape(y.shape[: y.ndim - self.full.ndim] + (-1,)).index_select(-1, self.index.to(y.device))

    def _lines_shape(self, y: torch.Tensor) -> tuple[int, ...]:
        axis, lines = self.lines
        shape = list(self.in_shape)
        shape[axis] = int(lines.numel())
        return y.shape[:-1] + tuple(shape)

    def gather(self, y: torch.Tensor) -> torch.Tensor:
        """This operator's data from full k-space data: ``y[..., Ω]``, and on lines in hybrid space ``T y[..., Ω]``
        (the inverse DFT along the lines, :class:`GatheredCartesianMRI`)."""
        k = self._take(y)
        if not self.hybrid:
            return k
        other = -1 if self.lines[0] == -2 else -2
        u = k.reshape(self._lines_shape(k)) * self.h_along.to(device=k.device, dtype=k.real.dtype)
        return torch.fft.ifft(u, dim=other, norm="ortho").reshape(k.shape)

    def to_kspace(self, y: torch.Tensor) -> torch.Tensor:
        """The sampled k-space values ``y[..., Ω]`` of this operator's data (undoes ``T`` in hybrid space)."""
        if not self.hybrid:
            return y
        other = -1 if self.lines[0] == -2 else -2
        k = torch.fft.fft(y.reshape(self._lines_shape(y)), dim=other, norm="ortho")
        return (k * self.h_along.to(device=k.device, dtype=k.real.dtype)).reshape(y.shape)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.full
        if self.hybrid:  # hybrid space: the FFT across the lines, keep the sampled ones, weight them
            axis, lines = self.lines
            k = torch.fft.fft(f._spread_g(x), dim=axis, norm="ortho").index_select(axis, lines.to(x.device))
            k = k.mul_(self.line_weights.to(device=k.device, dtype=k.real.dtype))
            return k.reshape(k.shape[:-2] + (-1,))
        if self.lines is not None:  # whole lines: FFT along them, keep the sampled ones, then the pruned FFT
            axis, lines = self.lines
            other = -1 if axis == -2 else -2
            k = torch.fft.fft(f._spread_g(x), dim=axis, norm="ortho").index_select(axis, lines.to(x.device))
            k = torch.fft.fft(k, dim=other, norm="ortho")
            return k.reshape(k.shape[:-2] + (-1,)).mul_(self.weights.to(device=k.device, dtype=k.real.dtype))
        if f._mask_h is None:
            k = fft_centered(f._spread(x), self.ndim)
        else:
            k = torch.fft.fftn(f._spread_g(x), dim=tuple(range(-self.ndim, 0)), norm="ortho")
        return self.gather(k).mul_(self.weights.to(device=k.device, dtype=k.real.dtype))

    def _adjoint(self, y: torch.Tensor) -> torch.Tensor:
        f = self.full
        lead = y.shape[:-1]
        if self.hybrid:
            axis, lines = self.lines
            k = y.reshape(self._lines_shape(y)) * self.line_weights.to(device=y.device, dtype=y.real.dtype)
            full = self._zero_grid(lead + self.in_shape, k)
            full.index_copy_(full.ndim + axis, lines.to(k.device), k)
            return f._combine_g(torch.fft.ifft(full, dim=axis, norm="ortho"))
        if self.lines is not None:
            axis, lines = self.lines
            other = -1 if axis == -2 else -2
            shape = list(self.in_shape)
            shape[axis] = int(lines.numel())
            k = (y * self.weights.to(device=y.device, dtype=y.real.dtype)).reshape(lead + tuple(shape))
            k = torch.fft.ifft(k, dim=other, norm="ortho")
            full = self._zero_grid(lead + self.in_shape, k)
            full.index_copy_(full.ndim + axis, lines.to(k.device), k)
            return f._combine_g(torch.fft.ifft(full, dim=axis, norm="ortho"))
        yw = y * self.weights.to(device=y.device, dtype=y.real.dtype)
        full = self._zero_grid(lead + (math.prod(self.in_shape),), yw)
        full.index_copy_(-1, self.index.to(y.device), yw)
        full = full.reshape(lead + self.in_shape)
        if f._mask_h is None:
            return f._combine(ifft_centered(full, self.ndim))
        return f._combine_g(torch.fft.ifftn(full, dim=tuple(range(-self.ndim, 0)), norm="ortho"))

    def _zero_grid(self, shape: tuple[int, ...], like: torch.Tensor) -> torch.Tensor:
        """A zero k-space grid for the adjoint's scatter. Outside autograd one buffer per shape, dtype, device and
        thread is kept: the scatter writes only the sampled points (the same ones every time), so the rest stays zero
        and the buffer needs no clearing; the inverse FFT that follows writes a new tensor."""
        if torch.is_grad_enabled() and like.requires_grad:
            return torch.zeros(shape, dtype=like.dtype, device=like.device)
        key = (shape, like.dtype, like.device, threading.get_ident())
        cached = getattr(self, "_grid_cache", None)
        if cached is None or cached[0] != key:
            cached = (key, torch.zeros(shape, dtype=like.dtype, device=like.device))
            self._grid_cache = cached
        return cached[1]

    def normal(self, x: torch.Tensor) -> torch.Tensor:
        return self.full.normal(x)

    def primal_dual_steps(self, regularizer: Any) -> dict[str, float]:
        return self.full.primal_dual_steps(regularizer)

    def norm(self, iterations: int = 30, seed: int = 0) -> float:
        return self.full.norm()

    def n_measured(self) -> int:
        return self.full.n_measured()

    def _radius(self) -> torch.Tensor:
        return self._take(self.full._radius())

    def estimate_noise(self, y) -> float:
        t = y if isinstance(y, torch.Tensor) else torch.from_numpy(np.asarray(y))
        return super().estimate_noise(self.to_kspace(t))

    def combine_rss(self, y: torch.Tensor) -> torch.Tensor:
        return self.full.combine_rss(self._scatter(self.to_kspace(y)))

    def _scatter(self, y: torch.Tensor) -> torch.Tensor:
        full = torch.zeros(y.shape[:-1] + (math.prod(self.in_shape),), dtype=y.dtype, device=y.device)
        return full.index_copy_(-1, self.index.to(y.device), y).reshape(y.shape[:-1] + self.in_shape)

    def to(self, device) -> GatheredCartesianMRI:
        self.full.to(device)
        super().to(device)
        self.index, self.weights = self.index.to(self.device), self.weights.to(self.device)
        return self

    def _params(self) -> dict[str, Any]:
        return self.full._params()

    @classmethod
    def from_params(cls, **params) -> GatheredCartesianMRI:
        return cls(CartesianMRI(**params))


# -- non-Cartesian ------------------------------------------------------------------------------------------------
def density_compensation(trajectory, shape: tuple[int, ...], iterations: int = 10) -> np.ndarray:
    """Density-compensation weights ``w`` with ``Aᴴ diag(w) A ≈ I`` near the center (Pipe & Menon, MRM 41 (1999) 179).

    Fixed point ``w ← w / (C * w)`` where ``C * w`` is the sample density seen through a triangular
    gridding kernel one grid cell wide, evaluated on a twice oversampled grid; then scaled so that a
    point-source image is reproduced with unit gain.
    """
    traj = np.asarray(trajectory, dtype=np.float64)
    shape = tuple(int(s) for s in shape)
    nd = len(shape)
    os_shape = tuple(2 * s for s in shape)
    # sample positions in oversampled grid units
    pos = [(traj[:, i] / (2 * np.pi)) * os_shape[i] + os_shape[i] / 2 for i in range(nd)]
    base = [np.floor(p).astype(np.int64) for p in pos]
    frac = [p - b for p, b in zip(pos, base)]
    w = np.ones(traj.shape[0])
    corners = np.array(np.meshgrid(*[[0, 1]] * nd, indexing="ij")).reshape(nd, -1).T
    for _ in range(iterations):
        grid = np.zeros(os_shape)
        idx_w = []
        for c in corners:
            idx = tuple(np.clip(base[i] + c[i], 0, os_shape[i] - 1) for i in range(nd))
            wt = np.prod([frac[i] if c[i] else 1 - frac[i] for i in range(nd)], axis=0)
            np.add.at(grid, idx, w * wt)
            idx_w.append((idx, wt))
        dens = sum(grid[idx] * wt for idx, wt in idx_w)
        w = w / np.maximum(dens, 1e-12)
    # scale: Aᴴ W A of a centered delta has unit peak
    return (w / w.sum() * np.prod(shape)).astype(np.float32)


class NonCartesianMRI(MRIOperator):
    """Non-Cartesian k-space (radial, spiral): ``y_c(k_j) = N^{-1/2} Σ_r (S_c x)(r) e^{-i k_j·r}``.

    ``trajectory`` (M, d) in radians per pixel in [-π, π), columns in the image's axis order (ky, kx)
    or (kz, ky, kx); ``shape`` the image shape; ``coil_maps`` (C, *shape); ``density`` per-sample
    compensation weights (``None``: computed by :func:`density_compensation`), used by the
    density-compensated adjoint, never by the forward model.

    The NUFFT is :class:`napari_invimg.operators.nufft.NUFFT` (finufft, Barnett et al., SIAM J. Sci. Comput. 41
    (2019) C479; forward type 2, adjoint type 1, each the other's backward), scaled by ``N^{-1/2}``. Chosen because
    it was measured fastest and most accurate here: 64 golden-angle spokes × 512 samples on 256², forward +
    adjoint, one coil: finufft 24 ms at error 5e-6, sigpy 57 ms at 2e-3, torchkbnufft 75 ms at 4e-4 (issue #7).
    It runs on the CPU; on a GPU the data make a round trip through host memory (torchkbnufft would keep them on
    the device, at lower accuracy).
    """

    host_round_trip = ("finufft runs on the CPU: on a GPU every forward and adjoint copies the data to host memory "
                       "and back (cuFINUFFT is not used)")

    def __init__(self, trajectory, shape: tuple[int, ...], coil_maps=None, density=None):
        try:
            traj = np.asarray(trajectory, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError("The trajectory must be an (M, d) array of numbers (radians per pixel).") from None
        shape = tuple(int(s) for s in shape)
        if len(shape) not in (2, 3) or min(shape) < 2:
            raise ValueError(f"The image shape must be 2D or 3D with at least 2 pixels per axis, got {shape}.")
        if traj.ndim != 2 or traj.shape[1] != len(shape) or traj.shape[0] == 0:
            raise ValueError(f"The trajectory must have shape (M, {len(shape)}) for a {len(shape)}D image, got {traj.shape}.")
        if not np.isfinite(traj).all() or np.abs(traj).max() > np.pi + 1e-6:
            raise ValueError("Trajectory coordinates must be finite radians per pixel in [-π, π].")
        self.trajectory = traj.astype(np.float32)
        self.nufft = NUFFT(shape, traj, 1.0 / math.sqrt(math.prod(shape)))
        self._init_maps(coil_maps, shape)
        if density is None:
            density = density_compensation(traj, shape)
        dens = np.asarray(density, dtype=np.float32).reshape(-1)
        if dens.shape[0] != traj.shape[0] or not np.isfinite(dens).all() or np.any(dens < 0):
            raise ValueError(f"The density weights must be {traj.shape[0]} finite non-negative numbers, one per sample.")
        if not np.any(dens):
            raise ValueError("The density weights are all zero: the density-compensated adjoint and CG-SENSE would ignore "
                             "every sample (give positive weights, or None to compute them).")
        self.density_array = dens
        self.density = torch.from_numpy(dens)
        super().__init__(shape, self.coil_shape + (traj.shape[0],))

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.nufft.forward(self._spread(x))

    def _adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return self._combine(self.nufft.adjoint(y))

    def preconditioner(self) -> torch.Tensor:
        """The density compensation: the oversampled k-space center would otherwise set the step of every sample."""
        return self.density

    def _radius(self) -> torch.Tensor:
        return torch.from_numpy(np.sqrt((self.trajectory ** 2).sum(1)) / (2 * np.pi))

    def combine_rss(self, y: torch.Tensor) -> torch.Tensor:
        img = self.nufft.adjoint(y * self.density.to(y.device))
        return img.abs() if self.coil_maps is None else torch.sqrt((img.abs() ** 2).sum(dim=-self.ndim - 1))

    def _params(self) -> dict[str, Any]:
        return {"trajectory": self.trajectory, "shape": self.in_shape, "coil_maps": self.coil_maps_array,
                "density": self.density_array}
