"""Coil sensitivities: simulated (birdcage), estimated (ESPIRiT), and coil combination (RSS, SENSE)."""

from __future__ import annotations

import math

import numpy as np
import torch

from .operators import ifft_centered

__all__ = ["birdcage", "espirit", "rss", "sense_combine", "calibration_region", "map_correlation"]


def birdcage(n_coils: int, shape: tuple[int, ...], radius: float = 1.5, normalize: bool = True) -> np.ndarray:
    """Simulated sensitivities of ``n_coils`` loops evenly spaced on a circle around the field of view.

    Coil ``c`` at angle ``θ_c`` and distance ``radius`` (field of view = [-1, 1]²) sees
    ``S_c(r) = e^{iθ_c} d_c* / (|d_c| (|d_c| + 0.1))`` with ``d_c`` the complex offset ``(x − x_c) + i(y − y_c)``, a
    Biot–Savart-like 1/distance fall-off with a phase that turns around the coil. With ``normalize``
    the maps satisfy ``Σ_c |S_c|² = 1`` (the SENSE-combined image is then the object). 3D shapes
    repeat the 2D maps along Z.
    """
    shape = tuple(int(s) for s in shape)
    if n_coils < 1:
        raise ValueError("The number of coils must be at least 1.")
    if len(shape) not in (2, 3):
        raise ValueError(f"Coil maps are made for 2D (Y, X) or 3D (Z, Y, X) images, got shape {shape}.")
    ny, nx = shape[-2:]
    y = (np.arange(ny) - ny // 2) / (ny / 2)
    x = (np.arange(nx) - nx // 2) / (nx / 2)
    yy, xx = np.meshgrid(y, x, indexing="ij")
    maps = np.empty((n_coils, ny, nx), np.complex128)
    for c in range(n_coils):
        theta = 2 * math.pi * c / n_coils
        cy, cx = radius * math.sin(theta), radius * math.cos(theta)
        d = (xx - cx) + 1j * (yy - cy)
        maps[c] = np.exp(1j * theta) * np.conj(d) / (np.abs(d) * (np.abs(d) + 0.1))
    if normalize:
        maps /= np.sqrt((np.abs(maps) ** 2).sum(0, keepdims=True))
    if len(shape) == 3:
        maps = np.broadcast_to(maps[:, None], (n_coils,) + shape).copy()
    return maps.astype(np.complex64)


def rss(coil_images, axis: int = 0):
    """Root-sum-of-squares coil combination ``sqrt(Σ_c |x_c|²)`` (Roemer et al., MRM 16 (1990) 192)."""
    if isinstance(coil_images, torch.Tensor):
        return torch.sqrt((coil_images.abs() ** 2).sum(dim=axis))
    return np.sqrt((np.abs(np.asarray(coil_images)) ** 2).sum(axis=axis))


def sense_combine(coil_images, coil_maps, axis: int = 0):
    """Optimal (SENSE, fully sampled) combination ``Σ_c S_c* x_c / Σ_c |S_c|²`` (Roemer et al. 1990)."""
    x, s = np.asarray(coil_images), np.asarray(coil_maps)
    if x.shape != s.shape:
        raise ValueError(f"Coil images {x.shape} and coil maps {s.shape} must have the same shape.")
    den = (np.abs(s) ** 2).sum(axis=axis)
    return (np.conj(s) * x).sum(axis=axis) / np.where(den > 0, den, 1)


def calibration_region(kspace: np.ndarray, max_readout: int = 64) -> tuple[int, int]:
    """Size (ny, nx) of the fully sampled rectangle at the center of 2D multi-coil k-space (C, Y, X).

    Grows a rectangle from the center while every sample in it is non-zero in every coil; the
    readout direction (a whole column measured) is capped at ``max_readout``.
    """
    k = np.asarray(kspace)
    sampled = np.all(k != 0, axis=0)
    ny, nx = sampled.shape
    cy, cx = ny // 2, nx // 2
    if not sampled[cy, cx]:
        raise ValueError("The k-space center is not sampled; ESPIRiT needs a fully sampled calibration region.")

    def run(line: np.ndarray, center: int) -> tuple[int, int]:
        lo, hi = center, center + 1
        while lo > 0 and line[lo - 1]:
            lo -= 1
        while hi < line.size and line[hi]:
            hi += 1
        return lo, hi

    def centered(lo: int, hi: int, center: int) -> int:
        """The largest width w with [center − w//2, center − w//2 + w) inside [lo, hi)."""
        w = hi - lo
        while w > 1 and not (center - w // 2 >= lo and center - w // 2 + w <= hi):
            w -= 1
        return w

    xa, xb = run(sampled[cy], cx)
    best = (0, 1, 1)
    for wx in range(centered(xa, xb, cx), 0, -1):  # the centered rectangle of largest area (lines: full readout)
        x0 = cx - wx // 2
        ya, yb = run(sampled[:, x0:x0 + wx].all(axis=1), cy)
        wy = min(centered(ya, yb, cy), max_readout)
        if wy * wx > best[0]:
            best = (wy * wx, wy, wx)
    return best[1], best[2]


def _patches(calib: np.ndarray, kernel: tuple[int, int]) -> np.ndarray:
    """Calibration (Hankel-structured) matrix: every kernel-sized block of all coils as one row."""
    win = np.lib.stride_tricks.sliding_window_view(calib, kernel, axis=(1, 2))  # (C, py, px, ky, kx)
    c, py, px, ky, kx = win.shape
    return win.transpose(1, 2, 0, 3, 4).reshape(py * px, c * ky * kx)


def espirit(kspace, calib: tuple[int, int] | None = None, kernel: int = 6, threshold: float = 0.02,
            crop: float = 0.8, grid: int = 48, max_readout: int = 64,
            power_iterations: int = 20) -> np.ndarray:
    """Coil maps (C, Y, X) from the fully sampled center of 2D multi-coil k-space (C, Y, X), by ESPIRiT.

    Uecker et al., MRM 71 (2014) 990: the calibration matrix of all ``kernel``×``kernel`` blocks of the
    center → its right singular vectors above ``threshold`` × the largest singular value (the signal
    subspace) → their images ``ĝ_j(r)`` → at every pixel the eigenvector of ``Σ_j ĝ_j ĝ_jᴴ`` whose
    eigenvalue is ≈ 1 is the coil sensitivity vector; pixels with eigenvalue below ``crop`` (outside the
    object) get zero. The eigen-decomposition is done on a ``grid``² image (the maps are smooth) and
    interpolated bicubically to full resolution; the phase is taken relative to the principal virtual
    coil of the calibration data, so the maps' phase is smooth. ``calib`` (ny, nx): the calibration
    rectangle (default: the largest fully sampled one, e.g. 10 center lines × ``max_readout`` readout
    samples); rectangular regions are fine.
    """
    k = np.asarray(kspace)
    if not np.iscomplexobj(k):
        raise ValueError("ESPIRiT needs complex k-space (coils, Y, X); got real data.")
    if k.ndim != 3:
        raise ValueError(f"ESPIRiT needs 2D multi-coil k-space of shape (coils, Y, X), got shape {k.shape}.")
    if not np.any(k):
        raise ValueError("The k-space is all zero.")
    if not np.isfinite(k).all():
        raise ValueError("The k-space contains NaN or infinite values; ESPIRiT needs finite calibration data.")
    nc, ny, nx = k.shape
    cy, cx = calibration_region(k, max_readout) if calib is None else (int(calib[0]), int(calib[1]))
    ky_, kx_ = min(kernel, cy), min(kernel, cx)
    if cy < 3 or cx < 3:
        raise ValueError(f"The calibration region {cy}×{cx} is too small for ESPIRiT; at least 3×3 is needed.")
    y0, x0 = ny // 2 - cy // 2, nx // 2 - cx // 2
    region = k[:, y0:y0 + cy, x0:x0 + cx].astype(np.complex128)
    A = _patches(region, (ky_, kx_))
    evals, evecs = np.linalg.eigh(A.conj().T @ A)  # ascending: squared singular values of A
    s = np.sqrt(np.clip(evals, 0, None))
    V = evecs[:, s >= threshold * s[-1]]  # (C·ky·kx, r): the signal subspace
    r = V.shape[1]
    gy, gx = min(max(grid, ky_ + 2), ny), min(max(grid, kx_ + 2), nx)
    padded = np.zeros((r, nc, gy, gx), np.complex128)
    oy, ox = gy // 2 - ky_ // 2, gx // 2 - kx_ // 2
    padded[:, :, oy:oy + ky_, ox:ox + kx_] = V.T.reshape(r, nc, ky_, kx_).conj()
    imgs = ifft_centered(torch.from_numpy(padded), 2).numpy() * math.sqrt(gy * gx / (ky_ * kx_))
    f = imgs.reshape(r, nc, gy * gx).transpose(2, 1, 0).astype(np.complex64)  # (pixels, C, r)
    M = np.einsum("pcj,pdj->pcd", f, f.conj(), optimize=True)
    # principal virtual coil of the calibration data: start of the power iterations and phase reference
    u = np.linalg.svd(region.reshape(nc, -1), full_matrices=False)[0][:, 0].astype(np.complex64)
    v = np.broadcast_to(u, (gy * gx, nc)).copy()
    for _ in range(power_iterations):  # the eigenvalue ≈ 1 is well separated from the rest
        v = np.einsum("pcd,pd->pc", M, v)
        v /= np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
    val = np.real(np.einsum("pc,pcd,pd->p", v.conj(), M, v))
    ref = v @ u.conj()
    v = v * np.exp(-1j * np.angle(ref))[:, None] * (val > crop)[:, None]
    maps_low = torch.from_numpy(v.T.reshape(nc, gy, gx).astype(np.complex64))
    return _upsample(maps_low, (ny, nx)).numpy()


def _upsample(maps: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """Bicubic interpolation of complex maps from a coarse centered grid to ``shape`` over the same field of view."""
    c, gy, gx = maps.shape
    ny, nx = shape
    if (gy, gx) == (ny, nx):
        return maps
    # full-grid pixel n sits at (n − N//2) · g/N + g//2 on the coarse grid (both centered on their N//2 pixel)
    py = (torch.arange(ny, dtype=torch.float64) - ny // 2) * gy / ny + gy // 2
    px = (torch.arange(nx, dtype=torch.float64) - nx // 2) * gx / nx + gx // 2
    uy, ux = 2 * py / (gy - 1) - 1, 2 * px / (gx - 1) - 1
    grid = torch.stack(torch.meshgrid(ux, uy, indexing="xy"), dim=-1)[None].float()  # (1, ny, nx, 2) as (x, y)
    parts = torch.cat([maps.real, maps.imag], dim=0)[None].float()
    out = torch.nn.functional.grid_sample(parts, grid, mode="bicubic", padding_mode="border", align_corners=True)[0]
    return torch.complex(out[:c], out[c:]).to(torch.complex64)


def map_correlation(estimated, true, weight=None) -> float:
    """Phase-invariant agreement of two sets of coil maps: the mean over pixels of
    ``|⟨s_est(r), s_true(r)⟩| / (‖s_est(r)‖ ‖s_true(r)‖)`` weighted by ``weight`` (e.g. the object magnitude).

    Coil maps are defined up to a smooth per-pixel phase (absorbed by the image), so this is the
    meaningful correlation; 1 means identical up to that phase.
    """
    a, b = np.asarray(estimated), np.asarray(true)
    if a.shape != b.shape:
        raise ValueError(f"Coil maps of shapes {a.shape} and {b.shape} cannot be compared.")
    num = np.abs((a * np.conj(b)).sum(0))
    den = np.sqrt((np.abs(a) ** 2).sum(0) * (np.abs(b) ** 2).sum(0))
    corr = np.where(den > 0, num / np.where(den > 0, den, 1), 0.0)
    w = np.ones(corr.shape) if weight is None else np.abs(np.asarray(weight))
    return float((corr * w).sum() / max(w.sum(), 1e-12))
