"""Image quality metrics against a ground truth."""

from __future__ import annotations

import numpy as np

__all__ = ["psnr", "ssim", "nxcorr", "data_range"]


def _pair(x_hat, x) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(x_hat), np.asarray(x)
    if a.shape != b.shape:
        raise ValueError(f"Cannot compare images of shapes {a.shape} and {b.shape}.")
    if np.iscomplexobj(a) or np.iscomplexobj(b):
        a, b = np.abs(a), np.abs(b)
    return a.astype(np.float64), b.astype(np.float64)


def data_range(x) -> float:
    x = np.abs(np.asarray(x)) if np.iscomplexobj(x) else np.asarray(x, dtype=np.float64)
    return float(x.max() - min(x.min(), 0.0))


def psnr(x_hat, x, data_range_: float | None = None) -> float:
    """Peak signal-to-noise ratio ``10 log10(R² / MSE)`` in dB, ``R`` the truth's range (from 0)."""
    a, b = _pair(x_hat, x)
    r = data_range(b) if data_range_ is None else data_range_
    mse = float(np.mean((a - b) ** 2))
    return float("inf") if mse == 0 else float(10 * np.log10(r * r / mse))


def ssim(x_hat, x, data_range_: float | None = None) -> float:
    """Structural similarity (Wang et al., IEEE TIP 13 (2004) 600), via scikit-image, 2D or 3D."""
    from skimage.metrics import structural_similarity

    a, b = _pair(x_hat, x)
    r = data_range(b) if data_range_ is None else data_range_
    win = min(7, *[s if s % 2 else s - 1 for s in b.shape])
    return float(structural_similarity(a, b, data_range=r, win_size=max(win, 3)))


def nxcorr(x_hat, x) -> float:
    """Normalized cross-correlation ``<a − ā, b − b̄> / (‖a − ā‖ ‖b − b̄‖)`` (1 = identical up to scale and offset)."""
    a, b = _pair(x_hat, x)
    a, b = a - a.mean(), b - b.mean()
    den = np.linalg.norm(a) * np.linalg.norm(b)
    return float((a * b).sum() / den) if den > 0 else 0.0
