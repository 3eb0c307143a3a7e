"""Building blocks of the samplers: the prior potentials ``U(x) = −log p(x)`` and the posterior, whose data term
is :class:`~napari_invimg.operators.DataTerm` (its weighted least squares).

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

from ..operators.data_term import DataTerm, sum_image
from ..operators.kernels import conjugate_gradient
from ..priors.base import AnalysisRegularizer, Regularizer, SmoothRegularizer
from ..priors.denoisers import Denoiser, get_denoiser
from ..priors.differences import laplacian
from .registry import Param

__all__ = [
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
    (Laumont et al. 2022 use [−1, 2] for images in [0, 1]); ``∇U = (x − Π(x)) / λ``. On complex images (MRI) the
    box applies to the real and the imaginary part each."""

    def __init__(self, low: float, high: float, lam: float, ndim: int):
        self.low, self.high, self.lam, self.ndim = float(low), float(high), float(lam), int(ndim)
        self.lipschitz = 1.0 / self.lam

    def project(self, x: torch.Tensor) -> torch.Tensor:
        """``Π(x)``: the nearest point of the box (part by part for complex ``x``: torch cannot clamp complex)."""
        if x.is_complex():
            return torch.complex(x.real.clamp(self.low, self.high), x.imag.clamp(self.low, self.high))
        return x.clamp(self.low, self.high)

    def grad(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.project(x)) / self.lam

    def value(self, x: torch.Tensor) -> torch.Tensor:
        return sum_image((x - self.project(x)).abs() ** 2, self.ndim) / (2 * self.lam)


class Posterior:
    """``U(x) = −log p(y | x) − Σ log p_i(x)``: a data term (its weighted least squares) plus prior potentials."""

    def __init__(self, data: DataTerm, priors: Sequence[Potential]):
        self.data = data
        self.priors = list(priors)

    @property
    def lipschitz(self) -> float:
        return self.data.lipschitz + sum(p.lipschitz for p in self.priors)

    @property
    def has_value(self) -> bool:
        return all(p.has_value for p in self.priors)

    def grad(self, x: torch.Tensor) -> torch.Tensor:
        g = self.data.grad(x)
        for p in self.priors:
            g = g + p.grad(x)
        return g

    def value_and_grad(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        v, g = self.data.value_and_grad(x)
        for p in self.priors:
            v = v + p.value(x)
            g = g + p.grad(x)
        return v, g

    @property
    def operator_evaluations(self) -> int:
        return self.data.evaluations

    @property
    def network_evaluations(self) -> int:
        return sum(p.evaluations for p in self.priors)


def image_unit(x: torch.Tensor) -> float:
    """The image's robust maximum (99.9th percentile of ``|x|``; 1 if that is not positive): the intensity a denoiser
    trained on images in [0, 1] sees as 1."""
    mag = x.abs().flatten().float()
    k = max(int(0.999 * mag.numel()) - 1, 0)
    unit = float(mag.kthvalue(k + 1).values)
    return unit if unit > 0 and math.isfinite(unit) else 1.0


def warm_start(data: DataTerm, ndim: int, iterations: int = 30) -> torch.Tensor:
    """A smooth starting image: ``argmin ½‖y − A x‖²_W + μ/2 ‖∇x‖²`` with ``μ = 10⁻² L_y`` by a few CG steps."""
    mu = 1e-2 * data.lipschitz

    def normal(v: torch.Tensor) -> torch.Tensor:
        data.evaluations += 1
        return data.weighted_normal(v) + mu * laplacian(v, ndim)

    with torch.no_grad():
        return conjugate_gradient(normal, data.weighted_adjoint, iterations=iterations, tol=1e-4)
