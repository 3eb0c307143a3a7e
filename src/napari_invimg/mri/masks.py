"""k-space sampling patterns: Cartesian masks and radial trajectories.

Cartesian 2D masks sample phase-encoding lines along the last axis (columns, each measured along the
whole readout axis Y), as fastMRI does; 3D masks (Z, Y, X) repeat the 2D pattern of the last two axes
along Z (the readout). ``acceleration`` R means 1/R of the grid is measured.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

__all__ = ["mask", "MASK_KINDS", "radial_trajectory", "default_center_fraction", "acceleration_of"]

MASK_KINDS = ("equispaced", "random", "poisson", "radial")

GOLDEN_ANGLE = math.pi * (math.sqrt(5) - 1) / 2  # 111.25°, the golden angle of radial MRI (Winkelmann et al. 2007)


def default_center_fraction(acceleration: float) -> float:
    """fastMRI's fully sampled center: 0.08 of the lines at 4×, 0.04 at 8× (i.e. 0.32 / R)."""
    return min(0.32 / float(acceleration), 1.0)


def acceleration_of(m) -> float:
    """Grid size over measured samples."""
    m = np.asarray(m)
    return float(m.size / max(int((m > 0).sum()), 1))


def _center_lines(n: int, fraction: float) -> np.ndarray:
    low = max(int(round(n * fraction)), 1)
    start = (n - low + 1) // 2
    sel = np.zeros(n, bool)
    sel[start:start + low] = True
    return sel


