"""Honesty about failure: data-consistency residuals, coverage and std–error agreement."""

from __future__ import annotations

import numpy as np
import torch
from scipy import stats

from ._device import to_tensor
from .operators.base import Operator
from .operators.noise import NoiseModel
from .uncertainty import Reconstruction

__all__ = ["residual", "chi2", "coverage", "interval_halfwidth", "std_error_correlation", "error_map", "summary"]


def residual(y, A: Operator, x_hat, noise: NoiseModel) -> np.ndarray:
    """Normalised data misfit ``(y − A x̂) / sqrt(Var[y | A x̂])``, shaped like ``y``; ≈ N(0, 1) when the
    reconstruction explains the data down to the noise (structure in it means it does not)."""
    with torch.no_grad():
        A.to("cpu")
        z = A.forward(to_tensor(x_hat))
        r = noise.normalised_residual(to_tensor(y).to(z.dtype), z)
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
    90%). Without samples the Gaussian quantile ``z`` is used.
    """
    if rec.std is None:
        raise ValueError("This reconstruction has no standard deviation; choose a method that returns one.")
    if not 0 < level < 1:
        raise ValueError("level must lie in (0, 1).")
    n = 0 if rec.samples is None else int(rec.samples.shape[0])
    if n >= 2 and "calibration" not in rec.info:
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
