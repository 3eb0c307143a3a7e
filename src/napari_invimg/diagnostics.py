"""Honesty about failure: data-consistency residuals, coverage and std–error agreement."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from scipy import stats

from ._device import to_tensor
from .operators.base import Operator
from .operators.noise import NoiseModel
from .uncertainty import Reconstruction, effective_sample_size, mixing_summary, split_rhat

__all__ = [
    "residual",
    "chi2",
    "coverage",
    "interval_halfwidth",
    "std_error_correlation",
    "error_map",
    "summary",
    "split_rhat",
    "effective_sample_size",
    "mixing_summary",
    "Calibration",
    "calibrate",
]


def residual(y, A: Operator, x_hat, noise: NoiseModel) -> np.ndarray:
    """Normalized data misfit ``(y − A x̂) / sqrt(Var[y | A x̂])``, shaped like ``y``; ≈ N(0, 1) when the
    reconstruction explains the data down to the noise (structure in it means it does not)."""
    with torch.no_grad():
        A.to("cpu")
        z = A.forward(to_tensor(x_hat))
        r = noise.normalized_residual(to_tensor(y).to(z.dtype), z)
    return r.numpy()


def chi2(y, A: Operator, x_hat, noise: NoiseModel) -> float:
    """Reduced chi-square ``mean(|r|²)`` of :func:`residual` (≈ 1 for a good fit; ≫ 1 underfit, ≪ 1 overfit)."""
    r = residual(y, A, x_hat, noise)
    v = np.mean(np.abs(r) ** 2)
    return float(v / 2 if np.iscomplexobj(r) else v)


def interval_halfwidth(rec: Reconstruction, level: float = 0.9) -> np.ndarray:
    """Half-width of the central ``level`` interval for the next draw of the posterior.

    With ``n`` samples the predictive interval ``mean ± t_{n−1} · sd · sqrt(1 + 1/n)`` has the nominal
    coverage for a Gaussian posterior, where the raw ``mean ± z · sd`` under-covers (16 draws: ~0.87 at
    90%). Without samples, or when the std does not come from them (``info["std_from"]``: MCMC's running
    moments over every state, VB's analytic q), the Gaussian quantile ``z`` is used.
    """
    if rec.std is None:
        raise ValueError("This reconstruction has no standard deviation; choose a method that returns one.")
    if not 0 < level < 1:
        raise ValueError("level must lie in (0, 1).")
    n = 0 if rec.samples is None else int(rec.samples.shape[0])
    from_samples = rec.info.get("std_from", "samples") == "samples"  # MCMC and VB compute it otherwise
    if n >= 2 and from_samples and "calibration" not in rec.info:
        q = stats.t.ppf(0.5 + level / 2, df=n - 1) * np.sqrt(1 + 1 / n)
    else:
        q = stats.norm.ppf(0.5 + level / 2)
    return q * rec.std


def coverage(rec: Reconstruction, x, level: float = 0.9) -> float:
    """Fraction of pixels whose truth ``x`` lies in the central ``level`` interval (see :func:`interval_halfwidth`)."""
    x = np.asarray(x)
    if x.shape != rec.mean.shape:
        raise ValueError(f"The ground truth {x.shape} and the reconstruction {rec.mean.shape} differ in shape.")
    err = np.abs(np.asarray(rec.mean) - x)
    return float(np.mean(err <= interval_halfwidth(rec, level)))


def std_error_correlation(rec: Reconstruction, x) -> float:
    """Pearson correlation between the std map and the absolute error map (does the std point at errors?)."""
    if rec.std is None:
        raise ValueError("This reconstruction has no standard deviation.")
    err = np.abs(np.asarray(rec.mean) - np.asarray(x)).ravel()
    s = np.asarray(rec.std).ravel()
    if err.std() == 0 or s.std() == 0:
        return 0.0
    return float(np.corrcoef(s, err)[0, 1])


def error_map(x_hat, x) -> np.ndarray:
    """Absolute error ``|x̂ − x|`` per pixel (modulus for complex images)."""
    a, b = np.asarray(x_hat), np.asarray(x)
    if a.shape != b.shape:
        raise ValueError(f"The reconstruction {a.shape} and the ground truth {b.shape} differ in shape.")
    return np.abs(a - b).astype(np.float32)


def summary(y, A: Operator, rec: Reconstruction, noise: NoiseModel, x=None, level: float = 0.9) -> dict[str, float]:
    """The numbers of a diagnostics report: reduced chi-square of the mean; with the truth ``x`` the RMSE and,
    when ``rec`` has a std, the coverage of the central ``level`` interval and the std–error correlation."""
    out = {"chi2": chi2(y, A, rec.mean, noise)}
    if x is not None:
        out["rmse"] = float(np.sqrt(np.mean(error_map(rec.mean, x) ** 2)))
        if rec.std is not None:
            out["coverage"] = coverage(rec, x, level)
            out["std_error_correlation"] = std_error_correlation(rec, x)
    return out


#: levels of the calibration curve (expected coverage), besides the calibrated level
CURVE_LEVELS = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99)


@dataclass
class Calibration:
    """A single factor on the std that makes the central ``level`` intervals cover the truth, fitted by
    simulation through the user's forward model (Talts et al., arXiv:1804.06788; Kuleshov, Fenner & Ermon,
    ICML 2018). ``coverage_after`` is held out (leave one image out) when there are two images or more.
    ``levels`` / ``observed_before`` / ``observed_after`` form the calibration curve."""

    scale: float
    level: float
    method: str
    coverage_before: float
    coverage_after: float
    levels: tuple[float, ...]
    observed_before: list[float]
    observed_after: list[float]
    n_images: int
    held_out: bool
    params: dict[str, Any] = field(default_factory=dict)

    def __float__(self) -> float:
        return self.scale


def _image_list(images, shape: tuple[int, ...]) -> list[np.ndarray]:
    if isinstance(images, np.ndarray) or hasattr(images, "shape"):
        arr = np.asarray(images)
        items = [arr] if arr.shape == shape else list(arr)
    else:
        items = [np.asarray(im) for im in images]
    if not items:
        raise ValueError("calibrate needs at least one clean image.")
    for im in items:
        if im.shape != shape:
            raise ValueError(f"Calibration images must have the forward model's image shape {shape}, got {im.shape}.")
    return items


def calibrate(method: str, A: Operator, noise: NoiseModel, images, level: float = 0.9, seed: int = 0,
              **params: Any) -> Calibration:
    """Simulation-based calibration of a method's std on clean images the user trusts.

    Each image ``x`` is pushed through ``y = simulate(x, A, noise)`` and reconstructed; the normalized errors
    ``|mean − x| / std`` of all pixels give the scale ``s`` with which ``mean ± z_level · s · std`` covers a
    fraction ``level``. Pass the result to ``reconstruct(..., calibration=cal)``.
    """
    from .api import reconstruct, simulate  # the scripting API, used here as a user would

    if not 0 < level < 1:
        raise ValueError("level must lie in (0, 1).")
    items = _image_list(images, tuple(A.in_shape))
    z = {lv: stats.norm.ppf(0.5 + lv / 2) for lv in (*CURVE_LEVELS, level)}
    errors, before = [], []
    for i, x in enumerate(items):
        y = simulate(x, A, noise, seed=seed + i)
        rec = reconstruct(y, A, method, noise, seed=seed + i, **params)
        if rec.std is None:
            raise ValueError(f"Method {method!r} returns no standard deviation; it cannot be calibrated.")
        err = np.abs(np.asarray(rec.mean) - x).ravel()
        errors.append(err / np.maximum(np.asarray(rec.std).ravel(), 1e-12))
        before.append({lv: coverage(rec, x, lv) for lv in z})
    pooled = np.concatenate(errors)

    def fit(e: np.ndarray) -> float:
        return float(np.quantile(e, level) / z[level])

    scale = fit(pooled)
    held_out = len(errors) > 1
    if held_out:
        after = float(np.mean([np.mean(e <= z[level] * fit(np.concatenate(errors[:i] + errors[i + 1:])))
                               for i, e in enumerate(errors)]))
    else:
        after = float(np.mean(pooled <= z[level] * scale))
    levels = tuple(sorted(set(CURVE_LEVELS) | {level}))
    return Calibration(
        scale=scale,
        level=level,
        method=method,
        coverage_before=float(np.mean([b[level] for b in before])),
        coverage_after=after,
        levels=levels,
        observed_before=[float(np.mean([b[lv] for b in before])) for lv in levels],
        observed_after=[float(np.mean(pooled <= z[lv] * scale)) for lv in levels],
        n_images=len(items),
        held_out=held_out,
        params=dict(params),
    )
