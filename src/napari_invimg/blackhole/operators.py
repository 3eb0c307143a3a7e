"""Forward models of VLBI imaging: image → visibilities (linear) and image → closure quantities.

The sky is an (npix, npix) image in Jy per pixel over ``fov_uas`` micro-arcseconds, row 0 north and
column 0 east (the eht-imaging layout); pixel (i, j) sits at ``x = (N/2 − ½ − j) Δ``,
``y = (N/2 − ½ − i) Δ``. The direct Fourier transform with the square-pixel response is
``V(u, v) = sinc(uΔ) sinc(vΔ) Σ I_ij exp(+2πi(u x_j + v y_i))`` (Thompson, Moran & Swenson 2017,
ch. 3; the sign of eht-imaging's ``ftmatrix``). Large problems use a non-uniform FFT instead of the
matrix: with ``k = j − ⌊N/2⌋`` the sum is a type-2 NUFFT at the points ``(2πvΔ, 2πuΔ)`` and the adjoint a
type-1 NUFFT (finufft: Barnett, Magland & af Klinteberg, SIAM J Sci Comput 41 (2019) C479).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch

from ..operators.base import LinearOperator, Operator
from ..operators.nufft import NUFFT
from .arrays import RAD_PER_UAS, resolution_uas
from .closures import closure_design, closure_phases, closure_sigmas, log_closure_amplitudes, wrap_phase
from .observation import Observation

__all__ = ["Interferometer", "Closures", "check_field", "pixel_positions_rad", "gaussian_image", "NUFFT_ABOVE"]

#: ``transform="auto"`` uses the NUFFT when (number of visibilities) × (pixels) exceeds this, where the two
#: float32 DFT matrices would take more than 128 MiB; below it the matrix is kept for its accuracy (float32
#: rounding, vs the NUFFT's 2e-5), although the NUFFT is faster already at 64² (benchmarks/RESULTS.md §7)
NUFFT_ABOVE = 2**24


def pixel_positions_rad(npix: int, fov_uas: float) -> tuple[np.ndarray, np.ndarray]:
    """Sky offsets (radians) of the pixel columns (x, east positive) and rows (y, north positive)."""
    d = fov_uas / npix * RAD_PER_UAS
    pos = (npix / 2.0 - 0.5 - np.arange(npix)) * d
    return pos, pos.copy()


def gaussian_image(npix: int, fov_uas: float, fwhm_uas: float, flux: float = 1.0,
                   center_uas: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """A circular Gaussian of ``fwhm_uas`` and total ``flux`` centered at (x, y) offsets ``center_uas``."""
    if not (np.isfinite(fwhm_uas) and fwhm_uas > 0):
        raise ValueError(f"A Gaussian image needs a positive, finite FWHM in µas, got {fwhm_uas}.")
    x, y = pixel_positions_rad(npix, fov_uas)
    s = fwhm_uas / (2.0 * np.sqrt(2.0 * np.log(2.0))) * RAD_PER_UAS
    exponent = -((x[None, :] - center_uas[0] * RAD_PER_UAS) ** 2 + (y[:, None] - center_uas[1] * RAD_PER_UAS) ** 2) \
        / (2 * s * s)
    g = np.exp(exponent)
    if not g.sum() > 1e-300:
        # narrower than a pixel and off the pixel centres, every sample underflows: shift the exponent so that the
        # nearest pixels carry the flux (the same image wherever the plain form is finite)
        warnings.warn(f"The Gaussian's FWHM ({fwhm_uas:g} µas) is far below one pixel ({fov_uas / npix:g} µas): it is "
                      "imaged as a point on the nearest pixels; use a smaller field of view or more pixels.",
                      RuntimeWarning, stacklevel=2)
        g = np.exp(exponent - exponent.max())
    return flux * g / g.sum()


def check_grid(npix, fov_uas) -> tuple[int, float]:
    """``(npix, fov_uas)`` as (int, float): a whole number of pixels ≥ 8 and a positive, finite field of view in
    µas, else a :class:`ValueError` naming the value."""
    try:
        whole = float(npix).is_integer() and not isinstance(npix, bool)
    except (TypeError, ValueError):
        whole = False
    if not whole:
        raise ValueError(f"The number of pixels across the field must be a whole number, got {npix!r}.")
    try:
        fov = float(fov_uas)
    except (TypeError, ValueError):
        raise ValueError(f"The field of view must be a number of micro-arcseconds, got {fov_uas!r}.") from None
    if int(npix) < 8:
        raise ValueError(f"Use at least 8 pixels across the field; got {int(npix)}.")
    if not (np.isfinite(fov) and fov > 0):
        raise ValueError(f"The field of view must be positive and finite (micro-arcseconds), got {fov_uas!r}.")
    return int(npix), fov


def check_field(sky: np.ndarray, fov_uas: float, edge_fraction: float = 0.01) -> None:
    """Raise ``ValueError`` when the field of view cannot hold the source: more than ``edge_fraction`` of
    the flux lies in the outer two-pixel frame of ``sky``, or the image has no positive flux."""
    if not (np.isfinite(fov_uas) and fov_uas > 0):
        raise ValueError(f"The field of view must be positive and finite (micro-arcseconds), got {fov_uas}.")
    total = float(np.abs(sky).sum())
    if total <= 0:
        raise ValueError("The sky model has no flux (all zero).")
    frame = np.ones(sky.shape, bool)
    frame[2:-2, 2:-2] = False
    if np.abs(sky[frame]).sum() > edge_fraction * total:
        raise ValueError(
            f"The field of view ({fov_uas:g} µas) is too small for the source: "
            f"{100 * np.abs(sky[frame]).sum() / total:.0f}% of its flux touches the image edge; "
            "enlarge the field of view or pad the sky model."
        )


class Interferometer(LinearOperator):
    """Image (npix, npix), real, Jy/pixel → complex visibilities at the observation's (u, v), by a direct
    Fourier transform with the square-pixel response; linear, ``adjoint`` is its exact transpose
    (``Re⟨Ax, y⟩ = ⟨x, Aᴴy⟩``). ``transform``: ``dft`` (exact, as two separable products), ``nufft`` (:class:`~napari_invimg.operators.nufft.NUFFT`,
    error ≈ 2e-5 of the largest visibility in float32, 1e-10 in float64; differentiable in torch) or ``auto`` (NUFFT above
    :data:`NUFFT_ABOVE`)."""

    in_complex = False
    out_complex = True

    def __init__(self, obs: Observation | None = None, npix: int = 64, fov_uas: float = 160.0, *,
                 u: np.ndarray | None = None, v: np.ndarray | None = None, transform: str = "auto"):
        if obs is None and (u is None or v is None):
            raise ValueError("Interferometer needs an observation (or its u and v in wavelengths).")
        if obs is not None:
            u, v = obs.u, obs.v
        u = np.asarray(u, dtype=np.float64).ravel()
        v = np.asarray(v, dtype=np.float64).ravel()
        if u.size == 0 or u.size != v.size:
            raise ValueError("Interferometer needs as many u as v coordinates, at least one.")
        npix, fov_uas = check_grid(npix, fov_uas)
        super().__init__((npix, npix), (u.size,))
        self.obs = obs
        self.npix, self.fov_uas = npix, fov_uas
        self.u, self.v = u, v
        pixel = fov_uas / npix * RAD_PER_UAS
        longest = float(max(np.abs(u).max(), np.abs(v).max()))
        if longest * pixel > 0.5:
            need = int(np.ceil(2 * longest * fov_uas * RAD_PER_UAS))
            raise ValueError(
                f"The longest baseline ({longest / 1e9:.2f} Gλ) resolves finer than the pixels "
                f"({fov_uas / npix:.2f} µas) can represent; use npix ≥ {need} or a smaller field of view."
            )
        res = resolution_uas(u, v)
        if fov_uas < 2 * res:
            raise ValueError(
                f"The field of view ({fov_uas:g} µas) is too small for the source: it spans less than two "
                f"resolution elements ({res:.1f} µas each); enlarge it."
            )
        if transform not in ("auto", "dft", "nufft"):
            raise ValueError(f"transform must be 'auto', 'dft' or 'nufft', got {transform!r}.")
        if transform == "auto":
            transform = "nufft" if u.size * npix * npix > NUFFT_ABOVE else "dft"
        self.transform = transform
        if transform == "nufft":
            self.host_round_trip = ("finufft runs on the CPU: on a GPU every forward and adjoint copies the data "
                                    "to host memory and back")
        response = np.sinc(u * pixel) * np.sinc(v * pixel)
        self.response = response
        self._by_dtype: dict[torch.dtype, tuple[torch.Tensor, ...]] = {}
        if transform == "nufft":
            # x_j = (o − k_j) Δ with k_j = j − ⌊N/2⌋ and o = N/2 − ½ − ⌊N/2⌋: a type-2 NUFFT of sign −1 at (2πvΔ, 2πuΔ)
            offset = npix / 2.0 - 0.5 - npix // 2
            self.nufft = NUFFT((npix, npix), np.stack([2 * np.pi * v * pixel, 2 * np.pi * u * pixel], 1))
            self._factor = torch.from_numpy(response * np.exp(2j * np.pi * offset * pixel * (u + v)))
            return
        # the DFT's phase 2π(v_k y_r + u_k x_c) is a sum over rows and columns, so V_k = h_k Σ_r e^{2πi v_k y_r}
        # Σ_c x_rc e^{2πi u_k x_c}: two (n, K) products instead of the K × n² matrix (read from memory at every product)
        x, y = pixel_positions_rad(npix, fov_uas)
        column, row = 2 * np.pi * np.outer(x, u), 2 * np.pi * np.outer(y, v)
        self.dft_columns = torch.from_numpy(np.concatenate([np.cos(column), np.sin(column)], 1))  # (n, 2K)
        self.dft_rows = torch.from_numpy(np.stack([response * np.cos(row), response * np.sin(row)]))  # (2, n, K)

    def to(self, device):
        self._by_dtype = {}
        return super().to(device)

    def _factor_like(self, t: torch.Tensor) -> torch.Tensor:
        dtype = torch.complex64 if t.dtype in (torch.float32, torch.complex64) else torch.complex128
        return self._factor.to(t.device, dtype)

    def _dft_factors(self, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        if dtype not in self._by_dtype:
            columns = self.dft_columns.to(dtype)
            self._by_dtype[dtype] = (columns, columns.T.contiguous(), *self.dft_rows.to(dtype).unbind(0))
        return self._by_dtype[dtype]

    def forward_parts(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(Re V, Im V)`` of real images ``x`` (..., npix, npix) → (..., visibilities) each, differentiable:
        ``V_k = h_k Σ_r e^{2πi v_k y_r} Σ_c x_rc e^{2πi u_k x_c}`` (``transform="dft"`` only)."""
        if self.transform != "dft":
            raise ValueError("forward_parts exists only with transform='dft'.")
        columns, _, rows_cos, rows_sin = self._dft_factors(x.dtype)
        t = x @ columns  # Σ_c x_rc (cos, sin)(2π u_k x_c): (..., n, 2K)
        k = self.u.size
        t_cos, t_sin = t[..., :k], t[..., k:]
        return (t_cos * rows_cos - t_sin * rows_sin).sum(-2), (t_cos * rows_sin + t_sin * rows_cos).sum(-2)

    def adjoint_parts(self, g_re: torch.Tensor, g_im: torch.Tensor) -> torch.Tensor:
        """``Re(Aᴴ g)`` for ``g = g_re + i g_im`` (..., visibilities) → (..., npix, npix): the exact transpose of
        :meth:`forward_parts` (``transform="dft"`` only)."""
        if self.transform != "dft":
            raise ValueError("adjoint_parts exists only with transform='dft'.")
        _, columns_t, rows_cos, rows_sin = self._dft_factors(g_re.dtype)
        g_re, g_im = g_re[..., None, :], g_im[..., None, :]
        p = torch.cat([g_re * rows_cos + g_im * rows_sin, g_im * rows_cos - g_re * rows_sin], -1)
        return p @ columns_t

    def real_matrix(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """The DFT as one real matrix ``[Re; Im]`` (2 · visibilities, npix²): ``[Re V; Im V] = M x.ravel()``
        (``transform="dft"`` only; built on request, K × npix² numbers)."""
        if self.transform != "dft":
            raise ValueError("The DFT matrix exists only with transform='dft'.")
        columns, _, rows_cos, rows_sin = self._dft_factors(torch.float64)
        k, n = self.u.size, self.npix
        c_cos, c_sin = columns[:, :k].T, columns[:, k:].T  # (K, n), indexed by column
        out = torch.empty(2 * k, n * n, dtype=dtype, device=columns.device)
        for r in range(n):  # one image row at a time: (K, n) temporaries, never K × n² in float64
            rc, rs = rows_cos[r][:, None], rows_sin[r][:, None]
            out[:k, r * n:(r + 1) * n] = rc * c_cos - rs * c_sin
            out[k:, r * n:(r + 1) * n] = rs * c_cos + rc * c_sin
        return out

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.transform == "nufft":
            factor = self._factor_like(x)
            return factor * self.nufft.forward(x.to(factor.dtype))
        re, im = self.forward_parts(x)
        return torch.complex(re, im)

    def _adjoint(self, y: torch.Tensor) -> torch.Tensor:
        if self.transform == "nufft":
            return self.nufft.adjoint(self._factor_like(y).conj() * y).real
        return self.adjoint_parts(y.real.contiguous(), y.imag.contiguous())

    def _params(self) -> dict[str, Any]:
        return {"u": self.u, "v": self.v, "npix": self.npix, "fov_uas": self.fov_uas, "transform": self.transform}

    @classmethod
    def from_params(cls, **params) -> Interferometer:
        return cls(None, params["npix"], params["fov_uas"], u=params["u"], v=params["v"],
                   transform=params.get("transform", "auto"))

    # -- imaging helpers ------------------------------------------------------------------------------
    def weights(self, sigma: np.ndarray, weighting: str = "natural") -> np.ndarray:
        """Visibility weights: ``natural`` 1/σ², ``uniform`` 1/σ² divided by the weight in each (u, v)
        cell of the image's Fourier grid (cell = 1/fov), or ``none`` (all ones)."""
        sigma = np.asarray(sigma, dtype=np.float64)
        if weighting == "none":
            return np.ones_like(sigma)
        w = 1.0 / sigma**2
        if weighting == "natural":
            return w
        if weighting == "uniform":
            cell = 1.0 / (self.fov_uas * RAD_PER_UAS)
            # (u, v) and (−u, −v) are the same Fourier component of a real image
            flip = np.where(self.v < 0, -1.0, 1.0)
            keys = np.stack([np.round(self.u * flip / cell), np.round(self.v * flip / cell)], 1)
            _, inverse = np.unique(keys, axis=0, return_inverse=True)
            inverse = inverse.ravel()
            return w / np.bincount(inverse, w)[inverse]
        raise ValueError(f"Weighting must be 'natural', 'uniform' or 'none', got {weighting!r}.")

    def dirty_image(self, vis: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """``Aᴴ(w ⊙ V) / Σ wᵢ rᵢ²`` (r the pixel response): a point source of flux F peaks at F."""
        w = np.asarray(weights, dtype=np.float64)
        with torch.no_grad():
            img = self.adjoint((w * np.asarray(vis)).astype(np.complex64))
        return img / float((w * self.response**2).sum())

    def dirty_beam(self, weights: np.ndarray, size: int | None = None) -> np.ndarray:
        """The dirty beam (point-spread function) on a ``size × size`` grid of the image's pixels, centered at
        ``size // 2`` (default ``2·npix − 1``, every offset between two pixels), peak 1."""
        size = 2 * self.npix - 1 if size is None else int(size)
        w = np.asarray(weights, dtype=np.float64) * self.response**2
        d = self.fov_uas / self.npix * RAD_PER_UAS
        offsets = (np.arange(size) - size // 2) * d
        au = 2 * np.pi * self.u[:, None] * offsets[None, :]  # (n_vis, size): column offsets (sign cancels in cos)
        av = 2 * np.pi * self.v[:, None] * offsets[None, :]
        beam = (np.cos(av) * w[:, None]).T @ np.cos(au) - (np.sin(av) * w[:, None]).T @ np.sin(au)
        return (beam / w.sum()).astype(np.float32)


class Closures(Operator):
    """Image → [closure phases (rad), log closure amplitudes] of a non-redundant set per scan
    (:func:`~.closures.closure_design`); non-linear, differentiable in torch.

    ``.data`` and ``.sigma`` are the observed closure quantities and their thermal noise. Model
    closure phases come out on the branch nearest the observed ones (``ψ_obs + wrap(ψ − ψ_obs)``), so a
    Gaussian misfit of ``forward(x) − data`` is the circular distance; :meth:`nll` uses the smooth form
    ``2(1 − cos Δψ)/σ²`` for the phases (Chael et al. 2018, ApJ 857, 23, eq. 11).
    """

    in_complex = False
    out_complex = False

    def __init__(self, obs: Observation, npix: int = 64, fov_uas: float = 160.0, min_snr: float = 3.0):
        if not isinstance(obs, Observation):
            raise ValueError("Closures needs an Observation (with station names per visibility).")
        if not (np.isfinite(min_snr) and min_snr >= 0):
            raise ValueError(f"min_snr must be a finite signal-to-noise ratio ≥ 0, got {min_snr}.")
        self.interferometer = Interferometer(obs, npix, fov_uas)
        self.obs = obs
        self.min_snr = float(min_snr)
        design = closure_design(obs, min_snr=min_snr)
        if design.n_phases == 0:
            weak = f" with every baseline at |V|/σ ≥ min_snr = {min_snr:g}" if min_snr > 0 else ""
            raise ValueError(f"The observation has no closed triangle of baselines (three stations observing "
                             f"together){weak}, so it has no closure phases.")
        self.design = design
        self.n_phases, self.n_amplitudes = design.n_phases, design.n_amplitudes
        super().__init__((int(npix), int(npix)), (self.n_phases + self.n_amplitudes,))
        sig_p, sig_a = closure_sigmas(obs.vis, obs.sigma, design)
        self.data = np.concatenate([closure_phases(obs.vis, design), log_closure_amplitudes(obs.vis, design)])
        self.data = self.data.astype(np.float32)
        self.sigma = np.concatenate([sig_p, sig_a]).astype(np.float32)
        self.phase_design = torch.from_numpy(design.phase.astype(np.float32))
        self.amplitude_design = torch.from_numpy(design.amplitude.astype(np.float32))
        self.observed_phases = torch.from_numpy(self.data[: self.n_phases])
        self.total_flux = zero_baseline_flux(obs)

    def to(self, device):
        super().to(device)
        self.interferometer.to(device)
        return self

    @property
    def npix(self) -> int:
        return self.interferometer.npix

    @property
    def fov_uas(self) -> float:
        return self.interferometer.fov_uas

    def closures_of(self, vis: torch.Tensor) -> torch.Tensor:
        """[closure phases on the observed branch, log closure amplitudes] of visibilities ``vis``."""
        dtype = vis.real.dtype
        # phases and log amplitudes in double precision: a tiny visibility must not underflow (atan2's gradient)
        re, im = vis.real.double(), vis.imag.double()
        phase = torch.atan2(im, re) @ self.phase_design.double().T
        ref = self.observed_phases.double()
        phase = ref + wrap_phase(phase - ref)
        log_amp = 0.5 * torch.log(re**2 + im**2 + 1e-300) @ self.amplitude_design.double().T
        return torch.cat([phase, log_amp], dim=-1).to(dtype)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.closures_of(self.interferometer.apply(x))

    def nll(self, y: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """``Σ 2(1 − cos(ψ_y − ψ_z))/σ² / 2 + Σ (a_y − a_z)²/σ² / 2`` (phases, then log amplitudes)."""
        s = torch.as_tensor(self.sigma, device=z.device, dtype=z.dtype)
        k = self.n_phases
        phase = (1.0 - torch.cos(y[..., :k] - z[..., :k])) * 2.0 / s[:k] ** 2
        amp = (y[..., k:] - z[..., k:]) ** 2 / s[k:] ** 2
        return 0.5 * (phase.sum() + amp.sum())

    def normalized_residuals(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """Closure-phase residuals ``wrap(ψ_obs − ψ(x))/σ`` and log-closure-amplitude residuals ``Δa/σ``."""
        z = self.forward(np.asarray(x, dtype=np.float32))
        r = (self.data - z) / self.sigma
        return {"closure phase": r[: self.n_phases], "log closure amplitude": r[self.n_phases:]}

    normalised_residuals = normalized_residuals  # deprecated spelling (issue #17)

    def _params(self) -> dict[str, Any]:
        o = self.obs
        return {"time": o.time, "station1": o.station1, "station2": o.station2, "u": o.u, "v": o.v,
                "vis": o.vis, "sigma": o.sigma, "freq_hz": o.freq_hz, "npix": self.npix, "fov_uas": self.fov_uas,
                "min_snr": self.min_snr}

    @classmethod
    def from_params(cls, **params) -> Closures:
        obs_keys = ("time", "station1", "station2", "u", "v", "vis", "sigma", "freq_hz")
        obs = Observation(**{k: params[k] for k in obs_keys})
        return cls(obs, params["npix"], params["fov_uas"], params.get("min_snr", 0.0))


def zero_baseline_flux(obs: Observation) -> float:
    """Total compact flux estimated from the shortest baselines: the median amplitude of the rows
    shorter than 1.5× the shortest (intra-site baselines such as ALMA–APEX or SMA–JCMT)."""
    r = np.hypot(obs.u, obs.v)
    short = r <= 1.5 * max(r.min(), 1.0)
    return float(np.median(np.abs(obs.vis[short])))
