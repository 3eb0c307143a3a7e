"""Building blocks of the samplers: the likelihood and the prior potentials ``U(x) = −log p(x)``.

Every piece works on batches (leading dimensions = chains or samples; trailing = the image), knows a
Lipschitz constant of its gradient (the step size of Langevin and the trust of VB come from it) and
counts its operator / network evaluations.
"""

from __future__ import annotations

import inspect
import math
from abc import ABC, abstractmethod
from collections.abc import Sequence

import torch

from ..operators.base import LinearOperator
from ..operators.kernels import conjugate_gradient
from ..operators.noise import NoiseModel
from ..priors.base import AnalysisRegularizer, Regularizer, SmoothRegularizer
from ..priors.denoisers import Denoiser, get_denoiser
from ..priors.differences import laplacian
from .registry import Param

__all__ = [
    "Likelihood",
    "Potential",
    "RegularizerPotential",
    "DenoiserPrior",
    "BoxPenalty",
    "Posterior",
    "complex_randn",
    "warm_start",
    "load_denoiser",
    "WEIGHTS",
]


def complex_randn(shape: Sequence[int], like: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Standard normal noise shaped ``shape`` and typed like ``like``; complex: N(0, 1) in each part."""
    dev = generator.device
    if like.is_complex():
        real = torch.randn(tuple(shape), generator=generator, device=dev)
        imag = torch.randn(tuple(shape), generator=generator, device=dev)
        return torch.complex(real, imag).to(like.device, like.dtype)
    return torch.randn(tuple(shape), generator=generator, device=dev).to(like.device, like.dtype)


#: the parameter every method with a learned prior takes for the user's own weights
WEIGHTS = Param("weights", str, "", doc="denoiser weights file, e.g. from ni.train_denoiser (empty: shipped weights)")


def load_denoiser(name: str, weights: str) -> Denoiser:
    """A registered denoiser, with the user's weights file when ``weights`` is not empty."""
    if not weights:
        return get_denoiser(name)
    if "weights" not in inspect.signature(type(get_denoiser(name)).__init__).parameters:
        raise ValueError(f"The denoiser {name!r} takes no weights file; choose a learned one (e.g. 'drunet').")
    return get_denoiser(name, weights=weights)


def _sum_image(t: torch.Tensor, ndim: int) -> torch.Tensor:
    """Sum over the trailing ``ndim`` (image) axes, keeping the batch axes."""
    return t.sum(dim=tuple(range(t.ndim - ndim, t.ndim))) if ndim else t


class Likelihood:
    """``−log p(y | x) = ½ Σ |y − A x|² / v``: Gaussian noise (``v = σ²``, a scalar or a map); Poisson(–Gaussian)
    noise through its Gaussian approximation ``v = gain · max(y, gain) + σ²`` (weighted least squares, whose
    gradient is Lipschitz, unlike the Poisson log-likelihood near zero). ``∇ = Aᴴ (A x − y) / v``."""

    def __init__(self, y: torch.Tensor, A: LinearOperator, noise: NoiseModel):
        self.y, self.A, self.noise = y, A, noise
        yr = y.real if y.is_complex() else y
        if noise.gain > 0:
            v = noise.gain * yr.clamp(min=noise.gain) + noise.variance(torch.zeros_like(yr))
        else:
            v = noise.variance(yr)
        self.variance = v.clamp(min=1e-12 * float(v.max()) + 1e-38)  # relative: no floor in the data's units
        self.weight = 1.0 / self.variance
        self.lipschitz = A.norm() ** 2 * float(self.weight.max())
        self.evaluations = 0

    def _count(self, x: torch.Tensor) -> None:
        self.evaluations += max(1, x.numel() // max(1, math.prod(self.A.in_shape)))

    def value(self, x: torch.Tensor) -> torch.Tensor:
        self._count(x)
        r = self.A.apply(x) - self.y
        return 0.5 * _sum_image(r.abs() ** 2 * self.weight, len(self.A.out_shape))

    def grad(self, x: torch.Tensor) -> torch.Tensor:
        self._count(x)
        return self.A.apply_adjoint((self.A.apply(x) - self.y) * self.weight)

    def value_and_grad(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self._count(x)
        r = self.A.apply(x) - self.y
        v = 0.5 * _sum_image(r.abs() ** 2 * self.weight, len(self.A.out_shape))
        return v, self.A.apply_adjoint(r * self.weight)

    def proximal_mean(self, center: torch.Tensor, rho: float | torch.Tensor, iterations: int = 20) -> torch.Tensor:
        """``argmin_x ½‖y − A x‖²_W + ρ/2 ‖x − center‖²`` by conjugate gradients (DiffPIR's data step).

        A per-batch ``ρ`` (shape = the batch) is broadcast over the image.
        """
        nd = len(self.A.in_shape)
        r = rho.reshape(tuple(rho.shape) + (1,) * nd) if isinstance(rho, torch.Tensor) else rho
        b = self.A.apply_adjoint(self.y * self.weight) + r * center
        counter = {"n": 0}

        def normal(v: torch.Tensor) -> torch.Tensor:
            counter["n"] += 1
            return self.A.apply_adjoint(self.A.apply(v) * self.weight) + r * v

        x = conjugate_gradient(normal, b, center, iterations=iterations, tol=1e-4)
        self.evaluations += counter["n"] * max(1, center.numel() // max(1, math.prod(self.A.in_shape)))
        return x


class Potential(ABC):
    """A prior potential ``U(x) = −log p(x)`` (up to a constant) with a Lipschitz gradient."""

    #: Lipschitz constant of ∇U
    lipschitz: float = 0.0
    evaluations: int = 0
    #: whether :meth:`value` is available (MALA's accept–reject step needs it)
    has_value: bool = True

    @abstractmethod
    def grad(self, x: torch.Tensor) -> torch.Tensor:
        """``∇U(x)`` for a batch of images."""

    @abstractmethod
    def value(self, x: torch.Tensor) -> torch.Tensor:
        """``U(x)`` per batch element."""


class RegularizerPotential(Potential):
    """``U(x) = θ R̃(x)`` for a hand-crafted regularizer ``R`` (:func:`~napari_invimg.priors.get_regularizer`).

    ``envelope="huber"``: ``R``'s Huber smoothing ``R_ε`` (exact ``R`` for smooth regularizers such as
    Tikhonov), ``∇U = θ ∇R_ε``, Lipschitz ``θ ‖L‖² / ε``. ``envelope="moreau"``: the Moreau–Yosida envelope
    ``min_u θ R(u) + ‖x − u‖²/2λ`` of any proximable ``R``, ``∇U = (x − prox_{λθR}(x)) / λ``, Lipschitz ``1/λ``
    (MYULA: Durmus, Moulines & Pereyra, SIAM J Imaging Sci 11 (2018) 473).
    """

    def __init__(self, regularizer: Regularizer, theta: float, envelope: str, parameter: float):
        if envelope not in ("huber", "moreau"):
            raise ValueError(f"envelope must be 'huber' or 'moreau', got {envelope!r}.")
        if envelope == "huber" and not isinstance(regularizer, (AnalysisRegularizer, SmoothRegularizer)):
            raise ValueError(f"The {regularizer.name!r} prior has no smooth version; use envelope='moreau'.")
        if not parameter > 0:
            raise ValueError("The smoothing (Huber ε or Moreau–Yosida λ) must be positive.")
        self.regularizer, self.envelope, self.parameter = regularizer, envelope, float(parameter)
        self.ndim = regularizer.ndim
        #: homogeneity degree of R (the empirical-Bayes weight uses it): quadratic priors 2, norms 1
        self.degree = 2 if isinstance(regularizer, SmoothRegularizer) else 1
        self.set_theta(theta)

    def set_theta(self, theta: float) -> None:
        self.theta = float(theta)
        reg = self.regularizer
        if self.envelope == "moreau":
            self.lipschitz = 1.0 / self.parameter
        elif isinstance(reg, AnalysisRegularizer):
            self.lipschitz = self.theta * reg.lipschitz / reg.smoothing
        else:
            self.lipschitz = self.theta * reg.lipschitz

    def _each(self, f, x: torch.Tensor) -> torch.Tensor:
        """``f`` (which sums over a batch) evaluated per batch element."""
        flat = x.reshape((-1,) + tuple(x.shape[x.ndim - self.ndim:]))
        vals = torch.stack([f(xi).real.to(torch.float64) for xi in flat])
        return vals.reshape(x.shape[:x.ndim - self.ndim]).to(x.real.dtype)

    def penalty(self, x: torch.Tensor) -> torch.Tensor:
        """The potential without ``θ`` per batch element: ``R_ε(x)`` (Huber), ``R(x)`` (Moreau–Yosida, smooth R)."""
        reg = self.regularizer
        if self.envelope == "huber" and isinstance(reg, AnalysisRegularizer):
            return self._each(reg.smoothed_value, x)
        return self._each(reg.value, x)

    def value(self, x: torch.Tensor) -> torch.Tensor:
        if self.envelope == "moreau":
            reg, t = self.regularizer, self.parameter * self.theta
            return self.theta * self._each(lambda v: reg.moreau_value(v, t), x)
        return self.theta * self.penalty(x)

    def grad(self, x: torch.Tensor) -> torch.Tensor:
        reg = self.regularizer
        if self.envelope == "moreau":
            t = self.parameter * self.theta
            return self.theta * self._map(lambda v: reg.moreau_grad(v, t), x)
        return self.theta * self._map(reg.grad, x)

    def _map(self, f, x: torch.Tensor) -> torch.Tensor:
        """``f`` applied to each image of the batch (not every regularizer handles batch axes)."""
        flat = x.reshape((-1,) + tuple(x.shape[x.ndim - self.ndim:]))
        return torch.stack([f(xi) for xi in flat]).reshape(x.shape)


class DenoiserPrior(Potential):
    """Learned prior through Tweedie: ``∇U(x) = −α (D(x, ε) − x) / ε²`` — the score of the prior smoothed at
    noise level ``ε`` (PnP-ULA: Laumont et al., SIAM J Imaging Sci 15 (2022) 701). Lipschitz ``α / ε²`` for a
    denoiser residual that is 1-Lipschitz. No value: MALA cannot use it."""

    has_value = False

    def __init__(self, denoiser: Denoiser, epsilon: float, alpha: float, ndim: int):
        if epsilon <= 0:
            raise ValueError("The denoiser noise level epsilon must be positive.")
        self.denoiser, self.epsilon, self.alpha, self.ndim = denoiser, float(epsilon), float(alpha), int(ndim)
        self.lipschitz = self.alpha / self.epsilon**2

    def grad(self, x: torch.Tensor) -> torch.Tensor:
        self.evaluations += max(1, x.numel() // max(1, math.prod(x.shape[x.ndim - self.ndim:])))
        with torch.no_grad():
            return -self.alpha * (self.denoiser(x, self.epsilon, self.ndim) - x) / self.epsilon**2

    def value(self, x: torch.Tensor) -> torch.Tensor:
        raise ValueError("A denoiser prior has a score but no value; use ULA (pnp_ula), not MALA, with it.")


class BoxPenalty(Potential):
    """``U(x) = d(x, [low, high])² / 2λ``: keeps the chain in a box where the learned prior is trained
    (Laumont et al. 2022 use [−1, 2] for images in [0, 1]); ``∇U = (x − Π(x)) / λ``."""

    def __init__(self, low: float, high: float, lam: float, ndim: int):
        self.low, self.high, self.lam, self.ndim = float(low), float(high), float(lam), int(ndim)
        self.lipschitz = 1.0 / self.lam

    def grad(self, x: torch.Tensor) -> torch.Tensor:
        return (x - x.clamp(self.low, self.high)) / self.lam

    def value(self, x: torch.Tensor) -> torch.Tensor:
        return _sum_image((x - x.clamp(self.low, self.high)) ** 2, self.ndim) / (2 * self.lam)


class Posterior:
    """``U(x) = −log p(y | x) − Σ log p_i(x)``: a likelihood plus prior potentials."""

    def __init__(self, likelihood: Likelihood, priors: Sequence[Potential]):
        self.likelihood = likelihood
        self.priors = list(priors)

    @property
    def lipschitz(self) -> float:
        return self.likelihood.lipschitz + sum(p.lipschitz for p in self.priors)

    @property
    def has_value(self) -> bool:
        return all(p.has_value for p in self.priors)

    def grad(self, x: torch.Tensor) -> torch.Tensor:
        g = self.likelihood.grad(x)
        for p in self.priors:
            g = g + p.grad(x)
        return g

    def value_and_grad(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        v, g = self.likelihood.value_and_grad(x)
        for p in self.priors:
            v = v + p.value(x)
            g = g + p.grad(x)
        return v, g

    @property
    def operator_evaluations(self) -> int:
        return self.likelihood.evaluations

    @property
    def network_evaluations(self) -> int:
        return sum(p.evaluations for p in self.priors)


def warm_start(likelihood: Likelihood, ndim: int, iterations: int = 30) -> torch.Tensor:
    """A smooth starting image: ``argmin ½‖y − A x‖²_W + μ/2 ‖∇x‖²`` with ``μ = 10⁻² L_y`` by a few CG steps."""
    A = likelihood.A
    mu = 1e-2 * likelihood.lipschitz
    b = A.apply_adjoint(likelihood.y * likelihood.weight)

    def normal(v: torch.Tensor) -> torch.Tensor:
        likelihood.evaluations += 1
        return A.apply_adjoint(A.apply(v) * likelihood.weight) + mu * laplacian(v, ndim)

    with torch.no_grad():
        return conjugate_gradient(normal, b, iterations=iterations, tol=1e-4)

