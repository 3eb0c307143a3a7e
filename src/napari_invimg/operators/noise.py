"""Camera noise models: sampling, negative log-likelihood and its gradient, discrepancy, estimation.

``y = gain · Poisson(z / gain) + N(0, σ²)`` with ``z = A(x)`` covers the three cases: Gaussian
(``gain = 0``), Poisson (``σ = 0``) and Poisson–Gaussian. Solvers use :meth:`NoiseModel.nll`,
:meth:`NoiseModel.grad` (w.r.t. ``z``), :meth:`NoiseModel.variance` and :meth:`NoiseModel.misfit`
(normalized discrepancy, ≈ 1 when ``z`` explains ``y`` down to the noise).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch

from .._device import to_tensor
from ..validation import check_seed

__all__ = ["NoiseModel", "Gaussian", "Poisson", "PoissonGaussian", "estimate", "from_spec"]


POISSON_MAX_RATE = 1e18  # torch.poisson overflows int64 above ~9.2e18 photons (returns −9.2e18)


def _generator(seed: int | None, device: torch.device) -> torch.Generator:
    g = torch.Generator(device=device if device.type != "mps" else "cpu")
    g.manual_seed(check_seed(seed))  # None: a fresh seed
    return g


class NoiseModel:
    """Base of the camera noise models (``gain`` ≥ 0, ``sigma`` ≥ 0; both zero is not allowed)."""

    gain: float = 0.0

    def __init__(self, gain: float = 0.0, sigma=0.0):
        for name, value in (("gain", gain), ("sigma", sigma)):
            if isinstance(value, (bool, np.bool_, str)) or getattr(value, "dtype", np.dtype(float)).kind == "b":
                raise TypeError(f"The noise {name} is a number (or a σ map), got {value!r}.")
        sig = np.asarray(sigma, dtype=np.float64)
        if np.any(~np.isfinite(sig)) or np.any(sig < 0):
            raise ValueError("The noise sigma must be finite and non-negative.")
        if not np.isfinite(gain) or gain < 0:
            raise ValueError("The camera gain must be finite and non-negative.")
        if gain == 0 and np.all(sig == 0):
            raise ValueError("A noise model needs a positive sigma or a positive gain.")
        if sig.ndim > 0 and not np.all(sig > 0):
            raise ValueError(f"A noise σ map must be positive everywhere; {int(np.sum(sig <= 0))} value(s) are zero "
                             "(an exact measurement). Give them a small positive σ, or leave them out with "
                             "ni.operators.Inpainting.")
        self.gain = float(gain)
        self.sigma = float(sig) if sig.ndim == 0 else sig.astype(np.float32)

    # -- helpers -----------------------------------------------------------------------------------
    def _sigma_t(self, like: torch.Tensor) -> torch.Tensor | float:
        if isinstance(self.sigma, float):
            return self.sigma
        return to_tensor(self.sigma, device=like.device, dtype=torch.float32 if not like.is_complex() else torch.float32)

    @property
    def sigma_scalar(self) -> float:
        """A single representative sigma (the RMS of a per-pixel map)."""
        return float(np.sqrt(np.mean(np.square(self.sigma))))

    def variance(self, z: torch.Tensor) -> torch.Tensor:
        """Variance of ``y`` given its mean ``z``: ``gain · max(z, 0) + σ²``."""
        zr = z.real if z.is_complex() else z
        s = self._sigma_t(zr)
        return self.gain * zr.clamp(min=0) + (s * s if isinstance(s, torch.Tensor) else s * s)

    # -- simulation ------------------------------------------------------------------------------
    def sample(self, z, seed: int | None = 0):
        """Draw ``y`` given ``z``: numpy in -> numpy out."""
        was_numpy = not isinstance(z, torch.Tensor)
        t = to_tensor(z)
        g = _generator(seed, t.device)
        if self.gain > 0:
            if t.is_complex():
                raise ValueError("Poisson noise needs real, non-negative data; this operator produces complex data.")
            if not bool(torch.isfinite(t).all()):
                raise ValueError("Poisson noise needs a finite image; it contains NaN or infinite values.")
            if bool((t < 0).any()):
                raise ValueError("Poisson noise needs a non-negative image (photon counts); clip or offset the image first.")
            if bool((t / self.gain > POISSON_MAX_RATE).any()):
                raise ValueError(f"Poisson noise: the image asks for more than {POISSON_MAX_RATE:.0e} photons per pixel "
                                 f"(max {float(t.max()) / self.gain:.3g}); is the gain {self.gain:g} in the image's units?")
            y = torch.poisson((t / self.gain).double(), generator=g).to(t.dtype) * self.gain
        else:
            y = t.clone()
        s = self.sigma
        if np.any(np.asarray(s) > 0):
            st = self._sigma_t(t)
            if t.is_complex():
                n = torch.complex(torch.randn(t.shape, generator=g), torch.randn(t.shape, generator=g)).to(t.device)
            else:
                n = torch.randn(t.shape, generator=g, dtype=t.dtype).to(t.device)
            y = y + st * n
        return y.numpy() if was_numpy else y

    # -- likelihood --------------------------------------------------------------------------------
    def nll(self, y: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """Negative log-likelihood ``−log p(y | z)`` (up to a constant), summed."""
        if self.gain == 0:
            r = z - y
            s = self._sigma_t(r.real if r.is_complex() else r)
            return 0.5 * ((r.abs() ** 2) / (s * s)).sum()
        return self._nll_poisson(y, z)

    def grad(self, y: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """Gradient of :meth:`nll` with respect to ``z``."""
        if self.gain == 0:
            s = self._sigma_t(z.real if z.is_complex() else z)
            return (z - y) / (s * s)
        return self._grad_poisson(y, z)

    def _shift(self) -> float:
        """Constant added to counts in the shifted-Poisson approximation of Poisson–Gaussian noise."""
        return self.sigma_scalar**2 / self.gain

    def _nll_poisson(self, y, z):
        # shifted Poisson: (y + σ²/g)/g ~ Poisson((z + σ²/g)/g)
        c = self._shift()
        zz = ((z + c) / self.gain).clamp(min=1e-12)
        yy = ((y + c) / self.gain).clamp(min=0)
        return (zz - yy * torch.log(zz)).sum()

    def _grad_poisson(self, y, z):
        c = self._shift()
        zz = ((z + c) / self.gain).clamp(min=1e-12)
        yy = ((y + c) / self.gain).clamp(min=0)
        return (1 - yy / zz) / self.gain

    def misfit(self, y: torch.Tensor, z: torch.Tensor, measured: int | None = None) -> float:
        """Normalized discrepancy per measurement; its expectation is ≈ 1 when ``z`` is the true mean.

        Gaussian: ``Σ|y − z|² / σ²`` (÷2 on complex data) over the number of measurements. Poisson(-Gaussian):
        the mean Poisson deviance ``2 [y log(y/z) − (y − z)]`` of the shifted counts (Zanella et al., Inverse
        Problems 25 (2009) 045010). ``measured`` (default: every value of ``y``) is how many values are
        measurements (``A.n_measured()`` × batch), when the others are zero in both ``y`` and ``z`` by construction.
        """
        count = y.numel() if measured is None else int(measured)
        if self.gain == 0:
            d = z - y
            r = torch.view_as_real(d).square().sum(-1) if d.is_complex() else d.square()  # |d|² without a sqrt
            s = self._sigma_t(r)
            v = (r / (s * s)).sum() / count
            return float(v / 2 if y.is_complex() else v)
        c = self._shift()
        counts = (y + c).clamp_(min=0)
        model = (z + c).clamp_(min=1e-12 * self.gain)  # 1e-12 photons
        return self.deviance(counts, model, counts / model, count)

    def expected_misfit(self, z: torch.Tensor, measured: int | None = None, seed: int = 0,
                        draws: int | None = None) -> float:
        """``E[misfit(y', z)]`` for data ``y'`` drawn from this model with mean ``z``: what :meth:`misfit` reaches when a
        model explains data down to the noise. Exactly 1 for Gaussian noise; for Poisson(-Gaussian) noise the mean
        deviance exceeds 1 at low counts (``≈ 1 + 1/(6λ) + 1/(6λ²)`` for ``λ`` photons, Zanella et al., Inverse
        Problems 25 (2009) 045010), estimated here from draws around ``max(z, 0)`` (seeded; enough draws for ~2¹⁸
        values; ``draws`` fixes their number, e.g. 1 inside an iteration that re-estimates it often). A discrepancy
        target ``τ ·`` this is met at the noise level whatever the counts.
        """
        if self.gain == 0:
            return 1.0
        z = to_tensor(z)
        if z.is_complex():
            raise ValueError("Poisson noise needs real, non-negative data; this operator produces complex data.")
        mean = z.detach().float().clamp(min=0)
        if draws is None:
            draws = int(min(64, max(4, -(-2**18 // max(mean.numel(), 1)))))
        elif int(draws) < 1:
            raise ValueError(f"expected_misfit needs at least one draw, got {draws}.")
        total = sum(self.misfit(self.sample(mean, seed=seed + j), mean, measured) for j in range(int(draws)))
        return float(total / draws)

    def deviance(self, counts: torch.Tensor, model: torch.Tensor, ratio: torch.Tensor,
                 measured: int | None = None) -> float:
        """Mean Poisson deviance ``(2/g) Σ[a log(a/b) − a + b] / measured`` of shifted data ``a`` and model ``b``
        (``ratio = a / b``, which Richardson–Lucy computes anyway), in photon units."""
        total = torch.xlogy(counts, ratio).sum() - counts.sum() + model.sum()
        return float(2 * total / (self.gain * (counts.numel() if measured is None else measured)))

    def normalized_residual(self, y: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """``(y − z) / sqrt(Var[y | z])``: ≈ N(0, 1) per pixel when the model explains the data."""
        v = self.variance(z)
        return (y - z) / v.clamp(min=1e-12 * float(v.max()) + torch.finfo(v.dtype).tiny).sqrt()

    def scaled(self, factor: float) -> NoiseModel:
        """The same camera for data multiplied by ``factor`` (> 0): gain and σ scale with the data."""
        if not factor > 0:
            raise ValueError("The scale factor of a noise model must be positive.")
        sig = self.sigma * factor if isinstance(self.sigma, float) else np.asarray(self.sigma) * factor
        if self.gain == 0:
            return Gaussian(sig)
        if np.all(np.asarray(self.sigma) == 0):
            return Poisson(self.gain * factor)
        return PoissonGaussian(self.gain * factor, sig)

    normalised_residual = normalized_residual  # deprecated spelling (issue #17)

    # -- description -------------------------------------------------------------------------------
    def spec(self) -> dict[str, Any]:
        return {"type": type(self).__name__, "gain": self.gain, "sigma": self.sigma}

    def __repr__(self) -> str:
        s = self.sigma if isinstance(self.sigma, float) else f"map{np.shape(self.sigma)}"
        return f"{type(self).__name__}(gain={self.gain:g}, sigma={s})"


class Gaussian(NoiseModel):
    """Additive white Gaussian noise ``y = z + N(0, σ²)``; σ a scalar or a map shaped like ``y``.

    On complex data the real and imaginary parts each get ``σ``.
    """

    def __init__(self, sigma=0.05):
        super().__init__(0.0, sigma)


class Poisson(NoiseModel):
    """Shot noise ``y = gain · Poisson(z / gain)`` (``gain`` = intensity units per photon)."""

    def __init__(self, gain: float = 1.0):
        if not gain > 0:
            raise ValueError("Poisson noise needs a positive gain (intensity units per photon).")
        super().__init__(gain, 0.0)


class PoissonGaussian(NoiseModel):
    """Camera model ``y = gain · Poisson(z / gain) + N(0, σ²)``: shot noise plus read noise."""

    def __init__(self, gain: float = 0.01, sigma=0.01):
        if not gain > 0:
            raise ValueError("Poisson–Gaussian noise needs a positive gain.")
        super().__init__(gain, sigma)


_NOISE_TYPES = {c.__name__: c for c in (Gaussian, Poisson, PoissonGaussian)}


def from_spec(spec: dict[str, Any]) -> NoiseModel:
    """Rebuild a noise model from :meth:`NoiseModel.spec`."""
    if not isinstance(spec, dict):
        raise TypeError(f"A noise spec is a dict such as {{'type': 'Gaussian', 'sigma': 0.1}}, got {type(spec).__name__}.")
    kind = spec.get("type")
    if kind == "Gaussian":
        return Gaussian(spec["sigma"])
    if kind == "Poisson":
        return Poisson(spec["gain"])
    if kind == "PoissonGaussian":
        return PoissonGaussian(spec["gain"], spec["sigma"])
    raise ValueError(f"Unknown noise type {kind!r}; known: {sorted(_NOISE_TYPES)}.")


def _haar_detail(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Finest diagonal Haar detail (noise-dominated) and the matching local means, per 2×2(×2) block."""
    d = y.ndim
    crop = tuple(slice(0, (s // 2) * 2) for s in y.shape)
    y = y[crop]
    blocks = y.reshape(sum(([s // 2, 2] for s in y.shape), []))
    axes = tuple(2 * i + 1 for i in range(d))
    mean = blocks.mean(axis=axes)
    signs = np.ones([1] * (2 * d))
    for i in range(d):
        sh = [1] * (2 * d)
        sh[2 * i + 1] = 2
        signs = signs * np.array([1.0, -1.0]).reshape(sh)
    detail = (blocks * signs).sum(axis=axes) / np.sqrt(2.0**d)  # orthonormal: noise std preserved
    return detail, mean


def estimate(y, model: str = "auto") -> NoiseModel:
    """Estimate the noise of a single image.

    ``"gaussian"``: σ from the median absolute deviation of the finest wavelet detail coefficients
    (Donoho & Johnstone, Biometrika 81 (1994) 425). ``"poisson_gaussian"``: fit
    ``Var[y] = gain · E[y] + σ²`` to local (mean, MAD²) pairs of the detail coefficients binned by
    intensity (Foi et al., IEEE TIP 17 (2008) 1737). ``"auto"`` picks Poisson–Gaussian when the fitted
    gain explains a clear share of the variance, else Gaussian.
    """
    if model not in ("auto", "gaussian", "poisson_gaussian"):
        raise ValueError(f"model must be 'auto', 'gaussian' or 'poisson_gaussian', got {model!r}.")
    a = np.asarray(y)
    if a.size < 16:
        raise ValueError("Too few pixels to estimate the noise.")
    a = a.reshape([n for n in a.shape if n > 1] or [1])  # a (1, N) row is a 1D signal, not an empty 2×2 tiling
    if np.iscomplexobj(a):
        a = np.concatenate([a.real.ravel(), a.imag.ravel()]) if a.ndim == 1 else a.real
    a = a.astype(np.float64)
    if not np.isfinite(a).all():
        raise ValueError("Cannot estimate noise: the image contains NaN or infinite values.")
    # floors relative to the data's own scale, so that the estimate scales with the data's units
    unit = float(np.sqrt(np.mean(a * a)))
    floor = 1e-8 * (unit if unit > 0 else 1.0)
    if a.ndim == 1:
        det = np.diff(a) / np.sqrt(2)
        sigma_all = 1.4826 * np.median(np.abs(det - np.median(det)))
    else:
        detail, mean = _haar_detail(a)
        sigma_all = 1.4826 * np.median(np.abs(detail))
    if not sigma_all > floor:
        warnings.warn("noise.estimate: the image's finest details hold no measurable noise (a constant, synthetic or "
                      f"quantized-flat image); the noise is floored at {floor:.3g} (1e-8 of its RMS). Give the noise "
                      "model if you know it.", UserWarning, stacklevel=2)
    if model == "gaussian" or a.ndim == 1:
        return Gaussian(max(sigma_all, floor))
    # bin local means by quantile, robust variance per bin
    m, dd = mean.ravel(), detail.ravel()
    edges = np.unique(np.quantile(m, np.linspace(0, 1, 21)))
    xs, vs = [], []
    for lo, hi in zip(edges[:-1], edges[1:]):
        sel = (m >= lo) & (m < hi)
        if sel.sum() > 50:
            xs.append(np.median(m[sel]))
            vs.append((1.4826 * np.median(np.abs(dd[sel]))) ** 2)
    if len(xs) >= 3:
        gain, var0 = np.polyfit(np.asarray(xs), np.asarray(vs), 1)
    else:
        gain, var0 = 0.0, sigma_all**2
    spread = np.ptp(xs) if xs else 0.0
    explains = gain > 0 and gain * spread > 0.5 * max(var0, (1e-6 * unit) ** 2)
    if model == "poisson_gaussian" or (model == "auto" and explains):
        # var0 is the variance at intensity 0; a camera offset can push it below zero
        sigma = float(np.sqrt(var0)) if var0 > 0 else floor
        return PoissonGaussian(gain=float(max(gain, floor)), sigma=max(sigma, floor))
    return Gaussian(max(sigma_all, floor))
