"""The denoiser's training corpus, made offline, and the written list of images it never sees.

* :func:`dead_leaves` — occlusion model of Lee, Mumford & Huang (2001): leaves (disks, ellipses,
  rectangles) of power-law radii ``p(r) ∝ r^−3`` painted front to back, each with its own texture (1/f^β noise or a
  grating), then blurred; denoisers trained on such images come close to those trained on photographs
  (Achddou, Gousseau & Ladjal, J. Math. Imaging Vis. 2021; Baradad et al., NeurIPS 2021).
* :func:`cells` — smooth cell-like images: soft-edged ellipses with textured cytoplasm, brighter
  rims (membranes), nuclei and puncta on a dim smooth background.
* ``datasets.fluorescence`` images (seeds ``FLUORESCENCE_SEEDS``) and scikit-image's bundled images
  except the held-out ones (:data:`HELDOUT_NATURAL`).

Held out (never used for training; :func:`heldout_images`): scikit-image's ``camera``, ``moon``,
``coins``, ``immunohistochemistry`` (grey), ``hubble_deep_field`` (grey), ``datasets.fluorescence`` seeds
0–7, :func:`dead_leaves` and :func:`cells` seeds ≥ ``HELDOUT_SEED``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

__all__ = ["HELDOUT_NATURAL", "HELDOUT_SEED", "TRAINING_NATURAL", "bundled_image", "cells", "dead_leaves",
           "heldout_images", "training_images"]

#: scikit-image images the training never sees (evaluation only)
HELDOUT_NATURAL = ("camera", "moon", "coins", "immunohistochemistry", "hubble_deep_field")
#: scikit-image images (bundled, no download) used for training
TRAINING_NATURAL = ("astronaut", "brick", "grass", "gravel", "text", "coffee", "chelsea", "rocket", "cell", "clock",
                    "horse", "page", "retina", "microaneurysms", "colorwheel", "logo")
#: procedural images with a seed at or above this are never used for training
HELDOUT_SEED = 1_000_000


def bundled_image(name: str) -> np.ndarray:
    """A bundled scikit-image image as float32 grey levels in [0, 1]."""
    from skimage import color, data

    a = getattr(data, name)()
    if a.ndim == 3:
        a = a[..., :3] if a.shape[-1] == 4 else a
        a = color.rgb2gray(a)
    a = np.asarray(a, dtype=np.float64)
    lo, hi = float(a.min()), float(a.max())
    return ((a - lo) / (hi - lo if hi > lo else 1.0)).astype(np.float32)


def _power_law_noise(shape: tuple[int, int], beta: float, rng: np.random.Generator) -> np.ndarray:
    """Gaussian noise with spectrum ``|k|^−β``, scaled to zero mean and unit standard deviation."""
    ky = np.fft.fftfreq(shape[0])[:, None]
    kx = np.fft.rfftfreq(shape[1])[None, :]
    k = np.sqrt(ky * ky + kx * kx)
    k[0, 0] = 1.0
    spectrum = (rng.standard_normal(k.shape) + 1j * rng.standard_normal(k.shape)) * k ** (-beta / 2)
    spectrum[0, 0] = 0
    out = np.fft.irfft2(spectrum, s=shape)
    return (out / max(float(out.std()), 1e-12)).astype(np.float32)


def _texture(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A zero-mean texture of unit scale: 1/f^β noise (β in [1, 3]) or an oriented grating."""
    if rng.random() < 0.7:
        return _power_law_noise(shape, rng.uniform(1.0, 3.0), rng)
    yy, xx = np.mgrid[: shape[0], : shape[1]].astype(np.float32)
    theta, period = rng.uniform(0, np.pi), rng.uniform(3, 24)
    wave = np.sin(2 * np.pi * (np.cos(theta) * xx + np.sin(theta) * yy) / period + rng.uniform(0, 2 * np.pi))
    return (np.sign(wave) if rng.random() < 0.3 else wave).astype(np.float32)