def _lines(kind: str, n: int, acceleration: float, center_fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Which of ``n`` phase-encoding lines are sampled (fastMRI's equispaced / random conventions)."""
    center = _center_lines(n, center_fraction)
    target = max(int(round(n / acceleration)), int(center.sum()))
    extra = target - int(center.sum())
    if extra <= 0:
        return center
    outside = np.flatnonzero(~center)
    if kind == "random":
        pick = rng.choice(outside, size=min(extra, outside.size), replace=False)
    else:  # equispaced outside the center, random offset
        step = n / float(extra + center.sum())
        grid = (rng.uniform(0, step) + step * np.arange(int(math.ceil(n / step)) + 1)) % n
        cand = np.unique(np.round(grid).astype(int) % n)
        cand = cand[~center[cand]]
        if cand.size >= extra:
            pick = cand[np.round(np.linspace(0, cand.size - 1, extra)).astype(int)]
        else:  # top up with the nearest free lines
            rest = np.setdiff1d(outside, cand)
            pick = np.concatenate([cand, rng.choice(rest, extra - cand.size, replace=False)])
    sel = center.copy()
    sel[pick] = True
    return sel


@lru_cache(maxsize=16)
def _disc(radius_tenths: int) -> np.ndarray:
    r = radius_tenths / 10.0
    R = int(math.ceil(r))
    yy, xx = np.mgrid[-R:R + 1, -R:R + 1]
    return (yy * yy + xx * xx) < r * r


def _poisson_once(shape: tuple[int, int], r0: float, center: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Greedy variable-density Poisson disc: visit grid points in random order, keep one when no kept
    point's exclusion disc covers it; the disc radius grows with |k| (r = r0 (1 + 3|k|/k_max))."""
    ny, nx = shape
    ky = (np.arange(ny) - ny // 2) / (ny / 2)
    kx = (np.arange(nx) - nx // 2) / (nx / 2)
    kr = np.sqrt(ky[:, None] ** 2 + kx[None, :] ** 2) / math.sqrt(2)
    radius = r0 * (1 + 3 * kr)
    R = int(math.ceil(radius.max())) + 1
    blocked = np.zeros((ny + 2 * R, nx + 2 * R), bool)
    out = center.copy()
    order = rng.permutation(ny * nx)
    for idx in order:
        i, j = divmod(int(idx), nx)
        if blocked[i + R, j + R] or out[i, j]:
            continue
        out[i, j] = True
        d = _disc(int(round(radius[i, j] * 10)))
        h = d.shape[0] // 2
        blocked[i + R - h:i + R + h + 1, j + R - h:j + R + h + 1] |= d
    return out


def _poisson(shape: tuple[int, int], acceleration: float, center_fraction: float, seed: int) -> np.ndarray:
    ny, nx = shape
    center = np.outer(_center_lines(ny, center_fraction), _center_lines(nx, center_fraction))
    target = ny * nx / acceleration
    r0 = max(math.sqrt(acceleration) * 0.5, 0.5)
    best = None
    for _ in range(6):  # the count scales about as 1/r0²: a few secant steps reach the target
        m = _poisson_once(shape, r0, center, np.random.default_rng(seed))
        n = m.sum()
        if best is None or abs(n - target) < abs(best.sum() - target):
            best = m
        if abs(n - target) <= 0.02 * target:
            break
        r0 *= math.sqrt(n / target) ** 0.9
    return best


def radial_trajectory(n_spokes: int, n_readout: int, golden: bool = True, ndim: int = 2) -> np.ndarray:
    """Radial spokes through the k-space center, (n_spokes · n_readout, 2) in radians per pixel in [-π, π).

    Spoke ``s`` has angle ``s · 111.25°`` (golden angle; Winkelmann et al., IEEE TMI 26 (2007) 68) or
    ``s · π / n_spokes``; columns are (ky, kx).
    """
    if ndim != 2:
        raise ValueError("Radial trajectories are 2D here; use a stack of 2D slices for 3D.")
    if n_spokes < 1 or n_readout < 2:
        raise ValueError("A radial trajectory needs at least one spoke and two samples per spoke.")
    angles = np.arange(n_spokes) * (GOLDEN_ANGLE if golden else math.pi / n_spokes)
    r = (np.arange(n_readout) - n_readout / 2) * (2 * math.pi / n_readout)
    ky = np.sin(angles)[:, None] * r[None, :]
    kx = np.cos(angles)[:, None] * r[None, :]
    return np.stack([ky.ravel(), kx.ravel()], axis=1).astype(np.float64)


def _radial_mask(shape: tuple[int, int], acceleration: float) -> np.ndarray:
    ny, nx = shape
    n_read = 2 * max(ny, nx)
    spokes = max(int(round(max(ny, nx) * math.pi / 2 / acceleration)), 1)
    m = np.zeros(shape, bool)
    for _ in range(4):
        traj = radial_trajectory(spokes, n_read)
        iy = np.clip(np.round(traj[:, 0] / (2 * math.pi) * ny + ny // 2).astype(int), 0, ny - 1)
        ix = np.clip(np.round(traj[:, 1] / (2 * math.pi) * nx + nx // 2).astype(int), 0, nx - 1)
        m = np.zeros(shape, bool)
        m[iy, ix] = True
        got = acceleration_of(m)
        if abs(got - acceleration) <= 0.03 * acceleration:
            break
        spokes = max(int(round(spokes * got / acceleration)), 1)
    return m


def mask(kind: str, shape: tuple[int, ...], acceleration: float = 4.0, center_fraction: float | None = None,
         seed: int = 0) -> np.ndarray:
    """A boolean k-space sampling mask of ``shape`` (True = measured).

    ``"equispaced"``: fully sampled center lines plus equispaced lines (fastMRI's EquispacedMaskFunc
    convention; Zbontar et al., arXiv:1811.08839). ``"random"``: center lines plus uniformly random
    lines (fastMRI's RandomMaskFunc). ``"poisson"``: 2D variable-density Poisson disc with a fully
    sampled square center (Lustig et al., MRM 58 (2007) 1182). ``"radial"``: golden-angle spokes
    rasterized to the grid. ``center_fraction`` defaults to fastMRI's 0.32 / R (0.08 at 4×, 0.04 at 8×).
    """
    shape = tuple(int(s) for s in shape)
    if kind not in MASK_KINDS:
        raise ValueError(f"Unknown mask kind {kind!r}; choose one of {', '.join(MASK_KINDS)}.")
    if len(shape) not in (2, 3) or min(shape) < 2:
        raise ValueError(f"A mask shape must be 2D (Y, X) or 3D (Z, Y, X) with at least 2 pixels per axis, got {shape}.")
    if not (np.isfinite(acceleration) and acceleration >= 1):
        raise ValueError(f"The acceleration must be a number ≥ 1, got {acceleration}.")
    cf = default_center_fraction(acceleration) if center_fraction is None else float(center_fraction)
    if not 0 <= cf <= 1:
        raise ValueError(f"The center fraction must lie in [0, 1], got {cf}.")
    if cf * acceleration > 1 + 1e-9 and kind in ("equispaced", "random"):
        raise ValueError(f"A center fraction of {cf} alone samples more than 1/{acceleration:g} of the lines.")
    plane = shape[-2:]
    rng = np.random.default_rng(seed)
    if kind in ("equispaced", "random"):
        m2 = np.broadcast_to(_lines(kind, plane[1], acceleration, cf, rng)[None, :], plane).copy()
    elif kind == "poisson":
        m2 = _poisson(plane, float(acceleration), cf, seed)
    else:
        m2 = _radial_mask(plane, float(acceleration))
    return np.broadcast_to(m2, shape).copy()
