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
from .uncertainty import Reconstruction

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


def _split_ranked(chains: np.ndarray) -> np.ndarray:
    """Split each chain in halves and rank-normalise over all draws, per pixel (Vehtari et al. 2021)."""
    c = np.asarray(chains, dtype=np.float64)
    if c.ndim < 2 or c.shape[1] < 4:
        raise ValueError("Mixing diagnostics need an array (chains, draws, ...) with at least 4 draws per chain.")
    if np.iscomplexobj(c):
        c = np.abs(c)
    m, n = c.shape[:2]
    half = n // 2
    c = c.reshape(m, n, -1)
    split = np.concatenate([c[:, :half], c[:, n - half:]], axis=0)  # (2m, half, P)
    flat = split.reshape(-1, split.shape[-1])
    ranks = stats.rankdata(flat, axis=0, method="average")
    z = stats.norm.ppf((ranks - 0.375) / (flat.shape[0] + 0.25))
    return z.reshape(split.shape)


def _variances(c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Within-chain variance W and the pooled estimate var⁺ for chains (m, n, P)."""
    n = c.shape[1]
    w = c.var(axis=1, ddof=1).mean(axis=0)
    b_over_n = c.mean(axis=1).var(axis=0, ddof=1)
    return w, (n - 1) / n * w + b_over_n


def split_rhat(chains) -> np.ndarray:
    """Rank-normalised split-R̂ per pixel for draws shaped (chains, draws, *image): ≈ 1 when the chains mixed,
    > 1.01 when they disagree (Vehtari, Gelman, Simpson, Carpenter & Bürkner, Bayesian Analysis 16 (2021) 667)."""
    z = _split_ranked(chains)
    w, var_plus = _variances(z)
    rhat = np.sqrt(var_plus / np.maximum(w, 1e-300))
    return rhat.reshape(np.asarray(chains).shape[2:])


def effective_sample_size(chains) -> np.ndarray:
    """Bulk effective sample size per pixel for draws (chains, draws, *image): rank-normalised split chains,
    autocorrelations by FFT and Geyer's initial monotone sequence (Geyer, Stat. Sci. 7 (1992) 473;
    Vehtari et al. 2021)."""
    z = _split_ranked(chains)
    m, n, _ = z.shape
    w, var_plus = _variances(z)
    centred = z - z.mean(axis=1, keepdims=True)
    spec = np.fft.rfft(centred, n=2 * n, axis=1)
    acov = np.fft.irfft(spec * np.conj(spec), axis=1)[:, :n] / n  # biased autocovariance (m, n, P)
    rho = 1.0 - (w - acov.mean(axis=0)) / np.maximum(var_plus, 1e-300)
    rho[0] = 1.0
    pairs = n // 2
    p = rho[: 2 * pairs : 2] + rho[1 : 2 * pairs : 2]  # Geyer's sums of adjacent pairs (pairs, P)
    positive = np.cumprod(p > 0, axis=0).astype(bool)
    p = np.minimum.accumulate(np.where(positive, p, 0.0), axis=0)
    tau = np.maximum(-1.0 + 2.0 * p.sum(axis=0), 1.0 / np.log10(max(m * n, 10)))
    ess = m * n / tau
    return ess.reshape(np.asarray(chains).shape[2:])


def mixing_summary(chains) -> dict[str, float]:
    """Pixel summaries of split-R̂ and ESS for draws (chains, draws, *image): what ``info`` of an MCMC run holds."""
    rhat = split_rhat(chains)
    ess = effective_sample_size(chains)
    return {
        "rhat_median": float(np.median(rhat)),
        "rhat_max": float(np.max(rhat)),
        "rhat_fraction_below_1.05": float(np.mean(rhat < 1.05)),
        "ess_min": float(np.min(ess)),
        "ess_median": float(np.median(ess)),
        "draws": int(np.asarray(chains).shape[0] * np.asarray(chains).shape[1]),
    }


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

    Each image ``x`` is pushed through ``y = simulate(x, A, noise)`` and reconstructed; the normalised errors
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
