"""Image comparison as in black-hole imaging: NXCORR after the best shift, and the truth blurred to the resolution.

Closure quantities do not fix the absolute position of the source, so images are compared after the
integer-pixel shift that maximizes their normalized cross-correlation (the convention of
eht-imaging's ``Image.compare_images``; EHT Collaboration 2019, ApJL 875, L4, §6).
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter
from scipy.signal import fftconvolve

from ..uncertainty import Reconstruction

__all__ = ["nxcorr_aligned", "blur_to_resolution", "blur_reconstruction"]


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
