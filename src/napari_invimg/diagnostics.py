"""Honesty about failure: data-consistency residuals, coverage and std–error agreement."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from scipy import stats

from ._device import to_tensor
from .operators.base import LinearOperator, Operator, from_spec
from .operators.noise import Gaussian, NoiseModel
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
    "HeldOutRows",
    "PredictiveCheck",
    "predictive_check",
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


class HeldOutRows(LinearOperator):
    """``A`` with some measurements left out: ``keep ⊙ A(x)`` (and ``Aᴴ(keep ⊙ y)`` when ``A`` is linear), so a
    left-out value is zero in both the model and the data and carries no information to any likelihood."""

    def __init__(self, A: Operator, keep):
        super().__init__(A.in_shape, A.out_shape)
        keep = torch.as_tensor(np.asarray(keep, dtype=bool))
        if tuple(keep.shape) != tuple(A.out_shape):
            raise ValueError(f"The mask of kept measurements {tuple(keep.shape)} must have the data's shape {A.out_shape}.")
        self.A, self.keep = A, keep
        self.in_complex, self.out_complex = A.in_complex, A.out_complex
        self.linear = A.linear
        self.device = A.device

    def to(self, device):
        self.A.to(device)
        self.keep = self.keep.to(device)
        self.device = torch.device(device)
        return self

    def n_measured(self) -> int:
        return max(1, round(self.A.n_measured() * float(self.keep.float().mean())))

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.A.apply(x)
        return z * self.keep.to(z.device)

    def _adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return self.A.apply_adjoint(y * self.keep.to(y.device))

    def norm(self, iterations: int = 30, seed: int = 0) -> float:
        """``‖A‖``, an upper bound of the masked operator's norm."""
        return self.A.norm(iterations, seed)

    def _params(self) -> dict[str, Any]:
        return {"A": self.A.spec(), "keep": self.keep.cpu().numpy()}

    @classmethod
    def from_params(cls, **params) -> HeldOutRows:
        return cls(from_spec(params["A"]), params["keep"])


@dataclass
class PredictiveCheck:
    """The held-out-measurement check of a posterior (:func:`predictive_check`).

    ``coverage``: fraction of held-out measurements inside the central ``level`` interval of the posterior
    predictive (samples pushed through ``A``, plus the noise). ``inflation``: the factor ``κ`` on the posterior
    part of the predictive variance that makes the held-out data most likely (``y − m ~ N(0, κ s² + σ²)``);
    ``posterior_coverage``: the coverage of the noise-free held-out values that ``κ`` implies,
    ``2Φ(z/√κ) − 1`` — what the truth-based coverage of the image would be if its errors were off by the same
    factor. ``verdict``: "calibrated" when ``posterior_coverage`` lies in [0.80, 0.97], else "too narrow" or
    "too wide" (with "uninformative" when the noise swamps the posterior spread of the held-out data)."""

    coverage: float
    posterior_coverage: float
    inflation: float
    verdict: str
    level: float
    n_held_out: int
    information: float
    method: str
    seconds: float
    params: dict[str, Any] = field(default_factory=dict)
    #: the reconstruction from the kept measurements (its samples gave the prediction)
    reconstruction: Reconstruction | None = field(default=None, repr=False)


def _inflation(r2: np.ndarray, s2: np.ndarray, n2: np.ndarray) -> tuple[float, float]:
    """Maximum-likelihood ``κ ≥ 0`` of ``r ~ N(0, κ s² + n²)`` (golden-section on log κ) and its Fisher information."""

    def nll(k: float) -> float:
        v = k * s2 + n2
        return float(np.sum(np.log(v) + r2 / v))

    lo, hi = np.log(1e-4), np.log(1e4)
    g = (np.sqrt(5) - 1) / 2
    a, b = hi - g * (hi - lo), lo + g * (hi - lo)
    fa, fb = nll(np.exp(a)), nll(np.exp(b))
    for _ in range(80):
        if fa < fb:
            hi, b, fb = b, a, fa
            a = hi - g * (hi - lo)
            fa = nll(np.exp(a))
        else:
            lo, a, fa = a, b, fb
            b = lo + g * (hi - lo)
            fb = nll(np.exp(b))
    k = float(np.exp((lo + hi) / 2))
    info = float(0.5 * np.sum((s2 / (k * s2 + n2)) ** 2)) * k * k  # information on log κ
    return k, info


