"""Image comparison as in black-hole imaging: NXCORR after the best shift, and the truth blurred to the resolution.

Closure quantities do not fix the absolute position of the source, so images are compared after the
integer-pixel shift that maximizes their normalized cross-correlation (the convention of
eht-imaging's ``Image.compare_images``; EHT Collaboration 2019, ApJL 875, L4, §6). A posterior on closures fixes
the position by a prior on the centroid (``gmrf_hmc``): its truth is the truth moved, by a sub-pixel shift, to the
same centroid (:func:`shift_to_centroid`), the gauge the posterior is defined in. Closure quantities do not fix the
total flux either (they are ratios of visibilities): the part of a closure posterior the data inform is the image of
unit flux (:func:`unit_flux`), and the flux, whose posterior is its prior, is scored on its own
(:func:`flux_interval`); :func:`closure_gauge` also puts every sample at one centroid (the position's spread is the
centroid prior's, which the truth, moved to that centroid, does not have).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi
from scipy.ndimage import gaussian_filter
from scipy.signal import fftconvolve

from ..uncertainty import Reconstruction

__all__ = ["nxcorr_aligned", "blur_to_resolution", "blur_reconstruction", "centroid", "shift_to_centroid", "unit_flux",
           "flux_interval", "closure_gauge"]


def nxcorr_aligned(image: np.ndarray, truth: np.ndarray) -> float:
    """``max over shifts s of <a(· − s) − ā, b − b̄> / (‖a − ā‖ ‖b − b̄‖)`` (zero padding outside the field)."""
    a = np.asarray(image, dtype=np.float64)
    b = np.asarray(truth, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"Cannot compare images of shapes {a.shape} and {b.shape}.")
    a, b = a - a.mean(), b - b.mean()
    den = np.linalg.norm(a) * np.linalg.norm(b)
    if den == 0:
        return 0.0
    return float(fftconvolve(a, b[::-1, ::-1], mode="same").max() / den)


def blur_to_resolution(truth: np.ndarray, fov_uas: float, resolution_uas: float) -> np.ndarray:
    """The truth convolved with a circular Gaussian whose FWHM is the nominal resolution."""
    if not (np.isfinite(fov_uas) and fov_uas > 0 and np.isfinite(resolution_uas) and resolution_uas > 0):
        raise ValueError(f"The field of view and the resolution must be positive and finite (µas), got {fov_uas} and "
                         f"{resolution_uas}.")
    pixel = fov_uas / truth.shape[-1]
    return gaussian_filter(np.asarray(truth, dtype=np.float64),
                           resolution_uas / (2 * np.sqrt(2 * np.log(2))) / pixel).astype(np.float32)


def blur_reconstruction(rec: Reconstruction, fov_uas: float, resolution_uas: float) -> Reconstruction:
    """The posterior of the image seen at the resolution ``resolution_uas``: every sample blurred by
    :func:`blur_to_resolution`, with the mean and std taken over the blurred samples.

    This is the like-for-like comparison with the truth blurred to the same resolution: the interval of a
    blurred quantity comes from the spread of the blurred samples (a linear map of the posterior), not
    from the std of the unblurred image. Needs the reconstruction's samples.
    """
    if rec.samples is None or len(rec.samples) < 2:
        raise ValueError("Blurring a posterior needs its samples (at least two); choose a method that returns them.")
    samples = np.stack([blur_to_resolution(s, fov_uas, resolution_uas) for s in np.asarray(rec.samples)])
    info = {**rec.info, "std_from": "samples", "blurred_to_uas": float(resolution_uas)}
    return Reconstruction(samples.mean(0), samples.std(0, ddof=1), samples, info)


def centroid(image: np.ndarray) -> np.ndarray:
    """The centroid (row, column) in pixels of an image (…, N, M): ``Σ r x / Σ x``."""
    x = np.asarray(image, dtype=np.float64)
    total = x.sum((-2, -1))
    if np.any(total == 0) or not np.all(np.isfinite(total)):
        raise ValueError("The centroid needs an image with finite, nonzero total flux.")
    rows, cols = np.arange(x.shape[-2]), np.arange(x.shape[-1])
    return np.stack([(x.sum(-1) * rows).sum(-1), (x.sum(-2) * cols).sum(-1)], -1) / total[..., None]


def shift_to_centroid(truth: np.ndarray, target: np.ndarray) -> np.ndarray:
    """``truth`` moved by the sub-pixel shift that puts its centroid at ``target`` (row, column): ``x'(r) = x(r − d)``,
    ``d = target − c(x)``, by a Fourier phase ramp on a grid zero-padded to twice the size (no wrap-around). The
    gauge of a closure posterior whose centroid has a prior (closure phases are invariant to a shift)."""
    x = np.asarray(truth, dtype=np.float64)
    n, m = x.shape
    d = np.asarray(target, dtype=np.float64) - centroid(x)
    if not np.all(np.abs(d) < np.array([n, m]) / 2):
        raise ValueError(f"A shift of {d.round(2).tolist()} px moves the image out of its field.")
    r0, c0 = n // 2, m // 2  # the image in the middle of a grid twice its size: no wrap-around for |d| < N/2
    padded = np.zeros((2 * n, 2 * m))
    padded[r0:r0 + n, c0:c0 + m] = x
    moved = np.real(np.fft.ifft2(ndi.fourier_shift(np.fft.fft2(padded), d)))  # as operators.psf.from_bead
    return moved[r0:r0 + n, c0:c0 + m]


def _total_fluxes(rec: Reconstruction) -> np.ndarray:
    if rec.samples is None or len(rec.samples) < 2:
        raise ValueError("The flux gauge needs the posterior's samples (at least two); choose a method that returns them.")
    flux = np.asarray(rec.samples, dtype=np.float64).sum((-2, -1))
    if not (np.all(np.isfinite(flux)) and np.all(flux > 0)):
        raise ValueError("Every sample needs a finite, positive total flux to be scaled to unit flux.")
    return flux


def unit_flux(rec: Reconstruction) -> Reconstruction:
    """The posterior in the flux gauge of closure quantities: every sample ``x_s`` divided by its total flux,
    ``x_s / Σ x_s``, with the mean and std taken over those (a sample-wise, nonlinear map, so from the samples, not
    from the std). Closure phases and log closure amplitudes do not change when the image is scaled, so they inform
    only this unit-flux image; the flux's posterior is its prior, and its spread, shared by every pixel, is scored on
    its own (:func:`flux_interval`) — as the position, which closures do not fix either, is scored in the centroid
    gauge (:func:`shift_to_centroid`). Compare with the truth divided by its own flux. Needs the samples."""
    flux = _total_fluxes(rec)
    samples = np.asarray(rec.samples, dtype=np.float64) / flux[:, None, None]
    info = {**rec.info, "std_from": "samples", "gauge": "unit_flux"}
    return Reconstruction(samples.mean(0), samples.std(0, ddof=1), samples, info)


def flux_interval(rec: Reconstruction, level: float = 0.9) -> tuple[float, float]:
    """The central ``level`` interval of the total flux ``Σ x`` over the posterior's samples: the quantiles
    ``(1 − level)/2`` and ``(1 + level)/2`` of the samples' fluxes. With :func:`unit_flux` this splits a closure
    posterior's interval into the part the data fix and the flux, whose interval is its prior's."""
    if not 0 < level < 1:
        raise ValueError("level must lie in (0, 1).")
    flux = _total_fluxes(rec)
    lo, hi = np.quantile(flux, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def closure_gauge(rec: Reconstruction, target: np.ndarray | None = None) -> Reconstruction:
    """The part of a closure posterior that closure quantities inform: every sample moved by a sub-pixel shift
    (:func:`shift_to_centroid`) to one centroid ``target`` (row, column; default the posterior mean's) and divided by
    its total flux (:func:`unit_flux`), with the mean and std over those. Closure phases are invariant to a shift and
    closure amplitudes to a scale, so a sample's position and flux are its priors' (``gmrf_hmc``: the centroid prior,
    sd ``centroid_sd``, and the ±10% flux prior); compare with the truth moved to ``target`` and divided by its flux,
    which has neither spread. Needs the samples."""
    _total_fluxes(rec)
    samples = np.asarray(rec.samples, dtype=np.float64)
    target = centroid(rec.mean) if target is None else np.asarray(target, dtype=np.float64)
    moved = np.stack([shift_to_centroid(x, target) for x in samples])
    moved /= moved.sum((-2, -1), keepdims=True)  # after the shift: the little it moves off the field is not counted
    info = {**rec.info, "std_from": "samples", "gauge": "centroid_unit_flux"}
    return Reconstruction(moved.mean(0), moved.std(0, ddof=1), moved, info)
