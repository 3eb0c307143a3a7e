"""Point-spread functions: parametric (Gaussian, widefield Born–Wolf / Gibson–Lanni) and measured beads.

Every function returns a float32 numpy array that sums to 1, centred on the array's central pixel.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.ndimage as ndi
from scipy.special import j0

__all__ = ["gaussian", "widefield", "from_bead", "WIDEFIELD_MODELS", "centre_of_mass_shift"]

WIDEFIELD_MODELS = ("born_wolf", "gibson_lanni", "vectorial")


def _as_shape(shape: int | Sequence[int]) -> tuple[int, ...]:
    shape = (int(shape),) * 2 if np.isscalar(shape) else tuple(int(s) for s in shape)
    if len(shape) not in (2, 3) or min(shape) < 1:
        raise ValueError(f"A PSF shape has 2 or 3 positive sizes, got {shape}.")
    return shape


def gaussian(shape: int | Sequence[int], sigma: float | Sequence[float] = 2.0) -> np.ndarray:
    """Sampled Gaussian kernel ``h(r) ∝ exp(−Σ r_i² / 2σ_i²)``, normalised to sum 1.

    Parameters
    ----------
    shape : int or tuple of int
        Kernel size, (Y, X) or (Z, Y, X); odd sizes keep the peak on a pixel.
    sigma : float or tuple of float
        Standard deviation in pixels, one value or one per axis.
    """
    shape = _as_shape(shape)
    sig = np.broadcast_to(np.asarray(sigma, dtype=np.float64), (len(shape),))
    if np.any(sig <= 0):
        raise ValueError("Gaussian PSF sigma must be positive.")
    grids = np.meshgrid(*[np.arange(n) - (n - 1) / 2 for n in shape], indexing="ij")
    h = np.exp(-0.5 * sum((g / s) ** 2 for g, s in zip(grids, sig)))
    return (h / h.sum()).astype(np.float32)


def _born_wolf(shape, wavelength_um, na, pixel_size_um, z_step_um, ni, oversample=3):
    """Scalar Born–Wolf defocus model ``h(r,z) = |∫₀¹ J₀(k NA r ρ) exp(−i k NA² z ρ² / 2n) ρ dρ|²``."""
    ny, nx = shape[-2:]
    nz = shape[0] if len(shape) == 3 else 1
    k = 2 * np.pi / wavelength_um
    sub = (np.arange(oversample) - (oversample - 1) / 2) / oversample
    yy = (np.arange(ny) - (ny - 1) / 2)[:, None] + sub[None, :]
    xx = (np.arange(nx) - (nx - 1) / 2)[:, None] + sub[None, :]
    r = np.hypot(yy.reshape(-1, 1) * pixel_size_um, xx.reshape(1, -1) * pixel_size_um)  # (ny*o, nx*o)
    rho, w = np.polynomial.legendre.leggauss(200)
    rho = 0.5 * (rho + 1)
    w = 0.5 * w
    zs = (np.arange(nz) - (nz - 1) / 2) * (z_step_um or 0.0)
    r_unique, inverse = np.unique(np.round(r, 9), return_inverse=True)
    bessel = j0(k * na * r_unique[:, None] * rho[None, :]) * (rho * w)[None, :]  # (R, Q)
    out = np.empty((nz, ny, nx))
    for i, z in enumerate(zs):
        phase = np.exp(-0.5j * k * na**2 * z * rho**2 / ni)
        amp = bessel @ phase
        inten = np.abs(amp) ** 2
        img = inten[inverse].reshape(r.shape)
        out[i] = img.reshape(ny, oversample, nx, oversample).mean(axis=(1, 3))
    return out if len(shape) == 3 else out[0]


def widefield(
    shape: int | Sequence[int],
    wavelength_um: float = 0.52,
    na: float = 1.4,
    pixel_size_um: float = 0.065,
    z_step_um: float | None = None,
    ni: float = 1.515,
    ns: float = 1.33,
    model: str = "born_wolf",
) -> np.ndarray:
    """Widefield fluorescence PSF from the objective's optics, 2D (in focus) or 3D (``shape`` = (Z, Y, X)).

    ``born_wolf``: scalar defocus model in an index-matched sample (Born & Wolf, *Principles of
    Optics*, 8.8). ``gibson_lanni``: scalar model with a refractive-index mismatch between immersion
    ``ni`` and sample ``ns`` (Gibson & Lanni, JOSA A 8 (1991) 1601), computed by ``psfmodels``;
    ``vectorial``: Aguet et al., Opt. Express 17 (2009), also through ``psfmodels``.

    Parameters
    ----------
    shape : (Y, X) or (Z, Y, X)
    wavelength_um : emission wavelength in µm.
    na : numerical aperture; must be below the immersion index ``ni``.
    pixel_size_um : lateral pixel size in the sample plane, µm.
    z_step_um : axial step for 3D PSFs, µm (required when ``shape`` has three sizes).
    ni, ns : refractive indices of immersion medium and sample.
    model : one of ``born_wolf``, ``gibson_lanni``, ``vectorial``.
    """
    shape = _as_shape(shape)
    if model not in WIDEFIELD_MODELS:
        raise ValueError(f"model must be one of {WIDEFIELD_MODELS}, got {model!r}.")
    if not (0 < na < ni):
        raise ValueError(f"The numerical aperture must lie between 0 and the immersion index ni={ni}; got NA={na}.")
    if wavelength_um <= 0 or pixel_size_um <= 0:
        raise ValueError("Wavelength and pixel size must be positive (in µm).")
    if len(shape) == 3 and not (z_step_um and z_step_um > 0):
        raise ValueError("A 3D widefield PSF needs a positive z_step_um.")
    if model == "born_wolf":
        h = _born_wolf(shape, wavelength_um, na, pixel_size_um, z_step_um, ni)
    else:
        import psfmodels

        nz = shape[0] if len(shape) == 3 else 1
        n_lat = max(shape[-2:]) | 1  # psfmodels makes square, odd-sized planes
        z = (np.arange(nz) - (nz - 1) / 2) * (z_step_um or 0.0)
        h = psfmodels.make_psf(
            z, n_lat, dxy=pixel_size_um, NA=na, wvl=wavelength_um, ni=ni, ni0=ni, ns=ns,
            model="scalar" if model == "gibson_lanni" else "vectorial",
        )
        cy, cx = (n_lat - shape[-2]) // 2, (n_lat - shape[-1]) // 2
        h = h[:, cy : cy + shape[-2], cx : cx + shape[-1]]
        if len(shape) == 2:
            h = h[0]
    h = np.clip(h, 0, None)
    return (h / h.sum()).astype(np.float32)


def centre_of_mass_shift(img: np.ndarray) -> np.ndarray:
    """Shift (per axis) that moves the intensity centroid of ``img`` to its central pixel."""
    com = np.asarray(ndi.center_of_mass(np.clip(img, 0, None)))
    centre = (np.asarray(img.shape) - 1) / 2
    return centre - com


def from_bead(image, shape: Sequence[int] | None = None, background: float | None = None) -> np.ndarray:
    """A measured PSF from an image of one sub-resolution bead: background-subtracted, centred, normalised.

    ``background`` defaults to the median of the image's outer border. The bead's centroid is moved to
    the central pixel with a sub-pixel Fourier shift, the result is cropped to ``shape`` (default: the
    image's shape, made odd) and normalised to sum 1.
    """
    img = np.asarray(image, dtype=np.float64)
    if img.ndim not in (2, 3) or img.size == 0:
        raise ValueError(f"A bead image must be 2D or 3D and non-empty, got shape {img.shape}.")
    if np.iscomplexobj(img) or not np.isfinite(img).all():
        raise ValueError("A bead image must be real and finite.")
    if background is None:
        border = np.concatenate([np.moveaxis(img, ax, 0)[[0, -1]].ravel() for ax in range(img.ndim)])
        background = float(np.median(border))
    img = np.clip(img - background, 0, None)
    if img.sum() <= 0:
        raise ValueError("After background subtraction the bead image is empty; is there a bead in it?")
    img = np.real(np.fft.ifftn(ndi.fourier_shift(np.fft.fftn(img), centre_of_mass_shift(img))))
    img = np.clip(img, 0, None)
    target = tuple(int(s) for s in (shape if shape is not None else [n - (1 - n % 2) for n in img.shape]))
    if len(target) != img.ndim or any(t > n for t, n in zip(target, img.shape)):
        raise ValueError(f"Cannot crop a bead image of shape {img.shape} to {target}.")
    starts = [(n - 1) // 2 - (t - 1) // 2 for n, t in zip(img.shape, target)]
    img = img[tuple(slice(s, s + t) for s, t in zip(starts, target))]
    return (img / img.sum()).astype(np.float32)