def dead_leaves(shape: Sequence[int] = (256, 256), seed: int = 0, rmin: float = 1.5, rmax: float | None = None,
                max_leaves: int = 4000) -> np.ndarray:
    """A textured dead-leaves image in [0, 1] (see the module docstring). Same ``shape`` and ``seed``, same image."""
    h, w = (int(s) for s in shape)
    rng = np.random.default_rng(seed)
    rmax = float(rmax if rmax is not None else rng.uniform(0.15, 0.6) * max(h, w))
    textures = [_texture((h, w), rng) for _ in range(3)]
    img = np.zeros((h, w), np.float32)
    free = np.ones((h, w), bool)
    a = 1 - 3.0  # inverse CDF of r^−3 on [rmin, rmax]
    base = rng.beta(0.8, 0.8, size=max_leaves).astype(np.float32)  # leaf grey levels
    textured = rng.random() < 0.8
    for i in range(max_leaves):
        r = (rmin**a + rng.random() * (rmax**a - rmin**a)) ** (1 / a)
        cy, cx = rng.uniform(-r, h + r), rng.uniform(-r, w + r)
        kind = rng.random()
        ext = int(np.ceil(r * (1.6 if kind > 0.4 else 1.0))) + 1
        y0, y1 = max(0, int(cy) - ext), min(h, int(cy) + ext + 1)
        x0, x1 = max(0, int(cx) - ext), min(w, int(cx) + ext + 1)
        if y0 >= y1 or x0 >= x1:
            continue
        yy, xx = np.mgrid[y0:y1, x0:x1]
        dy, dx = yy - cy, xx - cx
        if kind < 0.4:  # disk
            inside = dy * dy + dx * dx <= r * r
        else:
            t = rng.uniform(0, np.pi)
            u, v = np.cos(t) * dx + np.sin(t) * dy, -np.sin(t) * dx + np.cos(t) * dy
            ratio = rng.uniform(0.3, 1.0)
            if kind < 0.75:  # ellipse
                inside = (u / r) ** 2 + (v / (ratio * r)) ** 2 <= 1
            else:  # rectangle
                inside = (np.abs(u) <= r) & (np.abs(v) <= ratio * r)
        paint = inside & free[y0:y1, x0:x1]
        if not paint.any():
            continue
        value = np.full(paint.shape, base[i], np.float32)
        if textured and rng.random() < 0.7:
            tex = textures[int(rng.integers(len(textures)))][y0:y1, x0:x1]
            value = value + rng.uniform(0.02, 0.25) * tex
        img[y0:y1, x0:x1][paint] = value[paint]
        free[y0:y1, x0:x1] &= ~inside
        if i % 64 == 0 and free.mean() < 0.002:
            break
    if free.any():
        img[free] = float(rng.random())
    blur = rng.choice([0.0, 0.0, 0.5, 1.0, 2.0])
    if blur:
        img = ndimage.gaussian_filter(img, blur)
    return _intensity_range(img, rng)


