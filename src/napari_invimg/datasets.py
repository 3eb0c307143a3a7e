"""Test images made offline and deterministically: synthetic fluorescence (2D/3D) and scikit-image's bundled images.

Nothing here downloads: ``cell`` and ``camera`` are shipped inside scikit-image.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.ndimage as ndi

__all__ = ["fluorescence", "beads", "cell", "camera", "natural_images"]


def _splat(img: np.ndarray, pts: np.ndarray, weights: np.ndarray) -> None:
    """Add ``weights`` at sub-pixel positions ``pts`` (N, d) with linear interpolation."""
    d = img.ndim
    base = np.floor(pts).astype(int)
    frac = pts - base
    for corner in range(2**d):
        offs = np.array([(corner >> i) & 1 for i in range(d)])
        w = weights * np.prod(np.where(offs, frac, 1 - frac), axis=1)
        idx = base + offs
        ok = np.all((idx >= 0) & (idx < np.array(img.shape)), axis=1)
        np.add.at(img, tuple(idx[ok].T), w[ok])


def _logistic(t: np.ndarray) -> np.ndarray:
    """``1 / (1 + exp(−t))`` without overflow warnings."""
    return 0.5 * (1 + np.tanh(0.5 * t))


def fluorescence(shape: Sequence[int] = (256, 256), seed: int = 0, filaments: int | None = None,
                 vesicles: int | None = None, nuclei: int | None = None) -> np.ndarray:
    """A synthetic fluorescence image in [0, 1]: filaments (thin smooth curves), vesicles (small blobs)
    and nuclei (large textured ellipsoids) on a dim background. 2D (Y, X) or 3D (Z, Y, X).

    The same ``shape`` and ``seed`` always give the same image.
    """
    shape = tuple(int(s) for s in shape)
    if len(shape) not in (2, 3) or min(shape) < 8:
        raise ValueError("fluorescence() makes 2D or 3D images of at least 8 pixels per side.")
    rng = np.random.default_rng(seed)
    d = len(shape)
    area = float(np.prod(shape[-2:])) / 256**2
    n_fil = filaments if filaments is not None else max(3, int(round(14 * area)))
    n_ves = vesicles if vesicles is not None else max(5, int(round(60 * area)))
    n_nuc = nuclei if nuclei is not None else max(1, int(round(3 * area)))
    size = np.array(shape, dtype=float)

    img = np.zeros(shape)
    # nuclei: smooth ellipsoids with a granular texture
    grids = np.meshgrid(*[np.arange(n, dtype=float) for n in shape], indexing="ij")
    texture = ndi.gaussian_filter(rng.standard_normal(shape), 2.0)
    texture = (texture - texture.min()) / (np.ptp(texture) + 1e-12)
    for _ in range(n_nuc):
        c = rng.uniform(0.2, 0.8, d) * size
        radii = rng.uniform(0.08, 0.16, d) * size[-1]
        if d == 3:
            radii[0] = min(radii[0], 0.35 * size[0])
        r2 = sum(((g - ci) / ri) ** 2 for g, ci, ri in zip(grids, c, radii))
        img += 0.35 * _logistic(12 * (1 - r2)) * (0.6 + 0.4 * texture)
    # filaments: random smooth curves, a few pixels wide after blurring
    line = np.zeros(shape)
    for _ in range(n_fil):
        p = rng.uniform(0, 1, d) * size
        direction = rng.standard_normal(d)
        if d == 3:
            direction[0] *= 0.3
        direction /= np.linalg.norm(direction)
        steps = int(1.5 * size[-1] / 0.5)
        pts = np.empty((steps, d))
        for i in range(steps):
            turn = rng.standard_normal(d) * 0.04
            if d == 3:
                turn[0] *= 0.3
            direction = direction + turn
            direction /= np.linalg.norm(direction)
            p = p + 0.5 * direction
            pts[i] = p
        _splat(line, pts, np.full(steps, rng.uniform(0.6, 1.0)))
    img += ndi.gaussian_filter(line, 0.7) * 1.3
    # vesicles: small bright blobs
    spots = np.zeros(shape)
    _splat(spots, rng.uniform(0, 1, (n_ves, d)) * (size - 1), rng.uniform(0.5, 1.0, n_ves))
    img += ndi.gaussian_filter(spots, 1.2) * 2 * np.pi * 1.2**2 * 0.7
    img += 0.02  # dim autofluorescence background
    img = img / img.max()
    return img.astype(np.float32)


def beads(shape: Sequence[int], psf: np.ndarray, n: int = 30, box: Sequence[int] | None = None,
          photons: float = 2e4, background: float = 10.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """An image of ``n`` isolated sub-resolution beads at random sub-pixel positions, with Poisson noise.

    Each bead is ``psf`` Fourier-shifted to its position, cropped to ``box`` (default: ``psf.shape``) and
    scaled to about ``photons`` (±30 %), on a flat ``background``; beads lie at least ``max(box)`` apart and
    away from the border. Returns the counts and the bead centers (n, ndim). For testing a PSF workbench.
    """
    psf = np.asarray(psf, dtype=np.float64)
    box = tuple(psf.shape) if box is None else tuple(int(b) for b in box)
    if len(shape) != psf.ndim or len(box) != psf.ndim:
        raise ValueError("shape, psf and box must have the same number of dimensions.")
    rng = np.random.default_rng(seed)
    img = np.zeros(tuple(shape))
    low = [b // 2 + 2 for b in box]
    high = [s - b // 2 - 3 for s, b in zip(shape, box)]
    pos: list[np.ndarray] = []
    for _ in range(1000 * n):
        if len(pos) == n:
            break
        p = rng.uniform(low, high)
        if all(np.linalg.norm(p - q) > max(box) for q in pos):
            pos.append(p)
    if len(pos) < n:
        raise ValueError(f"Cannot place {n} isolated beads of size {box} in an image of shape {tuple(shape)}.")
    crop = tuple(slice((B - b) // 2, (B - b) // 2 + b) for B, b in zip(psf.shape, box))
    spectrum = np.fft.fftn(psf)
    for p in pos:
        ip = np.round(p).astype(int)
        shifted = np.real(np.fft.ifftn(ndi.fourier_shift(spectrum, p - ip)))[crop]
        img[tuple(slice(c - b // 2, c - b // 2 + b) for c, b in zip(ip, box))] += \
            photons * rng.uniform(0.7, 1.3) * np.clip(shifted, 0, None)
    return rng.poisson(img + background).astype(np.float32), np.array(pos)


def _rescale(a: np.ndarray) -> np.ndarray:
    a = a.astype(np.float32)
    return (a - a.min()) / (a.max() - a.min())


def cell() -> np.ndarray:
    """scikit-image's bundled ``cell`` (a fluorescence micrograph), rescaled to [0, 1]."""
    from skimage import data

    return _rescale(data.cell())


def camera() -> np.ndarray:
    """scikit-image's bundled ``camera``, rescaled to [0, 1]."""
    from skimage import data

    return _rescale(data.camera())


def natural_images() -> list[np.ndarray]:
    """Gray-level natural images bundled with scikit-image, each in [0, 1] (for training denoisers)."""
    from skimage import color, data

    out = [camera(), cell(), _rescale(data.moon()), _rescale(data.coins()), _rescale(data.text()),
           _rescale(data.brick()), _rescale(data.grass()), _rescale(data.gravel())]
    for rgb in (data.astronaut(), data.coffee(), data.chelsea(), data.rocket()):
        out.append(_rescale(color.rgb2gray(rgb)))
    return out
