"""Högbom CLEAN with a restoring beam: the classical baseline of radio interferometric imaging.

Repeatedly find the peak of the residual dirty image inside a window, subtract ``gain × peak`` times
the dirty beam shifted there and record the component; stop at ``threshold`` × the dirty image's
thermal noise. The result is the components convolved with a Gaussian restoring beam (the dirty
beam's main lobe) plus the residual (Högbom 1974, A&AS 15, 417).
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.ndimage import label

from ..methods.registry import ITERATIONS, Context, Estimate, Method, Param
from .operators import Interferometer, gaussian_image, pixel_positions_rad
from .arrays import RAD_PER_UAS
from .rml import single_thread

__all__ = ["Clean", "main_lobe_fwhm"]


def main_lobe_fwhm(beam: np.ndarray) -> float:
    """FWHM (pixels) of the circle with the area of the dirty beam's central lobe above half maximum."""
    c = beam.shape[0] // 2
    lobes, _ = label(beam >= 0.5 * beam[c, c])
    area = float((lobes == lobes[c, c]).sum())
    return 2.0 * np.sqrt(area / np.pi)


class Clean(Method):
    name = "clean"
    label = "Högbom CLEAN"
    description = ("Greedy point-source deconvolution of the dirty image: subtract gain·peak·dirty beam at the residual "
                   "peak until it falls below threshold·σ_dirty; restore with a Gaussian beam.")
    reference = "Högbom 1974, A&AS 15, 417; Clark 1980, A&A 89, 377."
    needs_adjoint = True
    operators = ("Interferometer",)
    complex_images = False
    domain = "blackhole"
    params = (
        ITERATIONS(1000, high=100000),
        Param("gain", float, 0.1, 0.001, 1.0, doc="loop gain: fraction of the peak removed per component"),
        Param("threshold", float, 3.0, 0.0, 100.0, doc="stop when the residual peak is below this × the dirty-image noise"),
        Param("weighting", str, "uniform", choices=("natural", "uniform"), doc="visibility weighting"),
        Param("window_uas", float, 80.0, 1.0, 10000.0, doc="diameter of the circular CLEAN window (µas)"),
        Param("beam_uas", float, None, 0.0, 1000.0, doc="restoring beam FWHM (µas; empty: fitted to the dirty beam)"),
        Param("positive", bool, True, doc="only positive components (the sky is non-negative)"),
    )

    def run(self, y, A: Interferometer, noise, ctx: Context, **params) -> Estimate:
        with single_thread():
            return self._run(y, A, noise, ctx, **params)

    def _run(self, y, A: Interferometer, noise, ctx: Context, iterations, gain, threshold, weighting, window_uas,
            beam_uas, positive) -> Estimate:
        n = A.npix
        vis = y.detach().cpu().numpy().astype(np.complex128)
        sigma = np.broadcast_to(np.asarray(noise.sigma, dtype=np.float64), vis.shape)
        w = A.weights(sigma, weighting)
        residual = A.dirty_image(vis, w).astype(np.float64)
        beam = A.dirty_beam(w).astype(np.float64)
        r2 = w * A.response**2
        sigma_dirty = float(np.sqrt((w**2 * A.response**2 * sigma**2).sum()) / r2.sum())
        x, yy = (p / RAD_PER_UAS for p in pixel_positions_rad(n, A.fov_uas))
        window = np.hypot(x[None, :], yy[:, None]) <= window_uas / 2
        components = np.zeros((n, n))
        c = n - 1  # beam center
        stop = threshold * sigma_dirty
        done = 0
        for it in range(iterations):
            masked = np.where(window, residual if positive else np.abs(residual), -np.inf)
            i, j = np.unravel_index(int(np.argmax(masked)), masked.shape)
            peak = residual[i, j]
            if (positive and peak <= stop) or (not positive and abs(peak) <= stop):
                break
            components[i, j] += gain * peak
            residual -= gain * peak * beam[c - i: c - i + n, c - j: c - j + n]
            done = it + 1
            if it % 25 == 0:
                ctx.step(it, iterations, torch.from_numpy(components.astype(np.float32)))
        pixel = A.fov_uas / n
        fwhm = main_lobe_fwhm(beam) * pixel if beam_uas is None else beam_uas
        restoring = gaussian_image(2 * n - 1, (2 * n - 1) * pixel, fwhm, 1.0)
        from scipy.signal import fftconvolve

        restored = fftconvolve(components, restoring, mode="same")
        beam_area_pixels = 1.0 / float(restoring.max())
        image = restored + residual / beam_area_pixels
        ctx.step(iterations, iterations, torch.from_numpy(image.astype(np.float32)))
        return Estimate(torch.as_tensor(image, dtype=torch.float32, device=y.device),
                        info={"iterations": done, "components": int((components != 0).sum()),
                              "clean_flux": float(components.sum()), "restoring_beam_uas": float(fwhm),
                              "dirty_noise": sigma_dirty, "weighting": weighting})
