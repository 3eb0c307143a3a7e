"""Parametric sky models for black-hole imaging tests (offline, 64×64 over 160 µas by default).

Images are Jy per pixel, row 0 north, column 0 east (x = east offset, y = north offset), with total
flux ``flux`` (0.6 Jy, about M87*'s compact flux at 230 GHz; EHT Collaboration 2019, Paper IV). Each
is sampled on a 4× finer grid, box-averaged to the pixels and blurred by a Gaussian of ``blur_uas``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.ndimage import gaussian_filter

__all__ = ["ring", "crescent", "mring", "double", "jet", "names", "get"]

_SUPER = 4
_FWHM_TO_SIGMA = 1.0 / (2.0 * np.sqrt(2.0 * np.log(2.0)))


def _grid(npix: int, fov_uas: float):
    if isinstance(npix, bool) or not float(npix).is_integer() or npix < 1:
        raise ValueError(f"A sky model needs a whole, positive number of pixels, got {npix!r}.")
    npix = int(npix)
    if not (np.isfinite(fov_uas) and fov_uas > 0):
        raise ValueError(f"A sky model needs a positive, finite field of view (µas), got {fov_uas}.")
    n = npix * _SUPER
    d = fov_uas / n
    pos = (n / 2.0 - 0.5 - np.arange(n)) * d
    return pos[None, :], pos[:, None]  # x (east), y (north)


def _finish(fine: np.ndarray, npix: int, fov_uas: float, blur_uas: float, flux: float) -> np.ndarray:
    img = fine.reshape(npix, _SUPER, npix, _SUPER).mean(axis=(1, 3))
    if blur_uas > 0:
        img = gaussian_filter(img, blur_uas * _FWHM_TO_SIGMA / (fov_uas / npix), mode="constant")
    img = np.clip(img, 0, None)
    return (flux * img / img.sum()).astype(np.float32)


def _position_angle(x, y, pa_deg: float):
    """Azimuth measured east of north, minus ``pa_deg`` (radians)."""
    return np.arctan2(x, y) - np.deg2rad(pa_deg)


def ring(npix: int = 64, fov_uas: float = 160.0, diameter_uas: float = 44.0, width_uas: float = 8.0,
         blur_uas: float = 0.0, flux: float = 0.6) -> np.ndarray:
    """Uniform ring: radial profile ``exp(−(r − d/2)² / 2w²)`` with ``w = width/2.355``."""
    x, y = _grid(npix, fov_uas)
    r = np.hypot(x, y)
    fine = np.exp(-0.5 * ((r - diameter_uas / 2) / (width_uas * _FWHM_TO_SIGMA)) ** 2)
    return _finish(fine, npix, fov_uas, blur_uas, flux)


def crescent(npix: int = 64, fov_uas: float = 160.0, outer_uas: float = 46.0, inner_uas: float = 30.0,
             shift_uas: float = 5.0, pa_deg: float = 200.0, blur_uas: float = 8.0, flux: float = 0.6) -> np.ndarray:
    """Crescent: a uniform disc minus a smaller disc shifted away from the bright side at position angle
    ``pa_deg`` (Kamruddin & Dexter 2013, MNRAS 434, 765)."""
    x, y = _grid(npix, fov_uas)
    pa = np.deg2rad(pa_deg)
    outer = np.hypot(x, y) <= outer_uas / 2
    inner = np.hypot(x + shift_uas * np.sin(pa), y + shift_uas * np.cos(pa)) <= inner_uas / 2
    return _finish((outer & ~inner).astype(np.float64), npix, fov_uas, blur_uas, flux)


def mring(npix: int = 64, fov_uas: float = 160.0, diameter_uas: float = 42.0, beta: tuple[complex, ...] = (0.4, 0.1j),
          pa_deg: float = 200.0, blur_uas: float = 12.0, flux: float = 0.6) -> np.ndarray:
    """m-ring: a thin ring with azimuthal brightness ``1 + 2 Re Σ_m β_m e^{i m (θ − PA)}``, blurred
    (Johnson et al. 2020, Science Advances 6, eaaz1310)."""
    x, y = _grid(npix, fov_uas)
    theta = _position_angle(x, y, pa_deg)
    bright = 1.0 + 2.0 * sum(np.real(b * np.exp(1j * (m + 1) * theta)) for m, b in enumerate(beta))
    d = fov_uas / (npix * _SUPER)
    thin = np.exp(-0.5 * ((np.hypot(x, y) - diameter_uas / 2) / d) ** 2)
    return _finish(np.clip(bright, 0, None) * thin, npix, fov_uas, blur_uas, flux)


def double(npix: int = 64, fov_uas: float = 160.0, separation_uas: float = 50.0, pa_deg: float = 60.0,
           fwhm_uas: tuple[float, float] = (16.0, 24.0), ratio: float = 0.6, blur_uas: float = 0.0,
           flux: float = 0.6) -> np.ndarray:
    """Two Gaussian sources ``separation_uas`` apart along ``pa_deg``, carrying ``ratio`` and 1 − ratio of the flux."""
    x, y = _grid(npix, fov_uas)
    pa = np.deg2rad(pa_deg)
    fine = np.zeros(np.broadcast(x, y).shape)
    for sign, fwhm, share in ((0.5, fwhm_uas[0], ratio), (-0.5, fwhm_uas[1], 1.0 - ratio)):
        cx, cy = sign * separation_uas * np.sin(pa), sign * separation_uas * np.cos(pa)
        s = fwhm * _FWHM_TO_SIGMA
        g = np.exp(-0.5 * ((x - cx) ** 2 + (y - cy) ** 2) / s**2)
        fine += share * g / g.sum()
    return _finish(fine, npix, fov_uas, blur_uas, flux)


def jet(npix: int = 64, fov_uas: float = 160.0, pa_deg: float = 250.0, core_fwhm_uas: float = 14.0,
        length_uas: float = 56.0, width_uas: float = 10.0, core_share: float = 0.5, blur_uas: float = 4.0,
        flux: float = 0.6) -> np.ndarray:
    """A core–jet source: a Gaussian core carrying ``core_share`` of the flux at the centre, and a jet along ``pa_deg``
    whose brightness falls linearly to zero over ``length_uas`` (Gaussian cross-section of FWHM ``width_uas``)."""
    x, y = _grid(npix, fov_uas)
    pa = np.deg2rad(pa_deg)
    along = x * np.sin(pa) + y * np.cos(pa)
    across = x * np.cos(pa) - y * np.sin(pa)
    s = core_fwhm_uas * _FWHM_TO_SIGMA
    core = np.exp(-0.5 * (x**2 + y**2) / s**2)
    profile = np.clip(1.0 - along / length_uas, 0, None) * (along > 0)
    jet_ = profile * np.exp(-0.5 * (across / (width_uas * _FWHM_TO_SIGMA)) ** 2)
    fine = core_share * core / core.sum() + (1 - core_share) * jet_ / max(jet_.sum(), 1e-300)
    return _finish(fine, npix, fov_uas, blur_uas, flux)


_MODELS: dict[str, Callable[..., np.ndarray]] = {"ring": ring, "crescent": crescent, "mring": mring, "double": double,
                                                 "jet": jet}


def names() -> list[str]:
    """Names of the bundled sky models."""
    return list(_MODELS)


def get(name: str, npix: int = 64, fov_uas: float = 160.0, **params) -> np.ndarray:
    """The bundled sky model ``name`` (see :func:`names`)."""
    if name not in _MODELS:
        raise ValueError(f"Unknown sky model {name!r}; bundled: {', '.join(_MODELS)}.")
    return _MODELS[name](npix=npix, fov_uas=fov_uas, **params)