def _intensity_range(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Rescale to [0, 1], then a random gamma and a random sub-range ``[lo, hi]`` of [0, 1] (contrasts and levels)."""
    lo, hi = float(img.min()), float(img.max())
    img = (img - lo) / (hi - lo if hi > lo else 1.0)
    img = img ** rng.uniform(0.5, 2.0)
    span = rng.uniform(0.2, 1.0)
    offset = rng.uniform(0, 1 - span)
    return (offset + span * img).astype(np.float32)


def cells(shape: Sequence[int] = (256, 256), seed: int = 0) -> np.ndarray:
    """Smooth cell-like image in [0, 1]: textured soft ellipses with rims, nuclei and puncta on a dim background."""
    h, w = (int(s) for s in shape)
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:h, :w].astype(np.float32)
    img = 0.05 * (1 + 0.5 * _power_law_noise((h, w), 3.0, rng)).clip(0, None)
    tex = _power_law_noise((h, w), rng.uniform(1.5, 3.0), rng)
    n = int(rng.integers(3, 25))
    for _ in range(n):
        r = rng.uniform(0.04, 0.2) * min(h, w)
        cy, cx, t, ratio = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(0, np.pi), rng.uniform(0.5, 1.0)
        u = np.cos(t) * (xx - cx) + np.sin(t) * (yy - cy)
        v = -np.sin(t) * (xx - cx) + np.cos(t) * (yy - cy)
        d = np.sqrt((u / r) ** 2 + (v / (ratio * r)) ** 2)  # 1 on the boundary
        edge = rng.uniform(0.02, 0.15)
        body = 0.5 * (1 + np.tanh((1 - d) / edge))
        level = rng.uniform(0.1, 0.6)
        img += level * body * (1 + rng.uniform(0, 0.4) * tex)
        if rng.random() < 0.5:  # membrane
            img += rng.uniform(0.2, 0.8) * np.exp(-(((d - 1) / rng.uniform(0.02, 0.08)) ** 2))
        if rng.random() < 0.6:  # nucleus
            dn = np.sqrt((u / (0.4 * r)) ** 2 + (v / (0.4 * ratio * r)) ** 2)
            img += rng.uniform(0.1, 0.8) * 0.5 * (1 + np.tanh((1 - dn) / 0.1))
    m = int(rng.integers(0, 200)) if rng.random() < 0.6 else 0
    if m:
        pts = np.zeros((h, w), np.float32)
        pts[rng.integers(0, h, m), rng.integers(0, w, m)] = rng.uniform(0.5, 3.0, m)
        img += ndimage.gaussian_filter(pts, rng.uniform(0.7, 2.0)) * 5
    img = ndimage.gaussian_filter(img, rng.uniform(0.0, 1.5))
    return _intensity_range(img, rng)


def training_images(procedural: int = 256, fluorescence: int = 64, shape: tuple[int, int] = (256, 256),
                    seed: int = 0) -> dict[str, list[np.ndarray]]:
    """The training corpus by source: ``dead_leaves`` and ``cells`` (``procedural`` images, three quarters dead
    leaves, seeds from ``seed·10⁵``), ``fluorescence`` (``datasets.fluorescence`` seeds 1000+) and ``natural``
    (:data:`TRAINING_NATURAL`). Never touches the held-out list."""
    from ..datasets import fluorescence as fluo

    base = int(seed) * 100_000
    if base + procedural >= HELDOUT_SEED:
        raise ValueError("The training seeds would reach the held-out procedural seeds.")
    n_leaves = (3 * procedural) // 4
    return {
        "dead_leaves": [dead_leaves(shape, seed=base + i) for i in range(n_leaves)],
        "cells": [cells(shape, seed=base + i) for i in range(n_leaves, procedural)],
        "fluorescence": [fluo(shape, seed=1000 + i) for i in range(fluorescence)],
        "natural": [bundled_image(name) for name in TRAINING_NATURAL],
    }


def heldout_images(size: int | None = 128) -> dict[str, np.ndarray]:
    """The held-out evaluation images (never trained on), center-cropped to ``size``² (``None``: whole)."""
    from ..datasets import fluorescence as fluo

    out = {name: bundled_image(name) for name in HELDOUT_NATURAL}
    out.update({f"fluorescence-{s}": fluo((256, 256), seed=s) for s in (0, 1)})
    out["dead_leaves-heldout"] = dead_leaves((256, 256), seed=HELDOUT_SEED)
    out["cells-heldout"] = cells((256, 256), seed=HELDOUT_SEED)
    if size is None:
        return out
    cropped = {}
    for name, im in out.items():
        r, c = max(0, (im.shape[0] - size) // 2), max(0, (im.shape[1] - size) // 2)
        cropped[name] = np.ascontiguousarray(im[r:r + size, c:c + size])
    return cropped