def predictive_check(method: str, y, A: Operator, noise: NoiseModel, holdout: float = 0.1, seed: int = 0,
                     level: float = 0.9, **params: Any) -> PredictiveCheck:
    """Calibration of a method's posterior from the data alone: leave out a random ``holdout`` fraction of the
    measurements, reconstruct from the rest, and see whether the posterior predicts the left-out ones.

    ``y_i ~ N(m_i, κ s_i² + σ_i²)`` with ``m``, ``s²`` the mean and variance of ``A(sample)_i`` over the samples and
    ``σ_i²`` the noise variance; ``κ = 1`` for a calibrated posterior (Gelman, Meng & Stern, Stat. Sinica 6
    (1996) 733, posterior predictive checks; Vehtari, Gelman & Gabry, Stat. Comput. 27 (2017) 1413, held-out
    data). Left-out measurements are masked in the operator (:class:`HeldOutRows`); for methods tied to their
    operator's class (black hole) with Gaussian noise, their sigma is made 10⁶× larger instead.
    """
    import time

    from .api import reconstruct
    from .methods import registry

    if not 0 < holdout < 0.9:
        raise ValueError("holdout must lie in (0, 0.9).")
    if not 0 < level < 1:
        raise ValueError("level must lie in (0, 1).")
    t0 = time.perf_counter()
    y_np = np.asarray(y.detach().cpu() if isinstance(y, torch.Tensor) else y)
    shape = tuple(A.out_shape)
    if tuple(y_np.shape) != shape:
        raise ValueError(f"predictive_check needs one measurement shaped {shape}, got {tuple(y_np.shape)}.")
    rng = np.random.default_rng(seed)
    with torch.no_grad():
        A.to("cpu")
    measured = np.ones(shape, bool)
    if A.n_measured() < int(np.prod(shape)):  # unsampled k-space: hold out only measured values
        measured = y_np != 0
    held = measured & (rng.random(shape) < holdout)
    if held.sum() < 10:
        raise ValueError("Too few measurements to hold any out; raise 'holdout'.")
    keep = ~held
    cls = registry.get(method)
    wrapped = HeldOutRows(A, keep)
    if cls.supports(wrapped) is None:
        op, nz, y_fit = wrapped, noise, np.where(keep, y_np, 0)
    elif noise.gain == 0 and cls.supports(A) is None:
        sigma = np.broadcast_to(np.asarray(noise.sigma, dtype=np.float64), shape).copy()
        sigma[held] *= 1e6
        op, nz, y_fit = A, Gaussian(sigma), y_np
    else:
        raise ValueError(f"Method {method!r} cannot run on the operator with measurements left out: "
                         f"{cls.supports(wrapped)}")
    rec = reconstruct(y_fit, op, method, nz, seed=seed, **params)
    if rec.samples is None or len(rec.samples) < 2:
        raise ValueError(f"Method {method!r} returns no samples; the held-out check needs a posterior with samples.")
    with torch.no_grad():
        z = A.forward(torch.as_tensor(np.asarray(rec.samples)))  # (n, *out)
        m = z.mean(0)
        var_noise = noise.variance(m).cpu().numpy()
    zs = z.cpu().numpy()[:, held]
    mean, yh = m.cpu().numpy()[held], y_np[held]
    var_noise = np.broadcast_to(var_noise, shape)[held]
    n = zs.shape[0]
    if np.iscomplexobj(zs) or np.iscomplexobj(yh):  # real and imaginary parts, each with half the noise variance
        zs = np.concatenate([zs.real, zs.imag], -1)
        mean = np.concatenate([mean.real, mean.imag])
        yh = np.concatenate([np.real(yh), np.imag(yh)])
        var_noise = np.concatenate([var_noise, var_noise]) / 2
    s2 = zs.var(0, ddof=1) * (1 + 1 / n)
    r2 = (yh - mean) ** 2
    zq = stats.norm.ppf(0.5 + level / 2)
    cov = float(np.mean(r2 <= zq**2 * (s2 + var_noise)))
    kappa, information = _inflation(r2, s2, var_noise)
    post_cov = float(2 * stats.norm.cdf(zq / np.sqrt(kappa)) - 1)
    if information < 10:  # log κ known to worse than ±0.3
        verdict = "uninformative"
    elif post_cov < 0.8:
        verdict = "too narrow"
    elif post_cov > 0.97:
        verdict = "too wide"
    else:
        verdict = "calibrated"
    return PredictiveCheck(coverage=cov, posterior_coverage=post_cov, inflation=kappa, verdict=verdict, level=level,
                           n_held_out=int(held.sum()), information=information, method=method,
                           seconds=time.perf_counter() - t0, params=dict(params), reconstruction=rec)
