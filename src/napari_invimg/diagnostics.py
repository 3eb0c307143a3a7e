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
from .validation import check_finite

__all__ = [
    "data_informed_split",
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
    "robustness",
    "format_robustness",
    "hallucination",
    "HallucinationMap",
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
    err = _truth_error(rec, x)
    return float(np.mean(err <= interval_halfwidth(rec, level)))


def _truth_error(rec: Reconstruction, x) -> np.ndarray:
    """``|mean − x|`` once the truth ``x`` and the std are checked: of the mean's shape (numpy would broadcast a row or
    a column silently) and finite (a NaN would count as an uncovered pixel or make the correlation NaN)."""
    x, mean = np.asarray(x), np.asarray(rec.mean)
    if x.shape != mean.shape:
        raise ValueError(f"The ground truth {x.shape} and the reconstruction {mean.shape} differ in shape.")
    check_finite(x, "ground truth")
    check_finite(mean, "reconstruction's mean")
    if rec.std is not None:
        std = np.asarray(rec.std)
        if std.shape != mean.shape:
            raise ValueError(f"The std {std.shape} and the mean {mean.shape} of the reconstruction differ in shape.")
        check_finite(std, "reconstruction's std")
    return np.abs(mean - x)


def std_error_correlation(rec: Reconstruction, x) -> float:
    """Pearson correlation between the std map and the absolute error map (does the std point at errors?); 0 when
    either map is constant (a constant std points at nothing, and the correlation is undefined). ``ValueError`` for
    a truth or std of another shape than the mean, or a NaN or infinity in them."""
    if rec.std is None:
        raise ValueError("This reconstruction has no standard deviation.")
    err = _truth_error(rec, x).ravel().astype(np.float64)
    s = np.asarray(rec.std).ravel().astype(np.float64)
    if np.ptp(err) == 0 or np.ptp(s) == 0:  # a constant map points at nothing (exact test: float32 std of equal values ≠ 0)
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
    #: the coverage of the image that ``κ`` implies when it acts only on the data-informed part of the posterior
    #: spread (:func:`data_informed_split`); ``None`` for nonlinear operators. The verdict uses it when present.
    image_coverage: float | None = None
    #: fraction of the posterior variance of the image that the data inform (mean over pixels)
    data_informed: float | None = None


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


def data_informed_split(A: LinearOperator, samples: torch.Tensor, noise_variance: torch.Tensor,
                        iterations: int = 30) -> tuple[torch.Tensor, torch.Tensor]:
    """The posterior deviations ``δ = x_s − x̄`` split as ``δ = Pδ + (I − P)δ`` with ``P = (AᴴWA + ηI)⁻¹AᴴWA``
    (``W`` = 1/noise variance, ``η`` = 1/mean posterior variance, the prior's precision scale): ``Pδ`` lies in the
    directions the data inform (``P ≈ I`` where the likelihood precision exceeds the prior's, ``≈ 0`` in the blur's
    attenuated frequencies or at missing pixels). Returns the per-pixel variances of ``Pδ`` and of ``(I − P)δ`` and
    their covariance's real part, stacked (3, *image). ``P`` by conjugate gradients, all samples as one batch."""
    from .operators.kernels import conjugate_gradient

    delta = samples - samples.mean(0, keepdim=True)
    v = (delta.abs() ** 2).mean(0)
    eta = 1.0 / float(v.mean().clamp(min=1e-30))
    w = 1.0 / noise_variance.clamp(min=1e-30)

    def data_part(u: torch.Tensor) -> torch.Tensor:
        return A.apply_adjoint(A.apply(u) * w)

    informed = conjugate_gradient(lambda u: data_part(u) + eta * u, data_part(delta), iterations=iterations, tol=1e-4)
    rest = delta - informed
    parts = torch.stack([(informed.abs() ** 2).mean(0), (rest.abs() ** 2).mean(0),
                         (informed.conj() * rest).real.mean(0)])
    return parts, v


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
    image_cov = informed = None
    if isinstance(A, LinearOperator) and A.linear:
        # κ speaks for the data-informed part of the spread only; the rest (the prior's) is taken as it is
        with torch.no_grad():
            samples = torch.as_tensor(np.asarray(rec.samples))
            parts, v = data_informed_split(A, samples, torch.as_tensor(np.broadcast_to(
                noise.variance(m).cpu().numpy(), shape).copy(), dtype=samples.real.dtype))
            true_var = kappa * parts[0] + parts[1] + 2 * np.sqrt(kappa) * parts[2]
            ratio = (v / true_var.clamp(min=1e-30)).clamp(min=0).sqrt().cpu().numpy()
            image_cov = float(np.mean(2 * stats.norm.cdf(zq * ratio) - 1))
            informed = float((parts[0] / v.clamp(min=1e-30)).mean())
    judged = post_cov if image_cov is None else image_cov
    if information < 10:  # log κ known to worse than ±0.3
        verdict = "uninformative"
    elif judged < 0.8:
        verdict = "too narrow"
    elif judged > 0.97:
        verdict = "too wide"
    else:
        verdict = "calibrated"
    return PredictiveCheck(coverage=cov, posterior_coverage=post_cov, inflation=kappa, verdict=verdict, level=level,
                           n_held_out=int(held.sum()), information=information, method=method,
                           seconds=time.perf_counter() - t0, params=dict(params), reconstruction=rec,
                           image_coverage=image_cov, data_informed=informed)
# -- robustness to a wrong forward model (issue #18) -----------------------------------------------------------
def _psnr_to(x_hat, x) -> float:
    from .metrics import psnr

    a, b = np.asarray(x_hat), np.asarray(x)
    if np.iscomplexobj(a) or np.iscomplexobj(b):
        a, b = np.abs(a), np.abs(b)
    return float(psnr(a, b))


def robustness(method: str, A: Operator, noise: NoiseModel, images, perturb: dict[str, Any] | None = None,
               seed: int = 0, progress=None, **params: Any) -> list[dict[str, Any]]:
    """PSNR of ``method`` when the data come from a perturbed forward model but the method is given the nominal ``A``.

    For each clean image ``x`` and each perturbation ``(key, value)`` of ``perturb`` (default PSF width ×0.8, 0.9,
    1.1, 1.2): ``y' = simulate(x, A', noise')`` with ``A'`` = ``A`` perturbed (``psf_scale``, ``na`` and
    ``defocus_um`` with ``perturb["optics"]`` = the nominal widefield optics, MRI ``acceleration`` / ``mask`` kind /
    ``mask_seed``) or ``noise'`` = the noise scaled (``noise_scale``), then ``reconstruct(y', A, method, noise,
    **params)``. Returns rows ``{"perturbation", "value", "psnr", "psnr_change"}`` (PSNR averaged over the images,
    change against the nominal row, which comes first). ``progress(done, total, None)``; ``False`` cancels.
    """
    from .api import reconstruct, simulate  # the scripting API, used here as a user would (as calibrate does)
    from .errors import Cancelled
    from .methods._perturb import perturb_noise, perturb_operator

    perturb = dict(perturb or {"psf_scale": [0.8, 0.9, 1.1, 1.2]})
    optics = perturb.pop("optics", None)
    items = _image_list(images, tuple(A.in_shape))
    cases: list[tuple[str, Any]] = [("nominal", None)]
    for key, values in perturb.items():
        for v in np.atleast_1d(values).tolist() if not isinstance(values, str) else [values]:
            cases.append((key, v))
    total = len(cases) * len(items)
    done = 0
    rows = []
    nominal = None
    for key, value in cases:
        if key == "nominal":
            A_data, noise_data = A, noise
        elif key == "noise_scale":
            A_data, noise_data = A, perturb_noise(noise, float(value))
        else:
            A_data, noise_data = perturb_operator(A, key, value, seed=seed + 1, optics=optics), noise
        scores = []
        for i, x in enumerate(items):
            y = simulate(x, A_data, noise_data, seed=seed + i)
            rec = reconstruct(y, A, method, noise, seed=seed + i, **params)
            scores.append(_psnr_to(rec.mean, x))
            done += 1
            if progress is not None and progress(done, total, None) is False:
                raise Cancelled("robustness check cancelled", partial=rows)
        value_psnr = float(np.mean(scores))
        if nominal is None:
            nominal = value_psnr
        rows.append({"perturbation": key, "value": value, "psnr": value_psnr, "psnr_change": value_psnr - nominal})
    return rows


def format_robustness(rows: list[dict[str, Any]], method: str | None = None) -> str:
    """A plain-text table of :func:`robustness` rows."""
    head = f"{'method':<16}" if method else ""
    lines = [f"{head}{'perturbation':<14}{'value':>10}{'PSNR':>9}{'change':>9}"]
    for r in rows:
        v = "" if r["value"] is None else (f"{r['value']:g}" if isinstance(r["value"], (int, float)) else str(r["value"]))
        lines.append(f"{(method or ''):<16}"[: len(head)] + f"{r['perturbation']:<14}{v:>10}{r['psnr']:>9.2f}"
                     f"{r['psnr_change']:>+9.2f}")
    return "\n".join(lines)


# -- hallucination map (issue #18) -------------------------------------------------------------------------
@dataclass
class HallucinationMap:
    """Where a result holds structure its data do not support: ``map`` = ``|n| / s`` with ``n`` the near-null-space
    part of (result − classical), ``s`` the std (where given) combined with the noise level carried to the image;
    ``flagged`` = ``map > threshold``. Iterating gives ``(map, info)``."""

    map: np.ndarray
    component: np.ndarray
    flagged: np.ndarray
    fraction_flagged: float
    info: dict[str, Any]

    def __iter__(self):
        return iter((self.map, self.info))


def _cg_normal(A: Operator, b: torch.Tensor, iterations: int) -> torch.Tensor:
    """``iterations`` conjugate-gradient steps on ``AᴴA u = b`` from ``u = 0``: the part of the solution that the
    well-measured directions (large singular values) determine."""
    u = torch.zeros_like(b)
    r = b.clone()
    p = r.clone()
    rr = float((r.conj() * r).real.sum())
    for _ in range(iterations):
        if rr <= 1e-30:
            break
        q = A.normal(p)
        alpha = rr / max(float((p.conj() * q).real.sum()), 1e-30)
        u = u + alpha * p
        r = r - alpha * q
        rr_new = float((r.conj() * r).real.sum())
        p = r + (rr_new / rr) * p
        rr = rr_new
    return u


def hallucination(rec, y, A: Operator, noise: NoiseModel, classical=None, threshold: float = 3.0,
                  iterations: int = 10) -> HallucinationMap:
    """The part of a (learned) result that the data do not support, as a z-score map and the fraction flagged.

    ``d = x̂ − x_c`` with ``x_c`` a classical reconstruction (``classical``; default: ``iterations`` CG steps on the
    normal equations ``AᴴA x = Aᴴy`` from zero, which only ever contains well-measured directions); its
    near-null-space part is ``n = d − CG_k(AᴴA, AᴴA d)`` (what ``A`` maps to almost nothing). The map is
    ``|n| / sqrt(std² + σ²)`` with ``std`` the result's std where it has one and ``σ`` the noise level carried to
    the image (``sqrt(mean Var[y]) / ‖A‖``); pixels above ``threshold`` are flagged. ``info["fraction_flagged"]``
    is their share. Reference: the null-space view of hallucinations in Bhadra, Kelkar, Brooks & Anastasio,
    IEEE TMI 40 (2021) 3249.
    """
    if not A.linear:
        raise ValueError(f"The hallucination map needs a linear forward model with an adjoint; {A.name} is non-linear.")
    if threshold <= 0 or iterations < 1:
        raise ValueError("threshold must be positive and iterations at least 1.")
    is_rec = isinstance(rec, Reconstruction)
    mean = np.asarray(rec.mean if is_rec else rec)
    std = rec.std if is_rec else None
    if mean.shape != tuple(A.in_shape):
        raise ValueError(f"The result has shape {mean.shape} but the forward model's images are {tuple(A.in_shape)}.")
    with torch.no_grad():
        A.to("cpu")
        dtype = torch.complex64 if A.in_complex else torch.float32
        x = to_tensor(mean).to(dtype)
        yt = to_tensor(y)
        yt = yt.to(torch.complex64) if A.out_complex else yt.float()
        if classical is None:
            xc = _cg_normal(A, A.apply_adjoint(yt), iterations)
        else:
            xc = to_tensor(np.asarray(classical)).to(dtype)
            if tuple(xc.shape) != tuple(A.in_shape):
                raise ValueError(f"The classical reconstruction has shape {tuple(xc.shape)}, not {tuple(A.in_shape)}.")
        d = x - xc
        n = d - _cg_normal(A, A.normal(d), iterations)
        var = noise.variance(A.apply(x))
        sigma = float(var.float().mean().sqrt()) / max(A.norm(), 1e-12)
    component = n.abs().numpy() if n.is_complex() else n.numpy()
    scale = np.full(mean.shape, sigma, dtype=np.float64)
    if std is not None:
        scale = np.sqrt(scale**2 + np.asarray(std, dtype=np.float64) ** 2)
    z = (np.abs(component) / np.maximum(scale, 1e-30)).astype(np.float32)
    flagged = z > threshold
    fraction = float(flagged.mean())
    info = {"fraction_flagged": fraction, "threshold": float(threshold), "iterations": int(iterations),
            "noise_level_image": sigma, "normalized_by": "std and noise" if std is not None else "noise",
            "classical": "given" if classical is not None else f"CG on the normal equations, {iterations} steps"}
    return HallucinationMap(map=z, component=np.asarray(component, dtype=np.float32), flagged=flagged,
                            fraction_flagged=fraction, info=info)
